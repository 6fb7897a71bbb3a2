import { describe, expect, it } from 'vitest';
import { crc32c } from '../src/index.ts';

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
});
