import { createRequire } from 'node:module';

/**
 * A typed, promise-based wrapper over the `rocksdb` binding (abstract-leveldown API, no types of
 * its own). Only what the stores use; keys and values are Buffers throughout.
 */

export type KvOp =
  | { readonly type: 'put'; readonly key: Buffer; readonly value: Buffer }
  | { readonly type: 'del'; readonly key: Buffer };

export interface KvRange {
  readonly gte?: Buffer;
  readonly gt?: Buffer;
  readonly lte?: Buffer;
  readonly lt?: Buffer;
  readonly limit?: number;
  readonly reverse?: boolean;
  readonly keys?: boolean;
  readonly values?: boolean;
}

/**
 * A native write batch filled piecewise: each operation is copied into RocksDB's WriteBatch as it
 * is added (about 0.2 µs, against 1-2 µs per operation for an array handed over at once), so the
 * writer can fill the next batch while the previous one syncs.
 */
export interface KvBatch {
  /** Copies `key` and `value` into the batch: the caller may reuse both buffers once it returns. */
  put(key: Buffer, value: Uint8Array): void;
  /** Copies `key` into the batch, as `put`. */
  del(key: Buffer): void;
  /** Writes the batch atomically; it cannot be used afterwards. */
  write(sync: boolean): Promise<void>;
}

/**
 * A `KvBatch` that collects operations and hands them to `write` at once (for fakes and wrappers).
 * It copies keys and values, as the native batch does: the stores reuse their key buffers.
 */
export function collectingBatch(write: (ops: readonly KvOp[], sync: boolean) => Promise<void>): KvBatch {
  const ops: KvOp[] = [];
  return {
    put: (key, value) => ops.push({ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }),
    del: (key) => ops.push({ type: 'del', key: Buffer.from(key) }),
    write: (sync) => write(ops, sync),
  };
}

