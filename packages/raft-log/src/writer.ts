import { LogWriteError, StorageClosedError, WriterFailedError } from './errors.ts';
import type { Kv, KvBatch, KvOp } from './internal/rocksdb.ts';

/** One caller's write: key/value operations applied atomically, in submission order. */
export interface WriteRequest {
  /** The server the write belongs to, named in errors. */
  readonly uid: string;
  readonly ops: readonly KvOp[];
}

/**
 * One write as the sinks carry it: it adds its own operations to a batch (so a log append can
 * encode its keys into one reused buffer, the batch copying them) and is settled exactly once, in
 * submission order. The log store's appends implement it directly: no operation objects, no
 * callback closure per append.
 */
export interface WalWrite {
  /** The server the write belongs to, named in errors. */
  readonly uid: string;
  /** How many operations `writeTo` adds (batches take whole writes up to `maxBatchOps`). */
  readonly size: number;
  /** How many log entries the write holds, for `WriterStats.entries` (none if absent). */
  readonly entries?: number;
  /**
   * Adds the operations, in order, to `batch`, synchronously. Called once: by the class writer as
   * the write is submitted, by the writer actor when it takes the write from its mailbox.
   */
  writeTo(batch: KvBatch): void;
  /** Durable (no argument) or failed (the error): called once, after the batch's sync. */
  settle(error: Error | undefined): void;
}

/** A `WriteRequest` and its callback as a `WalWrite`. */
class RequestWrite implements WalWrite {
  constructor(
    private readonly request: WriteRequest,
    private readonly done: (error: Error | undefined) => void,
  ) {}

  get uid(): string {
    return this.request.uid;
  }

  get size(): number {
    return this.request.ops.length;
  }

  writeTo(batch: KvBatch): void {
    for (const op of this.request.ops) {
      if (op.type === 'put') batch.put(op.key, op.value);
      else batch.del(op.key);
    }
  }

  settle(error: Error | undefined): void {
    this.done(error);
  }
}

/** Wraps a request and its callback for `WalSink.submitWrite`. */
export function requestWrite(request: WriteRequest, done: (error: Error | undefined) => void): WalWrite {
  return new RequestWrite(request, done);
}

/**
 * Where the stores send their writes: the class writer below, or the log writer actor
 * (`ActorWalSink`). Writes complete in submission order; `done` runs with no argument once the
 * request is durable, or with the error that failed it.
 */
export interface WalSink {
  submit(request: WriteRequest, done: (error: Error | undefined) => void): void;
  /** `submit` for a write that encodes itself (`submit(r, d)` is `submitWrite(requestWrite(r, d))`). */
  submitWrite(write: WalWrite): void;
  /** The error that failed this sink, if it has; it then fails every request. */
  readonly failed: Error | undefined;
  /** True when nothing submitted is still waiting to be durable. */
  readonly isIdle: boolean;
  idle(): Promise<void>;
}

/** A batch being filled: its native write batch and the writes in it. */
interface Pending {
  readonly batch: KvBatch;
  readonly writes: WalWrite[];
  ops: number;
  entries: number;
}

export interface WriterOptions {
  /** A batch takes whole requests until it holds this many operations (default 65,536). */
  readonly maxBatchOps?: number;
  /**
   * While nothing is in flight, send the batch being filled once it has been filling for
   * `max(1 ms, half the last sync)` (checked every 64 writes) instead of at the end of the turn
   * (default true; see the class comment).
   */
  readonly flushLongFills?: boolean;
  /** Called once, when a batch fails and the writer becomes failed (before its writes are settled). */
  readonly onFailure?: (error: LogWriteError) => void;
}

/** A long fill is checked for every this many writes (a clock read each time). */
const FILL_CHECK_EVERY = 64;
/** A fill shorter than this never goes out before the end of its turn. */
const MIN_LONG_FILL_MS = 1;

/** Upper bounds of the `opsPerBatch` histogram buckets (the last bucket counts everything above). */
export const WAL_BATCH_BUCKETS: readonly number[] = [
  1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536,
];

