// The call's events log. The server re-sends a call's events on every `subscribed`, so
// entries are keyed by (type, at, stream_sid, detail) and each is shown once.

import { clock, duration, timeElement } from './format.js';

const TITLES = {
  start: 'Stream started',
  stop: 'Stream stopped',
  dtmf: 'DTMF',
  mark: 'Mark',
  clear: 'Clear',
  error: 'Error',
  status: 'Call status',
  stream_status: 'Stream status',
  webhook: 'Webhook',
  recording: 'Recording',
  transcription: 'Transcription',
  barge_in: 'Barge-in',
  turn: 'Turn',
  agent: 'Agent',
  control: 'Control',
};

// One line of detail per type; `d` is the event's detail object (see src/call/call.c).
const DESCRIBE = {
  start: (d) => [d.tracks?.join(' + '), d.mode].filter(Boolean).join(', '),
  stop: (d) => [d.reason, d.durationMs != null && duration(d.durationMs)].filter(Boolean).join(', '),
  dtmf: (d) => `digit ${d.digit ?? '?'}`,
  mark: (d) => `${d.name ?? '?'} ${d.outcome ?? ''}`.trim(),
  clear: describeClear,
  error: (d) => [d.kind, d.message].filter(Boolean).join(': '),
  status: (d) => d.CallStatus ?? '',
  stream_status: (d) => [d.StreamEvent, d.StreamError].filter(Boolean).join(': '),
  webhook: (d) => [d.From, d.To].filter(Boolean).join(' → '),
  recording: describeRecording,
  transcription: (d) => [d.state, d.reason].filter(Boolean).join(': '),
  barge_in: (d) => [d.reason, d.latencyMs != null && `clear ${d.latencyMs} ms after onset`]
    .filter(Boolean)
    .join(', '),
  turn: describeTurn,
  agent: describeAgent,
  control: describeControl,
};

// Call control asked by a user (src/http/api_control.c) or an agent (src/call/agent_control.c):
// what, by whom, the agent's reason, and why it failed.
const CONTROL_ACTIONS = {
  create: (d) => `call placed to ${d.to ?? '?'}`,
  hangup: () => 'hang up',
  redirect_twiml: (d) => (d.to ? `transfer to ${d.to}` : 'new instructions'),
  redirect_url: () => 'redirected',
  stream_start: (d) => `stream ${d.name ?? ''} forked`.replace('  ', ' '),
  stream_stop: (d) => `stream ${d.name ?? ''} stopped`.replace('  ', ' '),
  say: (d) => `said "${d.text ?? ''}"`,
};

function describeControl(d) {
  const what = (CONTROL_ACTIONS[d.action] || (() => d.action ?? '?'))(d);
  const failed = d.state === 'failed' &&
    ['failed', d.code && `code ${d.code}`, d.message].filter(Boolean).join(': ');
  return [what, d.by && `by ${d.by}`, d.reason && `(${d.reason})`, failed].filter(Boolean).join(', ');
}

// The answer to a caller's turn: voice-to-voice, and when each stage came after the
// caller stopped speaking.
function describeTurn(d) {
  const stages = [
    ['end detected', d.detectedMs],
    ['final', d.finalMs],
    ['reply', d.replyMs],
    ['audio', d.firstAudioMs],
  ]
    .filter(([, ms]) => ms != null)
    .map(([name, ms]) => `${name} +${ms}`);
  return [`voice-to-voice ${d.voiceToVoiceMs ?? '?'} ms`, stages.join(', ')].filter(Boolean).join('; ');
}

// What an agent did (src/call/talk.c, src/agent/*.c): which agent, its state, then what
// it heard, said, called or failed at, and where a menu went next.
function describeAgent(d) {
  const who = [d.agent, d.state, d.node && d.state !== 'node' ? `at ${d.node}` : d.node];
  const what = [
    d.kind,
    d.key && `key ${d.key}`,
    d.text && `“${d.text}”`,
    d.heard && `heard “${d.heard}”`,
    d.tool && `${d.tool}${d.ok === false ? ' failed' : ''}`,
    d.status && `HTTP ${d.status}`,
    d.ms != null && `in ${d.ms} ms`,
    d.cut && d.heardMs != null && `cut: heard ${d.heardMs} of ${d.totalMs} ms`,
    d.reason,
    d.message,
    d.error,
    d.goto && `→ ${d.goto}`,
  ];
  return [who.filter(Boolean).join(' '), what.filter(Boolean).join(', ')].filter(Boolean).join(': ');
}

// What a clear discarded, and what the caller heard of each utterance it cut.
function describeClear(d) {
  const parts = [d.reason, d.discardedMs != null && `${Math.round(d.discardedMs)} ms discarded`];
  for (const u of d.utterances || []) {
    parts.push(`heard ${u.heardMs} of ${u.totalMs} ms${u.heardText ? `: “${u.heardText}”` : ''}`);
  }
  return parts.filter(Boolean).join(', ');
}

// A recording fails (full disk, no descriptors), resumes, and ends: say what was lost.
function describeRecording(d) {
  const lost = d.lostMs ? `${duration(d.lostMs)} lost` : '';
  const error = [d.error, d.code && `(${d.code})`].filter(Boolean).join(' ');
  switch (d.state) {
    case 'failed':
      return ['failed', error, d.atMs != null && `at ${duration(d.atMs)}`].filter(Boolean).join(', ');
    case 'resumed':
      return ['resumed', lost, d.lostFromMs != null && `from ${duration(d.lostFromMs)}`]
        .filter(Boolean)
        .join(', ');
    case 'none':
      return ['none kept', error].filter(Boolean).join(', ');
    default: // finished
      return [d.durationMs != null && duration(d.durationMs), lost, error].filter(Boolean).join(', ');
  }
}

function parseDetail(detail) {
  if (typeof detail !== 'string') return detail ?? {};
  try {
    return JSON.parse(detail);
  } catch {
    return { text: detail };
  }
}

const MAX_ENTRIES = 2000; // the oldest go first; a busy echo call marks every second

export class EventLog {
  constructor(list) {
    this.list = list;
    this.seen = new Set();
  }

  addAll(events) {
    for (const e of events || []) this.add(e);
  }

  add(event) {
    const detail = parseDetail(event.detail);
    const key = JSON.stringify([event.type, event.at, event.stream_sid ?? null, detail]);
    if (this.seen.has(key)) return;
    this.seen.add(key);

    const li = document.createElement('li');
    li.dataset.type = event.type;
    if (detail.state) li.dataset.state = detail.state;
    li.dataset.at = event.at ?? '';
    li.append(timeElement(event.at, clock(event.at, true)), ' ');
    const title = document.createElement('strong');
    title.textContent = TITLES[event.type] || event.type;
    li.append(title);
    const text = (DESCRIBE[event.type] || (() => ''))(detail);
    if (text) li.append(' ', text);

    const stick = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 4;
    let after = this.list.lastElementChild;
    while (after && after.dataset.at > li.dataset.at) after = after.previousElementSibling;
    if (after) after.after(li);
    else this.list.prepend(li);
    while (this.list.childElementCount > MAX_ENTRIES) this.list.firstElementChild.remove();
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }
}
