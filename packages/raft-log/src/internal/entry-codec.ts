import { bufferView } from '@otra/protocol';
import { crc32c, crc32cWords } from '../crc32c.ts';
import type { StoredEntry } from '../types.ts';

/**
 * A record: the value under one entry key, holding the entries of one append, the first of them at
 * the key's index:
 *
 *   u32 crc32c | u32 count | u64 firstIndex | count x (u32 length | u64 term | data)
 *
 * The crc covers everything after it, so a record that is damaged, or whose bytes ended up under
 * another key (the first index is repeated from the key for that reason), fails the check. One key
 * per append instead of one per entry: RocksDB's cost per key (the binding's call, the memtable
 * insert, the key's bytes) is paid once per append.
 */

/** Bytes before a record's first entry. */
export const RECORD_HEADER = 4 + 4 + 8;
/** Bytes before an entry's data inside a record. */
export const RECORD_ENTRY_HEADER = 4 + 8;

/** Encodes one record (the test suite's reference for `RecordEncoder`). */
export function encodeRecord(entries: readonly StoredEntry[]): Buffer {
  let length = RECORD_HEADER;
  for (const entry of entries) length += RECORD_ENTRY_HEADER + entry.data.length;
  const value = Buffer.allocUnsafe(length);
  value.writeUInt32BE(entries.length, 4);
  writeU64(value, 8, entries[0]!.index);
  let at = RECORD_HEADER;
  for (const entry of entries) {
    value.writeUInt32BE(entry.data.length, at);
    writeU64(value, at + 4, entry.term);
    value.set(entry.data, at + RECORD_ENTRY_HEADER);
    at += RECORD_ENTRY_HEADER + entry.data.length;
  }
  value.writeUInt32BE(crc32c(value, 0, 4), 0);
  return value;
}

/** Values are carved from slabs of this size (Node's own Buffer pool size: a retained entry keeps at most this much alive). */
const SLAB_BYTES = 8192;
/** Larger values get a backing of their own, as `Buffer.allocUnsafe` does above half its pool. */
const SLAB_MAX_VALUE = SLAB_BYTES >>> 1;

/** A backing store for values with the views the encoder writes through, made once per slab. */
class Slab {
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
  offset = 0;

  constructor(readonly buffer: ArrayBuffer) {
    this.bytes = new Uint8Array(buffer);
    this.words = new Int32Array(buffer);
  }

  static make(size: number): Slab {
    // Uninitialised like Buffer.allocUnsafe's pool: only written bytes are ever viewed.
    const raw = Buffer.allocUnsafeSlow(size);
    const whole = raw.byteOffset === 0 && raw.buffer.byteLength === size;
    return new Slab(whole ? (raw.buffer as ArrayBuffer) : new ArrayBuffer(size));
  }
}

/** Where `RecordEncoder.encode` puts each entry it encodes (the server's in-memory tail). */
export interface EntrySink {
  push(entry: StoredEntry): void;
}

/**
 * Encodes records (as `encodeRecord`) for the append path: each record is written at an 8-byte
 * aligned offset of a slab (or into a backing of its own above half a slab), so the crc reads
 * 32-bit words through the slab's one word view, and the headers are plain byte stores: no Buffer
 * allocation and no checked `writeUInt32BE` per field. `encode` returns the record as a
 * `Uint8Array` (for the write batch, which copies it) and hands each entry, its data a `Buffer`
 * over its bytes inside the record, to the sink.
 */
export class RecordEncoder {
  private slab = Slab.make(SLAB_BYTES);