/** The key/value operations the stores need. `RocksKv` is the real one; tests wrap it to inject faults. */
export interface Kv {
  batch(ops: readonly KvOp[], sync: boolean): Promise<void>;
  /** An empty write batch to fill piecewise. */
  newBatch(): KvBatch;
  get(key: Buffer): Promise<Buffer | undefined>;
  /** Pairs in key order, a chunk at a time (about `highWaterMark` bytes or 1,000 pairs). */
  iterateChunks(range: KvRange, highWaterMark?: number): AsyncIterable<Array<[Buffer, Buffer]>>;
  /**
   * Deletes every key in `[gte, lte]`, unsynced (RocksDB's own loop of iterator and delete batches,
   * in a worker thread: nothing per key on the caller's thread). Not atomic: a crash can leave part
   * of the range, so callers use it only for keys nothing will read again.
   */
  clearRange(gte: Buffer, lte: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** The native iterator handle of the binding. */
type IteratorContext = { readonly __brand: 'rocksdb.iterator' };
/** The native write batch handle of the binding. */
type BatchContext = { readonly __brand: 'rocksdb.batch' };

/** The binding's iterator functions, used directly: the abstract-leveldown iterator costs a nextTick per entry. */
interface RawBinding {
  iterator_init(db: unknown, options: Record<string, unknown>): IteratorContext;
  /** `array` holds `[..., value1, key1, value0, key0]` (reversed, to be popped); `finished` once exhausted. */
  iterator_next(
    it: IteratorContext,
    cb: (err: Error | null, array: Buffer[], finished: boolean) => void,
  ): void;
  iterator_end(it: IteratorContext, cb: (err?: Error | null) => void): void;
  /** The chained write batch, used directly (abstract-leveldown wraps every call in checks). */
  batch_init(db: unknown): BatchContext;
  /** Any Uint8Array for either (napi_is_buffer accepts every ArrayBufferView). */
  batch_put(batch: BatchContext, key: Buffer, value: Uint8Array): void;
  batch_del(batch: BatchContext, key: Buffer): void;
  batch_write(batch: BatchContext, options: { sync: boolean }, cb: (err?: Error | null) => void): void;
  /** Deletes a key range in a worker thread, 16 KiB of keys per unsynced batch. */
  db_clear(db: unknown, options: { gte: Buffer; lte: Buffer }, cb: (err?: Error | null) => void): void;
}

interface RawDb {
  open(options: Record<string, unknown>, cb: (err?: Error | null) => void): void;
  close(cb: (err?: Error | null) => void): void;
  get(
    key: Buffer,
    options: { asBuffer: boolean },
    cb: (err: Error | null | undefined, value?: Buffer) => void,
  ): void;
  readonly context: unknown;
}

type RawFactory = (location: string) => RawDb;

const require = createRequire(import.meta.url);
let factory: RawFactory | undefined;
let binding: RawBinding | undefined;

function loadFactory(): RawFactory {
  factory ??= require('rocksdb') as RawFactory;
  binding ??= require('rocksdb/binding.js') as RawBinding;
  return factory;
}

export interface RocksOpenOptions {
  readonly createIfMissing?: boolean;
  /** RocksDB's block cache, bytes (default 8 MiB). */
  readonly cacheSize?: number;
  /** RocksDB's memtable size, bytes (default 16 MiB here: a burst of appends should not stall on flushes). */
  readonly writeBufferSize?: number;
}

export class RocksKv implements Kv {
  private constructor(
    private readonly db: RawDb,
    readonly location: string,
  ) {}

  static open(location: string, options: RocksOpenOptions = {}): Promise<RocksKv> {
    const db = loadFactory()(location);
    return new Promise((resolve, reject) => {
      db.open(
        {
          createIfMissing: options.createIfMissing ?? true,
          errorIfExists: false,
          cacheSize: options.cacheSize ?? 8 << 20,
          writeBufferSize: options.writeBufferSize ?? 16 << 20,
          infoLogLevel: 'error',
        },
        (err) => (err ? reject(err) : resolve(new RocksKv(db, location))),
      );
    });
  }

  private closed = false;

  /** Whether `close` was called (for `NativeBatch`). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The binding's database handle (for `NativeBatch`). */
  get dbContext(): unknown {
    return this.db.context;
  }

  /** Operations must be well-formed `KvOp`s with Buffer keys and values (the stores build them so). */
  batch(ops: readonly KvOp[], sync: boolean): Promise<void> {
    const batch = this.newBatch();
    for (const op of ops) {
      if (op.type === 'put') batch.put(op.key, op.value);
      else batch.del(op.key);
    }
    return batch.write(sync);
  }

  newBatch(): KvBatch {
    return new NativeBatch(binding!, this);
  }

  get(key: Buffer): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) => {
      this.db.get(key, { asBuffer: true }, (err, value) => {
        if (err) {
          if (/NotFound/i.test(err.message)) resolve(undefined);
          else reject(err);
        } else resolve(value);
      });
    });
  }

  async *iterate(range: KvRange, highWaterMark = 64 * 1024): AsyncIterable<[Buffer, Buffer]> {
    for await (const chunk of this.iterateChunks(range, highWaterMark)) yield* chunk;
  }

  /** Pairs in key order, a chunk (up to 1,000 pairs or about `highWaterMark` bytes) at a time. */
  async *iterateChunks(range: KvRange, highWaterMark = 256 * 1024): AsyncIterable<Array<[Buffer, Buffer]>> {
    const raw = binding!;
    const it = raw.iterator_init(this.db.context, {
      ...range,
      keyAsBuffer: true,
      valueAsBuffer: true,
      highWaterMark,
    });
    try {
      for (;;) {
        const { array, finished } = await new Promise<{ array: Buffer[]; finished: boolean }>(
          (resolve, reject) => {
            raw.iterator_next(it, (err, array, finished) =>
              err ? reject(err) : resolve({ array, finished }),
            );
          },
        );
        const chunk: Array<[Buffer, Buffer]> = [];
        for (let i = array.length - 1; i > 0; i -= 2) chunk.push([array[i]!, array[i - 1]!]);
        if (chunk.length > 0) yield chunk;
        if (finished) return;
      }
    } finally {
      await new Promise<void>((resolve) => raw.iterator_end(it, () => resolve()));
    }
  }

  clearRange(gte: Buffer, lte: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new Error('Database is not open'));
    return new Promise((resolve, reject) => {
      binding!.db_clear(this.db.context, { gte, lte }, (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): Promise<void> {
    this.closed = true;
    return new Promise((resolve, reject) => this.db.close((err) => (err ? reject(err) : resolve())));
  }
}

/**
 * The binding's native write batch, created on the first operation. A class, not an object of
 * closures: one is made per log write, and under tsx each named closure costs a defineProperty
 * (esbuild's keepNames).
 */
class NativeBatch implements KvBatch {
  private context: BatchContext | undefined;
  private written = false;

  constructor(
    private readonly raw: RawBinding,
    private readonly kv: RocksKv,
  ) {}

  private open(): BatchContext {
    if (this.written) throw new Error('write batch already written');
    if (this.kv.isClosed) throw new Error('Database is not open');
    this.context ??= this.raw.batch_init(this.kv.dbContext);
    return this.context;
  }

  put(key: Buffer, value: Uint8Array): void {
    this.raw.batch_put(this.open(), key, value);
  }

  del(key: Buffer): void {
    this.raw.batch_del(this.open(), key);
  }

  write(sync: boolean): Promise<void> {
    if (this.kv.isClosed) return Promise.reject(new Error('Database is not open'));
    const ctx = this.context;
    this.written = true;
    if (ctx === undefined) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.raw.batch_write(ctx, { sync }, (err) => (err ? reject(err) : resolve()));
    });
  }
}
