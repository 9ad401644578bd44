// The call page's events log (web/static/events.js) on the gateway's own event details,
// without a browser: a few lines of DOM stand in for the page. What a supervisor reads
// for each kind of `recording` event — failed (why, when), resumed (what was lost),
// finished, none kept — and of a voice agent's events (turns, barge-ins, clears, what the
// agents did), and that failures are marked as such. Exits non-zero on failure.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

class Node {
  constructor(tag) {
    this.tagName = tag;
    this.children = [];
    this.parent = null;
    this.dataset = {};
    this.text = '';
  }
  set textContent(t) { this.text = String(t); this.children = []; }
  get textContent() { return this.text + this.children.map((c) => c.textContent).join(''); }
  append(...nodes) {
    for (const n of nodes) {
      const node = typeof n === 'string' ? Object.assign(new Node('#text'), { text: n }) : n;
      node.parent = this;
      this.children.push(node);
    }
  }
  prepend(node) { node.parent = this; this.children.unshift(node); }
  after(node) {
    const sib = this.parent.children;
    node.parent = this.parent;
    sib.splice(sib.indexOf(this) + 1, 0, node);
  }
  remove() { this.parent.children.splice(this.parent.children.indexOf(this), 1); }
  get previousElementSibling() {
    const sib = this.parent.children;
    return sib[sib.indexOf(this) - 1] || null;
  }
  get lastElementChild() { return this.children[this.children.length - 1] || null; }
  get firstElementChild() { return this.children[0] || null; }
  get childElementCount() { return this.children.length; }
}
globalThis.document = { createElement: (tag) => new Node(tag) };

const { EventLog } = await import(
  fileURLToPath(new URL('../../web/static/events.js', import.meta.url)));

const list = Object.assign(new Node('ol'), { scrollTop: 0, clientHeight: 0, scrollHeight: 0 });
const log = new EventLog(list);
const at = (s) => `2026-01-01T10:00:${String(s).padStart(2, '0')}.000Z`;
// As the gateway writes them (src/call/call.c): the detail is a JSON string.
const events = [
  { type: 'recording', at: at(1), detail: '{"state":"failed","atMs":12400,"error":"No space left on device","code":"ENOSPC"}' },
  { type: 'recording', at: at(2), detail: '{"state":"resumed","lostFromMs":12400,"lostToMs":20900,"lostMs":8500}' },
  { type: 'recording', at: at(3), detail: '{"state":"finished","durationMs":65000,"lostMs":8500}' },
  { type: 'recording', at: at(4), detail: '{"state":"none","lostMs":20,"error":"Too many open files","code":"EMFILE"}' },
  { type: 'recording', at: at(5), detail: '{"state":"finished","durationMs":3000}' },
];
log.addAll(events);
log.addAll(events); // sent again on every subscribe: shown once

const rows = list.children.map((li) => ({ text: li.textContent, state: li.dataset.state }));
assert.equal(rows.length, 5);
const line = (i) => rows[i].text.replace(/^\S+ /, ''); // after the clock
assert.equal(line(0), 'Recording failed, No space left on device (ENOSPC), at 0:12');
assert.equal(line(1), 'Recording resumed, 0:08 lost, from 0:12');
assert.equal(line(2), 'Recording 1:05, 0:08 lost');
assert.equal(line(3), 'Recording none kept, Too many open files (EMFILE)');
assert.equal(line(4), 'Recording 0:03');
assert.deepEqual(rows.map((r) => r.state), ['failed', 'resumed', 'finished', 'none', 'finished']);

