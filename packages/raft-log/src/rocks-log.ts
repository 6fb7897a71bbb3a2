import { createCodec, isServerId } from '@otra/protocol';
import { LogCorruptionError, LogInputError } from './errors.ts';
import { decodeRecord, encodeLogStart, RecordEncoder, sealRecord } from './internal/entry-codec.ts';
import {
  checkUid,
  EntryKeys,
  entryKey,
  indexOfEntryKey,
  logStartKey,
  metaKey,
  splitKey,
} from './internal/keys.ts';
import type { Kv, KvBatch, KvOp } from './internal/rocksdb.ts';
import { ServerLog } from './internal/server-log.ts';
import type {
  AppendOptions,
  IndexTerm,
  LogListener,
  LogStore,
  LogWritten,
  MetaStore,
  MetaWritten,
  ServerMeta,
  StoredEntry,
} from './types.ts';
import type { WalSink, WalWrite, WriteRequest } from './writer.ts';

/** The sink the stores write through; replaced when the log writer actor takes over. */
export interface SinkRef {
  current: WalSink;
}

const EMPTY: IndexTerm = { index: 0, term: 0 };
/** Reads retry this many times when a truncation races with them, then give up. */
const READ_ATTEMPTS = 8;
/**
 * Deletes records no longer part of any log (below a snapshot point), one key range at a time
 * behind the writer, with RocksDB's range clear: its worker thread iterates and deletes, so a
 * snapshot that drops 1,000 records costs the event loop one call instead of 1,000 keys and batch
 * operations. Losing such a delete in a crash is harmless: the log start record says where the
 * log begins (and which record below it still holds entries), and recovery schedules the
 * leftovers again.
 */
export class BackgroundDeleter {
  private jobs: Array<{ uid: string; from: number; to: number }> = [];
  private running: Promise<void> | undefined;
  private stopped = false;
  /** The last delete error, if any (deletes are retried at the next open). */
  lastError: unknown;

  constructor(private readonly kv: Kv) {}

  enqueue(uid: string, from: number, to: number): void {
    if (to < from || this.stopped) return;
    this.jobs.push({ uid, from, to });
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
  }

  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.idle();
  }

  private async run(): Promise<void> {
    for (;;) {
      const job = this.jobs.shift();
      if (job === undefined || this.stopped) return;
      try {
        await this.kv.clearRange(entryKey(job.uid, job.from), entryKey(job.uid, job.to));
      } catch (error) {
        this.lastError = error;
        this.stopped = true;
        return;
      }
    }
  }
}

