/**
 * Typed storage errors. Each has a stable `code` to switch on; `cause` carries the underlying
 * RocksDB or file system error where there is one.
 */
export type StorageErrorCode =
  | 'log.input'
  | 'log.corrupt'
  | 'meta.corrupt'
  | 'log.write_failed'
  | 'log.writer_failed'
  | 'storage.open_failed'
  | 'storage.closed'
  | 'snapshot.corrupt'
  | 'snapshot.checksum_mismatch'
  | 'snapshot.stale'
  | 'snapshot.aborted';

export abstract class StorageError extends Error {
  abstract readonly code: StorageErrorCode;
}

/** Malformed input to a store (a gap, a decreasing term, a truncation outside the log, a bad uid). A bug in the caller; nothing was changed. */
export class LogInputError extends StorageError {
  readonly code = 'log.input';
  override readonly name = 'LogInputError';
  constructor(
    readonly uid: string,
    message: string,
  ) {
    super(`${uid}: ${message}`);
  }
}

export type CorruptionReason = 'checksum' | 'gap' | 'key_mismatch' | 'unreadable';

/**
 * A server's stored log is damaged at `index`: an entry failed its checksum, is missing from the
 * middle of the log, or cannot be decoded. Reported, never silently truncated: the entry may be
 * committed, and only an operator (or a snapshot from the leader) may decide to drop it.
 */
export class LogCorruptionError extends StorageError {
  readonly code = 'log.corrupt';
  override readonly name = 'LogCorruptionError';
  constructor(
    readonly uid: string,
    readonly index: number,
    readonly reason: CorruptionReason,
    detail?: string,
  ) {
    super(
      `log of ${uid} is corrupt at index ${index} (${reason})${detail === undefined ? '' : `: ${detail}`}`,
    );
  }
}

/** A server's stored meta value `key` failed its checksum or cannot be decoded. */
export class MetaCorruptionError extends StorageError {
  readonly code = 'meta.corrupt';
  override readonly name = 'MetaCorruptionError';
  constructor(
    readonly uid: string,
    readonly key: string,
  ) {
    super(`meta of ${uid} is corrupt at key ${JSON.stringify(key)}`);
  }
}

/** The write batch holding these appends failed (disk full, I/O error). None of them is durable. */
export class LogWriteError extends StorageError {
  readonly code = 'log.write_failed';
  override readonly name = 'LogWriteError';
  constructor(
    readonly uids: readonly string[],
    cause: unknown,
  ) {
    super(`write batch failed: ${errorText(cause)}`, { cause });
  }
}

/** The writer failed earlier and accepts nothing more; the raft system must be restarted. */
export class WriterFailedError extends StorageError {
  readonly code = 'log.writer_failed';
  override readonly name = 'WriterFailedError';
  constructor(cause: unknown) {
    super(`log writer has failed: ${errorText(cause)}`, { cause });
  }
}

/** The database could not be opened: missing permissions, a lock held by another process, or corruption RocksDB found at open. */
export class StorageOpenError extends StorageError {
  readonly code = 'storage.open_failed';
  override readonly name = 'StorageOpenError';
  constructor(
    readonly location: string,
    readonly corrupt: boolean,
    message: string,
    cause?: unknown,
  ) {
    super(`cannot open storage at ${location}: ${message}`, cause === undefined ? undefined : { cause });
  }
}

export class StorageClosedError extends StorageError {
  readonly code = 'storage.closed';
  override readonly name = 'StorageClosedError';
  constructor() {
    super('storage is closed');
  }
}

/** A stored snapshot failed its checksum or cannot be parsed. */
export class SnapshotCorruptionError extends StorageError {
  readonly code = 'snapshot.corrupt';
  override readonly name = 'SnapshotCorruptionError';
  constructor(
    readonly uid: string,
    readonly file: string,
    detail: string,
  ) {
    super(`snapshot of ${uid} in ${file} is corrupt: ${detail}`);
  }
}

/** A received snapshot's bytes do not match the sender's checksum; the previous snapshot stays current. */
export class SnapshotChecksumError extends StorageError {
  readonly code = 'snapshot.checksum_mismatch';
  override readonly name = 'SnapshotChecksumError';
  constructor(
    readonly uid: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`snapshot of ${uid}: checksum ${hex(actual)} does not match the sender's ${hex(expected)}`);
  }
}

/** A snapshot completed with a lower index than the current one; the current one stays. */
export class SnapshotStaleError extends StorageError {
  readonly code = 'snapshot.stale';
  override readonly name = 'SnapshotStaleError';
  constructor(
    readonly uid: string,
    readonly index: number,
    readonly currentIndex: number,
  ) {
    super(`snapshot of ${uid} at ${index} is older than the current one at ${currentIndex}`);
  }
}

/** The receive was aborted (or used after completing). */
export class SnapshotAbortedError extends StorageError {
  readonly code = 'snapshot.aborted';
  override readonly name = 'SnapshotAbortedError';
  constructor(readonly uid: string) {
    super(`snapshot receive for ${uid} is no longer open`);
  }
}

function errorText(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}