/** Zeroed counts for `countBatch`. */
export function emptyBuckets(): number[] {
  return new Array<number>(WAL_BATCH_BUCKETS.length + 1).fill(0);
}

/** Counts one batch of `ops` operations into `buckets` (WAL_BATCH_BUCKETS.length + 1 counts). */
export function countBatch(buckets: number[], ops: number): void {
  let i = 0;
  while (i < WAL_BATCH_BUCKETS.length && ops > (WAL_BATCH_BUCKETS[i] as number)) i++;
  buckets[i] = (buckets[i] as number) + 1;
}

/** Counters since the writer started; `syncMicros` is the time spent inside synced batches. */
export interface WriterStats {
  readonly batches: number;
  readonly requests: number;
  /** RocksDB operations: one per log append (its record), per meta value, per deleted record. */
  readonly ops: number;
  /** Log entries written (an append's record holds all of its entries). */
  readonly entries: number;
  readonly syncMicros: number;
  /** Batches by operations per batch: one count per WAL_BATCH_BUCKETS bound, then one above them. */
  readonly opsPerBatch: readonly number[];
}

/**
 * The shared WAL writer of a raft system: adaptive group commit over one RocksDB database.
 *
 * Everything submitted while the database is idle goes out in one synced write batch as soon as
 * the current event-loop turn's callbacks have run (`setImmediate`: no timer, no delay to wait
 * for company). While that batch syncs, new requests go into the next native write batch as they
 * arrive (so its encoding overlaps the sync); when the sync completes, that batch goes out at
 * once, before the completed batch's callbacks run. Exactly one batch is in flight, so the cost of
 * an fsync is shared by everything that arrived during the previous one, and load raises the batch
 * size instead of the number of syncs.
 *
 * A turn can be long: when a batch of 1,000 appends completes, its 1,000 callbacks resume their
 * appenders, which append again, all in one run of microtasks (milliseconds of JavaScript, as long
 * as the sync itself). So that the disk does not sit idle all that time, a batch that has been
 * filling while nothing is in flight for `max(1 ms, half the last sync)` goes out then; the rest of
 * the turn's writes fill the next batch while it syncs, and from then on each sync overlaps the
 * JavaScript of the other half (`flushLongFills: false` turns this off).
 *
 * A request completes (its callback runs with no error) only once its batch is durable. If a batch
 * fails, every request in it fails with `LogWriteError`, everything queued or submitted later with
 * `WriterFailedError`, and the writer stays failed: a raft system whose disk failed must restart.
 */
export class GroupCommitWriter implements WalSink {
  /** Filled batches waiting for their turn (only when one grew past `maxBatchOps`), then the one being filled. */
  private waiting: Pending[] = [];
  private filling: Pending | undefined;
  private inFlight = false;
  private scheduled = false;
  private failure: Error | undefined;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private readonly maxBatchOps: number;
  private readonly flushLongFills: boolean;
  private readonly onFailure: ((error: LogWriteError) => void) | undefined;
  /** When the batch being filled got its first write; writes since the last long-fill check. */
  private fillingSince = 0;
  private sinceFillCheck = 0;
  private lastSyncMs = 0;
  private counters = {
    batches: 0,
    requests: 0,
    ops: 0,
    entries: 0,
    syncMicros: 0,
    opsPerBatch: emptyBuckets(),
  };

  constructor(
    private readonly kv: Kv,
    options: WriterOptions = {},
  ) {
    this.maxBatchOps = options.maxBatchOps ?? 65_536;
    this.flushLongFills = options.flushLongFills ?? true;
    this.onFailure = options.onFailure;
  }

  /** Queues `request`; `done` runs once it is durable (no argument) or failed (the error). */
  submit(request: WriteRequest, done: (error: Error | undefined) => void): void {
    this.submitWrite(new RequestWrite(request, done));
  }

