import { createCodec } from '@otra/protocol';
import { crc32c } from '../crc32c.ts';
import type { SnapshotMeta } from '../types.ts';
import { readU64, writeU64 } from './entry-codec.ts';

/**
 * A snapshot file is its bytes followed by a trailer, so it can be streamed without knowing the
 * checksum up front:
 *
 *   data | meta (CBOR) | u32 metaLength | u64 dataSize | u32 dataCrc | u32 trailerCrc | "OTRASNP1"
 *
 * `trailerCrc` covers meta..dataCrc. A file is only ever named `*.snap` after it was fsynced whole,
 * so a torn file can only be a `*.tmp` one.
 */

const MAGIC = Buffer.from('OTRASNP1', 'latin1');
/** metaLength + dataSize + dataCrc + trailerCrc + magic */
export const FIXED_TRAILER = 4 + 8 + 4 + 4 + MAGIC.length;

const codec = createCodec();

export function encodeTrailer(meta: SnapshotMeta, size: number, dataCrc: number): Buffer {
  const metaBytes = codec.encode(meta);
  const trailer = Buffer.allocUnsafe(metaBytes.length + FIXED_TRAILER);
  trailer.set(metaBytes, 0);
  let at = metaBytes.length;
  trailer.writeUInt32BE(metaBytes.length, at);
  writeU64(trailer, at + 4, size);
  trailer.writeUInt32BE(dataCrc >>> 0, at + 12);
  at += 16;
  trailer.writeUInt32BE(crc32c(trailer, 0, 0, at), at);
  MAGIC.copy(trailer, at + 4);
  return trailer;
}

export type ParsedFixedTrailer =
  | { ok: true; metaLength: number; size: number; dataCrc: number; trailerCrc: number }
  | { ok: false; detail: string };

/** Parses the fixed last `FIXED_TRAILER` bytes of a file of `fileSize` bytes. */
export function parseFixedTrailer(fixed: Buffer, fileSize: number): ParsedFixedTrailer {
  if (fixed.length !== FIXED_TRAILER || !fixed.subarray(FIXED_TRAILER - MAGIC.length).equals(MAGIC)) {
    return { ok: false, detail: 'no snapshot trailer' };
  }
  const metaLength = fixed.readUInt32BE(0);
  const size = readU64(fixed, 4);
  if (size + metaLength + FIXED_TRAILER !== fileSize) return { ok: false, detail: 'sizes do not add up' };
  return { ok: true, metaLength, size, dataCrc: fixed.readUInt32BE(12), trailerCrc: fixed.readUInt32BE(16) };
}

/** Checks the trailer's own crc (over `metaAndFixed` = meta bytes + the fixed part) and decodes the meta. */
export function decodeTrailerMeta(
  metaAndFixed: Buffer,
  metaLength: number,
  trailerCrc: number,
): SnapshotMeta | undefined {
  if (crc32c(metaAndFixed, 0, 0, metaLength + 16) !== trailerCrc) return undefined;
  try {
    const meta = codec.decode(metaAndFixed.subarray(0, metaLength)) as Partial<SnapshotMeta> | null;
    if (meta === null || typeof meta !== 'object') return undefined;
    if (!Number.isSafeInteger(meta.index) || !Number.isSafeInteger(meta.term)) return undefined;
    return meta as SnapshotMeta;
  } catch {
    return undefined;
  }
}

export function checkSnapshotMeta(meta: SnapshotMeta): string | undefined {
  if (typeof meta !== 'object' || meta === null) return 'meta must be an object';
  if (!Number.isSafeInteger(meta.index) || meta.index < 0)
    return `meta.index ${String(meta.index)} is not an index`;
  if (!Number.isSafeInteger(meta.term) || meta.term < 0)
    return `meta.term ${String(meta.term)} is not a term`;
  return undefined;
}
