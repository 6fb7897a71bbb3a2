import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  awaitLeader,
  overview,
  pipelineCommand,
  type RaftNotification,
  startCluster,
  startPipelineClient,
} from '../src/index.ts';
import * as codec from '../src/internal/codec.ts';
import { eventually, type LocalCluster, localCluster } from './support.ts';

// Counts the shell's entry encodings: every node of the cluster runs in this process, so the
// counts cover the leader and both followers.
vi.mock('../src/internal/codec.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof codec>();
  return { ...actual, storedEntry: vi.fn(actual.storedEntry), encodeEntry: vi.fn(actual.encodeEntry) };
});

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

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
});
