// The call page, /calls_monitoring/{CallSid}. Live: subscribe over the monitor socket
// (again after each reconnect), listen in, follow the transcript and events. Finished,
// or not live here: the recording, transcript and events from the API.

import * as api from './api.js';
import { EventLog } from './events.js';
import * as fmt from './format.js';
import { StateIndicator } from './indicator.js';
import { ListenIn } from './listen.js';
import { showUser } from './session.js';
import { MonitorSocket } from './socket.js';
import { createStats } from './stats.js';
import { Transcript } from './transcript.js';

const $ = (id) => document.getElementById(id);
const FINISH_AFTER_MS = 2000; // "Call ended" stays on the live view this long
const EVENT_PAGES_MAX = 20; // of the API's events, past those the call's answer holds
const SUMMARY_POLL_MS = 2000; // a pending summary is asked for again this often
const SUMMARY_POLLS_MAX = 150; // … for five minutes at most
const SUMMARY_STATES = {
  pending: 'Being made…',
  no_speech: 'No summary: nothing was said on this call.',
  no_llm: 'No summary: no language model is set up (LLM_URL).',
  off: 'No summary: summaries are turned off (SUMMARY=0).',
};

const sid = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
const stats = createStats($('stats'));
const indicator = new StateIndicator($('state'));
const events = new EventLog($('events'));
const transcript = new Transcript($('transcript'));
const socket = new MonitorSocket();
const listen = new ListenIn(socket, sid, stats);

let call = null; // the latest call object heard of
let view = 'pending'; // pending | live | finished
let awaiting = false; // a subscribe is unanswered on this connection

function setState(state, retryAt) {
  indicator.set(state, retryAt);
  stats.state = state;
}

function renderDetails() {
  if (!call) return;
  $('title').textContent = `${call.from || 'Unknown'} → ${call.to || 'Unknown'}`;
  $('from').textContent = call.from || '–';
  $('to').textContent = call.to || '–';
  $('started').replaceChildren(fmt.timeElement(call.started_at, fmt.dateTime(call.started_at)));
  $('call-status').textContent = call.status || '–';
  renderDuration();
}

function renderDuration() {
  if (!call) return;
  const running = call.live && call.started_at;
  const ms = running ? socket.clock.now() - Date.parse(call.started_at) : call.duration_ms;
  $('duration').textContent = fmt.duration(ms);
}

// A call whose streams all carry text (a relay, <Gather> turns): nothing to hear or record.
function isRelay(c) {
  const streams = c?.streams ?? [];
  return streams.length > 0 && streams.every((s) => s.mode === 'relay' || s.mode === 'gather');
}

function showLive() {
  if (view === 'live') return;
  view = 'live';
  $('text-only').hidden = !isRelay(call);
  $('live').hidden = isRelay(call);
  $('control').hidden = false;
}

// Hang up and Transfer, each after a confirm; the answer (or the refusal) is shown.
async function control(what, run) {
  const status = $('control-status');
  status.textContent = `${what}…`;
  try {
    await run();
    status.textContent = `${what}: done`;
  } catch (err) {
    status.textContent = `${what} failed: ${err.message}`;
  }
}

$('hangup').addEventListener('click', () => {
  if (!confirm('Hang up this call?')) return;
  control('Hang up', () => api.hangup(sid));
});

$('transfer').addEventListener('click', () => {
  const to = prompt('Transfer to which number? (E.164, e.g. +15551230000)');
  if (!to) return;
  if (!/^\+[1-9][0-9]{1,14}$/.test(to.trim())) {
    $('control-status').textContent = `Transfer: ${to} is not an E.164 number`;
    return;
  }
  if (!confirm(`Transfer this call to ${to.trim()}?`)) return;
  control('Transfer', () => api.transfer(sid, to.trim()));
});

function callEnded(ended) {
  if (view === 'finished') return;
  $('control').hidden = true;
  call = { ...call, ...ended, live: false };
  renderDetails();
  setState('ended');
  listen.end();
  socket.stop();
  setTimeout(showFinished, view === 'live' ? FINISH_AFTER_MS : 0);
}

async function showFinished() {
  if (view === 'finished') return;
  view = 'finished';
  socket.stop();
  listen.end();
  $('live').hidden = true;
  if (stats.state !== 'ended') setState('ended');
  try {
    ({ call } = await api.call(sid));
  } catch (err) {
    if (err.status === 404) setState('missing');
    $('finished').hidden = false;
    showRecording(err.status === 404 ? null : api.recordingUrl(sid));
    $('transcript').dataset.empty = 'No transcript';
    return;
  }
  renderDetails();
  showSummary();
  events.addAll(call.events);
  $('text-only').hidden = !isRelay(call);
  $('finished').hidden = isRelay(call);
  showRecording(call.recording?.url);
  const [segments] = await Promise.all([
    api.transcript(sid).catch(() => null),
    call.events_truncated && loadMoreEvents(call.events),
  ]);
  if (segments) {
    transcript.clear();
    for (const seg of segments) transcript.upsert(seg);
  }
  $('transcript').dataset.empty = 'No transcript';
}

