import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  crc32c,
  type Kv,
  LogCorruptionError,
  LogInputError,
  LogWriteError,
  MetaCorruptionError,
  openRocksStorage,
  type RocksStorage,
  SnapshotCorruptionError,
  StorageOpenError,
  WriterFailedError,
} from '../src/index.ts';
import { encodeRecord } from '../src/internal/entry-codec.ts';
import { entryKey, metaKey } from '../src/internal/keys.ts';
import { RocksKv } from '../src/internal/rocksdb.ts';
import { bytesOf, describeStorageContract, entries, text } from './storage-contract.ts';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'otra-'));
}

describeStorageContract('rocksdb', () => {
  const dir = tempDir();
  return {
    // A tiny tail, so reads beyond the last few entries go to RocksDB.
    open: () => openRocksStorage(dir, { tailEntries: 2 }),
    cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
});

/** Opens the raw database of a closed storage, to look at or damage what is on disk. */
async function withRawDb<T>(dir: string, fn: (kv: RocksKv) => Promise<T>): Promise<T> {
  const kv = await RocksKv.open(path.join(dir, 'db'));
  try {
    return await fn(kv);
  } finally {
    await kv.close();
  }
}

/** The indexes of a server's record keys on disk (one record per append). */
async function recordKeys(kv: RocksKv, uid: string): Promise<number[]> {
  const keys: number[] = [];
  for await (const chunk of kv.iterateChunks({ gte: entryKey(uid, 0), lte: entryKey(uid, 2 ** 48) }))
    for (const [key] of chunk)
      keys.push(key.readUInt32BE(key.length - 8) * 2 ** 32 + key.readUInt32BE(key.length - 4));
  return keys;
}

async function countEntryKeys(kv: RocksKv, uid: string): Promise<number> {
  return (await recordKeys(kv, uid)).length;
}

/** Appends `from..to` one entry per append, so each entry has a record (and a key) of its own. */
async function appendEach(
  st: RocksStorage,
  uid: string,
  from: number,
  to: number,
  term: number,
): Promise<void> {
  for (let i = from; i <= to; i++) await st.log.append(uid, entries(i, i, term));
}

describe('rocksdb storage', () => {
  let dir: string;
  let s: RocksStorage | undefined;

  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    await s?.close();
    s = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function reopen(options: Parameters<typeof openRocksStorage>[1] = {}): Promise<RocksStorage> {
    await s?.close();
    s = await openRocksStorage(dir, { tailEntries: 4, ...options });
    return s;
  }

  it('recovers everything acknowledged after a restart', async () => {
    let st = await reopen();
    await st.log.append('a', entries(1, 100, 1));
    await st.log.append('a', entries(90, 95, 2, 'x'), { truncateFrom: 90 });
    await st.log.append('b', entries(1, 3, 5));
    await st.meta.store('a', { currentTerm: 2, votedFor: { name: 'kv', node: 'n3' } });
    await st.meta.setValue('b', 'machine_version', 3);
    await st.snapshots.write('b', { index: 2, term: 5 }, Buffer.from('state'));
    await st.log.deletePrefix('b', { index: 2, term: 5 });

    st = await reopen();
    expect(st.servers().sort()).toEqual(['a', 'b']);
    expect(st.recover('a')).toMatchObject({ firstIndex: 1, last: { index: 95, term: 2 }, snapshot: null });
    expect(st.meta.get('a')).toEqual({ currentTerm: 2, votedFor: { name: 'kv', node: 'n3' } });
    expect((await st.log.read('a', 1, 200)).map(text)).toEqual([
      ...entries(1, 89, 1).map(text),
      ...entries(90, 95, 2, 'x').map(text),
    ]);
    expect(st.log.termAt('a', 89)).toBe(1);
    expect(st.log.termAt('a', 90)).toBe(2);
    const b = st.recover('b');
    expect(b).toMatchObject({
      firstIndex: 3,
      last: { index: 3, term: 5 },
      snapshot: { meta: { index: 2, term: 5 } },
    });
    expect(st.meta.getValue('b', 'machine_version')).toBe(3);
    expect(Buffer.from(await bytesOf(st, 'b')).toString()).toBe('state');
    // Appending continues where the log ends.
    await st.log.append('a', entries(96, 96, 2));
    st = await reopen();
    expect(st.log.last('a')).toEqual({ index: 96, term: 2 });
  });

  it('reads old entries from RocksDB and recent ones from the in-memory tail', async () => {
    const st = await reopen({ tailEntries: 8 });
    for (let i = 1; i <= 200; i += 10) await st.log.append('a', entries(i, i + 9, 1 + Math.floor(i / 50)));
    expect(st.log.tryRead('a', 1, 10)).toBeUndefined();
    expect(st.log.tryRead('a', 199, 200)?.length).toBe(2);
    const all = await st.log.read('a', 1, 200);
    expect(all.map((e) => e.index)).toEqual(Array.from({ length: 200 }, (_, k) => k + 1));
    expect(all[120]!.term).toBe(st.log.termAt('a', 121));
  });

  it('stores entries of every size (across the 8 KiB slabs of the encoder, and above them) byte for byte', async () => {
    const sizes = [0, 1, 3, 4, 5, 15, 16, 17, 150, 4075, 4076, 4077, 4096, 8000, 8172, 8173, 70_000, 150, 2];
    const bytes = (k: number, size: number) =>
      Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + k * 13 + 1) & 0xff));
    let st = await reopen({ tailEntries: 100 });
    let index = 0;
    // One entry per append, then the same sizes again as one multi-entry append.
    for (const [k, size] of sizes.entries()) {
      index++;
      await st.log.append('sizes', [{ index, term: 1, data: bytes(k, size) }]);
    }
    await st.log.append(
      'sizes',
      sizes.map((size, k) => ({ index: index + 1 + k, term: 2, data: bytes(k, size) })),
    );
    const check = (read: Array<{ index: number; term: number; data: Uint8Array }>) => {
      expect(read.map((e) => e.index)).toEqual(Array.from({ length: sizes.length * 2 }, (_, i) => i + 1));
      for (const [i, entry] of read.entries()) {
        const k = i % sizes.length;
        expect(entry.term).toBe(i < sizes.length ? 1 : 2);
        // Buffers, as recovery returns them (cbor-x encodes a plain Uint8Array differently).
        expect(entry.data.constructor).toBe(Buffer);
        expect(Buffer.from(entry.data).equals(bytes(k, sizes[k]!))).toBe(true);
      }
    };
    check(st.log.tryRead('sizes', 1, 100) ?? []);
    st = await reopen({ tailEntries: 100 });
    check(st.log.tryRead('sizes', 1, 100) ?? []);
    st = await reopen({ tailEntries: 1 });
    check(await st.log.read('sizes', 1, 100));
  });

  it('deletes a snapshotted prefix from disk in the background', async () => {
    let st = await reopen();
    for (let i = 1; i <= 10_000; i += 100) await st.log.append('a', entries(i, i + 99, 1));
    await st.log.append('ab', entries(1, 10, 1));
    await st.log.deletePrefix('a', { index: 9_000, term: 1 });
    await st.backgroundIdle();
    await st.close();
    s = undefined;
    // 100 records of 100 entries: the ten from 9,001 on are left.
    expect(await withRawDb(dir, (kv) => countEntryKeys(kv, 'a'))).toBe(10);
    expect(await withRawDb(dir, (kv) => countEntryKeys(kv, 'ab'))).toBe(1);
    st = await reopen();
    expect(st.recover('a')).toMatchObject({ firstIndex: 9_001, last: { index: 10_000, term: 1 } });
  });

  it('keeps the record that holds the first entry after a snapshot point inside it', async () => {
    let st = await reopen({ tailEntries: 2 });
    for (let i = 1; i <= 30; i += 10) await st.log.append('a', entries(i, i + 9, 1));
    await st.log.deletePrefix('a', { index: 15, term: 1 });
    await st.backgroundIdle();
    await st.close();
    s = undefined;
    // Record 1 went; record 11 holds 16..20 and stays.
    expect(await withRawDb(dir, (kv) => recordKeys(kv, 'a'))).toEqual([11, 21]);
    // As if the background delete of record 1 had not run before a crash: it must stay stale.
    const record1 = await withRawDb(dir, async (kv) => {
      await kv.batch([{ type: 'put', key: entryKey('a', 1), value: encodeRecord(entries(1, 10, 1)) }], true);
      return (await recordKeys(kv, 'a'))[0];
    });
    expect(record1).toBe(1);
    st = await reopen({ tailEntries: 2 });
    expect(st.recover('a')).toMatchObject({ firstIndex: 16, last: { index: 30, term: 1 } });
    expect((await st.log.read('a', 16, 30)).map(text)).toEqual(entries(16, 30, 1).map(text));
    await expect(st.log.read('a', 15, 30)).rejects.toThrow(LogInputError);
    // A later snapshot point past record 11 lets it go too.
    await st.log.deletePrefix('a', { index: 22, term: 1 });
    await st.backgroundIdle();
    await st.close();
    s = undefined;
    expect(await withRawDb(dir, (kv) => recordKeys(kv, 'a'))).toEqual([21]);
    st = await reopen({ tailEntries: 2 });
    expect((await st.log.read('a', 23, 30)).map(text)).toEqual(entries(23, 30, 1).map(text));
  });

  it('shadows the rest of a record that a truncation cut, and deletes the records after the cut', async () => {
    let st = await reopen({ tailEntries: 2 });
    await st.log.append('a', entries(1, 10, 1));
    await st.log.append('a', entries(5, 6, 2), { truncateFrom: 5 });
    await st.log.append('a', entries(7, 8, 2));
    st = await reopen({ tailEntries: 2 });
    expect(st.log.last('a')).toEqual({ index: 8, term: 2 });
    expect((await st.log.read('a', 1, 10)).map(text)).toEqual([
      ...entries(1, 4, 1).map(text),
      ...entries(5, 8, 2).map(text),
    ]);
    // A cut inside record 1 again: records 5 and 7 go in the same batch as the new record 3.
    await st.log.append('a', entries(3, 3, 3), { truncateFrom: 3 });
    await st.close();
    s = undefined;
    expect(await withRawDb(dir, (kv) => recordKeys(kv, 'a'))).toEqual([1, 3]);
    st = await reopen({ tailEntries: 1 });
    expect(st.log.last('a')).toEqual({ index: 3, term: 3 });
    expect((await st.log.read('a', 1, 10)).map(text)).toEqual([
      ...entries(1, 2, 1).map(text),
      ...entries(3, 3, 3).map(text),
    ]);
    expect(st.log.termAt('a', 2)).toBe(1);
  });

  it('forgets every record of a log discarded by a snapshot, also one that reaches past the point', async () => {
    let st = await reopen();
    await st.log.append('a', entries(1, 10, 1));
    await st.log.append('a', entries(11, 12, 1));
    // A snapshot at 5 with another term: the log does not hold it, so all of it goes (Raft §7).
    await st.log.deletePrefix('a', { index: 5, term: 4 });
    await st.backgroundIdle();
    await st.close();
    s = undefined;
    expect(await withRawDb(dir, (kv) => recordKeys(kv, 'a'))).toEqual([]);
    // Record 1 (entries 1..10) back, as if its background delete had not run before a crash:
    // entries 6..10 of it must not come back to life.
    await withRawDb(dir, (kv) =>
      kv.batch([{ type: 'put', key: entryKey('a', 1), value: encodeRecord(entries(1, 10, 1)) }], true),
    );
    st = await reopen();
    expect(st.recover('a')).toMatchObject({ firstIndex: 6, last: { index: 5, term: 4 } });
    await st.log.append('a', entries(6, 7, 4));
    st = await reopen({ tailEntries: 1 });
    expect((await st.log.read('a', 6, 10)).map(text)).toEqual(entries(6, 7, 4).map(text));
    await st.backgroundIdle();
    await st.close();
    s = undefined;
    expect(await withRawDb(dir, (kv) => recordKeys(kv, 'a'))).toEqual([6]);
  });

  it('writes an append as one operation and counts its entries', async () => {
    const st = await reopen();
    const before = st.writer.stats();
    await st.log.append('a', entries(1, 16, 1));
    await st.log.append('a', entries(17, 17, 1));
    await st.meta.store('a', { currentTerm: 1, votedFor: null });
    const after = st.writer.stats();
    expect(after.ops - before.ops).toBe(3);
    expect(after.entries - before.entries).toBe(17);
  });

  it('clears an inclusive key range in the database, and nothing beside it', async () => {
    const left = await withRawDb(dir, async (kv) => {
      const ops = [];
      for (let i = 1; i <= 20; i++)
        ops.push({ type: 'put' as const, key: entryKey('a', i), value: Buffer.from([i]) });
      ops.push({ type: 'put' as const, key: entryKey('ab', 5), value: Buffer.from([0]) });
      await kv.batch(ops, true);
      await kv.clearRange(entryKey('a', 4), entryKey('a', 17));
      const kept: number[] = [];
      for (let i = 1; i <= 20; i++) if ((await kv.get(entryKey('a', i))) !== undefined) kept.push(i);
      return { kept, other: await kv.get(entryKey('ab', 5)) };
    });
    expect(left.kept).toEqual([1, 2, 3, 18, 19, 20]);
    expect(left.other).toEqual(Buffer.from([0]));
  });

  it('finishes the log truncation of a snapshot completed just before a crash', async () => {
    let st = await reopen();
    for (let i = 1; i <= 50; i += 10) await st.log.append('a', entries(i, i + 9, 1));
    await st.snapshots.write('a', { index: 30, term: 1 }, Buffer.from('s'));
    st = await reopen();
    expect(st.recover('a')).toMatchObject({ firstIndex: 31, last: { index: 50, term: 1 } });
    await st.backgroundIdle();
    await st.close();
    s = undefined;
    expect(await withRawDb(dir, (kv) => recordKeys(kv, 'a'))).toEqual([31, 41]);
  });

  it('keeps the previous snapshot when a receive is interrupted by a restart', async () => {
    let st = await reopen();
    await st.snapshots.write('a', { index: 3, term: 1 }, Buffer.from('old'));
    const receiver = await st.snapshots.beginReceive('a', { index: 9, term: 2 });
    await receiver.writeChunk(Buffer.from('new-but-incomplete'));
    st = await reopen();
    expect(st.snapshots.current('a')?.meta).toEqual({ index: 3, term: 1 });
    expect(Buffer.from(await bytesOf(st, 'a')).toString()).toBe('old');
    expect(fs.readdirSync(path.join(dir, 'snapshots', 'a'))).toEqual(['000000000001.snap']);
  });

  it('reports a damaged entry with its server and index instead of truncating', async () => {
    let st = await reopen();
    await appendEach(st, 'a', 1, 10, 1);
    await st.log.append('b', entries(1, 10, 1));
    await st.close();
    s = undefined;
    await withRawDb(dir, async (kv) => {
      const key = entryKey('a', 6);
      const value = (await kv.get(key))!;
      value[value.length - 1]! ^= 0x01;
      await kv.batch([{ type: 'put', key, value }], true);
    });
    st = await reopen();
    expect(() => st.recover('a')).toThrow(LogCorruptionError);
    try {
      st.recover('a');
    } catch (error) {
      expect(error).toMatchObject({ code: 'log.corrupt', uid: 'a', index: 6, reason: 'checksum' });
    }
    expect(() => st.log.append('a', entries(11, 11, 1))).toThrow(LogCorruptionError);
    expect(st.problems().get('a')).toBeInstanceOf(LogCorruptionError);
    expect(st.recover('b')).toMatchObject({ last: { index: 10, term: 1 } });
    // Nothing was dropped: the damaged entry and the ones after it are still on disk.
    await st.close();
    s = undefined;
    expect(await withRawDb(dir, (kv) => countEntryKeys(kv, 'a'))).toBe(10);
  });

  it('reports a missing entry in the middle of a log as a gap', async () => {
    let st = await reopen();
    await appendEach(st, 'a', 1, 10, 1);
    await st.close();
    s = undefined;
    await withRawDb(dir, (kv) => kv.batch([{ type: 'del', key: entryKey('a', 4) }], true));
    st = await reopen();
    expect(() => st.recover('a')).toThrow(expect.objectContaining({ uid: 'a', index: 4, reason: 'gap' }));
  });

  it('reports damage found while reading an entry that is no longer in memory', async () => {
    let st = await reopen({ tailEntries: 2 });
    await appendEach(st, 'a', 1, 20, 1);
    await st.close();
    s = undefined;
    st = await reopen({ tailEntries: 2 });
    // Damage it behind the running storage's back (as bit rot would).
    await st.close();
    s = undefined;
    await withRawDb(dir, async (kv) => {
      const key = entryKey('a', 3);
      const moved = (await kv.get(entryKey('a', 4)))!;
      await kv.batch([{ type: 'put', key, value: moved }], true);
    });
    st = await reopen({ tailEntries: 2 });
    expect(() => st.recover('a')).toThrow(expect.objectContaining({ index: 3, reason: 'key_mismatch' }));
  });

  it('reports damaged meta and snapshots', async () => {
    let st = await reopen();
    await st.meta.store('a', { currentTerm: 5, votedFor: null });
    await st.snapshots.write('b', { index: 1, term: 1 }, Buffer.alloc(5000, 7));
    await st.close();
    s = undefined;
    await withRawDb(dir, (kv) =>
      kv.batch([{ type: 'put', key: metaKey('a', 'tv'), value: Buffer.from('junk') }], true),
    );
    const [snap] = fs.readdirSync(path.join(dir, 'snapshots', 'b'));
    const file = path.join(dir, 'snapshots', 'b', snap!);
    const bytes = fs.readFileSync(file);
    bytes[100]! ^= 0xff;
    fs.writeFileSync(file, bytes);
    st = await reopen();
    expect(() => st.recover('a')).toThrow(MetaCorruptionError);
    expect(() => st.recover('b')).toThrow(SnapshotCorruptionError);
    // The damaged snapshot is kept for the operator.
    expect(fs.existsSync(file)).toBe(true);
  });

  it('rejects an unopenable or foreign database at open with a typed error', async () => {
    const st = await reopen();
    // Locked by the open instance.
    await expect(openRocksStorage(dir)).rejects.toThrow(StorageOpenError);
    await st.close();
    s = undefined;

    fs.writeFileSync(path.join(dir, 'db', 'CURRENT'), 'MANIFEST-999999\n');
    const error = await openRocksStorage(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageOpenError);

    // RocksDB's own checksums catch a damaged MANIFEST: reported as corruption.
    const damaged = tempDir();
    try {
      const st2 = await openRocksStorage(damaged);
      await st2.log.append('a', entries(1, 1, 1));
      await st2.close();
      const manifest = fs.readdirSync(path.join(damaged, 'db')).find((f) => f.startsWith('MANIFEST'))!;
      const file = path.join(damaged, 'db', manifest);
      const bytes = fs.readFileSync(file);
      for (let i = 10; i < bytes.length; i += 7) bytes[i]! ^= 0xff;
      fs.writeFileSync(file, bytes);
      await expect(openRocksStorage(damaged)).rejects.toMatchObject({
        code: 'storage.open_failed',
        corrupt: true,
      });
    } finally {
      fs.rmSync(damaged, { recursive: true, force: true });
    }

    const other = tempDir();
    try {
      await withRawDb(other, (kv) =>
        kv.batch(
          [{ type: 'put', key: Buffer.from([0, ...Buffer.from('format')]), value: Buffer.from('x/9') }],
          true,
        ),
      );
      await expect(openRocksStorage(other)).rejects.toThrow(/unknown format/);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }

    // a directory of the first format (one key per entry) says what it is and what to do
    const older = tempDir();
    try {
      await withRawDb(older, (kv) =>
        kv.batch(
          [
            {
              type: 'put',
              key: Buffer.from([0, ...Buffer.from('format')]),
              value: Buffer.from('otra-raft-log/1'),
            },
          ],
          true,
        ),
      );
      await expect(openRocksStorage(older)).rejects.toMatchObject({
        code: 'storage.open_failed',
        corrupt: false,
        message: expect.stringMatching(/format otra-raft-log\/1 .*reads otra-raft-log\/2 only/),
      });
    } finally {
      fs.rmSync(older, { recursive: true, force: true });
    }
  });

  it('fails the affected appends on a write error, acknowledges nothing more and stays failed', async () => {
    let failNext = false;
    const faulty = (kv: Kv): Kv => ({
      batch: (ops, sync) =>
        failNext && sync
          ? Promise.reject(new Error('IO error: No space left on device'))
          : kv.batch(ops, sync),
      newBatch: () => {
        const inner = kv.newBatch();
        return {
          put: (key, value) => inner.put(key, value),
          del: (key) => inner.del(key),
          write: (sync) =>
            failNext && sync
              ? Promise.reject(new Error('IO error: No space left on device'))
              : inner.write(sync),
        };
      },
      get: (key) => kv.get(key),
      iterateChunks: (range, hwm) => kv.iterateChunks(range, hwm),
      clearRange: (gte, lte) => kv.clearRange(gte, lte),
      close: () => kv.close(),
    });
    const st = await reopen({ wrapKv: faulty });
    await st.log.append('a', entries(1, 5, 1));
    failNext = true;
    const acked: number[] = [];
    const results = await Promise.allSettled([
      st.log.append('a', entries(6, 6, 1)).then((w) => acked.push(w.upTo)),
      st.log.append('b', entries(1, 1, 1)).then((w) => acked.push(w.upTo)),
    ]);
    expect(acked).toEqual([]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const reason = (results[0] as PromiseRejectedResult).reason as LogWriteError;
    expect(reason).toBeInstanceOf(LogWriteError);
    expect(reason.message).toMatch(/No space left/);
    expect([...reason.uids].sort()).toEqual(['a', 'b']);
    // The listener form hears the same failure.
    const failures: Array<[string, string]> = [];
    st.log.appendNotify('a', entries(7, 7, 1), undefined, {
      logWritten: () => failures.push(['a', 'written']),
      logWriteFailed: (uid, error) => failures.push([uid, error.constructor.name]),
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(failures).toEqual([['a', 'WriterFailedError']]);
    failNext = false;
    await expect(st.log.append('a', entries(8, 8, 1))).rejects.toThrow(WriterFailedError);
    await expect(st.meta.store('a', { currentTerm: 1, votedFor: null })).rejects.toThrow(WriterFailedError);
    expect(st.writer.failed).toBeInstanceOf(LogWriteError);
    expect(st.log.durableIndex('a')).toBe(5);
    // After a restart, only what was acknowledged is there.
    const again = await reopen();
    expect(again.log.last('a')).toEqual({ index: 5, term: 1 });
    expect(again.log.last('b')).toEqual({ index: 0, term: 0 });
  });

  it('group-commits appends from 1,000 servers through one writer', async () => {
    let st = await reopen();
    const uids = Array.from({ length: 1000 }, (_, k) => `server-${k}`);
    const rounds = 5;
    const acked = new Map<string, number>();
    await Promise.all(
      uids.map(async (uid) => {
        for (let r = 1; r <= rounds; r++) {
          const w = await st.log.append(uid, entries(r, r, 1, uid));
          expect(w.upTo).toBe(r);
          acked.set(uid, w.upTo);
        }
      }),
    );
    const stats = st.writer.stats();
    expect(stats.requests).toBe(uids.length * rounds);
    // One fsync per round (give or take a split), never one per append.
    expect(stats.batches).toBeLessThan(rounds * 4);
    st = await reopen();
    for (const uid of uids) {
      expect(st.log.last(uid)).toEqual({ index: rounds, term: 1 });
      expect((await st.log.read(uid, rounds, rounds)).map(text)).toEqual(
        entries(rounds, rounds, 1, uid).map(text),
      );
    }
  });

  it('keeps the checksum of a snapshot written from a stream', async () => {
    const st = await reopen();
    const parts = Array.from({ length: 5 }, (_, k) => Buffer.alloc(300_000, k));
    async function* stream() {
      for (const part of parts) yield part;
    }
    const info = await st.snapshots.write('a', { index: 7, term: 1 }, stream());
    expect(info.checksum).toBe(crc32c(Buffer.concat(parts)));
    expect(info.size).toBe(1_500_000);
    const again = await reopen();
    expect(again.snapshots.current('a')).toEqual(info);
  });
});
