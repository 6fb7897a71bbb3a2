import type { ServerId } from '@otra/protocol';

/**
 * One log entry as stored: opaque bytes. The leader encodes a Raft entry once (CBOR); followers
 * persist the bytes they received, so storage never decodes entries.
 */
export interface StoredEntry {
  readonly index: number;
  readonly term: number;
  readonly data: Uint8Array;
}

/** A position in the log: an entry's index and term. `{ index: 0, term: 0 }` is the empty log. */
export interface IndexTerm {
  readonly index: number;
  readonly term: number;
}

/**
 * The answer to an append, once every entry up to `upTo` is durable. `term` is the term of the
 * entry at `upTo` when it was written: a server that has since overwritten that index with another
 * term must ignore this message (compare with `LogStore.termAt`), as ra does with `written` events.
 */
export interface LogWritten {
  readonly type: 'log.written';
  readonly uid: string;
  readonly upTo: number;
  readonly term: number;
}

/** Raft's persistent per-server state besides the log (Figure 2: currentTerm, votedFor). */
export interface ServerMeta {
  readonly currentTerm: number;
  readonly votedFor: ServerId | null;
}

/** The answer to a meta write, once it is durable. A vote may be sent only after this. */
export interface MetaWritten extends ServerMeta {
  readonly type: 'meta.written';
  readonly uid: string;
}

/**
 * Hears how appends made with `LogStore.appendNotify` end: exactly one call per append, in the
 * order the appends were made (the promise-free form of `append`'s answer; a promise of `append`
 * completed in the same batch settles a microtask after these calls). The writer calls it
 * synchronously as each batch completes, for all the appends in that batch in one pass, so a
 * listener that is one object per server costs nothing per append; it should only record or
 * enqueue (an exception it throws is rethrown in a microtask, not into the writer).
 */
export interface LogListener {
  /** Every entry of `uid` up to `upTo` is durable; `term` is as in `LogWritten`. */
  logWritten(uid: string, upTo: number, term: number): void;
  /** The append's write failed (as `append`'s promise would reject): nothing of it is durable. */
  logWriteFailed(uid: string, error: Error): void;
}

export interface AppendOptions {
  /**
   * Removes every entry with index >= `truncateFrom` in the same atomic write as the new entries (a
   * follower overwriting a conflicting suffix). The first new entry must have index `truncateFrom`.
   */
  readonly truncateFrom?: number;
}

/**
 * The log of every Raft server in one raft system, keyed by server uid.
 *
 * Ordering rules (persist before send):
 * - `append` updates the in-memory view at once: reads see the entries immediately (a leader
 *   replicates before its own write finishes), but nothing may be acknowledged to another server
 *   (an AppendEntries reply, a commit) before the returned promise resolves.
 * - Appends of one server become durable in the order they were made; a later append is never
 *   durable while an earlier one is not.
 * - Malformed input (a gap, a decreasing term, a truncation outside the log) throws `LogInputError`
 *   synchronously and changes nothing. The promise rejects only when the write fails
 *   (`LogWriteError`, `WriterFailedError`): nothing of that append is acknowledged, and the server
 *   must stop.
 */
export interface LogStore {
  append(uid: string, entries: readonly StoredEntry[], options?: AppendOptions): Promise<LogWritten>;
  /**
   * `append` without a promise: the same rules and input errors (thrown synchronously), the same
   * durability and order; the outcome goes to `listener` instead (no promise, no `LogWritten`
   * object, no microtask hop per append).
   */
  appendNotify(
    uid: string,
    entries: readonly StoredEntry[],
    options: AppendOptions | undefined,
    listener: LogListener,
  ): void;
  /** The last entry; when the log is empty, the point it starts after (a snapshot's index and term). */
  last(uid: string): IndexTerm;
  /** The lowest index held; `last(uid).index + 1` when the log is empty. */
  firstIndex(uid: string): number;
  /** The highest index known durable in the current view. */
  durableIndex(uid: string): number;
  /**
   * The term of the entry at `index`, also for the point the log starts after (`firstIndex - 1`);
   * `undefined` outside. Always synchronous: terms are kept in memory as runs.
   */
  termAt(uid: string, index: number): number | undefined;
  /** Entries `from..to` (inclusive) when all are in the in-memory tail, else `undefined`. */
  tryRead(uid: string, from: number, to: number): StoredEntry[] | undefined;
  /** Entries `from..to` (inclusive, clamped to the log's end); rejects with `LogInputError` below `firstIndex`. */
  read(uid: string, from: number, to: number): Promise<StoredEntry[]>;
  /**
   * Forgets entries <= `upTo.index` after a snapshot at `upTo`. If the log does not hold `upTo`
   * with that term (an installed snapshot past or conflicting with the log), the whole log is
   * discarded and the next append starts at `upTo.index + 1` (Raft §7). Resolves when the new start
   * is durable; the entries themselves are deleted in the background.
   */
  deletePrefix(uid: string, upTo: IndexTerm): Promise<void>;
  /** The uids with anything in this store. */
  servers(): string[];
}