/** The settlers of the promise being made (a shared executor: no closure per append). */
let capturedResolve: (written: LogWritten) => void = () => undefined;
let capturedReject: (error: Error) => void = () => undefined;
function captureSettlers(resolve: (written: LogWritten) => void, reject: (error: Error) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/**
 * One append on its way through the writer: puts its record under the server's reused key, deletes
 * the records a truncation made stale, and settles the append's promise.
 */
class AppendWrite implements WalWrite {
  readonly size: number;
  readonly entries: number;

  constructor(
    private readonly log: ServerLog,
    private readonly keys: EntryKeys,
    private readonly first: number,
    /** The record; dropped once in the batch (which copied it). */
    private value: Uint8Array | undefined,
    /** Keys of records a truncation made stale, deleted in the same batch. */
    private readonly stale: readonly number[] | undefined,
    readonly upTo: number,
    private readonly term: number,
    /** The promise's settlers (`append`), or the listener (`appendNotify`). */
    private readonly resolve: ((written: LogWritten) => void) | undefined,
    private readonly reject: ((error: Error) => void) | undefined,
    private readonly listener: LogListener | undefined,
  ) {
    this.size = 1 + (stale === undefined ? 0 : stale.length);
    this.entries = upTo - first + 1;
  }

  get uid(): string {
    return this.log.uid;
  }

  writeTo(batch: KvBatch): void {
    const value = this.value;
    this.value = undefined;
    if (value === undefined) throw new Error('an append was written into a batch twice');
    batch.put(this.keys.at(this.first), value);
    const stale = this.stale;
    if (stale !== undefined) for (let k = 0; k < stale.length; k++) batch.del(this.keys.at(stale[k]!));
  }

  settle(error: Error | undefined): void {
    if (error === undefined) this.log.written();
    const listener = this.listener;
    if (listener === undefined) {
      if (error === undefined)
        this.resolve!({ type: 'log.written', uid: this.log.uid, upTo: this.upTo, term: this.term });
      else this.reject!(error);
      return;
    }
    try {
      if (error === undefined) listener.logWritten(this.log.uid, this.upTo, this.term);
      else listener.logWriteFailed(this.log.uid, error);
    } catch (thrown) {
      // Not into the writer, which is settling the rest of the batch.
      queueMicrotask(() => {
        throw thrown;
      });
    }
  }
}

/** The RocksDB log: a view per server (start, terms, recent tail) in memory; writes through the shared writer. */
export class RocksLogStore implements LogStore {
  /** @internal Built by `openRocksStorage`, which recovers the views first. */
  constructor(
    private readonly kv: Kv,
    private readonly sink: SinkRef,
    private readonly deleter: BackgroundDeleter,
    /** @internal */ readonly views: Map<string, ServerLog>,
    private readonly tailEntries: number,
  ) {}

  private readonly encoder = new RecordEncoder();

  private view(uid: string): ServerLog {
    let log = this.views.get(uid);
    if (log === undefined) {
      checkUid(uid);
      log = new ServerLog(uid, this.tailEntries);
      this.views.set(uid, log);
    }
    return log;
  }

  private peek(uid: string): ServerLog | undefined {
    const log = this.views.get(uid);
    log?.checkUsable();
    return log;
  }

  append(uid: string, entries: readonly StoredEntry[], options?: AppendOptions): Promise<LogWritten> {
    const log = this.view(uid);
    const truncateFrom = options?.truncateFrom;
    log.check(entries, truncateFrom);
    const written = new Promise<LogWritten>(captureSettlers);
    this.enqueue(log, entries, truncateFrom, capturedResolve, capturedReject, undefined);
    return written;
  }

  appendNotify(
    uid: string,
    entries: readonly StoredEntry[],
    options: AppendOptions | undefined,
    listener: LogListener,
  ): void {
    const log = this.view(uid);
    const truncateFrom = options?.truncateFrom;
    log.check(entries, truncateFrom);
    this.enqueue(log, entries, truncateFrom, undefined, undefined, listener);
  }

  /** Encodes a checked append as one record, applies it to the view and hands it to the writer. */
  private enqueue(
    log: ServerLog,
    entries: readonly StoredEntry[],
    truncateFrom: number | undefined,
    resolve: ((written: LogWritten) => void) | undefined,
    reject: ((error: Error) => void) | undefined,
    listener: LogListener | undefined,
  ): void {
    // The tail keeps views of the encoded record: what reads return is what RocksDB got, even if
    // the caller reuses its buffers. Each entry is encoded once, here; the batch copies the record.
    let stale: number[] | undefined;
    if (truncateFrom !== undefined) {
      log.truncate(truncateFrom);
      stale = log.records.truncateFrom(truncateFrom);
    }
    const first = entries[0]!.index;
    const value = this.encoder.encode(entries, log);
    log.records.push(first);
    const last = entries[entries.length - 1]!;
    log.endAppend(last.index, last.term, truncateFrom);
    log.entryKeys ??= new EntryKeys(log.uid);
    this.sink.current.submitWrite(
      new AppendWrite(
        log,
        log.entryKeys,
        first,
        value,
        stale,
        last.index,
        last.term,
        resolve,
        reject,
        listener,
      ),
    );
  }

  last(uid: string): IndexTerm {
    const log = this.peek(uid);
    return log === undefined ? EMPTY : { index: log.lastIndex, term: log.lastTerm };
  }

  firstIndex(uid: string): number {
    return this.peek(uid)?.firstIndex ?? 1;
  }

  durableIndex(uid: string): number {
    return this.peek(uid)?.durable ?? 0;
  }

  termAt(uid: string, index: number): number | undefined {
    const log = this.peek(uid);
    if (log === undefined) return index === 0 ? 0 : undefined;
    return log.termAt(index);
  }

  tryRead(uid: string, from: number, to: number): StoredEntry[] | undefined {
    const log = this.peek(uid);
    if (log === undefined) return from >= 1 ? [] : undefined;
    return log.tryRead(from, to);
  }

  async read(uid: string, from: number, to: number): Promise<StoredEntry[]> {
    const log = this.peek(uid);
    if (log === undefined) return [];
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      log.checkUsable();
      if (from < log.firstIndex) {
        throw new LogInputError(uid, `read from ${from} is below the first index ${log.firstIndex}`);
      }
      const generation = log.generation;
      const end = Math.min(to, log.lastIndex);
      const result: StoredEntry[] = [];
      let next = from;
      while (next <= end && log.generation === generation) {
        const cached = log.tryRead(next, end);
        if (cached !== undefined) {
          for (const entry of cached) result.push(entry);
          next = end + 1;
        } else {
          const diskEnd = Math.min(end, log.tailStart - 1);
          const entries = await this.readDisk(log, next, diskEnd);
          for (const entry of entries) result.push(entry);
          next = diskEnd + 1;
        }
      }
      if (log.generation === generation) return result;
    }
    throw new LogInputError(uid, `read ${from}..${to} kept racing with truncations`);
  }

  /**
   * Reads `from..to` from RocksDB: the records from the one holding `from`, each up to the next
   * one's key (a later record shadows the rest of an earlier one).
   */
  private async readDisk(log: ServerLog, from: number, to: number): Promise<StoredEntry[]> {
    const entries: StoredEntry[] = [];
    let expected = from;
    const fail = (index: number, reason: 'checksum' | 'gap' | 'key_mismatch' | 'unreadable'): never => {
      const error = new LogCorruptionError(log.uid, index, reason);
      log.corruption ??= error;
      throw error;
    };
    const first = log.records.containing(from);
    if (first === undefined) return fail(from, 'gap');
    let held: StoredEntry[] | undefined;
    const take = (upTo: number): void => {
      for (const entry of held!) {
        if (entry.index > upTo) return;
        if (entry.index === expected) {
          entries.push(entry);
          expected++;
        }
      }
    };
    const range = { gte: entryKey(log.uid, first), lte: entryKey(log.uid, to) };
    for await (const chunk of this.kv.iterateChunks(range)) {
      for (const [key, value] of chunk) {
        const start = indexOfEntryKey(splitKey(key)?.rest ?? Buffer.alloc(0));
        if (start === undefined) return fail(expected, 'unreadable');
        if (held !== undefined) take(Math.min(start - 1, to));
        if (start > expected) fail(expected, 'gap');
        const decoded = decodeRecord(value);
        if (!decoded.ok) return fail(Math.max(start, expected), decoded.reason);
        if (decoded.first !== start) fail(Math.max(start, expected), 'key_mismatch');
        held = decoded.entries;
      }
    }
    if (held !== undefined) take(to);
    if (expected <= to) fail(expected, 'gap');
    return entries;
  }

  deletePrefix(uid: string, upTo: IndexTerm): Promise<void> {
    const log = this.view(uid);
    const plan = log.dropPrefix(upTo);
    if (plan === undefined) return Promise.resolve();
    // The records before the one holding the new first entry go in the background; when the log
    // is now empty (a snapshot at its end, past it or conflicting with it), every record goes, and
    // those above the snapshot point in the same batch as the new start, so no restart sees them.
    const records = log.records;
    let firstRecord = 0;
    let background: { from: number; to: number } | undefined;
    const ops: KvOp[] = [];
    if (log.lastIndex > upTo.index) {
      const holding = records.containing(upTo.index + 1)!;
      if (holding <= upTo.index) firstRecord = holding;
      background = records.dropBelow(holding);
    } else {
      const all = records.clear();
      for (const start of all) {
        if (start > upTo.index) ops.push({ type: 'del', key: entryKey(uid, start) });
        else background = { from: background?.from ?? start, to: start };
      }
    }
    ops.unshift({
      type: 'put',
      key: logStartKey(uid),
      value: encodeLogStart({ index: upTo.index, term: upTo.term, firstRecord }),
    });
    return new Promise((resolve, reject) => {
      this.sink.current.submit({ uid, ops }, (error) => {
        if (error !== undefined) return reject(error);
        log.written();
        if (background !== undefined) this.deleter.enqueue(uid, background.from, background.to);
        resolve();
      });
    });
  }

  servers(): string[] {
    const uids: string[] = [];
    for (const [uid, log] of this.views)
      if (log.lastIndex > 0 || log.corruption !== undefined) uids.push(uid);
    return uids;
  }
}

