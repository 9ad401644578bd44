// Listening in on a live call: the play/pause/stop, track and volume controls, the audio
// frames off the socket (parsed, decoded, drawn, played) and the latency estimate.
// Paused or stopped, the server is asked for no audio at all.

import { Player } from './audio.js';
import { parseFrame } from './frame.js';
import { decodeUlaw } from './ulaw.js';
import { Waveform } from './waveform.js';
import * as fmt from './format.js';

const $ = (id) => document.getElementById(id);
const SMOOTHING = 0.1; // of the network delay, per frame
const TICK_MS = 100;

export class ListenIn {
  constructor(socket, sid, stats) {
    this.socket = socket;
    this.sid = sid;
    this.stats = stats;
    this.player = new Player();
    this.waveform = new Waveform($('waveform'), $('level'));
    this.mode = 'idle'; // idle | playing | paused | ended
    this.lastSeq = {};
    this.dropped = { before: 0, now: 0 }; // server counts restart with each subscription
    this.networkMs = null;

    $('play').addEventListener('click', () => this.play());
    $('pause').addEventListener('click', () => this.pause());
    $('stop').addEventListener('click', () => this.stop());
    $('track').addEventListener('change', () => this.sendAudio());
    $('volume').addEventListener('input', (e) => this.player.setVolume(Number(e.target.value)));
    this.player.setVolume(Number($('volume').value));
    socket.addEventListener('audio', (e) => this.onFrame(e.detail));
    this.setMode('idle');
    this.waveform.start();
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  /** What to ask the server for, in `subscribe` and `audio`. */
  get audioChoice() {
    return this.mode === 'playing' ? $('track').value : 'none';
  }

  /** A new subscription: the server's sequence numbers and drop counts start over. */
  subscribed() {
    this.lastSeq = {};
    this.dropped.before += this.dropped.now;
    this.dropped.now = 0;
  }

  onStats(msg) {
    this.dropped.now = Number(msg.dropped) || 0;
    const total = this.dropped.before + this.dropped.now;
    this.stats.framesDropped = total;
    $('dropped').hidden = total === 0;
    $('dropped').textContent = `dropped ${total}`;
  }

  onFrame(buffer) {
    const s = this.stats;
    s.framesReceived++;
    const f = parseFrame(buffer);
    if (!f) return;
    const last = this.lastSeq[f.track];
    if (last !== undefined) {
      const gap = (f.seq - last - 1) >>> 0;
      if (gap > 0 && gap < 0x80000000) s.seqGaps += gap;
    }
    this.lastSeq[f.track] = f.seq;
    const samples = decodeUlaw(f.payload);
    s.framesDecoded++;
    if (this.socket.clock.known) {
      // Never below zero: the clock offset is only known to within rtt/2.
      const net = Math.max(0, this.socket.clock.now() - f.sentAt);
      this.networkMs = this.networkMs === null ? net : this.networkMs + (net - this.networkMs) * SMOOTHING;
    }
    this.waveform.push(f.track, f.positionMs, samples);
    const choice = $('track').value;
    if (choice === 'both' || choice === f.track) this.player.push(f.positionMs, samples);
  }

  sendAudio() {
    this.socket.send({ type: 'audio', call: this.sid, audio: this.audioChoice });
  }

  async play() {
    if (this.mode === 'ended') return;
    this.setMode('playing');
    this.sendAudio();
    try {
      await this.player.play();
    } catch (err) {
      this.setMode('idle');
      this.sendAudio();
      $('latency').textContent = window.isSecureContext
        ? `Cannot play audio: ${err.message}`
        : 'Listening needs HTTPS (browsers only run audio worklets on secure pages).';
    }
  }

  pause() {
    this.setMode('paused');
    this.sendAudio();
    this.player.pause();
  }

  stop() {
    this.setMode('idle');
    this.sendAudio();
    this.player.stop();
    this.waveform.clear();
    this.networkMs = null;
  }

  /** The call is over: release the audio and the controls. */
  end() {
    this.player.stop();
    this.setMode('ended');
    this.tick();
    clearInterval(this.ticker);
    this.waveform.stop();
  }

  setMode(mode) {
    this.mode = mode;
    const ended = mode === 'ended';
    $('play').disabled = ended || mode === 'playing';
    $('pause').disabled = mode !== 'playing';
    $('stop').disabled = ended || mode === 'idle';
    $('track').disabled = ended;
    $('volume').disabled = ended;
  }

  tick() {
    const s = this.stats;
    const c = this.player.counters;
    s.framesPlayed = c.played;
    s.framesSkipped = c.skipped;
    s.underruns = c.underruns;
    s.bufferMs = Math.round(c.bufferMs);
    s.outputMs = Math.round(this.player.outputMs);
    s.networkMs = this.networkMs === null ? null : Math.round(this.networkMs);
    // Measured while playing; the last measurement stays after a pause or the end.
    if (c.playing && s.networkMs !== null) s.latencyMs = s.networkMs + s.bufferMs + s.outputMs;
    s.rttMs = this.socket.clock.rtt;
    s.clockOffsetMs = this.socket.clock.known ? Math.round(this.socket.clock.offset) : null;
    s.publish();
    if (this.mode === 'ended') return;
    $('latency').textContent =
      !c.playing || s.latencyMs === null
        ? `Network ${fmt.ms(s.networkMs)}`
        : `Latency ${fmt.ms(s.latencyMs)} (network ${fmt.ms(s.networkMs)} + buffer ` +
          `${fmt.ms(s.bufferMs)} + output ${fmt.ms(s.outputMs)})`;
  }
}
