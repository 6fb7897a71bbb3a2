import { describe, expect, it } from 'vitest';
import { crc32c } from '../src/crc32c.ts';
import { decodeRecord, encodeRecord, RecordEncoder } from '../src/internal/entry-codec.ts';
import type { StoredEntry } from '../src/types.ts';

function appendOf(k: number): StoredEntry[] {
  const count = 1 + ((k * 7) % 40);
  const first = k % 3 === 0 ? 2 ** 40 + k * 100 : k * 100 + 1;
  const term = k % 5 === 0 ? 2 ** 33 + k : 7;
  return Array.from({ length: count }, (_, i) => ({
    index: first + i,
    term: term + (i > count / 2 ? 1 : 0),
    data: Buffer.from(
      Array.from({ length: (k * 37 + i * 11) % (k % 9 === 0 ? 6000 : 300) }, (_, b) => (b + k + i) & 0xff),
    ),
  }));
}

describe('RecordEncoder', () => {
  it('writes the same bytes as encodeRecord, and hands out Buffers over the data inside the record', () => {
    const encoder = new RecordEncoder();
    const made: Array<{ value: Uint8Array; entries: StoredEntry[] }> = [];
    for (let k = 0; k < 200; k++) {
      const entries = appendOf(k);
      const pushed: StoredEntry[] = [];
      const value = encoder.encode(entries, { push: (e) => pushed.push(e) });
      expect(Buffer.from(value).equals(encodeRecord(entries))).toBe(true);
      expect(pushed.map((e) => [e.index, e.term])).toEqual(entries.map((e) => [e.index, e.term]));
      for (let i = 0; i < pushed.length; i++) {
        const data = pushed[i]!.data as Buffer;
        expect(data.constructor).toBe(Buffer);
        expect(data.equals(entries[i]!.data)).toBe(true);
        expect(data.buffer).toBe(value.buffer);
      }
      made.push({ value, entries });
    }
    // Later records never overwrote earlier ones (records share slabs).
    for (const { value, entries } of made) {
      const decoded = decodeRecord(Buffer.from(value));
      expect(decoded.ok).toBe(true);
      if (!decoded.ok) continue;
      expect(decoded.first).toBe(entries[0]!.index);
      expect(decoded.entries.map((e) => [e.index, e.term, Buffer.from(e.data).toString('hex')])).toEqual(
        entries.map((e) => [e.index, e.term, Buffer.from(e.data).toString('hex')]),
      );
    }
  });

  it('refuses a damaged, cut or padded record', () => {
    const value = encodeRecord(appendOf(4));
    const flipped = Buffer.from(value);
    flipped[flipped.length - 1]! ^= 1;
    expect(decodeRecord(flipped)).toEqual({ ok: false, reason: 'checksum' });
    expect(decodeRecord(value.subarray(0, 10))).toEqual({ ok: false, reason: 'unreadable' });
    // A record whose lengths do not add up, though its checksum is right.
    for (const broken of [value.subarray(0, value.length - 1), Buffer.concat([value, Buffer.from([0])])]) {
      const resealed = Buffer.from(broken);
      resealed.writeUInt32BE(crc32c(resealed, 0, 4), 0);
      expect(decodeRecord(resealed)).toEqual({ ok: false, reason: 'unreadable' });
    }
  });
});
