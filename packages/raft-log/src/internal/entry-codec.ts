import { crc32c, crc32cWords } from '../crc32c.ts';

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

/** Values are carved from slabs of this size (Node's own Buffer pool size: a retained entry keeps at most this much alive). */
const SLAB_BYTES = 8192;
/** Larger values get a backing of their own, as `Buffer.allocUnsafe` does above half its pool. */
const SLAB_MAX_VALUE = SLAB_BYTES >>> 1;

type BufferView = new (buffer: ArrayBuffer, byteOffset: number, length: number) => Buffer;

/**
 * `Buffer[Symbol.species]` is Node's internal `FastBuffer`, whose instances are ordinary Buffers
 * (`Buffer.from(arrayBuffer, offset, length)` makes one after its argument checks, ~2x the cost).
 * Checked once here; `Buffer.from` is used if it ever is anything else.
 */
const FastBuffer: BufferView | undefined = (() => {
  const species: unknown = (Buffer as unknown as Record<symbol, unknown>)[Symbol.species];
  if (typeof species !== 'function' || species === Buffer) return undefined;
  try {
    const made: unknown = new (species as BufferView)(new ArrayBuffer(8), 4, 2);
    const ok =
      Buffer.isBuffer(made) &&
      Object.getPrototypeOf(made) === Buffer.prototype &&
      made.byteOffset === 4 &&
      made.length === 2;
    return ok ? (species as BufferView) : undefined;
  } catch {
    return undefined;
  }
})();

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

/**
 * Encodes entry values (`u32 crc32c | u64 index | u64 term | data`, as `encodeEntry`) for the
 * append path: each value is written at an 8-byte aligned offset of a slab, so the crc reads
 * 32-bit words through the slab's one word view, and the header is plain byte stores: no Buffer
 * allocation and no checked `writeUInt32BE` per field per entry. `encode` returns the value as a
 * `Uint8Array` (for the write batch, which copies it) and leaves `data`, a `Buffer` over the
 * entry's bytes inside that value, for the in-memory tail.
 */
export class EntryEncoder {
  private slab = Slab.make(SLAB_BYTES);
  /** The entry data of the last `encode`, a view into its value. */
  data: Buffer = Buffer.alloc(0);

  encode(index: number, term: number, data: Uint8Array): Uint8Array {
    const length = HEADER + data.length;
    let slab = this.slab;
    if (length > SLAB_MAX_VALUE) slab = Slab.make((length + 7) & ~7);
    else if (slab.offset + length > SLAB_BYTES) {
      slab = Slab.make(SLAB_BYTES);
      this.slab = slab;
    }
    const at = slab.offset;
    slab.offset = (at + length + 7) & ~7;
    const bytes = slab.bytes;
    setU32(bytes, at + 4, Math.floor(index / 0x1_0000_0000));
    setU32(bytes, at + 8, index >>> 0);
    setU32(bytes, at + 12, Math.floor(term / 0x1_0000_0000));
    setU32(bytes, at + 16, term >>> 0);
    bytes.set(data, at + HEADER);
    setU32(bytes, at, crc32cWords(slab.words, bytes, 0, at + 4, at + length, 0));
    this.data =
      FastBuffer === undefined
        ? Buffer.from(slab.buffer, at + HEADER, data.length)
        : new FastBuffer(slab.buffer, at + HEADER, data.length);
    return new Uint8Array(slab.buffer, at, length);
  }
}

/** Big-endian u32 by byte stores (no bounds or type checks: the encoder has sized the slab). */
function setU32(bytes: Uint8Array, at: number, n: number): void {
  bytes[at] = n >>> 24;
  bytes[at + 1] = n >>> 16;
  bytes[at + 2] = n >>> 8;
  bytes[at + 3] = n;
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
