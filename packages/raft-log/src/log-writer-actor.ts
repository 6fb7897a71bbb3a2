import type { ActorContext, BatchItem, BatchServer, ChildSpec, Node, StartContext } from '@otra/actors';
import type { Pid } from '@otra/protocol';
import { LogWriteError, WriterFailedError } from './errors.ts';
import type { Kv } from './internal/rocksdb.ts';
import type { RocksStorage } from './rocks-storage.ts';
import type { AppendOptions, LogStore, MetaStore, ServerMeta, StoredEntry } from './types.ts';
import {
  countBatch,
  emptyBuckets,
  requestWrite,
  type WalSink,
  type WalWrite,
  type WriteRequest,
  type WriterStats,
} from './writer.ts';

/**
 * The log writer as an actor (one per raft system, first child of the system's `rest_for_one`
 * supervisor). Its mailbox is the group-commit queue: the runtime hands `handleBatch` everything
 * queued, the actor writes it as one synced RocksDB batch and stays busy until the sync is done,
 * so whatever arrives meanwhile is the next batch. Exactly one batch is in flight, and an idle
 * writer starts a sync as soon as the first message arrives.
 *
 * Messages are local only: `done` is a function. Servers do not send them by hand: they append
 * through `storage.log` as always, and `storage.routeWrites(new ActorWalSink(node, pid))` (done by
 * `logWriterChildSpec`) sends every write here.
 */

/**
 * One write for the writer: a store's write (it adds its own operations to the batch), and the sink
 * to answer. The writer settles the writes of a sink in the order it received them, which is the
 * order they were cast.
 */
export interface WalWriteMessage {
  readonly type: 'wal.write';
  readonly write: WalWrite;
  readonly sink: { settle(error: Error | undefined): void };
}

/** A call answered with the writer's `WriterStats`. */
export interface WalStatsRequest {
  readonly type: 'wal.stats';
}

export interface LogWriterArgs {
  readonly kv: Kv;
}

interface LogWriterState {
  readonly kv: Kv;
  failure: Error | undefined;
  stats: { batches: number; requests: number; ops: number; syncMicros: number; opsPerBatch: number[] };
}

function isWalWrite(msg: unknown): msg is WalWriteMessage {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'wal.write';
}

export const logWriterBehaviour: BatchServer<LogWriterState, LogWriterArgs> = {
  kind: 'batch',
  // A batch takes everything queued; the store's requests are small, RocksDB takes big batches well.
  maxBatchSize: 65_536,
  init: (args) => ({
    kv: args.kv,
    failure: undefined,
    stats: { batches: 0, requests: 0, ops: 0, syncMicros: 0, opsPerBatch: emptyBuckets() },
  }),

  async handleBatch(items: BatchItem[], state: LogWriterState, ctx) {
    const writes: WalWriteMessage[] = [];
    for (const item of items) {
      if (item.kind === 'call') {
        if ((item.request as WalStatsRequest | undefined)?.type === 'wal.stats') {
          ctx.reply(item.from, {
            ...state.stats,
            opsPerBatch: [...state.stats.opsPerBatch],
          } satisfies WriterStats);
        }
      } else if (isWalWrite(item.msg)) writes.push(item.msg);
    }
    if (writes.length === 0) return state;
    if (state.failure !== undefined) {
      for (const write of writes) write.sink.settle(new WriterFailedError(state.failure));
      return state;
    }
    const batch = state.kv.newBatch();
    let ops = 0;
    for (const message of writes) {
      message.write.writeTo(batch);
      ops += message.write.size;
    }
    const started = performance.now();
    try {
      await batch.write(true);
    } catch (cause) {
      const error = new LogWriteError([...new Set(writes.map((w) => w.write.uid))], cause);
      state.failure = error;
      for (const write of writes) write.sink.settle(error);
      // Nothing more is written: the raft system must restart and reopen its storage.
      ctx.stop({ error: 'LogWriteError', message: error.message });
      return state;
    }
    state.stats.batches++;
    state.stats.requests += writes.length;
    state.stats.ops += ops;
    state.stats.syncMicros += Math.round((performance.now() - started) * 1000);
    countBatch(state.stats.opsPerBatch, ops);
    for (const write of writes) write.sink.settle(undefined);
    return state;
  },

  describe: (state) => ({
    batches: state.stats.batches,
    requests: state.stats.requests,
    ops: state.stats.ops,
    syncMicros: state.stats.syncMicros,
    failed: state.failure?.message ?? null,
  }),
};