const TERM_AND_VOTE = 'tv';
const USER_PREFIX = 'u:';

/** The meta key names of the stored form: `tv` for currentTerm/votedFor, `u:<key>` for user values. */
export const META_NAMES = { termAndVote: TERM_AND_VOTE, userPrefix: USER_PREFIX } as const;

export function checkServerMeta(uid: string, meta: ServerMeta): void {
  if (!Number.isSafeInteger(meta.currentTerm) || meta.currentTerm < 0) {
    throw new LogInputError(uid, `currentTerm ${meta.currentTerm} is not a non-negative integer`);
  }
  if (meta.votedFor !== null && !isServerId(meta.votedFor)) {
    throw new LogInputError(uid, 'votedFor must be a server id {name, node} or null');
  }
}

/** currentTerm/votedFor and small values per server, cached in memory, written through the shared writer. */
export class RocksMetaStore implements MetaStore {
  private readonly codec = createCodec();

  /** @internal Built by `openRocksStorage` with the recovered values. */
  constructor(
    private readonly sink: SinkRef,
    /** @internal */ readonly metas: Map<string, ServerMeta>,
    /** @internal */ readonly values: Map<string, Map<string, unknown>>,
    /** @internal */ readonly corruption: Map<string, Error>,
  ) {}

  private check(uid: string): void {
    checkUid(uid);
    const error = this.corruption.get(uid);
    if (error !== undefined) throw error;
  }

