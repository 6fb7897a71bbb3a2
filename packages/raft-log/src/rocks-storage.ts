import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { createCodec } from '@otra/protocol';
import {
  LogCorruptionError,
  MetaCorruptionError,
  StorageClosedError,
  type StorageError,
  StorageOpenError,
  WriterFailedError,
} from './errors.ts';
import { FileSnapshotStore } from './file-snapshots.ts';
import { decodeLogStart, decodeRecord, type LogStart, openRecord } from './internal/entry-codec.ts';
import {
  ALL_ENTRIES,
  ALL_LOG_STARTS,
  ALL_META,
  checkUid,
  entryRange,
  FORMAT_KEY,
  FORMAT_VERSION,
  indexOfEntryKey,
  logStartKey,
  metaRange,
  splitKey,
} from './internal/keys.ts';
import { type Kv, RocksKv, type RocksOpenOptions } from './internal/rocksdb.ts';
import { ServerLog } from './internal/server-log.ts';
import {
  BackgroundDeleter,
  checkServerMeta,
  META_NAMES,
  RocksLogStore,
  RocksMetaStore,
  type SinkRef,
} from './rocks-log.ts';
import type { RaftStorage, RecoveredServer, ServerMeta, StoredEntry } from './types.ts';
import { GroupCommitWriter, type WalSink, type WriterOptions } from './writer.ts';

export interface RocksStorageOptions {
  /** Durable entries kept in memory per server for reads (default 1,024); older ones are read from RocksDB. */
  readonly tailEntries?: number;
  readonly writer?: WriterOptions;
  readonly rocksdb?: RocksOpenOptions;
  /** Check every snapshot's full checksum at open (default true). */
  readonly verifySnapshots?: boolean;
  /** Wraps the database handle, e.g. to inject write faults in tests. */
  readonly wrapKv?: (kv: Kv) => Kv;
}

/** The RocksDB-backed storage of one raft system: `<dir>/db` (RocksDB) and `<dir>/snapshots`. */
export interface RocksStorage extends RaftStorage {
  readonly log: RocksLogStore;
  readonly meta: RocksMetaStore;
  readonly snapshots: FileSnapshotStore;
  /** The built-in WAL writer (group commit); its `stats()` count batches and fsyncs. */
  readonly writer: GroupCommitWriter;
  /** The database handle (for the log writer actor, which writes to it directly). */
  readonly kv: Kv;
  /**
   * From now on, every log and meta write goes to `sink` (the log writer actor). Waits until the
   * current writer has nothing in flight, so one server's writes never pass each other. Rejects
   * with `WriterFailedError` once a write has failed: the storage must then be reopened.
   */
  routeWrites(sink: WalSink): Promise<void>;
  /** The sink writes currently go to. */
  readonly sink: WalSink;
  readonly dir: string;
  /** Every server uid with a log, meta or snapshot. */
  servers(): string[];
  /** Damage found at open, per server (also thrown by `recover`). */
  problems(): ReadonlyMap<string, StorageError>;
  /** Resolves once background prefix deletion has caught up (for tests and orderly shutdown). */
  backgroundIdle(): Promise<void>;
}

/**
 * Opens (creating if missing) the storage of one raft system and recovers every server in it:
 * each server's current snapshot, then its log after the snapshot (every entry's checksum checked,
 * the log checked for gaps), then its meta. Damage is recorded per server and thrown by
 * `recover(uid)` for that server only. Rejects with `StorageOpenError` when RocksDB cannot open the
 * database (including corruption RocksDB itself detects, `corrupt: true`) or the format is foreign.
 */
export async function openRocksStorage(
  dir: string,
  options: RocksStorageOptions = {},
): Promise<RocksStorage> {
  const dbDir = path.join(dir, 'db');
  let raw: RocksKv;
  try {
    await fs.mkdir(dbDir, { recursive: true });
    raw = await RocksKv.open(dbDir, options.rocksdb ?? {});
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new StorageOpenError(dbDir, /corrupt/i.test(message), message, cause);
  }
  const kv = options.wrapKv?.(raw) ?? raw;
  try {
    return await recoverStorage(dir, kv, options);
  } catch (cause) {
    await raw.close().catch(() => undefined);
    if (cause instanceof StorageOpenError) throw cause;
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new StorageOpenError(dbDir, /corrupt/i.test(message), `recovery failed: ${message}`, cause);
  }
}

