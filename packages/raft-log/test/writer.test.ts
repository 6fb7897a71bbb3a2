import { describe, expect, it } from 'vitest';
import {
  collectingBatch,
  GroupCommitWriter,
  type Kv,
  type KvBatch,
  type KvOp,
  LogWriteError,
  WriterFailedError,
} from '../src/index.ts';

/** A fake database whose synced batches complete only when the test says so. */
class GatedKv implements Kv {
  readonly batches: Array<{ ops: readonly KvOp[]; sync: boolean; finish: (error?: Error) => void }> = [];
  inFlight = 0;
  maxInFlight = 0;

  batch(ops: readonly KvOp[], sync: boolean): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise((resolve, reject) => {
      this.batches.push({
        ops,
        sync,
        finish: (error) => {
          this.inFlight--;
          if (error) reject(error);
          else resolve();
        },
      });
    });
  }
  newBatch(): KvBatch {
    return collectingBatch((ops, sync) => this.batch(ops, sync));
  }
  async get(): Promise<Buffer | undefined> {
    return undefined;
  }
  async *iterateChunks(): AsyncIterable<Array<[Buffer, Buffer]>> {}
  async clearRange(): Promise<void> {}
  async close(): Promise<void> {}
}

const op = (n: number): KvOp => ({ type: 'put', key: Buffer.from([n]), value: Buffer.from([n]) });
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Waits (a bounded number of event-loop turns) until the fake has seen `count` batches. */
async function batchesReach(kv: GatedKv, count: number): Promise<void> {
  for (let k = 0; k < 100 && kv.batches.length < count; k++) await turn();
  expect(kv.batches.length).toBe(count);
}