  get(uid: string): ServerMeta {
    this.check(uid);
    return this.metas.get(uid) ?? { currentTerm: 0, votedFor: null };
  }

  store(uid: string, meta: ServerMeta): Promise<MetaWritten> {
    this.check(uid);
    checkServerMeta(uid, meta);
    const votedFor = meta.votedFor === null ? null : { name: meta.votedFor.name, node: meta.votedFor.node };
    const stored: ServerMeta = { currentTerm: meta.currentTerm, votedFor };
    this.metas.set(uid, stored);
    const value = sealRecord(this.codec.encode(stored));
    const written: MetaWritten = { type: 'meta.written', uid, ...stored };
    return this.write({ uid, ops: [{ type: 'put', key: metaKey(uid, TERM_AND_VOTE), value }] }, written);
  }

  getValue(uid: string, key: string): unknown {
    this.check(uid);
    return this.values.get(uid)?.get(key);
  }

  setValue(uid: string, key: string, value: unknown): Promise<void> {
    this.check(uid);
    const encoded = sealRecord(this.codec.encode(value));
    let map = this.values.get(uid);
    if (map === undefined) {
      map = new Map();
      this.values.set(uid, map);
    }
    map.set(key, this.codec.decode(encoded.subarray(4)));
    return this.write(
      { uid, ops: [{ type: 'put', key: metaKey(uid, USER_PREFIX + key), value: encoded }] },
      undefined,
    );
  }

  /** Resolves with `result` directly in the writer's callback, so acknowledgements keep submission order. */
  private write<T>(request: WriteRequest, result: T): Promise<T> {
    return new Promise((resolve, reject) =>
      this.sink.current.submit(request, (error) => (error === undefined ? resolve(result) : reject(error))),
    );
  }
}
