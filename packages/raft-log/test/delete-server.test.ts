import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryStorage, openRocksStorage, type RaftStorage } from '../src/index.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const data = new Uint8Array([1, 2, 3]);

async function fill(storage: RaftStorage, uid: string): Promise<void> {
  await storage.log.append(
    uid,
    [1, 2, 3].map((index) => ({ index, term: 1, data })),
  );
  await storage.meta.store(uid, { currentTerm: 3, votedFor: { name: 'a', node: 'n1' } });
  await storage.meta.setValue(uid, 'config', { x: 1 });
  await storage.snapshots.write(uid, { index: 2, term: 1 }, new Uint8Array([9, 9]));
}

describe('deleteServer', () => {
  for (const kind of ['memory', 'rocksdb'] as const) {
    it(`forgets one server's log, meta, values and snapshots and keeps the others (${kind})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'otra-del-'));
      dirs.push(dir);
      const open = () => (kind === 'memory' ? Promise.resolve(createMemoryStorage()) : openRocksStorage(dir));
      let storage = await open();
      await fill(storage, 'gone_1');
      await fill(storage, 'kept_1');
      await storage.deleteServer('gone_1');
      const check = (s: RaftStorage) => {
        const gone = s.recover('gone_1');
        expect(gone.last.index).toBe(0);
        expect(gone.snapshot).toBeNull();
        expect(gone.meta).toEqual({ currentTerm: 0, votedFor: null });
        expect(s.meta.getValue('gone_1', 'config')).toBeUndefined();
        const kept = s.recover('kept_1');
        expect(kept.last.index).toBe(3);
        expect(kept.snapshot?.meta.index).toBe(2);
        expect(s.meta.getValue('kept_1', 'config')).toEqual({ x: 1 });
      };
      check(storage);
      if (kind === 'rocksdb') {
        await storage.close();
        storage = await open();
        check(storage);
        expect(storage.servers()).toEqual(['kept_1']);
      }
      await storage.close();
    });
  }
});