/**
 * The stores' side of the writer actor: sends each write to it and fails whatever is outstanding
 * when it exits (a write the actor never got to is not durable).
 */
export class ActorWalSink implements WalSink {
  /** The writes cast and not yet settled, oldest first from `head`. */
  private pending: Array<WalWrite | undefined> = [];
  private head = 0;
  private failure: Error | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly node: Node,
    readonly pid: Pid,
  ) {
    void node.awaitExit(pid).then((reason) => {
      this.failure ??= new WriterFailedError(`log writer exited: ${JSON.stringify(reason)}`);
      // Writes still in its mailbox were never written.
      while (this.head < this.pending.length) this.settle(this.failure);
    });
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  get isIdle(): boolean {
    return this.head === this.pending.length;
  }

  idle(): Promise<void> {
    if (this.isIdle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  submit(request: WriteRequest, done: (error: Error | undefined) => void): void {
    this.submitWrite(requestWrite(request, done));
  }

  submitWrite(write: WalWrite): void {
    if (this.failure !== undefined) {
      const failure = this.failure;
      queueMicrotask(() =>
        write.settle(failure instanceof WriterFailedError ? failure : new WriterFailedError(failure)),
      );
      return;
    }
    this.pending.push(write);
    const message: WalWriteMessage = { type: 'wal.write', write, sink: this };
    this.node.cast(this.pid, message);
  }

  /** @internal Called by the writer actor, once per write, in the order the writes were cast. */
  settle(error: Error | undefined): void {
    if (this.head >= this.pending.length) return;
    const write = this.pending[this.head]!;
    this.pending[this.head++] = undefined;
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    if (error !== undefined) this.failure ??= error;
    write.settle(error);
    if (this.isIdle && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}

/**
 * Spawns the log writer actor for `storage` and routes the storage's writes to it. Use as the first
 * child of a raft system's `rest_for_one` supervisor (`logWriterChildSpec`), or directly in tests.
 */
export async function spawnLogWriter(
  node: Node,
  storage: RocksStorage,
  spawn: (args: LogWriterArgs) => Pid | Promise<Pid> = (args) => node.spawn(logWriterBehaviour, args),
): Promise<Pid> {
  const pid = await spawn({ kv: storage.kv });
  await storage.routeWrites(new ActorWalSink(node, pid));
  return pid;
}

/** A child spec for the log writer of `storage` (`permanent`, as the system's shared WAL). */
export function logWriterChildSpec(storage: RocksStorage, id = 'log_writer'): ChildSpec {
  return {
    id,
    restart: 'permanent',
    start: (ctx: StartContext) =>
      spawnLogWriter(ctx.node, storage, (args) => ctx.spawn(logWriterBehaviour, args)),
  };
}

/**
 * Sent to a server instead of `log.written` / `meta.written` when its write failed: nothing of it is
 * durable, the writer has failed, and the server must stop (and the raft system reopen storage).
 */
export interface LogWriteFailed {
  readonly type: 'log.write_failed';
  readonly uid: string;
  readonly error: Error;
}

/**
 * Appends for a server actor and delivers the outcome to its own mailbox as a message:
 * `log.written { uid, upTo, term }` once durable, or `log.write_failed`. The view is updated at once
 * (reads see the entries); only the acknowledgement waits. Input errors still throw here.
 */
export function appendAndNotify(
  ctx: ActorContext,
  log: LogStore,
  uid: string,
  entries: readonly StoredEntry[],
  options?: AppendOptions,
): void {
  log.append(uid, entries, options).then(
    (written) => ctx.send(ctx.self, written),
    (error: Error) => ctx.send(ctx.self, { type: 'log.write_failed', uid, error } satisfies LogWriteFailed),
  );
}

/** As `appendAndNotify`, for currentTerm/votedFor: `meta.written` (send the vote only after it) or `log.write_failed`. */
export function storeMetaAndNotify(ctx: ActorContext, meta: MetaStore, uid: string, value: ServerMeta): void {
  meta.store(uid, value).then(
    (written) => ctx.send(ctx.self, written),
    (error: Error) => ctx.send(ctx.self, { type: 'log.write_failed', uid, error } satisfies LogWriteFailed),
  );
}
