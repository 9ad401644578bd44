// The calls page, /calls_monitoring: live calls from the monitor socket's list feed and
// recent calls from the API, paged with next_cursor and reloaded as calls come and go.

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
let cursor = null;
let reloadTimer = 0;

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
  return tr;
}

async function loadRecent(more = false) {
  const button = $('more');
  button.disabled = true;
  try {
    const page = await api.calls({ limit: PAGE, cursor: more ? cursor : null });
    const rows = page.calls.map(recentRow);
    if (more) $('recent-calls').append(...rows);
    else $('recent-calls').replaceChildren(...rows);
    cursor = page.next_cursor;
    $('recent-error').hidden = true;
  } catch (err) {
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

showUser();
loadRecent(false);
socket.start();
setInterval(tickDurations, 1000);
