// The server's clock as seen from here, estimated NTP-style from ping/pong:
// offset = server_time − (t_send + rtt/2), trusting the sample with the smallest round
// trip among the recent ones (queueing only ever adds delay).

const KEEP = 16; // recent samples; old ones age out so drift is followed

export class Clock {
  constructor() {
    this.samples = [];
    this.best = null;
  }

  /** A pong: `sentAt` and `receivedAt` local ms since the epoch, `serverTime` the server's. */
  sample(sentAt, serverTime, receivedAt) {
    const rtt = receivedAt - sentAt;
    if (!(rtt >= 0) || !Number.isFinite(serverTime)) return;
    this.samples.push({ rtt, offset: serverTime - (sentAt + rtt / 2) });
    if (this.samples.length > KEEP) this.samples.shift();
    this.best = this.samples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
  }

  get known() {
    return this.best !== null;
  }

  /** Server minus local, ms (0 until a pong arrived). */
  get offset() {
    return this.best ? this.best.offset : 0;
  }

  get rtt() {
    return this.best ? this.best.rtt : null;
  }

  /** The server's wall clock now, ms since the epoch. */
  now() {
    return Date.now() + this.offset;
  }
}
