import type { Machine, Reply } from '@otra/raft-core';
import { describe, expect, it } from 'vitest';
import { Cluster, type KvState, kvMachine } from '../src/index.ts';

function cluster(seed: number, servers = ['n1', 'n2', 'n3'], snapshotEvery = 0, transcript?: string[]) {
  return new Cluster({
    seed,
    servers,
    machine: () => kvMachine(snapshotEvery) as Machine<unknown, unknown, unknown>,
    ...(transcript === undefined ? {} : { transcript: (l: string) => transcript.push(l) }),
  });
}

function elect(c: Cluster): string {
  c.start();
  expect(c.runUntil(() => c.leader() !== undefined && c.leader()!.state.commitIndex > 0, 5000)).toBe(true);
  return c.leader()!.name;
}

/** Submits a put on the leader and runs until it is answered. */
function put(c: Cluster, key: string, value: string, ref: number): Reply {
  let answer: Reply | undefined;
  const prev = c.onReply;
  c.onReply = (to, r) => {
    if (to.ref === ref && !('notify' in r)) answer = r;
    else prev(to, r);
  };
  c.send(c.leader()!.name, {
    type: 'command',
    command: { op: 'put', key, value },
    reply: { mode: 'await_consensus', from: Cluster.from('client', ref) },
  });
  c.runUntil(() => answer !== undefined, 3000);
  c.onReply = prev;
  if (answer === undefined) throw new Error(`put ${key} not answered`);
  return answer;
}

describe('cluster scenarios', () => {
  it('a follower cut off from the leader alone does not depose it (pre-vote + lease)', () => {
    const lines: string[] = [];
    const c = cluster(1, ['n1', 'n2', 'n3'], 0, lines);
    const leader = elect(c);
    const term = c.leader()!.state.currentTerm;
    const [victim, other] = ['n1', 'n2', 'n3'].filter((n) => n !== leader) as [string, string];
    c.network.cutBoth(leader, victim);
    c.runFor(5000);
    expect(c.leader()!.name).toBe(leader);
    expect(c.leader()!.state.currentTerm).toBe(term);
    // The victim kept asking; the other follower, which still hears the leader, refused.
    expect(lines.some((l) => l.includes(`${victim} -> ${other} pre_vote.request`))).toBe(true);
    expect(lines.some((l) => l.includes(`${other} -> ${victim} pre_vote.reply term=${term} refused`))).toBe(
      true,
    );
    expect(c.server(victim).state.currentTerm).toBe(term);
    // Writes still commit through the remaining majority.
    expect(put(c, 'k', 'v', 1)).toMatchObject({ type: 'applied' });
  });

  it('a leader in a minority steps down by check-quorum and the majority elects another', () => {
    const c = cluster(2);
    const leader = elect(c);
    const others = ['n1', 'n2', 'n3'].filter((n) => n !== leader);
    c.network.partition([[leader], others]);
    c.runFor(3000);
    expect(c.server(leader).role).not.toBe('leader');
    const next = c.leader();
    expect(next).toBeDefined();
    expect(others).toContain(next!.name);
  });

  it('a follower that crashed while the log was compacted catches up from a snapshot', () => {
    const c = cluster(3, ['n1', 'n2', 'n3'], 3);
    const leader = elect(c);
    const victim = ['n1', 'n2', 'n3'].find((n) => n !== leader)!;
    c.crash(victim);
    for (let i = 0; i < 20; i++) put(c, `k${i % 4}`, `v${i}`, 100 + i);
    expect(c.leader()!.state.log.snapshotIndex).toBeGreaterThan(0);
    c.restart(victim);
    const target = c.leader()!.state.lastApplied;
    expect(c.runUntil(() => c.server(victim).state.lastApplied >= target, 5000)).toBe(true);
    expect(c.effectCounts.get('snapshot.install') ?? 0).toBeGreaterThan(0);
    expect((c.server(victim).state.machineState as KvState).data).toEqual(
      (c.leader()!.state.machineState as KvState).data,
    );
  });

  it('a promotable member joins, catches up and becomes a voter', () => {
    const c = cluster(4);
    elect(c);
    for (let i = 0; i < 5; i++) put(c, 'k', `v${i}`, 200 + i);
    c.addServer('n4');
    // A joining server starts with the cluster it is joining (it never campaigns as a non-voter).
    c.restart('n4', c.members);
    let joined: Reply | undefined;
    c.onReply = (to, r) => {
      if (to.ref === 300 && !('notify' in r)) joined = r;
    };
    c.send(c.leader()!.name, {
      type: 'membership.join',
      member: { id: { name: 'n4', node: 'n4' }, membership: 'promotable' },
      from: Cluster.from('client', 300),
    });
    expect(c.runUntil(() => joined !== undefined, 3000)).toBe(true);
    expect(joined).toMatchObject({ type: 'ok' });
    const promoted = () =>
      c
        .leader()!
        .state.configs.at(-1)!
        .members.some((m) => m.id.name === 'n4' && m.membership === 'voter');
    expect(c.runUntil(promoted, 3000)).toBe(true);
    expect(c.runUntil(() => c.server('n4').state.lastApplied === c.leader()!.state.lastApplied, 3000)).toBe(
      true,
    );
  });

  it('leadership transfer hands over to the chosen voter', () => {
    const c = cluster(5);
    const leader = elect(c);
    const target = ['n1', 'n2', 'n3'].find((n) => n !== leader)!;
    put(c, 'k', 'v', 1);
    c.runFor(200);
    let answer: Reply | undefined;
    c.onReply = (to, r) => {
      if (to.ref === 400 && !('notify' in r)) answer = r;
    };
    c.send(leader, {
      type: 'transfer_leadership',
      to: { name: target, node: target },
      from: Cluster.from('client', 400),
    });
    expect(answer ?? { type: 'pending' }).toMatchObject({ type: 'pending' });
    expect(c.runUntil(() => c.leader()?.name === target, 2000)).toBe(true);
    expect(answer).toMatchObject({ type: 'ok' });
  });
});
