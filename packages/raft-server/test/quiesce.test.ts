/**
 * Quiescence through the shell: idle groups stop ticking and their followers stop their election
 * timers; work wakes them; a leader that goes away (its node cut off, or its actor killed) is
 * replaced because the followers' monitors fire.
 */
import type { ServerId } from '@otra/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { awaitLeader, consistentQuery, overview, processCommand, startCluster } from '../src/index.ts';
import { eventually, type LocalCluster, localCluster, systemOf } from './support.ts';

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function allQuiesced(c: LocalCluster, ids: readonly ServerId[]): Promise<true | undefined> {
  const views = await Promise.all(ids.map((id) => overview(systemOf(c, id), id)));
  return views.every((v) => v.quiesced) ? true : undefined;
}

describe('quiescence', () => {
  it('an idle cluster falls asleep, sends nothing while asleep, and wakes for a command', async () => {
    cluster = await localCluster(3, { quiesceAfterTicks: 3 });
    const c = cluster;
    await startCluster(c.systems[0]!, 'kv', { module: 'kv' }, c.ids);
    await processCommand(c.systems[0]!, c.ids[0]!, { op: 'put', key: 'a', value: '1' });
    await eventually(() => allQuiesced(c, c.ids));
    const leader = await awaitLeader(c.systems[0]!, c.ids);
    const campaigns = (vs: readonly { counters: { preVotes: number; elections: number } }[]) =>
      vs.reduce((n, v) => n + v.counters.preVotes + v.counters.elections, 0);
    const before = await Promise.all(c.ids.map((id) => overview(systemOf(c, id), id)));
    const sent = c.net.stats().routed;
    // while asleep (several election timeouts): no messages, no campaigns, no term change
    await new Promise((r) => setTimeout(r, 900));
    const views = await Promise.all(c.ids.map((id) => overview(systemOf(c, id), id)));
    expect(c.net.stats().routed - sent).toBeLessThan(10);
    expect(campaigns(views)).toBe(campaigns(before));
    for (const [i, v] of views.entries()) {
      expect(v.quiesced).toBe(true);
      expect(v.term).toBe(before[i]!.term);
      expect(v.lastIndex).toBe(before[i]!.lastIndex);
    }
    // a command through a follower wakes the group and commits; a consistent read works
    const follower = c.ids.find((id) => id.node !== leader.node)!;
    const r = await processCommand(systemOf(c, follower), follower, { op: 'put', key: 'b', value: '2' });
    expect(r.leader).toEqual(leader);
    const q = await consistentQuery(systemOf(c, follower), follower, { name: 'get', args: ['a'] });
    expect(q.result).toBe('1');
    // and it falls asleep again
    await eventually(() => allQuiesced(c, c.ids));
  });

  it('followers of a sleeping leader elect a new one as soon as its node is cut off', async () => {
    cluster = await localCluster(3, { quiesceAfterTicks: 3, electionTimeoutMs: [150, 300] });
    const c = cluster;
    await startCluster(c.systems[0]!, 'kv', { module: 'kv' }, c.ids);
    await processCommand(c.systems[0]!, c.ids[0]!, { op: 'put', key: 'a', value: '1' });
    await eventually(() => allQuiesced(c, c.ids));
    const old = await awaitLeader(c.systems[0]!, c.ids);
    for (const n of c.nodes) if (n.name !== old.node) c.net.partition(old.node, n.name);
    const rest = c.ids.filter((id) => id.node !== old.node);
    const started = Date.now();
    const fresh = await awaitLeader(systemOf(c, rest[0]!), rest, { timeoutMs: 5000 });
    expect(fresh.node).not.toBe(old.node);
    // woken by the monitors: an election timeout or two, not a link timeout
    expect(Date.now() - started).toBeLessThan(2000);
    await processCommand(systemOf(c, rest[0]!), rest[0]!, { op: 'put', key: 'after', value: 'x' });
    // the old leader wakes too (its watched members went down) and steps down by check-quorum
    await eventually(async () =>
      (await overview(systemOf(c, old), old)).role !== 'leader' ? true : undefined,
    );
  });

  it('followers of a sleeping leader whose actor is killed elect a leader, and the restarted actor rejoins', async () => {
    cluster = await localCluster(3, { quiesceAfterTicks: 3 });
    const c = cluster;
    await startCluster(c.systems[0]!, 'kv', { module: 'kv' }, c.ids);
    await processCommand(c.systems[0]!, c.ids[0]!, { op: 'put', key: 'a', value: '1' });
    await eventually(() => allQuiesced(c, c.ids));
    const old = await awaitLeader(c.systems[0]!, c.ids);
    const node = c.nodes.find((n) => n.name === old.node)!;
    node.exit(node.whereis('kv')!, 'kill');
    const follower = c.ids.find((id) => id.node !== old.node)!;
    const r = await processCommand(
      systemOf(c, follower),
      follower,
      { op: 'put', key: 'b', value: '2' },
      { timeoutMs: 5000 },
    );
    expect(r.index).toBeGreaterThan(0);
    const q = await consistentQuery(systemOf(c, follower), follower, { name: 'get', args: ['a'] });
    expect(q.result).toBe('1');
    // The supervisor restarted the killed actor from its state; it rejoins, as a follower or as the
    // leader: its own pre-vote ends the lease its followers kept from the actor it replaced, so it
    // can win the election it asks for.
    await eventually(async () => {
      const v = await overview(systemOf(c, old), old);
      return (v.role === 'follower' || v.role === 'leader') && v.lastApplied >= r.index ? true : undefined;
    });
  });
});
