import type { Pid } from '@otra/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  addMember,
  awaitLeader,
  ClusterChangeNotPermittedError,
  consistentQuery,
  MachineError,
  members,
  overview,
  pipelineCommand,
  processCommand,
  type RaftNotification,
  removeMember,
  startCluster,
  startPipelineClient,
  startServer,
  transferLeadership,
} from '../src/index.ts';
import { eventually, type LocalCluster, localCluster } from './support.ts';

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('commands', () => {
  it('pipelines 2,000 commands with every correlation notified exactly once', async () => {
    cluster = await localCluster(3);
    const s1 = cluster.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, cluster.ids);
    const leader = await awaitLeader(cluster.systems[0]!, cluster.ids);
    const seen = new Map<number, number>();
    const rejected: unknown[] = [];
    const client: Pid = startPipelineClient(s1, (n: RaftNotification) => {
      if (n.type === 'raft.applied')
        for (const [corr] of n.applied) seen.set(corr as number, (seen.get(corr as number) ?? 0) + 1);
      else rejected.push(n);
    });
    for (let i = 0; i < 2000; i++) {
      pipelineCommand(
        s1,
        leader,
        { op: 'put', key: `k${i % 100}`, value: `${i}` },
        i,
        client,
        i % 10 === 0 ? 'low' : 'normal',
      );
    }
    await eventually(() => (seen.size === 2000 ? true : undefined), 10_000);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(rejected).toEqual([]);
  });

  it('rejects pipelined commands sent to a follower with the leader hint', async () => {
    cluster = await localCluster(3);
    const s1 = cluster.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, cluster.ids);
    const leader = await awaitLeader(cluster.systems[0]!, cluster.ids);
    const follower = cluster.ids.find((id) => id.node !== leader.node)!;
    const notes: RaftNotification[] = [];
    const client = startPipelineClient(s1, (n) => notes.push(n));
    pipelineCommand(s1, follower, { op: 'put', key: 'x', value: 'y' }, 'c1', client);
    await eventually(() => (notes.length > 0 ? true : undefined));
    expect(notes[0]).toMatchObject({ type: 'raft.rejected', correlations: ['c1'], leader });
  });

  it('a command that throws in apply is rejected with MachineError and does not poison the log', async () => {
    cluster = await localCluster(3);
    const s1 = cluster.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, cluster.ids);
    await expect(processCommand(s1, cluster.ids[0]!, { op: 'boom' })).rejects.toBeInstanceOf(MachineError);
    const ok = await processCommand(s1, cluster.ids[0]!, { op: 'put', key: 'a', value: 'b' });
    expect(ok.reply).toBeNull();
    const q = await consistentQuery(s1, cluster.ids[0]!, { name: 'get', args: ['a'] });
    expect(q.result).toBe('b');
  });
});

describe('membership', () => {
  it('adds a promotable member, promotes it, removes another, transfers leadership', async () => {
    cluster = await localCluster(4);
    const [s1] = cluster.systems;
    const initial = cluster.ids.slice(0, 3);
    await startCluster(s1!, 'kv', { module: 'kv' }, initial);
    for (let i = 0; i < 50; i++)
      await processCommand(s1!, initial[0]!, { op: 'put', key: `k${i}`, value: 'v' });
    const newcomer = cluster.ids[3]!;
    await startServer(s1!, {
      cluster: 'kv',
      id: newcomer,
      machine: { module: 'kv' },
      members: [...initial, newcomer],
    });
    await addMember(s1!, initial[0]!, newcomer, { membership: 'promotable' });
    const promoted = await eventually(async () => {
      const m = await members(s1!, initial[0]!);
      const me = m.members.find((x) => x.id.node === newcomer.node);
      return me?.membership === 'voter' ? m : undefined;
    }, 10_000);
    expect(promoted.members).toHaveLength(4);
    const leader = await awaitLeader(cluster.systems[0]!, cluster.ids);
    const victim = initial.find((id) => id.node !== leader.node)!;
    await eventually(async () => {
      try {
        await removeMember(s1!, initial[0]!, victim);
        return true;
      } catch (err) {
        if (err instanceof ClusterChangeNotPermittedError) return undefined;
        throw err;
      }
    });
    const after = await eventually(async () => {
      const m = await members(s1!, leader);
      return m.members.length === 3 ? m : undefined;
    });
    expect(after.members.map((m) => m.id.node).sort()).toEqual(
      cluster.ids
        .filter((id) => id.node !== victim.node)
        .map((id) => id.node)
        .sort(),
    );
    const target = after.members.find((m) => m.id.node !== leader.node)!.id;
    await transferLeadership(s1!, leader, target);
    await eventually(async () => ((await overview(s1!, target)).role === 'leader' ? true : undefined));
    const r = await processCommand(s1!, target, { op: 'put', key: 'after', value: 'transfer' });
    expect(r.leader).toEqual(target);
  });

  it('a leader of two that removes itself while cut off commits its removal once healed', async () => {
    cluster = await localCluster(2);
    const c = cluster;
    const s1 = c.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, c.ids);
    const leader = await awaitLeader(s1, c.ids);
    const other = c.ids.find((id) => id.node !== leader.node)!;
    await processCommand(s1, leader, { op: 'put', key: 'a', value: '1' });
    // the removal is appended by the leader alone: the other never gets it before the leader
    // steps down (check-quorum), and then holds the shorter log
    c.net.partition(leader.node, other.node);
    await expect(
      removeMember(s1, leader, leader, { timeoutMs: 300 }).then(
        () => 'committed',
        () => 'no answer',
      ),
    ).resolves.toBe('no answer');
    await eventually(async () => ((await overview(s1, leader)).role !== 'leader' ? true : undefined));
    c.net.heal(leader.node, other.node);
    // the removed leader campaigns, commits its removal through the other and steps down; the
    // other, alone in the configuration, leads it
    const sOther = c.systems[c.ids.indexOf(other)]!;
    const led = await eventually(async () => {
      const v = await overview(sOther, other).catch(() => undefined);
      return v?.role === 'leader' ? v : undefined;
    }, 10_000);
    expect(led.members.map((m) => m.id)).toEqual([other]);
    const r = await processCommand(sOther, other, { op: 'put', key: 'b', value: '2' });
    expect(r.leader).toEqual(other);
  });
});
