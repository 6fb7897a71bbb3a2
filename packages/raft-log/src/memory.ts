import { createCodec } from '@otra/protocol';
import { crc32c } from './crc32c.ts';
import {
  LogInputError,
  LogWriteError,
  SnapshotAbortedError,
  SnapshotChecksumError,
  SnapshotStaleError,
  StorageClosedError,
  WriterFailedError,
} from './errors.ts';
import { checkUid } from './internal/keys.ts';
import { ServerLog } from './internal/server-log.ts';
import { checkSnapshotMeta } from './internal/snapshot-format.ts';
import { checkServerMeta } from './rocks-log.ts';
import type {
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

const EMPTY: IndexTerm = { index: 0, term: 0 };

/**
 * Shared by the three memory stores: writes "become durable" in a microtask, in order, unless the
 * storage was failed with `fail()` (to exercise a server's fault path without a broken disk).
 */
class MemoryDurability {
  failure: Error | undefined;
  closed = false;

  complete<T>(uid: string, value: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new StorageClosedError());
    if (this.failure !== undefined) return Promise.reject(new WriterFailedError(this.failure));
    return new Promise((resolve, reject) => {
      queueMicrotask(() => {
        if (this.failure !== undefined) reject(new LogWriteError([uid], this.failure));
        else resolve(value());
      });
    });
  }
}

/** The in-memory log: the same rules as `RocksLogStore` (shared view code), every entry kept in memory. */
export class MemoryLogStore implements LogStore {
  private readonly views = new Map<string, ServerLog>();

  /** Drops everything of `uid` (`RaftStorage.deleteServer`). */
  forget(uid: string): void {
    this.views.delete(uid);
  }

  /** @internal */
  constructor(private readonly durability: MemoryDurability) {}

  private view(uid: string): ServerLog {
    let log = this.views.get(uid);
    if (log === undefined) {
      checkUid(uid);
      log = new ServerLog(uid, Number.POSITIVE_INFINITY);
      this.views.set(uid, log);
    }
    return log;
  }

  append(uid: string, entries: readonly StoredEntry[], options?: AppendOptions): Promise<LogWritten> {
    const log = this.view(uid);
    const truncateFrom = options?.truncateFrom;
    const plan = log.plan(entries, truncateFrom);
    // Copy: the caller may reuse its buffers, as it may with the RocksDB store.
    log.apply(
      entries.map((e) => ({ index: e.index, term: e.term, data: e.data.slice() })),
      truncateFrom,
    );
    return this.durability.complete(uid, () => {
      log.written();
      return { type: 'log.written', uid, upTo: plan.written.upTo, term: plan.written.term };
    });
  }

  appendNotify(
    uid: string,
    entries: readonly StoredEntry[],
    options: AppendOptions | undefined,
    listener: LogListener,
  ): void {
    this.append(uid, entries, options).then(
      (written) => listener.logWritten(uid, written.upTo, written.term),
      (error: Error) => listener.logWriteFailed(uid, error),
    );
  }

  last(uid: string): IndexTerm {
    const log = this.views.get(uid);
    log?.checkUsable();
    return log === undefined ? EMPTY : { index: log.lastIndex, term: log.lastTerm };
  }

  firstIndex(uid: string): number {
    return this.views.get(uid)?.firstIndex ?? 1;
  }

  durableIndex(uid: string): number {
    return this.views.get(uid)?.durable ?? 0;
  }

  termAt(uid: string, index: number): number | undefined {
    const log = this.views.get(uid);
    if (log === undefined) return index === 0 ? 0 : undefined;
    return log.termAt(index);
  }

  tryRead(uid: string, from: number, to: number): StoredEntry[] | undefined {
    const log = this.views.get(uid);
    if (log === undefined) return from >= 1 ? [] : undefined;
    return log.tryRead(from, to);
  }

  read(uid: string, from: number, to: number): Promise<StoredEntry[]> {
    const log = this.views.get(uid);
    if (log === undefined) return Promise.resolve([]);
    if (from < log.firstIndex) {
      return Promise.reject(
        new LogInputError(uid, `read from ${from} is below the first index ${log.firstIndex}`),
      );
    }
    return Promise.resolve(log.tryRead(from, to) ?? []);
  }

  deletePrefix(uid: string, upTo: IndexTerm): Promise<void> {
    const log = this.view(uid);
    if (log.dropPrefix(upTo) === undefined) return Promise.resolve();
    return this.durability.complete(uid, () => log.written());
  }

  servers(): string[] {
    return [...this.views.entries()].filter(([, log]) => log.lastIndex > 0).map(([uid]) => uid);
  }
}

export class MemoryMetaStore implements MetaStore {
  private readonly metas = new Map<string, ServerMeta>();
  private readonly values = new Map<string, Map<string, unknown>>();
  private readonly codec = createCodec();

  /** Drops everything of `uid` (`RaftStorage.deleteServer`). */
  forget(uid: string): void {
    this.metas.delete(uid);
    this.values.delete(uid);
  }

  /** @internal */
  constructor(private readonly durability: MemoryDurability) {}

  get(uid: string): ServerMeta {
    checkUid(uid);
    return this.metas.get(uid) ?? { currentTerm: 0, votedFor: null };
  }