  /** Queues `write`, copying its operations into the batch being filled at once. */
  submitWrite(write: WalWrite): void {
    if (this.failure !== undefined) {
      const failure = this.failure;
      queueMicrotask(() => write.settle(new WriterFailedError(failure)));
      return;
    }
    if (this.closed) {
      queueMicrotask(() => write.settle(new StorageClosedError()));
      return;
    }
    const size = write.size;
    let pending = this.filling;
    if (pending !== undefined && pending.ops > 0 && pending.ops + size > this.maxBatchOps) {
      // Full: it waits for its turn whole; a write is never split across batches.
      this.waiting.push(pending);
      pending = undefined;
    }
    if (pending === undefined) {
      pending = { batch: this.kv.newBatch(), writes: [], ops: 0, entries: 0 };
      this.filling = pending;
      this.fillingSince = performance.now();
      this.sinceFillCheck = 0;
    }
    write.writeTo(pending.batch);
    pending.ops += size;
    pending.entries += write.entries ?? 0;
    pending.writes.push(write);
    if (this.inFlight) return;
    if (this.flushLongFills && ++this.sinceFillCheck >= FILL_CHECK_EVERY) {
      this.sinceFillCheck = 0;
      const filling = performance.now() - this.fillingSince;
      if (filling >= MIN_LONG_FILL_MS && filling >= this.lastSyncMs / 2) {
        this.flush();
        return;
      }
    }
    this.schedule();
  }

  /**
   * Starts the batch being filled now if none is in flight, instead of at the end of the turn.
   * For a caller that knows no more writes are coming in this turn's current run (the writer
   * actor, after taking its mailbox).
   */
  flushIfIdle(): void {
    if (!this.inFlight && (this.filling !== undefined || this.waiting.length > 0)) this.flush();
  }

  /** `submit` as a promise. */
  write(request: WriteRequest): Promise<void> {
    return new Promise((resolve, reject) =>
      this.submit(request, (error) => (error ? reject(error) : resolve())),
    );
  }

  /** The error that failed the writer, if it has. */
  get failed(): Error | undefined {
    return this.failure;
  }

  stats(): WriterStats {
    return { ...this.counters, opsPerBatch: [...this.counters.opsPerBatch] };
  }

  get isIdle(): boolean {
    return !this.inFlight && !this.scheduled && this.filling === undefined && this.waiting.length === 0;
  }

  /** Resolves once nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.isIdle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuses new requests and waits for the queued ones to be written. */
  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
  }

  private schedule(): void {
    if (this.inFlight || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.inFlight) return;
    const pending = this.waiting.shift() ?? this.filling;
    if (pending === undefined) {
      this.notifyIdle();
      return;
    }
    if (pending === this.filling) this.filling = undefined;
    this.inFlight = true;
    const started = performance.now();
    pending.batch.write(true).then(
      () => {
        const writes = pending.writes;
        const syncMs = performance.now() - started;
        this.lastSyncMs = syncMs;
        this.counters.batches++;
        this.counters.requests += writes.length;
        this.counters.ops += pending.ops;
        this.counters.entries += pending.entries;
        this.counters.syncMicros += Math.round(syncMs * 1000);
        countBatch(this.counters.opsPerBatch, pending.ops);
        this.inFlight = false;
        // What arrived during the sync goes out before these callbacks run (they may take long).
        if (this.filling !== undefined || this.waiting.length > 0) this.flush();
        for (let i = 0; i < writes.length; i++) writes[i]!.settle(undefined);
        // What arrived during the sync goes out now; if nothing did, the next write schedules.
        if (this.filling !== undefined || this.waiting.length > 0) this.schedule();
        else this.notifyIdle();
      },
      (cause: unknown) => {
        this.inFlight = false;
        const error = new LogWriteError([...new Set(pending.writes.map((w) => w.uid))], cause);
        this.failure = error;
        this.onFailure?.(error);
        for (const write of pending.writes) write.settle(error);
        const rest = [...this.waiting, ...(this.filling === undefined ? [] : [this.filling])];
        this.waiting = [];
        this.filling = undefined;
        for (const later of rest)
          for (const write of later.writes) write.settle(new WriterFailedError(error));
        this.notifyIdle();
      },
    );
  }

  private notifyIdle(): void {
    if (!this.isIdle) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
