// Listen-in playback: an AudioContext with the monitor-player worklet (worklet.js) and a
// volume control. The context is created and resumed inside the Play click, as browsers'
// autoplay policies require. Counters from the worklet are kept across stops.

const WORKLET_URL = new URL('./worklet.js', import.meta.url);
const TARGET_MS = 80; // jitter buffer depth to start playing at
const MAX_MS = 300; // deeper than this, skip the oldest audio to catch up

export class Player {
  constructor() {
    this.ctx = null;
    this.node = null;
    this.gain = null;
    this.volume = 1;
    this.wanted = false; // the last of play/pause/stop was play
    this.active = false; // frames are passed on only while playing
    this.base = { played: 0, skipped: 0, underruns: 0 }; // from closed contexts
    this.last = { played: 0, skipped: 0, underruns: 0, bufferMs: 0, playing: false };
  }

  /** Call from a click handler: creates or resumes the context. */
  async play() {
    this.wanted = true;
    if (!this.ctx) {
      const ctx = new AudioContext({ latencyHint: 'interactive' });
      this.ctx = ctx;
      const resumed = ctx.resume();
      await ctx.audioWorklet.addModule(WORKLET_URL);
      if (this.ctx !== ctx) return; // stopped while loading
      this.node = new AudioWorkletNode(ctx, 'monitor-player', {
        numberOfInputs: 0,
        outputChannelCount: [1],
        processorOptions: { targetMs: TARGET_MS, maxMs: MAX_MS },
      });
      this.node.port.onmessage = (e) => (this.last = e.data);
      this.gain = new GainNode(ctx, { gain: this.volume });
      this.node.connect(this.gain).connect(ctx.destination);
      await resumed;
    } else {
      await this.ctx.resume();
    }
    this.active = this.wanted;
  }

  /** Stops output and forgets what is buffered; the context stays for a quick resume. */
  pause() {
    this.wanted = this.active = false;
    if (!this.ctx) return;
    this.node?.port.postMessage({ type: 'reset' });
    this.ctx.suspend();
  }

  /** Releases the audio device. */
  stop() {
    this.wanted = this.active = false;
    if (!this.ctx) return;
    for (const k of Object.keys(this.base)) this.base[k] += this.last[k] || 0;
    this.last = { played: 0, skipped: 0, underruns: 0, bufferMs: 0, playing: false };
    this.ctx.close();
    this.ctx = this.node = this.gain = null;
  }

  setVolume(v) {
    this.volume = v;
    if (this.gain) this.gain.gain.setTargetAtTime(v, this.ctx.currentTime, 0.02);
  }

  /** Hands decoded 8 kHz samples to the worklet; `samples` is transferred. */
  push(positionMs, samples) {
    if (!this.active || !this.node) return false;
    this.node.port.postMessage({ type: 'frame', positionMs, samples }, [samples.buffer]);
    return true;
  }

  get counters() {
    return {
      played: this.base.played + (this.last.played || 0),
      skipped: this.base.skipped + (this.last.skipped || 0),
      underruns: this.base.underruns + (this.last.underruns || 0),
      bufferMs: this.active ? this.last.bufferMs : 0,
      playing: this.active && this.last.playing,
    };
  }

  /** What the platform adds after the worklet, in ms (0 where it does not say). */
  get outputMs() {
    if (!this.ctx) return 0;
    return ((this.ctx.outputLatency || 0) + (this.ctx.baseLatency || 0)) * 1000;
  }
}