/**
 * currentTerm and votedFor, plus a small key/value space per server (cluster configuration,
 * machine version, ...). Reads come from memory; writes resolve once durable and are ordered with
 * the log's writes (one writer).
 */
export interface MetaStore {
  get(uid: string): ServerMeta;
  store(uid: string, meta: ServerMeta): Promise<MetaWritten>;
  /** A value stored with `setValue` (CBOR round trip), or `undefined`. */
  getValue(uid: string, key: string): unknown;
  setValue(uid: string, key: string, value: unknown): Promise<void>;
}

/** What a snapshot is of: the last entry it includes, plus whatever the server adds (membership, ...). */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly [key: string]: unknown;
}

/** A complete, verified snapshot: its meta, its size in bytes and the crc32c of its bytes. */
export interface SnapshotInfo {
  readonly meta: SnapshotMeta;
  readonly size: number;
  readonly checksum: number;
}

/** Reads the current snapshot for sending or restoring. Holds the file open: a newer snapshot completing meanwhile does not disturb it. */
export interface SnapshotReader {
  readonly info: SnapshotInfo;
  readChunk(offset: number, length: number): Promise<Uint8Array>;
  /** The whole snapshot in chunks of `chunkSize` bytes. */
  chunks(chunkSize?: number): AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

/**
 * Receives a snapshot in chunks (InstallSnapshot). Nothing is visible until `complete` verifies the
 * checksum and makes it current atomically; an abort, a crash or a checksum mismatch leaves the
 * previous snapshot current.
 */
export interface SnapshotReceiver {
  readonly meta: SnapshotMeta;
  writeChunk(bytes: Uint8Array): Promise<void>;
  /** `checksum` is the sender's crc32c of the whole snapshot (`SnapshotInfo.checksum`). */
  complete(checksum: number): Promise<SnapshotInfo>;
  abort(): Promise<void>;
}

/** Snapshot bytes as one array or as chunks (streamed, so a large snapshot is written piecewise). */
export type SnapshotSource = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/**
 * The current snapshot of each server. Completing a snapshot with a lower index than the current
 * one fails with `SnapshotStaleError`. After a snapshot is complete, the caller truncates the log
 * with `LogStore.deletePrefix` (recovery does it too, if a crash came in between).
 */
export interface SnapshotStore {
  current(uid: string): SnapshotInfo | null;
  /** A snapshot made locally (by the machine), written in chunks off the caller's path. */
  write(uid: string, meta: SnapshotMeta, data: SnapshotSource): Promise<SnapshotInfo>;
  beginReceive(uid: string, meta: SnapshotMeta): Promise<SnapshotReceiver>;
  /** The current snapshot, or `null` when there is none. */
  openRead(uid: string): Promise<SnapshotReader | null>;
}

/** What a server finds on start, in recovery order: its snapshot, the log after it, its meta. */
export interface RecoveredServer {
  readonly uid: string;
  readonly snapshot: SnapshotInfo | null;
  readonly firstIndex: number;
  readonly last: IndexTerm;
  readonly meta: ServerMeta;
}

/** The three stores of one raft system, opened and recovered together. */
export interface RaftStorage {
  readonly log: LogStore;
  readonly meta: MetaStore;
  readonly snapshots: SnapshotStore;
  /**
   * Recovery for one server. Throws `LogCorruptionError` (with the uid and index) when its log
   * failed a checksum or has a gap, `SnapshotCorruptionError` when its snapshot is damaged; other
   * servers of the system are unaffected.
   */
  recover(uid: string): RecoveredServer;
  /**
   * Forgets server `uid` for good: its log, log start, meta and values, and snapshots (a deleted
   * server or cluster). Call it once the server has stopped; resolves when the deletion is durable.
   */
  deleteServer(uid: string): Promise<void>;
  close(): Promise<void>;
}
