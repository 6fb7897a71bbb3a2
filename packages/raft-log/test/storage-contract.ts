import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  crc32c,
  LogInputError,
  type LogListener,
  type RaftStorage,
  SnapshotAbortedError,
  SnapshotChecksumError,
  SnapshotStaleError,
  type StoredEntry,
} from '../src/index.ts';

/** How the contract suite gets a fresh, empty storage; `close` also removes anything it made. */
export interface StorageFactory {
  open(): Promise<RaftStorage>;
  cleanup(): Promise<void>;
}

export function entries(from: number, to: number, term: number, tag = ''): StoredEntry[] {
  const out: StoredEntry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, data: payload(i, term, tag) });
  return out;
}

export function payload(index: number, term: number, tag = ''): Uint8Array {
  return new TextEncoder().encode(`${tag}entry-${index}-term-${term}`);
}

export function text(entry: StoredEntry): string {
  return `${entry.index}/${entry.term}/${new TextDecoder().decode(entry.data)}`;
}

export async function bytesOf(storage: RaftStorage, uid: string): Promise<Uint8Array> {
  const reader = await storage.snapshots.openRead(uid);
  if (reader === null) throw new Error('no snapshot');
  const parts: Uint8Array[] = [];
  for await (const chunk of reader.chunks(7)) parts.push(chunk);
  await reader.close();
  return Buffer.concat(parts);
}

