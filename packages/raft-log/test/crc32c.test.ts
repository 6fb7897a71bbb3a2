import { describe, expect, it } from 'vitest';
import { crc32cWords } from '../src/crc32c.ts';
import { crc32c } from '../src/index.ts';

/** Bit by bit, the definition. */
function reference(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) {
    c ^= bytes[i]!;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  it('matches the standard check value and known vectors', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
  });

  it('gives the same result chunked as in one go, at every split', () => {
    const bytes = Buffer.from(Array.from({ length: 97 }, (_, i) => (i * 31 + 7) & 0xff));
    const whole = crc32c(bytes);
    for (let split = 0; split <= bytes.length; split++) {
      expect(crc32c(bytes.subarray(split), crc32c(bytes.subarray(0, split)))).toBe(whole);
    }
    expect(crc32c(bytes, 0, 0, 50)).toBe(crc32c(bytes.subarray(0, 50)));
  });

  it('agrees with the bitwise definition at every alignment and length (byte and word paths)', () => {
    const backing = new ArrayBuffer(600);
    const all = new Uint8Array(backing);
    for (let i = 0; i < all.length; i++) all[i] = (i * 131 + 17) & 0xff;
    const words = new Int32Array(backing);
    for (let offset = 0; offset < 8; offset++) {
      const view = new Uint8Array(backing, offset, 500);
      for (let length = 0; length <= 300; length += length < 40 ? 1 : 7) {
        for (const start of [0, 1, 2, 3, 5]) {
          const expected = reference(view, start, start + length);
          expect(crc32c(view, 0, start, start + length)).toBe(expected);
          expect(crc32c(Buffer.from(view.subarray(start, start + length)))).toBe(expected);
          if ((offset + start) % 4 === 0) {
            expect(crc32cWords(words, all, 0, offset + start, offset + start + length, 0)).toBe(expected);
          }
        }
      }
    }
  });
});
