/**
 * Writes the CBOR head of major type `major` with argument `n` (n < 2^53) into `out` at `at`, in
 * its shortest form; returns where the head ends. For building CBOR around already encoded items
 * (a data frame around its signals, a snapshot around its members).
 */
export function writeCborHead(out: Uint8Array, at: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) {
    out[at] = m | n;
    return at + 1;
  }
  if (n < 0x100) {
    out[at] = m | 24;
    out[at + 1] = n;
    return at + 2;
  }
  if (n < 0x10000) {
    out[at] = m | 25;
    out[at + 1] = n >>> 8;
    out[at + 2] = n & 0xff;
    return at + 3;
  }
  if (n < 0x100000000) {
    out[at] = m | 26;
    out[at + 1] = n >>> 24;
    out[at + 2] = (n >>> 16) & 0xff;
    out[at + 3] = (n >>> 8) & 0xff;
    out[at + 4] = n & 0xff;
    return at + 5;
  }
  out[at] = m | 27;
  const hi = Math.floor(n / 0x100000000);
  const lo = n >>> 0;
  for (let i = 0; i < 4; i++) out[at + 1 + i] = (hi >>> (24 - 8 * i)) & 0xff;
  for (let i = 0; i < 4; i++) out[at + 5 + i] = (lo >>> (24 - 8 * i)) & 0xff;
  return at + 9;
}
