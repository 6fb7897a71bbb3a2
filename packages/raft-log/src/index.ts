export { crc32c } from './crc32c.ts';
export {
  type CorruptionReason,
  LogCorruptionError,
  LogInputError,
  LogWriteError,
  MetaCorruptionError,
  SnapshotAbortedError,
  SnapshotChecksumError,
  SnapshotCorruptionError,
  SnapshotStaleError,
  StorageClosedError,
  StorageError,
  type StorageErrorCode,
  StorageOpenError,
  WriterFailedError,
} from './errors.ts';
export { FileSnapshotStore } from './file-snapshots.ts';
export {
  collectingBatch,
  type Kv,
  type KvBatch,
  type KvOp,
  type KvRange,
  RocksKv,
  type RocksOpenOptions,
} from './internal/rocksdb.ts';
export {
  ActorWalSink,
  appendAndNotify,
  type LogWriteFailed,
  type LogWriterArgs,
  logWriterBehaviour,
  logWriterChildSpec,
  spawnLogWriter,
  storeMetaAndNotify,
  type WalStatsRequest,
  type WalWriteMessage,
} from './log-writer-actor.ts';
export {
  createMemoryStorage,
  MemoryLogStore,
  MemoryMetaStore,
  MemorySnapshotStore,
  type MemoryStorage,
} from './memory.ts';
export { RocksLogStore, RocksMetaStore } from './rocks-log.ts';
export { openRocksStorage, type RocksStorage, type RocksStorageOptions } from './rocks-storage.ts';
export type {
  AppendOptions,
  IndexTerm,
  LogListener,
  LogStore,
  LogWritten,
  MetaStore,
  MetaWritten,
  RaftStorage,
  RecoveredServer,
  ServerMeta,
  SnapshotInfo,
  SnapshotMeta,
  SnapshotReader,
  SnapshotReceiver,
  SnapshotSource,
  SnapshotStore,
  StoredEntry,
} from './types.ts';
export { newServerUid } from './uid.ts';
export {
  GroupCommitWriter,
  requestWrite,
  WAL_BATCH_BUCKETS,
  type WalSink,
  type WalWrite,
  type WriteRequest,
  type WriterOptions,
  type WriterStats,
} from './writer.ts';