// A voice agent's call, as src/call/talk.c and src/agent/*.c write its events.
const agentList = Object.assign(new Node('ol'), { scrollTop: 0, clientHeight: 0, scrollHeight: 0 });
const agentLog = new EventLog(agentList);
agentLog.addAll([
  { type: 'agent', at: at(10), detail: '{"state":"started","agent":"ivr"}' },
  { type: 'agent', at: at(11), detail: '{"agent":"ivr","state":"node","node":"welcome","kind":"menu"}' },
  { type: 'agent', at: at(12), detail: '{"agent":"ivr","state":"choice","node":"welcome","by":"key","key":"1","value":"order","goto":"phone"}' },
  { type: 'agent', at: at(13), detail: '{"agent":"ivr","state":"webhook_failed","node":"order","status":500,"error":"the webhook answered 500","ms":35,"goto":"welcome"}' },
  { type: 'turn', at: at(14), detail: '{"voiceToVoiceMs":180,"detectedMs":600,"finalMs":150,"replyMs":160,"firstAudioMs":172}' },
  { type: 'clear', at: at(15), detail: '{"reason":"speech","utterances":[{"utt":3,"heardMs":820,"totalMs":2400,"heardText":"Sure, I can"}],"discardedMs":1580}' },
  { type: 'barge_in', at: at(16), detail: '{"reason":"speech","onsetMs":15200,"latencyMs":84}' },
  { type: 'agent', at: at(17), detail: '{"state":"said","agent":"llm","said":"reply","text":"Sure, I can","cut":true,"heardMs":820,"totalMs":2400}' },
  { type: 'agent', at: at(18), detail: '{"state":"error","agent":"llm","kind":"timeout","message":"no token within 10000 ms"}' },
  { type: 'agent', at: at(19), detail: '{"state":"tool","agent":"llm","tool":"lookup_order","arguments":"{}","result":"","ok":false}' },
  { type: 'agent', at: at(20), detail: '{"state":"failed","agent":"llm","error":"configuration"}' },
]);
const agentRows = agentList.children.map((li) => ({ text: li.textContent.replace(/^\S+ /, ''), state: li.dataset.state }));
assert.deepEqual(agentRows.map((r) => r.text), [
  'Agent ivr started',
  'Agent ivr node welcome: menu',
  'Agent ivr choice at welcome: key 1, → phone',
  'Agent ivr webhook_failed at order: HTTP 500, in 35 ms, the webhook answered 500, → welcome',
  'Turn voice-to-voice 180 ms; end detected +600, final +150, reply +160, audio +172',
  'Clear speech, 1580 ms discarded, heard 820 of 2400 ms: “Sure, I can”',
  'Barge-in speech, clear 84 ms after onset',
  'Agent llm said: “Sure, I can”, cut: heard 820 of 2400 ms',
  'Agent llm error: timeout, no token within 10000 ms',
  'Agent llm tool: lookup_order failed',
  'Agent llm failed: configuration',
]);
assert.deepEqual(agentRows.map((r) => r.state),
  ['started', 'node', 'choice', 'webhook_failed', undefined, undefined, undefined, 'said', 'error', 'tool', 'failed']);

// Call control, as the API and the agents record it: what, by whom, why, and a refusal marked.
{
  const ctlList = Object.assign(new Node('ol'), { scrollTop: 0, clientHeight: 0, scrollHeight: 0 });
  const ctl = new EventLog(ctlList);
  ctl.addAll([
    { type: 'control', at: at(20), detail: '{"action":"create","by":"admin","to":"+15551230000","state":"done"}' },
    { type: 'control', at: at(21), detail: '{"action":"redirect_twiml","by":"ann","to":"+15550001111","state":"done"}' },
    { type: 'control', at: at(22), detail: '{"action":"stream_stop","by":"ann","name":"fork1","state":"failed","http_status":404,"code":20404,"message":"The requested resource was not found"}' },
    { type: 'control', at: at(23), detail: '{"action":"say","by":"ann","text":"Your order has shipped.","state":"done"}' },
    { type: 'control', at: at(24), detail: '{"action":"hangup","by":"ann","state":"done"}' },
    { type: 'control', at: at(25), detail: '{"action":"redirect_twiml","by":"agent:llm","to":"+15551230001","reason":"the caller asked for sales","state":"done"}' },
  ]);
  const lines = ctlList.children.map((li) => li.textContent.replace(/^\S+ /, ''));
  assert.deepEqual(lines, [
    'Control call placed to +15551230000, by admin',
    'Control transfer to +15550001111, by ann',
    'Control stream fork1 stopped, by ann, failed: code 20404: The requested resource was not found',
    'Control said "Your order has shipped.", by ann',
    'Control hang up, by ann',
    'Control transfer to +15551230001, by agent:llm, (the caller asked for sales)',
  ]);
  assert.deepEqual(ctlList.children.map((li) => li.dataset.state),
    ['done', 'done', 'failed', 'done', 'done', 'done']);
}
console.log('events: all checks passed');