  encode(entries: readonly StoredEntry[], sink: EntrySink): Uint8Array {
    const count = entries.length;
    let length = RECORD_HEADER + count * RECORD_ENTRY_HEADER;
    for (let k = 0; k < count; k++) length += entries[k]!.data.length;
    let slab = this.slab;
    if (length > SLAB_MAX_VALUE) slab = Slab.make((length + 7) & ~7);
    else if (slab.offset + length > SLAB_BYTES) {
      slab = Slab.make(SLAB_BYTES);
      this.slab = slab;
    }
    const start = slab.offset;
    slab.offset = (start + length + 7) & ~7;
    const bytes = slab.bytes;
    const buffer = slab.buffer;
    const first = entries[0]!.index;
    setU32(bytes, start + 4, count);
    setU32(bytes, start + 8, Math.floor(first / 0x1_0000_0000));
    setU32(bytes, start + 12, first >>> 0);
    let at = start + RECORD_HEADER;
    for (let k = 0; k < count; k++) {
      const entry = entries[k]!;
      const data = entry.data;
      const term = entry.term;
      setU32(bytes, at, data.length);
      setU32(bytes, at + 4, Math.floor(term / 0x1_0000_0000));
      setU32(bytes, at + 8, term >>> 0);
      at += RECORD_ENTRY_HEADER;
      bytes.set(data, at);
      sink.push({
        index: entry.index,
        term,
        data: bufferView(buffer, at, data.length),
      });
      at += data.length;
    }
    setU32(bytes, start, crc32cWords(slab.words, bytes, 0, start + 4, start + length, 0));
    return new Uint8Array(buffer, start, length);
  }
}

/** Big-endian u32 by byte stores (no bounds or type checks: the encoder has sized the slab). */
function setU32(bytes: Uint8Array, at: number, n: number): void {
  bytes[at] = n >>> 24;
  bytes[at + 1] = n >>> 16;
  bytes[at + 2] = n >>> 8;
  bytes[at + 3] = n;
}

export type DecodedRecord =
  | { readonly ok: true; readonly first: number; readonly entries: StoredEntry[] }
  | { readonly ok: false; readonly reason: 'checksum' | 'unreadable' };

const UNREADABLE: DecodedRecord = { ok: false, reason: 'unreadable' };

/** Opens a record: its checksum checked, every length within it; the data are views of `value`. */
export function decodeRecord(value: Buffer): DecodedRecord {
  if (value.length < RECORD_HEADER) return UNREADABLE;
  if (crc32c(value, 0, 4) !== value.readUInt32BE(0)) return { ok: false, reason: 'checksum' };
  const count = value.readUInt32BE(4);
  const first = readU64(value, 8);
  if (count === 0) return UNREADABLE;
  const entries: StoredEntry[] = [];
  let at = RECORD_HEADER;
  for (let k = 0; k < count; k++) {
    if (at + RECORD_ENTRY_HEADER > value.length) return UNREADABLE;
    const length = value.readUInt32BE(at);
    const term = readU64(value, at + 4);
    at += RECORD_ENTRY_HEADER;
    if (at + length > value.length) return UNREADABLE;
    entries.push({ index: first + k, term, data: value.subarray(at, at + length) });
    at += length;
  }
  return at === value.length ? { ok: true, first, entries } : UNREADABLE;
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

/**
 * A log start record's payload: the index and term the log starts after, and the key of the record
 * that holds the log's first entry when that record starts at or below the start (a snapshot point
 * inside a record), else 0. Records keyed at or below the start are otherwise stale.
 */
export interface LogStart {
  readonly index: number;
  readonly term: number;
  readonly firstRecord: number;
}

export function encodeLogStart(start: LogStart): Buffer {
  const payload = Buffer.allocUnsafe(24);
  writeU64(payload, 0, start.index);
  writeU64(payload, 8, start.term);
  writeU64(payload, 16, start.firstRecord);
  return sealRecord(payload);
}

export function decodeLogStart(value: Buffer): LogStart | undefined {
  const payload = openRecord(value);
  if (payload === undefined || payload.length !== 24) return undefined;
  const start = { index: readU64(payload, 0), term: readU64(payload, 8), firstRecord: readU64(payload, 16) };
  return start.firstRecord > start.index ? undefined : start;
}