describe('GroupCommitWriter', () => {
  it('flushIfIdle starts the batch at once when none is in flight, and waits when one is', async () => {
    const kv = new GatedKv();
    const writer = new GroupCommitWriter(kv);
    const done: number[] = [];
    const submit = (n: number) => writer.submit({ uid: 's', ops: [op(n)] }, () => done.push(n));
    submit(1);
    submit(2);
    writer.flushIfIdle();
    // synchronously: the write batch is handed to the database before this turn ends
    expect(kv.batches.map((b) => b.ops.length)).toEqual([2]);
    submit(3);
    writer.flushIfIdle();
    await turn();
    // one batch in flight at a time: 3 waits for the first sync
    expect(kv.batches.length).toBe(1);
    kv.batches[0]!.finish();
    await batchesReach(kv, 2);
    kv.batches[1]!.finish();
    await writer.idle();
    expect(done).toEqual([1, 2, 3]);
    expect(kv.maxInFlight).toBe(1);
  });

  it('keeps one synced batch in flight and puts everything that arrived meanwhile in the next', async () => {
    const kv = new GatedKv();
    const writer = new GroupCommitWriter(kv);
    const done: number[] = [];
    const submit = (n: number) => writer.submit({ uid: `s${n % 3}`, ops: [op(n)] }, () => done.push(n));
    submit(1);
    submit(2);
    await turn();
    // An idle writer starts at once (next turn), with what was submitted in this turn.
    expect(kv.batches.map((b) => b.ops.length)).toEqual([2]);
    expect(kv.batches[0]!.sync).toBe(true);
    for (let n = 3; n <= 9; n++) submit(n);
    await turn();
    expect(kv.batches.length).toBe(1);
    expect(done).toEqual([]);
    kv.batches[0]!.finish();
    await batchesReach(kv, 2);
    expect(done).toEqual([1, 2]);
    expect(kv.batches.map((b) => b.ops.length)).toEqual([2, 7]);
    kv.batches[1]!.finish();
    await writer.idle();
    expect(done).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(kv.maxInFlight).toBe(1);
    expect(writer.stats()).toMatchObject({ batches: 2, requests: 9, ops: 9 });
    // one batch of 2 ops (bucket <= 2), one of 7 (bucket <= 8)
    expect(writer.stats().opsPerBatch.slice(0, 5)).toEqual([0, 1, 0, 1, 0]);
  });

  it('splits a long queue into batches of whole requests', async () => {
    const kv = new GatedKv();
    const writer = new GroupCommitWriter(kv, { maxBatchOps: 4 });
    for (let n = 0; n < 5; n++)
      writer.submit({ uid: 'a', ops: [op(n), op(n + 100), op(n + 200)] }, () => undefined);
    for (let k = 0; k < 5; k++) {
      await batchesReach(kv, k + 1);
      kv.batches[k]!.finish();
    }
    await writer.idle();
    // 3 ops per request, at most 4 per batch, but a request is never split.
    expect(kv.batches.map((b) => b.ops.length)).toEqual([3, 3, 3, 3, 3]);
  });

  it('fails the batch, then everything queued or submitted later, and stays failed', async () => {
    const kv = new GatedKv();
    const writer = new GroupCommitWriter(kv);
    const results: Array<[number, string]> = [];
    const submit = (n: number) =>
      writer.submit({ uid: `s${n}`, ops: [op(n)] }, (e) => results.push([n, e?.constructor.name ?? 'ok']));
    submit(1);
    submit(2);
    await turn();
    submit(3);
    kv.batches[0]!.finish(new Error('EIO'));
    await turn();
    submit(4);
    await turn();
    expect(results).toEqual([
      [1, 'LogWriteError'],
      [2, 'LogWriteError'],
      [3, 'WriterFailedError'],
      [4, 'WriterFailedError'],
    ]);
    expect(writer.failed).toBeInstanceOf(LogWriteError);
    expect((writer.failed as LogWriteError).uids).toEqual(['s1', 's2']);
    await expect(writer.write({ uid: 'x', ops: [op(5)] })).rejects.toBeInstanceOf(WriterFailedError);
    expect(kv.batches.length).toBe(1);
  });

  it('sends what arrived during a sync before running the callbacks of the synced batch', async () => {
    const kv = new GatedKv();
    const writer = new GroupCommitWriter(kv);
    const writtenWhenAcked: number[] = [];
    writer.submit({ uid: 'a', ops: [op(1)] }, () => writtenWhenAcked.push(kv.batches.length));
    await batchesReach(kv, 1);
    writer.submit({ uid: 'a', ops: [op(2)] }, () => undefined);
    writer.submit({ uid: 'b', ops: [op(3)] }, () => undefined);
    kv.batches[0]!.finish();
    await batchesReach(kv, 2);
    // The second batch was already on its way when the first one's callback ran.
    expect(writtenWhenAcked).toEqual([2]);
    expect(kv.batches[1]!.ops.length).toBe(2);
    expect(kv.maxInFlight).toBe(1);
    kv.batches[1]!.finish();
    await writer.idle();
  });

  it('sends a batch that has been filling for long while idle, and fills the next meanwhile', async () => {
    const busy = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until) {}
    };
    for (const flushLongFills of [true, false]) {
      const kv = new GatedKv();
      const writer = new GroupCommitWriter(kv, { flushLongFills });
      const done: number[] = [];
      // One long run of JavaScript (as 1,000 acknowledgements resuming their appenders): 64 writes
      // take 2 ms, then 36 more follow in the same turn.
      for (let n = 0; n < 100; n++) {
        writer.submit({ uid: 'a', ops: [op(n & 0xff)] }, () => done.push(n));
        if (n < 64) busy(2 / 64);
        if (n === 63) expect(kv.batches.length).toBe(flushLongFills ? 1 : 0);
      }
      await batchesReach(kv, 1);
      expect(kv.batches[0]!.ops.length).toBe(flushLongFills ? 64 : 100);
      kv.batches[0]!.finish();
      if (flushLongFills) {
        await batchesReach(kv, 2);
        expect(kv.batches[1]!.ops.length).toBe(36);
        kv.batches[1]!.finish();
      }
      await writer.idle();
      expect(done).toEqual(Array.from({ length: 100 }, (_, n) => n));
      expect(kv.maxInFlight).toBe(1);
    }
  });
});
