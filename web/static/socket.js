// The /monitor WebSocket, kept open: reconnects with exponential backoff and jitter,
// pings for round trip and clock offset, and notices a connection that went silent.
// It knows the transport only; pages subscribe again on each `hello`.

import { Clock } from './clock.js';

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const PING_MS = 5000;
const FIRST_PINGS = [0, 300, 900]; // a few early samples for a good clock offset at once
const SILENT_MS = 20000; // nothing heard for this long: the connection is dead
const STEADY_MS = 10000; // a connection that lasted this long restarts the backoff
const CLOSE_SIGNED_OUT = 4401; // the session or token this socket was opened with ended

function monitorUrl() {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/monitor`;
}

/**
 * Events: `state` {state: 'connecting'|'open'|'reconnecting'|'closed', retryAt},
 * `message` (a parsed JSON object), `audio` (an ArrayBuffer), `refused` (a connection
 * that never opened, or that the server closed because the session or token ended: the
 * page may check its session).
 */
export class MonitorSocket extends EventTarget {
  constructor(url = monitorUrl()) {
    super();
    this.url = url;
    this.clock = new Clock();
    this.ws = null;
    this.attempt = 0;
    this.connects = 0; // connections that opened
    this.stopped = true;
    this.timers = [];
    this.retryTimer = 0;
    this.heardAt = 0;
    this.onOnline = () => this.stopped || this.ws || this.connectNow();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    addEventListener('online', this.onOnline);
    this.connectNow();
  }

  /** Closes for good (no reconnect). */
  stop() {
    this.stopped = true;
    removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    this.drop(1000);
    this.emit('state', { state: 'closed' });
  }

  send(msg) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    this.emit('state', { state: 'connecting' });
    const ws = new WebSocket(this.url);
    ws.binaryType = 'arraybuffer';
    let openedAt = 0;
    ws.onopen = () => {
      openedAt = Date.now();
      this.connects++;
      this.heardAt = Date.now();
      this.emit('state', { state: 'open' });
      for (const at of FIRST_PINGS) this.timers.push(setTimeout(() => this.ping(), at));
      this.timers.push(setInterval(() => this.tick(), PING_MS));
    };
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      if (!openedAt || e.code === CLOSE_SIGNED_OUT) this.emit('refused', {});
      else if (Date.now() - openedAt > STEADY_MS) this.attempt = 0;
      if (!this.stopped) this.retry();
    };
    this.ws = ws;
  }

  receive(data) {
    this.heardAt = Date.now();
    if (typeof data !== 'string') {
      this.emit('audio', data);
      return;
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg.type === 'pong') this.clock.sample(Number(msg.t), Number(msg.server_time), Date.now());
    this.emit('message', msg);
  }

  ping() {
    this.send({ type: 'ping', t: Date.now() });
  }

  tick() {
    if (Date.now() - this.heardAt > SILENT_MS) {
      this.drop(4000);
      if (!this.stopped) this.retry();
      return;
    }
    this.ping();
  }

  retry() {
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = cap / 2 + Math.random() * (cap / 2);
    this.attempt++;
    this.emit('state', { state: 'reconnecting', retryAt: Date.now() + delay });
    this.retryTimer = setTimeout(() => this.connectNow(), delay);
  }

  drop(code) {
    const ws = this.ws;
    this.ws = null;
    this.clearTimers();
    if (!ws) return;
    ws.onmessage = null;
    // Closing a socket still connecting makes browsers warn: let it open first.
    if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(code);
    else if (ws.readyState === WebSocket.OPEN) ws.close(code);
  }

  clearTimers() {
    for (const t of this.timers) clearTimeout(t);
    this.timers.length = 0;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