function fillList(list, items) {
  list.replaceChildren(
    ...(items ?? []).map((text) => {
      const li = document.createElement('li');
      li.textContent = text;
      return li;
    }),
  );
  if (!list.children.length) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = list.dataset.empty;
    list.append(li);
  }
}

// The summary once made; its state until then (asked again while it is pending).
async function showSummary(polls = 0) {
  let s;
  try {
    s = await api.summary(sid);
  } catch {
    s = null;
  }
  if (!s) return;
  const panel = $('summary');
  panel.hidden = false;
  panel.dataset.status = s.status;
  const done = s.status === 'done';
  $('summary-body').hidden = !done;
  if (done) {
    $('summary-status').textContent = '';
    $('summary-text').textContent = s.summary;
    $('summary-sentiment').textContent = s.sentiment;
    $('summary-sentiment').dataset.sentiment = s.sentiment;
    fillList($('summary-points'), s.key_points);
    fillList($('summary-actions'), s.action_items);
    return;
  }
  $('summary-status').textContent =
    s.status === 'failed' ? `No summary: it failed (${s.reason}).` : SUMMARY_STATES[s.status] || s.reason;
  if (s.status === 'pending' && polls < SUMMARY_POLLS_MAX)
    setTimeout(() => showSummary(polls + 1), SUMMARY_POLL_MS);
}

function showRecording(url) {
  const audio = $('recording');
  const none = () => {
    audio.hidden = true;
    $('no-recording').hidden = false;
  };
  if (!url) return none();
  audio.addEventListener('error', none, { once: true });
  audio.src = url;
}

async function loadMoreEvents(first) {
  let after = first.at(-1)?.id;
  for (let page = 0; after != null && page < EVENT_PAGES_MAX; page++) {
    const body = await api.events(sid, after).catch(() => null);
    if (!body) return;
    events.addAll(body.events);
    after = body.next_after;
  }
}

const handlers = {
  hello() {
    stats.reconnects = Math.max(0, socket.connects - 1);
    awaiting = socket.send({ type: 'subscribe', call: sid, audio: listen.audioChoice });
  },
  subscribed(msg) {
    awaiting = false;
    call = msg.call;
    if (!call.live) {
      callEnded(call);
      return;
    }
    if (!isRelay(call)) listen.subscribed();
    showLive();
    renderDetails();
    events.addAll(msg.events);
    setState('live');
    // Joining mid-call: what was said before comes from the store; segments that also
    // arrive live are merged by id (a refined one replaces what is shown).
    api.transcript(sid).then((segments) => {
      for (const seg of segments ?? []) {
        if (!transcript.has(seg.id) || seg.refined) transcript.upsert(seg);
      }
    }, () => {});
  },
  event(msg) {
    if (msg.call === sid) events.add(msg.event);
  },
  transcript(msg) {
    if (msg.call !== sid || !msg.segment) return;
    transcript.upsert(msg.segment);
    stats.transcriptSegments = transcript.size;
  },
  stats(msg) {
    if (msg.call === sid) listen.onStats(msg);
  },
  call_ended(msg) {
    if (msg.call?.sid === sid) callEnded(msg.call);
  },
  error(msg) {
    if (!awaiting) return;
    // The server would not subscribe us: the call is not live here.
    awaiting = false;
    console.info(`monitor: cannot subscribe to ${sid}: ${msg.message}`);
    showFinished();
  },
};

socket.addEventListener('message', (e) => handlers[e.detail.type]?.(e.detail));
socket.addEventListener('state', (e) => {
  if (view === 'finished' || stats.state === 'ended') return;
  const { state, retryAt } = e.detail;
  if (state === 'connecting' || state === 'reconnecting') setState(state, retryAt);
});
socket.addEventListener('refused', () => api.me().catch(() => {}));

if (!/^C[AS][0-9a-f]{32}$/i.test(sid)) {
  setState('missing');
  listen.end();
} else {
  $('title').textContent = sid;
  document.title = `${sid} – callstream`;
  showUser();
  socket.start();
  api
    .call(sid)
    .then((body) => {
      if (view !== 'pending') return;
      call = body.call;
      renderDetails();
      if (!call.live) showFinished();
    })
    .catch(() => {}); // not stored yet, or the store is away: the socket decides
  setInterval(renderDuration, 1000);
}
