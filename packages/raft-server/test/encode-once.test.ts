import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerId } from '@otra/protocol';
import type { MachineModule } from '@otra/raft-core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  awaitLeader,
  localQuery,
  overview,
  pipelineCommand,
  type RaftNotification,
  type RaftSystem,
  restartServer,
  startCluster,
  startPipelineClient,
  stopServer,
} from '../src/index.ts';
import * as codec from '../src/internal/codec.ts';
import { eventually, type LocalCluster, localCluster } from './support.ts';

/** The bytes of every applied command kept as `StoredCommand`, on any node of the test. */
const kept: Uint8Array[] = [];

// Counts the shell's entry encodings: every node of the cluster runs in this process, so the
// counts cover the leader and both followers.
vi.mock('../src/internal/codec.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof codec>();
  class WatchedStoredCommand extends actual.StoredCommand {
    constructor(index: number, term: number, data: Uint8Array) {
      super(index, term, data);
      kept.push(data);
    }
  }
  return {
    ...actual,
    StoredCommand: WatchedStoredCommand,
    storedEntry: vi.fn(actual.storedEntry),
    encodeEntry: vi.fn(actual.encodeEntry),
  };
});

let cluster: LocalCluster | undefined;
let dir: string | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Adds up its commands and never releases its cursor: the whole log stays (no snapshot to send). */
const sumMachine: MachineModule<number, number, number> = {
  init: () => 0,
  apply: (_meta, n, total) => [total + n, total + n],
};

/** Three nodes in this process with RocksDB logs (in `dir`), running `sumMachine` as cluster `kv`. */
async function startSumCluster(): Promise<{ sys: RaftSystem; leader: ServerId; ids: ServerId[] }> {
  dir = mkdtempSync(join(tmpdir(), 'otra-encode-once-'));
  const base = dir;
  cluster = await localCluster(3, (node) => ({
    dataDir: join(base, node),
    machines: { sum: { machine: sumMachine, queries: { total: (state: unknown) => state } } },
  }));
  const sys = cluster.systems[0]!;
  await startCluster(sys, 'kv', { module: 'sum' }, cluster.ids);
  return { sys, leader: await awaitLeader(sys, cluster.ids), ids: cluster.ids };
}

/** Pipelines `n` commands of 1 to `leader` and resolves once all are applied. */
async function pipelineOnes(sys: RaftSystem, leader: ServerId, n: number): Promise<void> {
  let applied = 0;
  const client = startPipelineClient(sys, (msg: RaftNotification) => {
    if (msg.type === 'raft.applied') applied += msg.applied.length;
  });
  for (let i = 0; i < n; i++) pipelineCommand(sys, leader, 1, i, client);
  await eventually(() => (applied === n ? true : undefined), 20_000);
  sys.node.stop(client);
}

describe('entry bytes', () => {
  it('each entry is encoded once, by the leader: sends reuse the stored bytes, followers store what they got', async () => {
    cluster = await localCluster(3);
    const sys = cluster.systems[0]!;
    await startCluster(sys, 'kv', { module: 'kv' }, cluster.ids);
    const leader = await awaitLeader(sys, cluster.ids);
    const before = (await overview(sys, leader)).lastIndex;
    const stored = vi.mocked(codec.storedEntry);
    const encoded = vi.mocked(codec.encodeEntry);
    stored.mockClear();
    encoded.mockClear();
    const N = 500;
    let applied = 0;
    const client = startPipelineClient(sys, (n: RaftNotification) => {
      if (n.type === 'raft.applied') applied += n.applied.length;
    });
    for (let i = 0; i < N; i++)
      pipelineCommand(sys, leader, { op: 'put', key: `k${i % 7}`, value: `${i}` }, i, client);
    await eventually(() => (applied === N ? true : undefined));
    await eventually(async () => {
      const views = await Promise.all(cluster!.ids.map((id) => overview(sys, id)));
      return views.every((v) => v.lastWritten >= before + N) ? true : undefined;
    });
    // one encoding per new entry, on the leader; none to send them, none on the followers
    expect(stored).toHaveBeenCalledTimes(N);
    expect(encoded).not.toHaveBeenCalled();
  });

  it("keeps an applied command as the log store's copy of its bytes", async () => {
    // not the bytes the entry was appended with: a received entry's are a view of its whole frame
    const { sys, leader, ids } = await startSumCluster();
    const stored = vi.mocked(codec.storedEntry);
    stored.mockClear();
    kept.length = 0;
    const N = 300;
    await pipelineOnes(sys, leader, N);
    const target = (await overview(sys, leader)).commitIndex;
    await eventually(async () => {
      const views = await Promise.all(ids.map((id) => overview(sys, id)));
      return views.every((v) => v.lastApplied >= target) ? true : undefined;
    });
    // every member kept each command once
    expect(kept.length).toBe(3 * N);
    const appended = new Set(stored.mock.results.map((r) => (r.value as { data: Uint8Array }).data.buffer));
    expect(kept.filter((data) => appended.has(data.buffer))).toEqual([]);
  });

  it("a follower that fell behind the log store's tail is sent the stored bytes of applied commands", async () => {
    // RocksDB keeps only the last 1,024-1,536 entries in memory: older sends used to encode again
    const { sys, leader, ids } = await startSumCluster();
    const lagging = ids.find((id) => id.node !== leader.node)!;
    await stopServer(sys, lagging);
    const N = 3000;
    await pipelineOnes(sys, leader, N);
    const target = (await overview(sys, leader)).commitIndex;
    const encoded = vi.mocked(codec.encodeEntry);
    encoded.mockClear();
    await restartServer(sys, lagging);
    const caught = await eventually(async () => {
      const v = await overview(sys, lagging);
      return v.lastApplied >= target ? v : undefined;
    }, 20_000);
    expect(caught.snapshot).toBeNull();
    expect((await localQuery(sys, lagging, { name: 'total', args: [] })).result).toBe(N);
    expect((await overview(sys, leader)).counters.snapshotsSent).toBe(0);
    // every entry it was sent came from bytes stored at the leader
    expect(encoded).not.toHaveBeenCalled();
  });
});
