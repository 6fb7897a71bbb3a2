import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Node, startSupervisor, whichChildren } from '@otra/actors';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  appendAndNotify,
  type Kv,
  LogWriteError,
  logWriterChildSpec,
  openRocksStorage,
  type RocksStorage,
  spawnLogWriter,
  storeMetaAndNotify,
  WriterFailedError,
  type WriterStats,
} from '../src/index.ts';
import { entries, text } from './storage-contract.ts';

describe('log writer actor', () => {
  let dir: string;
  let storage: RocksStorage | undefined;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'otra-'));
  });
  afterEach(async () => {
    await storage?.close();
    storage = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('group-commits the appends of 1,000 servers through its GroupCommitWriter', async () => {
    const node = new Node({ name: 'n1' });
    storage = await openRocksStorage(dir);
    const st = storage;
    // Appends made before the actor takes over are written by the built-in writer first.
    const early = st.log.append('server-0', entries(1, 1, 1, 'server-0'));
    const pid = await spawnLogWriter(node, st);
    await early;
    const rounds = 4;
    await Promise.all(
      Array.from({ length: 1000 }, async (_, k) => {
        const uid = `server-${k}`;
        for (let r = k === 0 ? 2 : 1; r <= rounds; r++) {
          const written = await st.log.append(uid, entries(r, r, 1, uid));
          expect(written).toEqual({ type: 'log.written', uid, upTo: r, term: 1 });
        }
      }),
    );
    await st.meta.store('server-7', { currentTerm: 2, votedFor: { name: 'kv', node: 'n2' } });
    const stats = await node.call<WriterStats>(pid, { type: 'wal.stats' });
    expect(stats.requests).toBe(1000 * rounds);
    // the early append went through the built-in writer; the meta write holds no entry
    expect(stats.entries).toBe(1000 * rounds - 1);
    expect(stats.batches).toBeLessThan(rounds * 4);
    // every batch is counted in exactly one size bucket
    expect(stats.opsPerBatch.reduce((a, b) => a + b, 0)).toBe(stats.batches);
    await st.close();
    storage = await openRocksStorage(dir);
    for (const k of [0, 1, 500, 999]) {
      const uid = `server-${k}`;
      expect(storage.log.last(uid)).toEqual({ index: rounds, term: 1 });
      expect((await storage.log.read(uid, 1, rounds)).map(text)).toEqual(
        entries(1, rounds, 1, uid).map(text),
      );
    }
    expect(storage.meta.get('server-7').currentTerm).toBe(2);
  });

  it('fails the batch on a write error, exits, and fails everything after it', async () => {
    let fail = false;
    const faulty = (kv: Kv): Kv => ({
      batch: (ops, sync) =>
        fail && sync ? Promise.reject(new Error('IO error: disk gone')) : kv.batch(ops, sync),
      newBatch: () => {
        const inner = kv.newBatch();
        return {
          put: (key, value) => inner.put(key, value),
          del: (key) => inner.del(key),
          write: (sync) =>
            fail && sync ? Promise.reject(new Error('IO error: No space left on device')) : inner.write(sync),
        };
      },
      get: (key) => kv.get(key),
      iterateChunks: (range, hwm) => kv.iterateChunks(range, hwm),
      clearRange: (gte, lte) => kv.clearRange(gte, lte),
      close: () => kv.close(),
    });
    const node = new Node({ name: 'n1' });
    storage = await openRocksStorage(dir, { wrapKv: faulty });
    const st = storage;
    const pid = await spawnLogWriter(node, st);
    await st.log.append('a', entries(1, 1, 1));
    fail = true;
    const exited = node.awaitExit(pid);
    await expect(st.log.append('a', entries(2, 2, 1))).rejects.toBeInstanceOf(LogWriteError);
    expect(await exited).toMatchObject({ error: 'LogWriteError' });
    await expect(st.log.append('a', entries(3, 3, 1))).rejects.toBeInstanceOf(WriterFailedError);
    await expect(st.meta.store('a', { currentTerm: 3, votedFor: null })).rejects.toBeInstanceOf(
      WriterFailedError,
    );
    await expect(spawnLogWriter(node, st)).rejects.toBeInstanceOf(WriterFailedError);
    expect(st.log.durableIndex('a')).toBe(1);
  });

  it('runs under a supervisor as the raft system first child', async () => {
    const node = new Node({ name: 'n1' });
    storage = await openRocksStorage(dir);
    const sup = await startSupervisor(node, { strategy: 'rest_for_one' }, [logWriterChildSpec(storage)]);
    const [child] = await whichChildren(node, sup);
    expect(child).toMatchObject({ id: 'log_writer', restart: 'permanent' });
    expect(node.isAlive(child!.pid!)).toBe(true);
    await storage.log.append('a', entries(1, 3, 1));
    const stats = await node.call<WriterStats>(child!.pid!, { type: 'wal.stats' });
    expect(stats.requests).toBe(1);
    expect(storage.writer.stats().requests).toBe(0);
    await node.stop(sup, 'shutdown');
  });
});

describe('server actors appending through the writer actor', () => {
  it('get log.written and meta.written in their mailbox, after durability, in order', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'otra-'));
    const node = new Node({ name: 'n1' });
    const storage = await openRocksStorage(dir);
    try {
      await spawnLogWriter(node, storage);
      const seen: unknown[] = [];
      let done: () => void = () => undefined;
      const finished = new Promise<void>((resolve) => {
        done = resolve;
      });
      const uid = 'kv_1';
      node.spawn<void>(
        {
          init: (_args, ctx) => {
            storeMetaAndNotify(ctx, storage.meta, uid, {
              currentTerm: 1,
              votedFor: { name: 'kv', node: 'n1' },
            });
            appendAndNotify(ctx, storage.log, uid, entries(1, 2, 1));
            appendAndNotify(ctx, storage.log, uid, entries(3, 3, 1));
            return null;
          },
          handleInfo: (msg, state) => {
            // Every acknowledgement arrives only once its write is durable.
            const m = msg as { type: string; upTo?: number };
            if (m.type === 'log.written')
              expect(storage.log.durableIndex(uid)).toBeGreaterThanOrEqual(m.upTo!);
            seen.push(msg);
            if (seen.length === 3) done();
            return state;
          },
        },
        undefined,
      );
      await finished;
      expect(seen).toEqual([
        { type: 'meta.written', uid, currentTerm: 1, votedFor: { name: 'kv', node: 'n1' } },
        { type: 'log.written', uid, upTo: 2, term: 1 },
        { type: 'log.written', uid, upTo: 3, term: 1 },
      ]);
    } finally {
      await storage.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