async function recoverStorage(dir: string, kv: Kv, options: RocksStorageOptions): Promise<RocksStorage> {
  const dbDir = path.join(dir, 'db');
  const format = await kv.get(FORMAT_KEY);
  if (format === undefined) {
    await kv.batch([{ type: 'put', key: FORMAT_KEY, value: Buffer.from(FORMAT_VERSION) }], true);
  } else if (format.toString() === 'otra-raft-log/1') {
    // one key per entry, before records: nothing converts it (no release shipped it)
    throw new StorageOpenError(
      dbDir,
      false,
      `written in format otra-raft-log/1 (one key per entry) by an older otra; this version reads ${FORMAT_VERSION} only: remove this node's servers from their clusters, empty the directory, and add them again`,
    );
  } else if (format.toString() !== FORMAT_VERSION) {
    throw new StorageOpenError(dbDir, false, `unknown format ${JSON.stringify(format.toString())}`);
  }
  const tailEntries = options.tailEntries ?? 1024;
  const snapshots = await FileSnapshotStore.open(path.join(dir, 'snapshots'), {
    verify: options.verifySnapshots ?? true,
  });
  const problems = new Map<string, StorageError>();
  const report = (uid: string, error: StorageError): void => {
    if (!problems.has(uid)) problems.set(uid, error);
  };
  for (const uid of snapshots.servers()) {
    const error = snapshots.corruptionOf(uid);
    if (error !== undefined) report(uid, error);
  }

  // Log starts, then entries: each server's entries are one contiguous key range.
  const starts = new Map<string, LogStart>();
  for await (const chunk of kv.iterateChunks(ALL_LOG_STARTS)) {
    for (const [key, value] of chunk) {
      const split = splitKey(key);
      if (split === undefined) continue;
      const start = decodeLogStart(value);
      if (start === undefined)
        report(split.uid, new LogCorruptionError(split.uid, 0, 'unreadable', 'log start record'));
      else starts.set(split.uid, start);
    }
  }
  const views = new Map<string, ServerLog>();
  const stale: Array<{ uid: string; from: number; to: number }> = [];
  let current: RecoveringLog | undefined;
  const finish = (): void => {
    if (current === undefined) return;
    const log = current.finish();
    views.set(log.uid, log);
    for (const range of current.stale) stale.push({ uid: log.uid, ...range });
    current = undefined;
  };
  for await (const chunk of kv.iterateChunks(ALL_ENTRIES, 1 << 20)) {
    for (const [key, value] of chunk) {
      const split = splitKey(key);
      const index = split === undefined ? undefined : indexOfEntryKey(split.rest);
      if (split === undefined || index === undefined) continue;
      if (current?.uid !== split.uid) {
        finish();
        current = new RecoveringLog(split.uid, starts.get(split.uid) ?? NO_START, tailEntries);
      }
      current.add(index, value);
    }
  }
  finish();
  for (const [uid, start] of starts) {
    if (!views.has(uid)) views.set(uid, new RecoveringLog(uid, start, tailEntries).finish());
  }
  for (const [uid, log] of views)
    if (log.corruption instanceof LogCorruptionError) report(uid, log.corruption);

  // Meta.
  const codec = createCodec();
  const metas = new Map<string, ServerMeta>();
  const values = new Map<string, Map<string, unknown>>();
  const metaCorruption = new Map<string, Error>();
  for await (const chunk of kv.iterateChunks(ALL_META)) {
    for (const [key, value] of chunk) {
      const split = splitKey(key);
      if (split === undefined) continue;
      const { uid } = split;
      const name = split.rest.toString('utf8');
      const payload = openRecord(value);
      let decoded: unknown;
      let ok = payload !== undefined;
      if (payload !== undefined) {
        try {
          decoded = codec.decode(payload);
        } catch {
          ok = false;
        }
      }
      if (ok && name === META_NAMES.termAndVote) {
        try {
          checkServerMeta(uid, decoded as ServerMeta);
          metas.set(uid, decoded as ServerMeta);
        } catch {
          ok = false;
        }
      } else if (ok && name.startsWith(META_NAMES.userPrefix)) {
        let map = values.get(uid);
        if (map === undefined) {
          map = new Map();
          values.set(uid, map);
        }
        map.set(name.slice(META_NAMES.userPrefix.length), decoded);
      }
      if (!ok) {
        const error = new MetaCorruptionError(uid, name);
        metaCorruption.set(uid, error);
        report(uid, error);
      }
    }
  }

  const writer = new GroupCommitWriter(kv, options.writer ?? {});
  const sinkRef: SinkRef = { current: writer };
  const deleter = new BackgroundDeleter(kv);
  const log = new RocksLogStore(kv, sinkRef, deleter, views, tailEntries);
  const meta = new RocksMetaStore(sinkRef, metas, values, metaCorruption);
  for (const job of stale) deleter.enqueue(job.uid, job.from, job.to);

  // A crash between completing a snapshot and truncating the log: truncate now.
  for (const uid of snapshots.servers()) {
    if (problems.has(uid)) continue;
    const info = snapshots.current(uid);
    if (info !== null && info.meta.index > log.firstIndex(uid) - 1) {
      await log.deletePrefix(uid, { index: info.meta.index, term: info.meta.term });
    }
  }

  let closed = false;
  const storage: RocksStorage = {
    log,
    meta,
    snapshots,
    writer,
    kv,
    dir,
    get sink() {
      return sinkRef.current;
    },
    async routeWrites(sink: WalSink) {
      if (closed) throw new StorageClosedError();
      for (let attempt = 0; !sinkRef.current.isIdle; attempt++) {
        if (attempt > 1000) throw new Error('the current writer never went idle');
        await sinkRef.current.idle();
      }
      const failure = sinkRef.current.failed;
      if (failure !== undefined) throw new WriterFailedError(failure);
      sinkRef.current = sink;
    },
    servers: () => [...new Set([...views.keys(), ...metas.keys(), ...values.keys(), ...snapshots.servers()])],
    problems: () => problems,
    backgroundIdle: () => deleter.idle(),
    recover(uid: string): RecoveredServer {
      if (closed) throw new StorageClosedError();
      checkUid(uid);
      const problem = problems.get(uid);
      if (problem !== undefined) throw problem;
      return {
        uid,
        snapshot: snapshots.current(uid),
        firstIndex: log.firstIndex(uid),
        last: log.last(uid),
        meta: meta.get(uid),
      };
    },
    async deleteServer(uid: string) {
      if (closed) throw new StorageClosedError();
      checkUid(uid);
      views.delete(uid);
      metas.delete(uid);
      values.delete(uid);
      metaCorruption.delete(uid);
      problems.delete(uid);
      for (const range of [entryRange(uid), metaRange(uid)]) {
        for await (const chunk of kv.iterateChunks(range)) {
          await kv.batch(
            chunk.map(([key]) => ({ type: 'del' as const, key })),
            false,
          );
        }
      }
      await kv.batch([{ type: 'del', key: logStartKey(uid) }], true);
      await snapshots.forget(uid);
    },
    async close() {
      if (closed) return;
      closed = true;
      await writer.close();
      if (sinkRef.current !== writer) {
        for (let attempt = 0; attempt < 1000 && !sinkRef.current.isIdle; attempt++)
          await sinkRef.current.idle();
      }
      await deleter.stop();
      await snapshots.close();
      await kv.close();
    },
  };
  return storage;
}

