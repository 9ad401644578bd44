// The REST API (README: /api/v1/…). Without a session it answers 401: go and sign in,
// then come back here.

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function toLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

async function getJSON(path) {
  const res = await fetch(path, { headers: { Accept: 'application/json' } });
  if (res.status === 401) {
    toLogin();
    throw new HttpError(401, 'not signed in');
  }
  if (!res.ok) {
    const body = await res.json().catch(() => null);
    throw new HttpError(res.status, body?.error?.message || res.statusText);
  }
  return res.json();
}

async function postJSON(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  if (res.status === 401) {
    toLogin();
    throw new HttpError(401, 'not signed in');
  }
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new HttpError(res.status, json?.error?.message || res.statusText);
  return json;
}

const callPath = (sid) => `/api/v1/calls/${encodeURIComponent(sid)}`;

export const me = () => getJSON('/api/v1/me');

/** A page of calls, newest first; `filters` (q, from, to, status, since, until) as the
 * API takes them, empty ones left out. */
export function calls({ limit = 20, cursor = null, filters = {} } = {}) {
  const q = new URLSearchParams({ limit });
  for (const [name, value] of Object.entries(filters)) if (value) q.set(name, value);
  if (cursor) q.set('cursor', cursor);
  return getJSON(`/api/v1/calls?${q}`);
}

export const call = (sid) => getJSON(callPath(sid));

/** One page of a call's events after event id `after`: {events, next_after}. */
export function events(sid, after) {
  return getJSON(`${callPath(sid)}/events?${new URLSearchParams({ after, limit: 500 })}`);
}

export const recordingUrl = (sid) => `${callPath(sid)}/recording.wav`;

/** The transcript's segments, or null when there is none (404). */
export async function transcript(sid) {
  try {
    const body = await getJSON(`${callPath(sid)}/transcript`);
    return Array.isArray(body.segments) ? body.segments : null;
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

/** Call control: ends the call (POST …/hangup). */
export const hangup = (sid) => postJSON(`${callPath(sid)}/hangup`);

/** Call control: transfers the call to `to` (E.164) with <Dial> (POST …/transfer). */
export const transfer = (sid, to) => postJSON(`${callPath(sid)}/transfer`, { to });

/**
 * The call's summary: {status: 'done', summary, key_points, action_items, sentiment}, or
 * {status, reason} when there is none (pending, failed, no_speech, no_llm, off); null for
 * a call the store does not have.
 */
export async function summary(sid) {
  const res = await fetch(`${callPath(sid)}/summary`, { headers: { Accept: 'application/json' } });
  if (res.status === 401) {
    toLogin();
    throw new HttpError(401, 'not signed in');
  }
  const body = await res.json().catch(() => null);
  if (res.ok) return body;
  if (res.status === 404) return body?.status ? body : null;
  throw new HttpError(res.status, body?.error?.message || res.statusText);
}
