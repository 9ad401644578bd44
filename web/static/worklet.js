// The listen-in AudioWorklet: a jitter buffer on the call's timeline at 8 kHz, played out
// at the context's rate. Frames are placed by their timeline position, so the caller and
// agent tracks mix where they overlap. It starts once the target is buffered, re-buffers
// on underrun, skips ahead when the buffer grows past the maximum, and plays a little
// faster while it holds more than the target (after a burst, or as clocks drift).
// Counters go back over the port.

const RATE = 8000;
const PER_MS = RATE / 1000;
const RING = RATE * 4; // samples of timeline the buffer can hold
const REPORT_EVERY = 0.05; // seconds of output between reports
const WINDOW = 0.5; // seconds over which the shallowest depth is judged
const FAST = 1.04; // playback speed while catching up

class MonitorPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.target = (opts.targetMs || 80) * PER_MS;
    this.max = (opts.maxMs || 300) * PER_MS;
    this.baseStep = RATE / sampleRate;
    this.step = this.baseStep;
    this.windowMin = Infinity; // shallowest depth in this window
    this.windowEnd = 0;
    this.ring = new Float32Array(RING);
    this.ends = []; // timeline ends of frames buffered and not yet played, ascending
    this.played = 0; // frames whose last sample was output
    this.skipped = 0; // frames thrown away: late, or skipped to catch up
    this.underruns = 0;
    this.nextReport = 0;
    this.reset();
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  // Forgets what is buffered: the next frame starts the timeline afresh.
  reset() {
    this.skipped += this.ends.length;
    this.ends.length = 0;
    this.ring.fill(0);
    this.read = 0; // timeline position being played, fractional 8 kHz samples
    this.write = 0; // end of the furthest frame buffered
    this.cleared = 0; // ring slots before this position are zeroed for reuse
    this.empty = true;
    this.playing = false;
  }

  onMessage(msg) {
    if (msg.type === 'frame') this.put(msg.positionMs * PER_MS, msg.samples);
    else if (msg.type === 'reset') this.reset();
  }

  put(start, samples) {
    const end = start + samples.length;
    if (this.empty) {
      // After a start or an underrun, skip any gap rather than play it as silence.
      if (start > this.read || this.write === 0) {
        this.clearUpTo(this.write);
        this.read = this.cleared = this.write = start;
      }
      this.empty = false;
    }
    if (end <= this.read) {
      this.skipped++;
      return;
    }
    if (end - Math.floor(this.read) > RING) {
      // Too far ahead to hold (a long outage): start again from this frame.
      this.reset();
      this.put(start, samples);
      return;
    }
    const from = Math.max(0, Math.ceil(this.read) - start);
    for (let i = from; i < samples.length; i++) this.ring[(start + i) % RING] += samples[i];
    if (end > this.write) this.write = end;
    let at = this.ends.length;
    while (at > 0 && this.ends[at - 1] > end) at--;
    this.ends.splice(at, 0, end);
    if (this.write - this.read > this.max) this.skipTo(this.write - this.target);
  }

  skipTo(position) {
    this.clearUpTo(Math.floor(position));
    this.read = position;
    while (this.ends.length && this.ends[0] <= position) {
      this.ends.shift();
      this.skipped++;
    }
  }

  clearUpTo(position) {
    for (let p = this.cleared; p < position; p++) this.ring[p % RING] = 0;
    if (position > this.cleared) this.cleared = position;
  }

  process(inputs, outputs) {
    const out = outputs[0];
    const mono = out[0];
    let n = 0;
    if (!this.playing && !this.empty && this.write - this.read >= this.target) {
      this.playing = true;
      this.skipTo(Math.max(this.read, this.write - this.target));
      this.step = this.baseStep;
      this.windowMin = Infinity;
      this.windowEnd = currentTime + WINDOW;
    }
    if (this.playing) {
      this.pace();
      const ring = this.ring;
      for (; n < mono.length; n++) {
        if (this.read + 1 >= this.write) {
          this.playing = false;
          this.empty = true;
          this.underruns++;
          break;
        }
        const p = Math.floor(this.read);
        const a = ring[p % RING];
        const v = a + (ring[(p + 1) % RING] - a) * (this.read - p);
        mono[n] = v > 1 ? 1 : v < -1 ? -1 : v;
        this.read += this.step;
      }
      this.clearUpTo(Math.floor(this.read));
      while (this.ends.length && this.ends[0] <= this.read) {
        this.ends.shift();
        this.played++;
      }
    }
    mono.fill(0, n);
    for (let c = 1; c < out.length; c++) out[c].set(mono);
    if (currentTime >= this.nextReport) {
      this.nextReport = currentTime + REPORT_EVERY;
      this.report();
    }
    return true;
  }

  // Judged on the shallowest depth of a window, as every frame's arrival adds a step.
  pace() {
    const depth = this.write - this.read;
    if (depth < this.windowMin) this.windowMin = depth;
    if (currentTime < this.windowEnd) return;
    this.step = this.windowMin > this.target ? this.baseStep * FAST : this.baseStep;
    this.windowMin = Infinity;
    this.windowEnd = currentTime + WINDOW;
  }

  report() {
    this.port.postMessage({
      played: this.played,
      skipped: this.skipped,
      underruns: this.underruns,
      bufferMs: this.empty ? 0 : (this.write - this.read) / PER_MS,
      playing: this.playing,
    });
  }
}

registerProcessor('monitor-player', MonitorPlayer);
