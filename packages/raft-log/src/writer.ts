import { LogWriteError, StorageClosedError, WriterFailedError } from './errors.ts';
import type { Kv, KvOp } from './internal/rocksdb.ts';

/** One caller's write: key/value operations applied atomically, in submission order. */
export interface WriteRequest {
  /** The server the write belongs to, named in errors. */
  readonly uid: string;
  readonly ops: readonly KvOp[];
}

/**
 * Where the stores send their writes: the class writer below, or the log writer actor
 * (`ActorWalSink`). Requests complete in submission order; `done` runs with no argument once the
 * request is durable, or with the error that failed it.
 */
export interface WalSink {
  submit(request: WriteRequest, done: (error: Error | undefined) => void): void;
  /** The error that failed this sink, if it has; it then fails every request. */
  readonly failed: Error | undefined;
  /** True when nothing submitted is still waiting to be durable. */
  readonly isIdle: boolean;
  idle(): Promise<void>;
}

interface Queued {
  readonly request: WriteRequest;
  readonly done: (error: Error | undefined) => void;
}

export interface WriterOptions {
  /** A batch takes whole requests until it holds this many operations (default 65,536). */
  readonly maxBatchOps?: number;
}

/** Counters since the writer started; `syncMicros` is the time spent inside synced batches. */
export interface WriterStats {
  readonly batches: number;
  readonly requests: number;
  readonly ops: number;
  readonly syncMicros: number;
}

/**
 * The shared WAL writer of a raft system: adaptive group commit over one RocksDB database.
 *
 * Everything submitted while the database is idle goes out in one synced write batch as soon as
 * the current event-loop turn's callbacks have run (`setImmediate`: no timer, no delay to wait
 * for company). While that batch syncs, new requests queue; when it completes, everything queued
 * goes out as the next batch. Exactly one batch is in flight, so the cost of an fsync is shared by
 * everything that arrived during the previous one, and load raises the batch size instead of the
 * number of syncs.
 *
 * A request completes (its callback runs with no error) only once its batch is durable. If a batch
 * fails, every request in it fails with `LogWriteError`, everything queued or submitted later with
 * `WriterFailedError`, and the writer stays failed: a raft system whose disk failed must restart.
 */
export class GroupCommitWriter implements WalSink {
  private queue: Queued[] = [];
  private inFlight = false;
  private scheduled = false;
  private failure: Error | undefined;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private readonly maxBatchOps: number;
  private counters = { batches: 0, requests: 0, ops: 0, syncMicros: 0 };

  constructor(
    private readonly kv: Kv,
    options: WriterOptions = {},
  ) {
    this.maxBatchOps = options.maxBatchOps ?? 65_536;
  }

  /** Queues `request`; `done` runs once it is durable (no argument) or failed (the error). */
  submit(request: WriteRequest, done: (error: Error | undefined) => void): void {
    if (this.failure !== undefined) {
      const failure = this.failure;
      queueMicrotask(() => done(new WriterFailedError(failure)));
      return;
    }
    if (this.closed) {
      queueMicrotask(() => done(new StorageClosedError()));
      return;
    }
    this.queue.push({ request, done });
    this.schedule();
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
    return { ...this.counters };
  }

  get isIdle(): boolean {
    return !this.inFlight && !this.scheduled && this.queue.length === 0;
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
    if (this.queue.length === 0) {
      this.notifyIdle();
      return;
    }
    const batch = this.takeBatch();
    const ops: KvOp[] = [];
    for (const queued of batch) for (const op of queued.request.ops) ops.push(op);
    this.inFlight = true;
    const started = performance.now();
    this.kv.batch(ops, true).then(
      () => {
        this.counters.batches++;
        this.counters.requests += batch.length;
        this.counters.ops += ops.length;
        this.counters.syncMicros += Math.round((performance.now() - started) * 1000);
        this.inFlight = false;
        for (const queued of batch) queued.done(undefined);
        // What arrived during the sync goes out now; if nothing did, the next submit schedules.
        if (this.queue.length > 0) this.schedule();
        else this.notifyIdle();
      },
      (cause: unknown) => {
        this.inFlight = false;
        const error = new LogWriteError([...new Set(batch.map((q) => q.request.uid))], cause);
        this.failure = error;
        for (const queued of batch) queued.done(error);
        const rest = this.queue;
        this.queue = [];
        for (const queued of rest) queued.done(new WriterFailedError(error));
        this.notifyIdle();
      },
    );
  }

  private takeBatch(): Queued[] {
    let ops = 0;
    let count = 0;
    while (count < this.queue.length) {
      const size = this.queue[count]!.request.ops.length;
      if (count > 0 && ops + size > this.maxBatchOps) break;
      ops += size;
      count++;
    }
    if (count === this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      return batch;
    }
    return this.queue.splice(0, count);
  }

  private notifyIdle(): void {
    if (this.inFlight || this.scheduled || this.queue.length > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
