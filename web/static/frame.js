// The monitor socket's binary audio frame (docs/monitor.md): a 20-byte big-endian header
// then μ-law bytes. Parsing only; decoding is ulaw.js's.

const HEADER_BYTES = 20;
const FRAME_VERSION = 1;
const TRACKS = ['caller', 'agent']; // header byte 1

/**
 * Returns {track, seq, positionMs, sentAt, payload} or null when the frame is not one
 * this page understands. `payload` is a view into `buffer`.
 */
export function parseFrame(buffer) {
  if (buffer.byteLength < HEADER_BYTES) return null;
  const view = new DataView(buffer);
  if (view.getUint8(0) !== FRAME_VERSION) return null;
  const track = TRACKS[view.getUint8(1)];
  if (!track) return null;
  return {
    track,
    seq: view.getUint32(4),
    positionMs: view.getUint32(8),
    // 64-bit milliseconds fit a double exactly for the next few hundred thousand years.
    sentAt: view.getUint32(12) * 2 ** 32 + view.getUint32(16),
    payload: new Uint8Array(buffer, HEADER_BYTES),
  };
}
