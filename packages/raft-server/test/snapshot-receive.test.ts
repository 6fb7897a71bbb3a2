import { crc32c, createMemoryStorage } from '@otra/raft-log';
import { afterEach, describe, expect, it } from 'vitest';
import { localQuery, overview, startCluster, stopServer } from '../src/index.ts';
import { encodeStateChunks } from '../src/internal/codec.ts';
import { eventually, type LocalCluster, localCluster, watchReceives } from './support.ts';

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('snapshot receive', () => {
  it("drops the receive a retry's chunk 0 began when the earlier transfer's install wins", async () => {
    // n1's snapshot store counts the receives it has open (begun, neither completed nor aborted)
    const storage = createMemoryStorage();
    const receives = watchReceives(storage);
    cluster = await localCluster(2, (node) => (node === 'n1' ? { storage } : {}));
    const [n1, n2] = cluster.ids as [{ name: string; node: string }, { name: string; node: string }];
    await startCluster(cluster.systems[0]!, 'kv', { module: 'kv' }, [n1, n2]);
    // n2's server goes: the test plays n2 as a leader in a later term
    await stopServer(cluster.systems[1]!, n2);

    const chunks: Uint8Array[] = [];
    for await (const c of encodeStateChunks({ a: '1', b: '2' })) chunks.push(Uint8Array.from(c));
    const bytes = Buffer.concat(chunks);
    const half = bytes.length >> 1;
    const parts = [bytes.subarray(0, half), bytes.subarray(half)];
    const checksum = crc32c(bytes);
    const meta = {
      index: 10,
      term: 50,
      cluster: [
        { id: n1, membership: 'voter' },
        { id: n2, membership: 'voter' },
      ],
      machineVersion: 0,
    };
    const chunk = (i: number, last: boolean) => ({
      type: 'install_snapshot.request',
      from: n2,
      term: 50,
      meta,
      chunk: i,
      last,
      data: { bytes: parts[i]!, checksum },
    });
    // the whole transfer, then a retry's chunk 0 that reaches n1 before its install is done
    const fake = cluster.nodes[1]!;
    fake.send(n1, chunk(0, false));
    fake.send(n1, chunk(1, true));
    fake.send(n1, chunk(0, false));

    const sys = cluster.systems[0]!;
    const after = await eventually(async () => {
      const v = await overview(sys, n1);
      return v.lastApplied === 10 && v.role === 'follower' ? v : undefined;
    });
    expect(after.snapshot).toEqual({ index: 10, term: 50 });
    expect(after.counters.snapshotsInstalled).toBe(1);
    expect((await localQuery(sys, n1, (st: Record<string, string>) => st.b)).result).toBe('2');
    // the retry's receive is given up with the transfer it belonged to, not left open
    await eventually(() => (receives.open() === 0 ? true : undefined), 2000);
    expect(receives.open()).toBe(0);
  });
});
