// G.711 μ-law decoding: one 256-entry table, built once, mapping each byte to a sample
// in [-1, 1). The gateway sends μ-law as Twilio does; nothing here encodes.

function expand(byte) {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const magnitude = (((u & 0x0f) << 3) + 0x84) << exponent;
  const linear = magnitude - 0x84; // 0..32124, as in ITU-T G.191 ulaw2linear
  return (u & 0x80 ? -linear : linear) / 32768;
}

const TABLE = Float32Array.from({ length: 256 }, (_, b) => expand(b));

/** Decodes μ-law bytes into a new Float32Array of the same length. */
export function decodeUlaw(bytes) {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = TABLE[bytes[i]];
  return out;
}
