/**
 * `startOtraNode` and its data: a node restarts its recorded member from disk, and refuses to
 * start when that member cannot come back (here: a damaged log entry), rather than bootstrapping
 * a fresh member that would have forgotten its vote and log.
 */
import { join } from 'node:path';
import { overview } from '@otra/raft';
import { afterEach, describe, expect, it } from 'vitest';
import { entryRange } from '../../../packages/raft-log/src/internal/keys.ts';
import { RocksKv } from '../../../packages/raft-log/src/internal/rocksdb.ts';
import type { OtraNode } from '../src/otra-node.ts';
import { soloDir, startSolo, stopSolo, stopSolos } from './solo.ts';

afterEach(stopSolos);

async function put(node: OtraNode, key: string, value: unknown): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`${node.http!.url}/kv/${key}`, {
      method: 'PUT',
      body: JSON.stringify({ value }),
    });
    if (res.status === 200) return ((await res.json()) as { index: number }).index;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('no leader');
}

describe('an otra node and its data dir', () => {
  it('bootstraps once, restarts its member from disk, and refuses to replace one that cannot restart', async () => {
    const dataDir = soloDir('otra-node-');
    const first = await startSolo(dataDir);
    await put(first, 'a', 1);
    const last = await put(first, 'b', { two: 2 });
    const { uid } = await overview(first.system, { name: 'kv', node: 'solo' });
    await stopSolo(first);

    // the same member (same uid) comes back with its data
    const second = await startSolo(dataDir);
    expect((await overview(second.system, { name: 'kv', node: 'solo' })).uid).toBe(uid);
    const got = await fetch(`${second.http!.url}/kv/b`).then((r) => r.json());
    expect(got).toMatchObject({ value: { two: 2 } });
    await stopSolo(second);

    // damage one stored entry: recovery reports it, and the node does not start a fresh member
    // (the last record of its log: the put's entry, or the restarted leader's entry after it)
    const kv = await RocksKv.open(join(dataDir, 'db'));
    let key: Buffer | undefined;
    for await (const chunk of kv.iterateChunks(entryRange(uid))) key = chunk[chunk.length - 1]?.[0] ?? key;
    if (key === undefined) throw new Error('no record on disk');
    expect(key.readUInt32BE(key.length - 4)).toBeGreaterThanOrEqual(last);
    const value = (await kv.get(key)) as Buffer;
    value[value.length - 1]! ^= 0xff;
    await kv.batch([{ type: 'put', key, value }], true);
    await kv.close();
    const logs: string[] = [];
    await expect(startSolo(dataDir, (level, message) => logs.push(`${level} ${message}`))).rejects.toThrow(
      /could not be restarted .* refusing to start a fresh one/,
    );
    expect(logs.join('\n')).toMatch(/could not restart kv/);
  });
});