  store(uid: string, meta: ServerMeta): Promise<MetaWritten> {
    checkUid(uid);
    checkServerMeta(uid, meta);
    const stored: ServerMeta = {
      currentTerm: meta.currentTerm,
      votedFor: meta.votedFor === null ? null : { name: meta.votedFor.name, node: meta.votedFor.node },
    };
    this.metas.set(uid, stored);
    return this.durability.complete(uid, () => ({ type: 'meta.written', uid, ...stored }));
  }

  getValue(uid: string, key: string): unknown {
    checkUid(uid);
    return this.values.get(uid)?.get(key);
  }

  setValue(uid: string, key: string, value: unknown): Promise<void> {
    checkUid(uid);
    let map = this.values.get(uid);
    if (map === undefined) {
      map = new Map();
      this.values.set(uid, map);
    }
    // The same CBOR round trip as the RocksDB store, so values behave alike in tests.
    map.set(key, this.codec.decode(this.codec.encode(value)));
    return this.durability.complete(uid, () => undefined);
  }

  servers(): string[] {
    return [...new Set([...this.metas.keys(), ...this.values.keys()])];
  }
}

export class MemorySnapshotStore implements SnapshotStore {
  private readonly snapshots = new Map<string, { info: SnapshotInfo; bytes: Uint8Array }>();

  /** Drops everything of `uid` (`RaftStorage.deleteServer`). */
  forget(uid: string): void {
    this.snapshots.delete(uid);
  }

  current(uid: string): SnapshotInfo | null {
    checkUid(uid);
    return this.snapshots.get(uid)?.info ?? null;
  }

  async write(uid: string, meta: SnapshotMeta, data: SnapshotSource): Promise<SnapshotInfo> {
    const receiver = await this.beginReceive(uid, meta);
    let crc = 0;
    const chunks = data instanceof Uint8Array ? [data] : data;
    for await (const chunk of chunks) {
      crc = crc32c(chunk, crc);
      await receiver.writeChunk(chunk);
    }
    return receiver.complete(crc);
  }

  async beginReceive(uid: string, meta: SnapshotMeta): Promise<SnapshotReceiver> {
    checkUid(uid);
    const problem = checkSnapshotMeta(meta);
    if (problem !== undefined) throw new LogInputError(uid, problem);
    const chunks: Uint8Array[] = [];
    let crc = 0;
    let open = true;
    return {
      meta,
      writeChunk: async (bytes) => {
        if (!open) throw new SnapshotAbortedError(uid);
        crc = crc32c(bytes, crc);
        chunks.push(bytes.slice());
      },
      complete: async (checksum) => {
        if (!open) throw new SnapshotAbortedError(uid);
        open = false;
        if (checksum >>> 0 !== crc) throw new SnapshotChecksumError(uid, checksum, crc);
        const previous = this.snapshots.get(uid);
        if (previous !== undefined && meta.index < previous.info.meta.index) {
          throw new SnapshotStaleError(uid, meta.index, previous.info.meta.index);
        }
        const bytes = Buffer.concat(chunks);
        const info: SnapshotInfo = { meta, size: bytes.length, checksum: crc };
        this.snapshots.set(uid, { info, bytes });
        return info;
      },
      abort: async () => {
        open = false;
      },
    };
  }

  async openRead(uid: string): Promise<SnapshotReader | null> {
    checkUid(uid);
    const snapshot = this.snapshots.get(uid);
    if (snapshot === undefined) return null;
    const { info, bytes } = snapshot;
    const readChunk = async (offset: number, length: number): Promise<Uint8Array> =>
      bytes.slice(Math.max(0, offset), Math.min(bytes.length, offset + length));
    return {
      info,
      readChunk,
      async *chunks(chunkSize = 1 << 20) {
        for (let at = 0; at < info.size; at += chunkSize) yield await readChunk(at, chunkSize);
      },
      close: async () => undefined,
    };
  }

  servers(): string[] {
    return [...this.snapshots.keys()];
  }
}

/** In-memory storage for unit tests and the simulator. Nothing survives the process. */
export interface MemoryStorage extends RaftStorage {
  readonly log: MemoryLogStore;
  readonly meta: MemoryMetaStore;
  readonly snapshots: MemorySnapshotStore;
  servers(): string[];
  /** From now on every write fails (`LogWriteError`, then `WriterFailedError`), as after a disk failure. */
  fail(cause: unknown): void;
}

export function createMemoryStorage(): MemoryStorage {
  const durability = new MemoryDurability();
  const log = new MemoryLogStore(durability);
  const meta = new MemoryMetaStore(durability);
  const snapshots = new MemorySnapshotStore();
  return {
    log,
    meta,
    snapshots,
    servers: () => [...new Set([...log.servers(), ...meta.servers(), ...snapshots.servers()])],
    fail(cause: unknown) {
      durability.failure ??= cause instanceof Error ? cause : new Error(String(cause));
    },
    recover(uid: string): RecoveredServer {
      if (durability.closed) throw new StorageClosedError();
      checkUid(uid);
      return {
        uid,
        snapshot: snapshots.current(uid),
        firstIndex: log.firstIndex(uid),
        last: log.last(uid),
        meta: meta.get(uid),
      };
    },
    async deleteServer(uid: string) {
      if (durability.closed) throw new StorageClosedError();
      checkUid(uid);
      log.forget(uid);
      meta.forget(uid);
      snapshots.forget(uid);
    },
    async close() {
      durability.closed = true;
    },
  };
}
