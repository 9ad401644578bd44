// The calls page, /calls_monitoring: live calls from the monitor socket's list feed and
// recent calls from the API, paged with next_cursor and reloaded as calls come and go.
// The recent calls can be searched and filtered (q, from, to, status, since, until: the
// API's parameters, kept in the page's URL so a search can be linked and reloaded); the
// live panel always shows every live call, and a call starting or ending reloads the
// filtered list, so a new call shows there once it matches every filter.

import * as api from './api.js';
import * as fmt from './format.js';
import { StateIndicator } from './indicator.js';
import { showUser } from './session.js';
import { MonitorSocket } from './socket.js';

const $ = (id) => document.getElementById(id);
const PAGE = 20;
const RELOAD_AFTER_MS = 1000; // the store writes in batches: give it a moment

const socket = new MonitorSocket();
const indicator = new StateIndicator($('state'));
const liveCalls = new Map(); // sid → call
const FILTERS = ['q', 'from', 'to', 'status', 'since', 'until'];
let filters = {}; // what the recent calls are filtered by: the page URL's parameters
let cursor = null;
let reloadTimer = 0;
let loads = 0; // the latest load wins

const callUrl = (sid) => `/calls_monitoring/${encodeURIComponent(sid)}`;

// `label` names the column where narrow screens show rows as cards.
function cell(label, content) {
  const td = document.createElement('td');
  if (label) td.dataset.label = label;
  td.append(content ?? '–');
  return td;
}

function link(sid, text) {
  const a = document.createElement('a');
  a.href = callUrl(sid);
  a.textContent = text;
  return a;
}

function liveRow(call) {
  const tr = document.createElement('tr');
  tr.dataset.sid = call.sid;
  const duration = cell('Duration', '');
  duration.className = 'duration';
  tr.append(
    cell('From', call.from),
    cell('To', call.to),
    cell('Started', fmt.timeElement(call.started_at, fmt.clock(call.started_at))),
    duration,
    cell('', link(call.sid, 'Listen')),
  );
  return tr;
}

function renderLive() {
  const rows = [...liveCalls.values()]
    .sort((a, b) => String(b.started_at).localeCompare(String(a.started_at)))
    .map(liveRow);
  $('live-calls').replaceChildren(...rows);
  $('live-count').textContent = String(liveCalls.size);
  tickDurations();
}

function tickDurations() {
  const now = socket.clock.now();
  for (const tr of $('live-calls').children) {
    const call = liveCalls.get(tr.dataset.sid);
    const started = Date.parse(call?.started_at);
    tr.querySelector('.duration').textContent = fmt.duration(Number.isNaN(started) ? null : now - started);
  }
}

// A search result's matching line: the snippet's parts as text, the words it matched in
// <mark> (built as elements: nothing in a transcript is markup).
function matchRow(call) {
  const tr = document.createElement('tr');
  tr.className = 'match';
  const td = document.createElement('td');
  td.colSpan = 6;
  td.append(`${call.match.speaker === 'agent' ? 'Agent' : 'Caller'}: `);
  for (const part of call.match.snippet || []) {
    if (part.hit) {
      const mark = document.createElement('mark');
      mark.textContent = part.text;
      td.append(mark);
    } else {
      td.append(part.text);
    }
  }
  tr.append(td);
  return tr;
}

function recentRow(call) {
  const tr = document.createElement('tr');
  tr.dataset.sid = call.sid;
  const status = document.createElement('span');
  status.className = call.live ? 'badge live' : 'badge';
  status.textContent = call.live ? 'live' : call.status || '–';
  const started = call.started_at || call.created_at;
  tr.append(
    cell('From', call.from),
    cell('To', call.to),
    cell('Started', fmt.timeElement(started, fmt.dateTime(started))),
    cell('Duration', fmt.duration(call.duration_ms)),
    cell('Status', status),
    cell('', link(call.sid, call.live ? 'Listen' : 'Details')),
  );
  if (!call.match) return [tr];
  tr.classList.add('has-match');
  return [tr, matchRow(call)];
}

