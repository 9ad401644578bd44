// A scrolling waveform of the decoded audio on a canvas, and a level meter. Samples are
// filed by their position on the call's timeline (one column per COLUMN_MS, min and max
// per column, per track) so both tracks line up; drawing happens once per animation frame.

const RATE = 8000;
const COLUMN_MS = 5;
const SLOTS = 4096; // columns remembered, more than any canvas is wide
const COLORS = { caller: '#1f6feb', agent: '#d9480f' };
const FLOOR_DB = -60; // the meter's zero
const CATCH_UP_MS = 100; // how far the view runs on past the last frame heard

class Columns {
  constructor() {
    this.index = new Int32Array(SLOTS).fill(-1);
    this.min = new Float32Array(SLOTS);
    this.max = new Float32Array(SLOTS);
  }

  add(positionMs, samples) {
    const per = (RATE * COLUMN_MS) / 1000;
    for (let i = 0; i < samples.length; i += per) {
      const col = Math.floor(positionMs / COLUMN_MS + i / per);
      const slot = col % SLOTS;
      let lo = 1;
      let hi = -1;
      for (let k = i; k < i + per && k < samples.length; k++) {
        if (samples[k] < lo) lo = samples[k];
        if (samples[k] > hi) hi = samples[k];
      }
      if (this.index[slot] !== col) {
        this.index[slot] = col;
        this.min[slot] = lo;
        this.max[slot] = hi;
      } else {
        this.min[slot] = Math.min(this.min[slot], lo);
        this.max[slot] = Math.max(this.max[slot], hi);
      }
    }
  }
}

export class Waveform {
  constructor(canvas, meter) {
    this.canvas = canvas;
    this.meter = meter;
    this.tracks = { caller: new Columns(), agent: new Columns() };
    this.headMs = 0; // furthest timeline position heard
    this.heardAt = 0; // performance.now() when it was
    this.level = 0; // 0..1 on the meter's scale
    this.frame = 0;
    this.draw = this.draw.bind(this);
  }

  start() {
    if (!this.frame) this.frame = requestAnimationFrame(this.draw);
  }

  stop() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
  }

  clear() {
    this.tracks = { caller: new Columns(), agent: new Columns() };
    this.headMs = 0;
    this.level = 0;
  }

  push(track, positionMs, samples) {
    this.tracks[track]?.add(positionMs, samples);
    const end = positionMs + (samples.length * 1000) / RATE;
    if (end > this.headMs) this.headMs = end;
    this.heardAt = performance.now();
    let sum = 0;
    for (const s of samples) sum += s * s;
    const db = 10 * Math.log10(sum / samples.length + 1e-12);
    const level = Math.min(1, Math.max(0, 1 - db / FLOOR_DB));
    this.level = Math.max(level, this.level);
  }

  resize() {
    const ratio = devicePixelRatio || 1;
    const w = Math.round(this.canvas.clientWidth * ratio);
    const h = Math.round(this.canvas.clientHeight * ratio);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    return ratio;
  }

  draw(now) {
    this.frame = requestAnimationFrame(this.draw);
    const ratio = this.resize();
    const { width, height } = this.canvas;
    const g = this.canvas.getContext('2d');
    g.clearRect(0, 0, width, height);
    g.fillStyle = '#d0d7de';
    g.fillRect(0, Math.floor(height / 2), width, Math.max(1, Math.round(ratio)));

    const since = Math.min(now - this.heardAt, CATCH_UP_MS);
    const headCol = Math.floor((this.headMs + Math.max(0, since)) / COLUMN_MS);
    const colWidth = Math.max(1, Math.round(ratio));
    const count = Math.ceil(width / colWidth);
    const mid = height / 2;
    g.globalAlpha = 0.75;
    for (const [name, cols] of Object.entries(this.tracks)) {
      g.fillStyle = COLORS[name];
      for (let i = 0; i < count; i++) {
        const col = headCol - i;
        if (col < 0) break;
        const slot = col % SLOTS;
        if (cols.index[slot] !== col) continue;
        const top = mid - cols.max[slot] * mid;
        const h = Math.max(colWidth, (cols.max[slot] - cols.min[slot]) * mid);
        g.fillRect(width - (i + 1) * colWidth, top, colWidth, h);
      }
    }
    g.globalAlpha = 1;

    if (now - this.heardAt > 60) this.level *= 0.9;
    else this.level *= 0.97;
    if (this.meter) this.meter.value = this.level;
  }
}
