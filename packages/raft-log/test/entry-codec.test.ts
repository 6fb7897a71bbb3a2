import { describe, expect, it } from 'vitest';
import { decodeEntry, EntryEncoder, encodeEntry } from '../src/internal/entry-codec.ts';

describe('EntryEncoder', () => {
  it('writes the same bytes as encodeEntry, and a Buffer over the data inside the value', () => {
    const encoder = new EntryEncoder();
    const values: Array<{ value: Uint8Array; index: number; term: number; data: Buffer }> = [];
    for (let k = 0; k < 400; k++) {
      const size = (k * 37) % 700;
      const index = k % 3 === 0 ? 2 ** 40 + k : k + 1;
      const term = k % 5 === 0 ? 2 ** 33 + k : 7;
      const data = Buffer.from(Array.from({ length: size }, (_, i) => (i + k) & 0xff));
      const value = encoder.encode(index, term, data);
      expect(Buffer.from(value).equals(encodeEntry(index, term, data))).toBe(true);
      expect(encoder.data.constructor).toBe(Buffer);
      expect(encoder.data.equals(data)).toBe(true);
      expect(encoder.data.buffer).toBe(value.buffer);
      values.push({ value, index, term, data });
    }
    // Later entries never overwrote earlier ones (values share slabs).
    for (const { value, index, term, data } of values) {
      const decoded = decodeEntry(Buffer.from(value));
      expect(decoded).toEqual({ ok: true, index, term, data });
    }
  });
});