/** The behaviour every `RaftStorage` implementation must have, run against each of them. */
export function describeStorageContract(name: string, factory: () => StorageFactory): void {
  describe(`${name}: storage contract`, () => {
    let f: StorageFactory;
    let s: RaftStorage;

    beforeEach(async () => {
      f = factory();
      s = await f.open();
    });
    afterEach(async () => {
      await s.close();
      await f.cleanup();
    });

    describe('log', () => {
      it('starts empty', () => {
        expect(s.log.last('a')).toEqual({ index: 0, term: 0 });
        expect(s.log.firstIndex('a')).toBe(1);
        expect(s.log.termAt('a', 0)).toBe(0);
        expect(s.log.termAt('a', 1)).toBeUndefined();
        expect(s.log.tryRead('a', 1, 10)).toEqual([]);
      });

      it('appends, answers log.written once durable, and reads back', async () => {
        const pending = s.log.append('a', entries(1, 3, 1));
        expect(s.log.last('a')).toEqual({ index: 3, term: 1 });
        expect(s.log.tryRead('a', 1, 3)?.map(text)).toEqual(entries(1, 3, 1).map(text));
        const written = await pending;
        expect(written).toEqual({ type: 'log.written', uid: 'a', upTo: 3, term: 1 });
        expect(s.log.durableIndex('a')).toBe(3);
        await s.log.append('a', entries(4, 5, 2));
        expect(s.log.termAt('a', 3)).toBe(1);
        expect(s.log.termAt('a', 4)).toBe(2);
        expect((await s.log.read('a', 2, 100)).map(text)).toEqual([
          ...entries(2, 3, 1).map(text),
          ...entries(4, 5, 2).map(text),
        ]);
        expect(await s.log.read('a', 6, 9)).toEqual([]);
      });

      it('keeps what was appended even if the caller reuses its buffer', async () => {
        const data = new Uint8Array([1, 2, 3]);
        const pending = s.log.append('a', [{ index: 1, term: 1, data }]);
        data.fill(9);
        await pending;
        expect([...s.log.tryRead('a', 1, 1)![0]!.data]).toEqual([1, 2, 3]);
        expect([...(await s.log.read('a', 1, 1))[0]!.data]).toEqual([1, 2, 3]);
      });

      it('acknowledges the appends of a server in order', async () => {
        const order: number[] = [];
        const all: Promise<unknown>[] = [];
        for (let i = 1; i <= 50; i++) {
          all.push(s.log.append('a', entries(i, i, 1)).then((w) => order.push(w.upTo)));
        }
        await Promise.all(all);
        expect(order).toEqual(Array.from({ length: 50 }, (_, k) => k + 1));
      });

      it('appendNotify: the same log, each append heard once and in order, mixed with append', async () => {
        const heard: string[] = [];
        const viaPromise: number[] = [];
        const listener: LogListener = {
          logWritten: (uid, upTo, term) => heard.push(`${uid}:${upTo}/${term}`),
          logWriteFailed: (uid, error) => heard.push(`${uid}:failed:${error.message}`),
        };
        const promised: Promise<unknown>[] = [];
        for (let i = 1; i <= 40; i++) {
          // (A promise settles a microtask after the listener calls of its batch: the two forms are
          // each in order, not interleaved exactly.)
          if (i % 3 === 0)
            promised.push(s.log.append('a', entries(i, i, 1)).then((w) => viaPromise.push(w.upTo)));
          else s.log.appendNotify('a', entries(i, i, 1), undefined, listener);
        }
        s.log.appendNotify('b', entries(1, 3, 2), undefined, listener);
        s.log.appendNotify('a', entries(38, 39, 3, 'new-'), { truncateFrom: 38 }, listener);
        // Visible at once, as with append; input errors throw synchronously and change nothing.
        expect(s.log.last('a')).toEqual({ index: 39, term: 3 });
        expect(() => s.log.appendNotify('a', entries(41, 41, 3), undefined, listener)).toThrow(LogInputError);
        expect(() => s.log.appendNotify('b', entries(4, 4, 1), undefined, listener)).toThrow(/below/);
        await Promise.all(promised);
        for (let k = 0; k < 100 && heard.length < 29; k++) await new Promise((r) => setImmediate(r));
        const notified = Array.from({ length: 40 }, (_, k) => k + 1).filter((i) => i % 3 !== 0);
        expect(heard.filter((h) => h.startsWith('a:'))).toEqual([
          ...notified.map((i) => `a:${i}/1`),
          'a:39/3',
        ]);
        expect(viaPromise).toEqual(Array.from({ length: 13 }, (_, k) => 3 * (k + 1)));
        expect(heard.filter((h) => h.startsWith('b:'))).toEqual(['b:3/2']);
        expect(s.log.durableIndex('a')).toBe(39);
        expect((await s.log.read('a', 36, 39)).map(text)).toEqual([
          ...entries(36, 37, 1).map(text),
          ...entries(38, 39, 3, 'new-').map(text),
        ]);
      });

      it('rejects malformed appends without changing the log', async () => {
        await s.log.append('a', entries(1, 3, 2));
        const before = s.log.last('a');
        expect(() => s.log.append('a', entries(5, 5, 2))).toThrow(LogInputError);
        expect(() => s.log.append('a', entries(4, 4, 1))).toThrow(/below the previous term/);
        expect(() => s.log.append('a', [])).toThrow(LogInputError);
        expect(() => s.log.append('a', [...entries(4, 4, 2), ...entries(6, 6, 2)])).toThrow(/consecutive/);
        expect(() => s.log.append('a', entries(5, 5, 2), { truncateFrom: 5 })).toThrow(/outside the log/);
        expect(() => s.log.append('a', entries(0, 0, 2), { truncateFrom: 0 })).toThrow(/outside the log/);
        expect(() => s.log.append('a', entries(3, 3, 2), { truncateFrom: 2 })).toThrow(/truncateFrom/);
        expect(() => s.log.append('../x', entries(1, 1, 1))).toThrow(LogInputError);
        expect(() => s.log.append('', entries(1, 1, 1))).toThrow(LogInputError);
        expect(s.log.last('a')).toEqual(before);
        expect((await s.log.read('a', 1, 3)).map(text)).toEqual(entries(1, 3, 2).map(text));
      });

      it('overwrites a conflicting suffix atomically with the new entries', async () => {
        await s.log.append('a', entries(1, 6, 1));
        const w = await s.log.append('a', entries(3, 4, 2, 'new-'), { truncateFrom: 3 });
        expect(w).toMatchObject({ upTo: 4, term: 2 });
        expect(s.log.last('a')).toEqual({ index: 4, term: 2 });
        expect(s.log.termAt('a', 5)).toBeUndefined();
        expect((await s.log.read('a', 1, 10)).map(text)).toEqual([
          ...entries(1, 2, 1).map(text),
          ...entries(3, 4, 2, 'new-').map(text),
        ]);
        // Truncating at last + 1 is a plain append.
        await s.log.append('a', entries(5, 5, 2), { truncateFrom: 5 });
        expect(s.log.last('a')).toEqual({ index: 5, term: 2 });
      });

      it('keeps servers apart, also uids that prefix each other', async () => {
        await Promise.all([
          s.log.append('a', entries(1, 3, 1, 'a-')),
          s.log.append('ab', entries(1, 2, 4, 'ab-')),
          s.log.append('a.b', entries(1, 1, 7, 'a.b-')),
        ]);
        expect(s.log.last('a')).toEqual({ index: 3, term: 1 });
        expect(s.log.last('ab')).toEqual({ index: 2, term: 4 });
        expect((await s.log.read('ab', 1, 9)).map(text)).toEqual(entries(1, 2, 4, 'ab-').map(text));
        expect((await s.log.read('a.b', 1, 9)).map(text)).toEqual(entries(1, 1, 7, 'a.b-').map(text));
        expect(s.log.servers().sort()).toEqual(['a', 'a.b', 'ab']);
      });

      it('deletes a prefix after a snapshot and keeps the suffix', async () => {
        await s.log.append('a', [...entries(1, 5, 1), ...entries(6, 10, 2)]);
        await s.log.deletePrefix('a', { index: 6, term: 2 });
        expect(s.log.firstIndex('a')).toBe(7);
        expect(s.log.termAt('a', 6)).toBe(2);
        expect(s.log.termAt('a', 5)).toBeUndefined();
        expect(s.log.last('a')).toEqual({ index: 10, term: 2 });
        await expect(s.log.read('a', 5, 10)).rejects.toThrow(LogInputError);
        expect((await s.log.read('a', 7, 10)).map(text)).toEqual(entries(7, 10, 2).map(text));
        // An older point is a no-op.
        await s.log.deletePrefix('a', { index: 3, term: 1 });
        expect(s.log.firstIndex('a')).toBe(7);
        // Up to the last entry: the log is empty and starts after it.
        await s.log.deletePrefix('a', { index: 10, term: 2 });
        expect(s.log.last('a')).toEqual({ index: 10, term: 2 });
        expect(s.log.firstIndex('a')).toBe(11);
        await s.log.append('a', entries(11, 11, 3));
        expect(s.log.last('a')).toEqual({ index: 11, term: 3 });
      });

      it('discards the whole log for a snapshot past it or conflicting with it (Raft §7)', async () => {
        await s.log.append('a', entries(1, 5, 1));
        await s.log.deletePrefix('a', { index: 20, term: 3 });
        expect(s.log.last('a')).toEqual({ index: 20, term: 3 });
        expect(s.log.firstIndex('a')).toBe(21);
        expect(() => s.log.append('a', entries(6, 6, 3))).toThrow(LogInputError);
        await s.log.append('a', entries(21, 22, 3));
        expect((await s.log.read('a', 21, 30)).map(text)).toEqual(entries(21, 22, 3).map(text));

        await s.log.append('b', entries(1, 8, 1));
        await s.log.deletePrefix('b', { index: 4, term: 2 });
        expect(s.log.last('b')).toEqual({ index: 4, term: 2 });
        expect(s.log.termAt('b', 5)).toBeUndefined();
        expect(await s.log.read('b', 5, 8)).toEqual([]);
      });
    });

    describe('meta', () => {
      it('stores term and vote durably and small values', async () => {
        expect(s.meta.get('a')).toEqual({ currentTerm: 0, votedFor: null });
        const written = await s.meta.store('a', { currentTerm: 3, votedFor: { name: 'kv', node: 'n2' } });
        expect(written).toEqual({
          type: 'meta.written',
          uid: 'a',
          currentTerm: 3,
          votedFor: { name: 'kv', node: 'n2' },
        });
        expect(s.meta.get('a')).toEqual({ currentTerm: 3, votedFor: { name: 'kv', node: 'n2' } });
        await s.meta.store('a', { currentTerm: 4, votedFor: null });
        expect(s.meta.get('a')).toEqual({ currentTerm: 4, votedFor: null });
        expect(s.meta.get('b')).toEqual({ currentTerm: 0, votedFor: null });
        await s.meta.setValue('a', 'config', { members: ['n1', 'n2'], index: 7 });
        expect(s.meta.getValue('a', 'config')).toEqual({ members: ['n1', 'n2'], index: 7 });
        expect(s.meta.getValue('a', 'other')).toBeUndefined();
        expect(() => s.meta.store('a', { currentTerm: -1, votedFor: null })).toThrow(LogInputError);
      });
    });

    it('acknowledges log and meta writes in the order they were made', async () => {
      const order: string[] = [];
      await Promise.all([
        s.meta.store('a', { currentTerm: 1, votedFor: null }).then(() => order.push('vote')),
        s.log.append('a', entries(1, 1, 1)).then(() => order.push('log 1')),
        s.meta.setValue('a', 'k', 1).then(() => order.push('value')),
        s.log.append('b', entries(1, 1, 1)).then(() => order.push('other server')),
        s.log.append('a', entries(2, 2, 1)).then(() => order.push('log 2')),
      ]);
      expect(order).toEqual(['vote', 'log 1', 'value', 'other server', 'log 2']);
    });

    describe('snapshots', () => {
      const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

      it('writes a local snapshot and reads it back in chunks', async () => {
        expect(s.snapshots.current('a')).toBeNull();
        expect(await s.snapshots.openRead('a')).toBeNull();
        const info = await s.snapshots.write('a', { index: 10, term: 2, members: ['x'] }, data);
        expect(info).toEqual({
          meta: { index: 10, term: 2, members: ['x'] },
          size: 1000,
          checksum: crc32c(data),
        });
        expect(s.snapshots.current('a')).toEqual(info);
        expect(Buffer.from(await bytesOf(s, 'a'))).toEqual(data);
        const reader = await s.snapshots.openRead('a');
        expect(Buffer.from((await reader!.readChunk(995, 100)) ?? [])).toEqual(data.subarray(995));
        await reader!.close();
      });

      it('receives a snapshot in chunks; an aborted or mismatching one keeps the previous', async () => {
        await s.snapshots.write('a', { index: 5, term: 1 }, [data.subarray(0, 10), data.subarray(10, 20)]);
        const first = s.snapshots.current('a');

        const receiver = await s.snapshots.beginReceive('a', { index: 9, term: 2 });
        await receiver.writeChunk(data.subarray(0, 500));
        await receiver.abort();
        await expect(receiver.writeChunk(data)).rejects.toThrow(SnapshotAbortedError);
        expect(s.snapshots.current('a')).toEqual(first);

        const bad = await s.snapshots.beginReceive('a', { index: 9, term: 2 });
        await bad.writeChunk(data);
        await expect(bad.complete(crc32c(data) ^ 1)).rejects.toThrow(SnapshotChecksumError);
        expect(s.snapshots.current('a')).toEqual(first);

        const good = await s.snapshots.beginReceive('a', { index: 9, term: 2 });
        for (let at = 0; at < data.length; at += 128) await good.writeChunk(data.subarray(at, at + 128));
        const info = await good.complete(crc32c(data));
        expect(info.meta).toEqual({ index: 9, term: 2 });
        expect(s.snapshots.current('a')).toEqual(info);
        expect(Buffer.from(await bytesOf(s, 'a'))).toEqual(data);

        await expect(s.snapshots.write('a', { index: 8, term: 2 }, data)).rejects.toThrow(SnapshotStaleError);
        expect(s.snapshots.current('a')).toEqual(info);
      });
    });

    it('recovers a server: snapshot, log after it, meta', async () => {
      await s.log.append('a', entries(1, 10, 1));
      await s.snapshots.write('a', { index: 4, term: 1 }, new Uint8Array([1, 2, 3]));
      await s.log.deletePrefix('a', { index: 4, term: 1 });
      await s.meta.store('a', { currentTerm: 1, votedFor: { name: 'a', node: 'n1' } });
      const recovered = s.recover('a');
      expect(recovered).toEqual({
        uid: 'a',
        snapshot: { meta: { index: 4, term: 1 }, size: 3, checksum: crc32c(new Uint8Array([1, 2, 3])) },
        firstIndex: 5,
        last: { index: 10, term: 1 },
        meta: { currentTerm: 1, votedFor: { name: 'a', node: 'n1' } },
      });
      expect(s.recover('fresh')).toEqual({
        uid: 'fresh',
        snapshot: null,
        firstIndex: 1,
        last: { index: 0, term: 0 },
        meta: { currentTerm: 0, votedFor: null },
      });
    });
  });
}