// ---- filters: the URL's parameters ↔ the form ----

function filtersFromUrl() {
  const params = new URLSearchParams(location.search);
  const out = {};
  for (const name of FILTERS) if (params.get(name)) out[name] = params.get(name);
  return out;
}

// An API time (ISO 8601 or ms) as a datetime-local value (local time), and back.
function toLocalInput(value) {
  const d = new Date(/^\d+$/.test(value) ? Number(value) : value);
  if (Number.isNaN(d.getTime())) return '';
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}
const fromLocalInput = (value) => (value ? new Date(value).toISOString() : '');

function fillForm() {
  const form = $('filters');
  for (const name of FILTERS) {
    const input = form.elements[name];
    const value = filters[name] || '';
    if (name === 'since' || name === 'until') {
      input.value = value ? toLocalInput(value) : '';
    } else if (input.tagName === 'SELECT' && value && ![...input.options].some((o) => o.value === value)) {
      input.append(new Option(value, value)); // a list from a link, e.g. "busy,failed"
      input.value = value;
    } else {
      input.value = value;
    }
  }
}

function readForm() {
  const form = $('filters');
  const out = {};
  for (const name of FILTERS) {
    const raw = form.elements[name].value.trim();
    const value = name === 'since' || name === 'until' ? fromLocalInput(raw) : raw;
    if (value) out[name] = value;
  }
  return out;
}

function applyFilters(next) {
  filters = next;
  const query = new URLSearchParams(filters).toString();
  const url = `${location.pathname}${query ? `?${query}` : ''}`;
  if (url !== location.pathname + location.search) history.pushState(null, '', url);
  loadRecent(false);
}

async function loadRecent(more = false) {
  const button = $('more');
  button.disabled = true;
  const load = ++loads;
  const searching = Object.keys(filters).length > 0;
  $('recent-calls').dataset.empty = searching ? 'No calls match' : 'No calls yet';
  try {
    const page = await api.calls({ limit: PAGE, cursor: more ? cursor : null, filters });
    if (load !== loads) return;
    const rows = page.calls.flatMap(recentRow);
    if (more) $('recent-calls').append(...rows);
    else $('recent-calls').replaceChildren(...rows);
    cursor = page.next_cursor;
    $('recent-error').hidden = true;
  } catch (err) {
    if (load !== loads) return;
    if (!more) $('recent-calls').replaceChildren();
    cursor = null;
    $('recent-error').textContent = `Could not load calls: ${err.message}`;
    $('recent-error').hidden = false;
  }
  button.hidden = !cursor;
  button.disabled = false;
}

function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => loadRecent(false), RELOAD_AFTER_MS);
}

const handlers = {
  hello() {
    socket.send({ type: 'watch_calls' });
  },
  calls(msg) {
    liveCalls.clear();
    for (const call of msg.calls || []) liveCalls.set(call.sid, call);
    renderLive();
    indicator.set('connected');
  },
  call_started(msg) {
    liveCalls.set(msg.call.sid, msg.call);
    renderLive();
    reloadSoon();
  },
  call_ended(msg) {
    liveCalls.delete(msg.call.sid);
    renderLive();
    reloadSoon();
  },
};

socket.addEventListener('message', (e) => handlers[e.detail.type]?.(e.detail));
socket.addEventListener('state', (e) => {
  const { state, retryAt } = e.detail;
  if (state !== 'open') indicator.set(state, retryAt);
});
socket.addEventListener('refused', () => api.me().catch(() => {}));
$('more').addEventListener('click', () => loadRecent(true));
$('filters').addEventListener('submit', (e) => {
  e.preventDefault();
  applyFilters(readForm());
});
$('clear').addEventListener('click', () => {
  $('filters').reset();
  applyFilters({});
});
window.addEventListener('popstate', () => {
  filters = filtersFromUrl();
  fillForm();
  loadRecent(false);
});

showUser();
filters = filtersFromUrl();
fillForm();
loadRecent(false);
socket.start();
setInterval(tickDurations, 1000);
