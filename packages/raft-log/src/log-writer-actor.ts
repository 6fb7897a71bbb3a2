import type { ActorContext, BatchItem, BatchServer, ChildSpec, Node, StartContext } from '@otra/actors';
import type { Pid } from '@otra/protocol';
import { WriterFailedError } from './errors.ts';
import type { Kv, KvBatch } from './internal/rocksdb.ts';
import type { RocksStorage } from './rocks-storage.ts';
import type { AppendOptions, LogStore, MetaStore, ServerMeta, StoredEntry } from './types.ts';
import {
  GroupCommitWriter,
  requestWrite,
  type WalSink,
  type WalWrite,
  type WriteRequest,
  type WriterStats,
} from './writer.ts';

/**
 * The log writer as an actor (one per raft system, first child of the system's `rest_for_one`
 * supervisor). It owns the system's `GroupCommitWriter` and feeds it every write it receives, so
 * its batching is the writer's: everything that arrives while a synced batch is in flight fills the
 * next one, which goes out the moment the sync completes (before the finished batch's callbacks
 * run), and a long fill goes out early (see `GroupCommitWriter`). Exactly one batch is in flight.
 * An idle writer syncs as soon as it has taken the writes in its mailbox: the servers that ran
 * before it in the same drain of the node have appended by then, and what they sent in that drain
 * (a leader's AppendEntries) leaves after its sync has started, not before. The actor itself never
 * waits on the disk, so its mailbox is drained as messages arrive.
 *
 * Messages are local only: `done` is a function. Servers do not send them by hand: they append
 * through `storage.log` as always, and `storage.routeWrites(new ActorWalSink(node, pid))` (done by
 * `logWriterChildSpec`) sends every write here. When a batch fails, its writes fail with
 * `LogWriteError`, later ones with `WriterFailedError`, and the actor stops with `LogWriteError`:
 * the raft system must restart and reopen its storage.
 */

/**
 * One write for the writer, as `ActorWalSink` casts it: a store's write (it adds its own operations
 * to the batch) and the sink to answer. It is itself the `WalWrite` the actor hands its writer,
 * settling through the sink, which settles its writes in the order it cast them.
 */
export class WalWriteMessage implements WalWrite {
  readonly type = 'wal.write';
  constructor(
    readonly write: WalWrite,
    readonly sink: { settle(error: Error | undefined): void },
  ) {}
  get uid(): string {
    return this.write.uid;
  }
  get size(): number {
    return this.write.size;
  }
  get entries(): number {
    return this.write.entries ?? 0;
  }
  writeTo(batch: KvBatch): void {
    this.write.writeTo(batch);
  }
  settle(error: Error | undefined): void {
    this.sink.settle(error);
  }
}

/** A call answered with the writer's `WriterStats`. */
export interface WalStatsRequest {
  readonly type: 'wal.stats';
}

export interface LogWriterArgs {
  readonly kv: Kv;
}

interface LogWriterState {
  readonly writer: GroupCommitWriter;
  /** The failure of a batch, once seen; the actor stops on the message below. */
  failure: Error | undefined;
  /** Sent to itself when a batch fails (compared by identity: no other sender can forge it). */
  readonly failed: { readonly type: 'wal.failed' };
}

export const logWriterBehaviour: BatchServer<LogWriterState, LogWriterArgs> = {
  kind: 'batch',
  maxBatchSize: 65_536,
  init: (args, ctx) => {
    const failed = { type: 'wal.failed' } as const;
    const state: LogWriterState = {
      writer: new GroupCommitWriter(args.kv, {
        onFailure: (error) => {
          state.failure = error;
          ctx.send(ctx.self, failed);
        },
      }),
      failure: undefined,
      failed,
    };
    return state;
  },

  handleBatch(items: BatchItem[], state: LogWriterState, ctx) {
    for (const item of items) {
      if (item.kind === 'call') {
        if ((item.request as WalStatsRequest | undefined)?.type === 'wal.stats')
          ctx.reply(item.from, state.writer.stats() satisfies WriterStats);
        continue;
      }
      const msg = item.msg;
      if (msg === state.failed) {
        const error = state.failure as Error;
        // Nothing more is written: the raft system must restart and reopen its storage.
        ctx.stop({ error: 'LogWriteError', message: error.message });
        return state;
      }
      // a class instance never crosses a link: a write from the network is not one
      if (msg instanceof WalWriteMessage) state.writer.submitWrite(msg);
    }
    state.writer.flushIfIdle();
    return state;
  },

  describe: (state) => {
    const stats = state.writer.stats();
    return {
      batches: stats.batches,
      requests: stats.requests,
      ops: stats.ops,
      entries: stats.entries,
      syncMicros: stats.syncMicros,
      failed: state.failure?.message ?? null,
    };
  },
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
    this.node.cast(this.pid, new WalWriteMessage(write, this));
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
