import { afterEach, describe, expect, it } from 'vitest';
import { overview, processCommand, startCluster } from '../src/index.ts';
import { eventually, type LocalCluster, localCluster } from './support.ts';

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('many clusters', () => {
  it('runs 200 clusters on the same 3 nodes at once', async () => {
    cluster = await localCluster(3, { tickMs: 100, electionTimeoutMs: [500, 1000] });
    const s1 = cluster.systems[0]!;
    const names = Array.from({ length: 200 }, (_, i) => `c${i}`);
    const idsOf = (name: string) => cluster!.nodes.map((n) => ({ name, node: n.name }));
    await Promise.all(
      names.map((name) => startCluster(s1, name, { module: 'kv' }, idsOf(name), { timeoutMs: 20_000 })),
    );
    const results = await Promise.all(
      names.map((name, i) =>
        processCommand(s1, idsOf(name)[i % 3]!, { op: 'put', key: 'k', value: name }, { timeoutMs: 20_000 }),
      ),
    );
    expect(results.every((r) => r.reply === null)).toBe(true);
    // startCluster spreads the elections it triggers over the members: leaders are not all on one node
    const leaders = new Set(results.map((r) => r.leader.node));
    expect(leaders.size).toBeGreaterThanOrEqual(2);
    const board = s1.leaderboard();
    expect(board.size).toBe(200);
    await eventually(async () => {
      const v = await overview(s1, idsOf('c199')[0]!);
      return v.lastApplied >= results[199]!.index ? true : undefined;
    });
    expect(cluster.nodes[0]!.inspectTree().actors).toBeGreaterThan(200 * 3);
  });
});
