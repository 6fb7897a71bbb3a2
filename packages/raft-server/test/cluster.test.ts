import { afterEach, describe, expect, it } from 'vitest';
import {
  consistentQuery,
  localQuery,
  overview,
  processCommand,
  startCluster,
  startServer,
} from '../src/index.ts';
import { eventually, type LocalCluster, localCluster } from './support.ts';

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('a 3-node cluster in one process', () => {
  it('elects a leader, commits commands and answers queries', async () => {
    cluster = await localCluster(3);
    const [s1] = cluster.systems;
    const { started, notStarted } = await startCluster(s1!, 'kv', { module: 'kv' }, cluster.ids);
    expect(started).toHaveLength(3);
    expect(notStarted).toHaveLength(0);
    const r1 = await processCommand(s1!, cluster.ids[0]!, { op: 'put', key: 'a', value: '1' });
    expect(r1.reply).toBeNull();
    const r2 = await processCommand(s1!, cluster.ids[1]!, { op: 'put', key: 'a', value: '2' });
    expect(r2.reply).toBe('1');
    const q = await consistentQuery(s1!, cluster.ids[0]!, (state: Record<string, string>) => state.a);
    expect(q.result).toBe('2');
    const named = await consistentQuery(s1!, cluster.ids[2]!, { name: 'get', args: ['a'] });
    expect(named.result).toBe('2');
    await eventually(async () => {
      const views = await Promise.all(cluster!.ids.map((id) => overview(s1!, id)));
      return views.every((v) => v.lastApplied >= r2.index) ? views : undefined;
    });
    const local = await localQuery(s1!, cluster.ids[0]!, (state: Record<string, string>) => state.a);
    expect(local.result).toBe('2');
  });

  it('elects a leader on its own election timers (no triggerElection)', async () => {
    cluster = await localCluster(3);
    const s1 = cluster.systems[0]!;
    for (const id of cluster.ids) {
      await startServer(s1, { cluster: 'kv', id, machine: { module: 'kv' }, members: cluster.ids });
    }
    const leader = await eventually(async () => (await overview(s1, cluster!.ids[0]!)).leader ?? undefined);
    const r = await processCommand(s1, cluster.ids[2]!, { op: 'put', key: 'k', value: 'v' });
    expect(r.leader).toEqual(leader);
  });
});
