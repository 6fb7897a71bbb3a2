import { crc32c } from '../crc32c.ts';

/**
 * An entry's value: `u32 crc32c | u64 index | u64 term | data`. The crc covers index, term and
 * data, so an entry that is damaged, or whose bytes ended up under another key, fails the check.
 * The index is repeated from the key for that reason.
 */

/** Bytes before an entry's data in its value. */
export const ENTRY_HEADER = 4 + 8 + 8;
const HEADER = ENTRY_HEADER;

export function encodeEntry(index: number, term: number, data: Uint8Array): Buffer {
  const value = Buffer.allocUnsafe(HEADER + data.length);
  writeU64(value, 4, index);
  writeU64(value, 12, term);
  value.set(data, HEADER);
  value.writeUInt32BE(crc32c(value, 0, 4), 0);
  return value;
}

export type DecodedEntry =
  | { readonly ok: true; readonly index: number; readonly term: number; readonly data: Uint8Array }
  | { readonly ok: false; readonly reason: 'checksum' | 'unreadable' };

export function decodeEntry(value: Buffer): DecodedEntry {
  if (value.length < HEADER) return { ok: false, reason: 'unreadable' };
  if (crc32c(value, 0, 4) !== value.readUInt32BE(0)) return { ok: false, reason: 'checksum' };
  return { ok: true, index: readU64(value, 4), term: readU64(value, 12), data: value.subarray(HEADER) };
}

/** A small checksummed record: `u32 crc32c | payload`. Used for meta values and log starts. */
export function sealRecord(payload: Uint8Array): Buffer {
  const value = Buffer.allocUnsafe(4 + payload.length);
  value.set(payload, 4);
  value.writeUInt32BE(crc32c(value, 0, 4), 0);
  return value;
}

export function openRecord(value: Buffer): Buffer | undefined {
  if (value.length < 4 || crc32c(value, 0, 4) !== value.readUInt32BE(0)) return undefined;
  return value.subarray(4);
}

export function writeU64(buf: Buffer, at: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / 0x1_0000_0000), at);
  buf.writeUInt32BE(n >>> 0, at + 4);
}

export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * 0x1_0000_0000 + buf.readUInt32BE(at + 4);
}

/** A log start record's payload: the index and term the log starts after. */
export function encodeLogStart(index: number, term: number): Buffer {
  const payload = Buffer.allocUnsafe(16);
  writeU64(payload, 0, index);
  writeU64(payload, 8, term);
  return sealRecord(payload);
}

export function decodeLogStart(value: Buffer): { index: number; term: number } | undefined {
  const payload = openRecord(value);
  if (payload === undefined || payload.length !== 16) return undefined;
  return { index: readU64(payload, 0), term: readU64(payload, 8) };
}