const NO_START: LogStart = { index: 0, term: 0, firstRecord: 0 };

/**
 * Rebuilds one server's view from its records in key order, checking every checksum and the
 * sequence: each record holds the entries from its key up to the next record's key. Records keyed
 * at or below the log start are stale (a prefix delete that had not finished: finished in the
 * background), except the one the start names as holding the first entry.
 */
class RecoveringLog {
  private readonly log: ServerLog;
  private expected: number;
  private tail: StoredEntry[] = [];
  private lastTerm: number;
  /** The entries of the last record seen, taken once the next record's key says how many count. */
  private held: StoredEntry[] | undefined;
  /** Key ranges of stale records (none of them holds a key of a live record). */
  readonly stale: Array<{ from: number; to: number }> = [];
  private lastWasStale = false;

  constructor(
    readonly uid: string,
    private readonly start: LogStart,
    private readonly tailEntries: number,
  ) {
    this.log = new ServerLog(uid, tailEntries);
    this.expected = start.index + 1;
    this.lastTerm = start.term;
  }

  add(key: number, value: Buffer): void {
    if (this.log.corruption !== undefined) return;
    if (key <= this.start.index && key !== this.start.firstRecord) {
      const last = this.stale[this.stale.length - 1];
      if (this.lastWasStale && last !== undefined) last.to = key;
      else this.stale.push({ from: key, to: key });
      this.lastWasStale = true;
      return;
    }
    this.lastWasStale = false;
    if (this.held !== undefined) this.take(key - 1);
    if (this.log.corruption !== undefined) return;
    if (key > this.expected) {
      this.corrupt(this.expected, 'gap', `next stored record is ${key}`);
      return;
    }
    const decoded = decodeRecord(value);
    if (!decoded.ok) {
      this.corrupt(Math.max(key, this.expected), decoded.reason);
      return;
    }
    if (decoded.first !== key) {
      this.corrupt(Math.max(key, this.expected), 'key_mismatch', `record holds ${decoded.first}`);
      return;
    }
    this.log.records.push(key);
    this.held = decoded.entries;
  }

  /** Takes the held record's entries up to `upTo`. */
  private take(upTo: number): void {
    for (const entry of this.held!) {
      const index = entry.index;
      if (index > upTo) break;
      if (index < this.expected) continue;
      if (entry.term < this.lastTerm) {
        this.corrupt(index, 'unreadable', `term ${entry.term} decreases`);
        return;
      }
      this.log.runs.push(index, entry.term);
      this.tail.push(entry);
      if (this.tail.length >= this.tailEntries * 2)
        this.tail = this.tail.slice(this.tail.length - this.tailEntries);
      this.lastTerm = entry.term;
      this.expected++;
    }
    this.held = undefined;
  }

  private corrupt(
    index: number,
    reason: 'checksum' | 'gap' | 'key_mismatch' | 'unreadable',
    detail?: string,
  ): void {
    this.log.corruption = new LogCorruptionError(this.uid, index, reason, detail);
  }

  finish(): ServerLog {
    if (this.held !== undefined && this.log.corruption === undefined) this.take(Number.POSITIVE_INFINITY);
    const last = this.expected - 1;
    const lastTerm = last === this.start.index ? this.start.term : this.lastTerm;
    const tail =
      this.tail.length > this.tailEntries ? this.tail.slice(this.tail.length - this.tailEntries) : this.tail;
    const start = { index: this.start.index, term: this.start.term };
    this.log.restore(start, { index: last, term: lastTerm }, tail);
    return this.log;
  }
}
