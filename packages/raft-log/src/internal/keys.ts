import { LogInputError } from '../errors.ts';

/**
 * Key layout of the one RocksDB database of a raft system:
 *
 *   0x00 'format'                              -> format version (utf-8)
 *   0x45 'E' | u8 len | uid | u64 index (BE)   -> record: the entries of one append, from index on
 *   0x4c 'L' | u8 len | uid                    -> log start: the index/term the log starts after,
 *                                                 and the record holding the first entry
 *   0x4d 'M' | u8 len | uid | name             -> meta value (currentTerm+votedFor, or a user key)
 *
 * The length byte keeps one server's keys contiguous and apart from every other uid's (no uid is a
 * prefix of another's range), and big-endian indexes sort numerically, so a server's records are
 * one range: read by range, deleted by range. Format 1 had one key per entry; format 2 one key per
 * append (see entry-codec.ts).
 */

export const FORMAT_KEY = Buffer.from([0x00, ...Buffer.from('format')]);
export const FORMAT_VERSION = 'otra-raft-log/2';

const ENTRY = 0x45;
const LOG_START = 0x4c;
const META = 0x4d;

const UID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** Uids are ASCII names of at most 128 characters starting with a letter or digit (also used as snapshot directory names). */
export function checkUid(uid: string): void {
  if (!UID_PATTERN.test(uid)) {
    throw new LogInputError(
      uid,
      'a server uid is 1-128 characters of [A-Za-z0-9._:@-], starting with a letter or digit',
    );
  }
}

function prefixed(tag: number, uid: string, extra: number): Buffer {
  const key = Buffer.allocUnsafe(2 + uid.length + extra);
  key[0] = tag;
  key[1] = uid.length;
  key.write(uid, 2, 'latin1');
  return key;
}

export function entryKey(uid: string, index: number): Buffer {
  const key = prefixed(ENTRY, uid, 8);
  const at = 2 + uid.length;
  key.writeUInt32BE(Math.floor(index / 0x1_0000_0000), at);
  key.writeUInt32BE(index >>> 0, at + 4);
  return key;
}

/**
 * One reused entry key of a server, for filling write batches (which copy keys): the prefix is
 * written once, `at(index)` rewrites only the 8 index bytes. Use the returned key before the next
 * `at` call.
 */
export class EntryKeys {
  private readonly key: Buffer;
  private readonly indexAt: number;

  constructor(uid: string) {
    this.key = prefixed(ENTRY, uid, 8);
    this.indexAt = 2 + uid.length;
  }

  at(index: number): Buffer {
    const key = this.key;
    const i = this.indexAt;
    const hi = Math.floor(index / 0x1_0000_0000);
    const lo = index >>> 0;
    key[i] = hi >>> 24;
    key[i + 1] = hi >>> 16;
    key[i + 2] = hi >>> 8;
    key[i + 3] = hi;
    key[i + 4] = lo >>> 24;
    key[i + 5] = lo >>> 16;
    key[i + 6] = lo >>> 8;
    key[i + 7] = lo;
    return key;
  }
}

/** The bounds of every entry key of `uid`: `[entryKey(uid, 0), entryKey(uid, 2^64-1)]`. */
export function entryRange(uid: string): { gte: Buffer; lte: Buffer } {
  const gte = prefixed(ENTRY, uid, 8);
  gte.fill(0, 2 + uid.length);
  const lte = prefixed(ENTRY, uid, 8);
  lte.fill(0xff, 2 + uid.length);
  return { gte, lte };
}

/** Every entry key of every server. */
export const ALL_ENTRIES = { gte: Buffer.from([ENTRY]), lt: Buffer.from([ENTRY + 1]) };
export const ALL_LOG_STARTS = { gte: Buffer.from([LOG_START]), lt: Buffer.from([LOG_START + 1]) };
export const ALL_META = { gte: Buffer.from([META]), lt: Buffer.from([META + 1]) };

export function logStartKey(uid: string): Buffer {
  return prefixed(LOG_START, uid, 0);
}

/** The bounds of every meta key of `uid` (current term and vote, and the values). */
export function metaRange(uid: string): { gte: Buffer; lt: Buffer } {
  const gte = prefixed(META, uid, 0);
  const lt = Buffer.from(gte);
  // the byte after the uid: every name of this uid sorts below it (names are non-empty utf-8)
  return { gte, lt: Buffer.concat([lt, Buffer.from([0xff, 0xff, 0xff, 0xff])]) };
}

export function metaKey(uid: string, name: string): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const key = prefixed(META, uid, nameBytes.length);
  nameBytes.copy(key, 2 + uid.length);
  return key;
}

/** Splits a key of any per-server kind into its uid and the rest; `undefined` if malformed. */
export function splitKey(key: Buffer): { uid: string; rest: Buffer } | undefined {
  if (key.length < 2) return undefined;
  const len = key[1]!;
  if (key.length < 2 + len) return undefined;
  return { uid: key.toString('latin1', 2, 2 + len), rest: key.subarray(2 + len) };
}

export function indexOfEntryKey(rest: Buffer): number | undefined {
  if (rest.length !== 8) return undefined;
  return rest.readUInt32BE(0) * 0x1_0000_0000 + rest.readUInt32BE(4);
}
