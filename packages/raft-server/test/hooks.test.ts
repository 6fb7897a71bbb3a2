import { LoopbackNetwork, Node } from '@otra/actors';
import type { ClusterMember, ServerId } from '@otra/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  addMember,
  consistentQuery,
  type LeaderHooks,
  overview,
  processCommand,
  type RaftSystem,
  removeMember,
  restartServer,
  startCluster,
  startServer,
  startSystem,
  stopServer,
} from '../src/index.ts';
import { eventually, type KvCommand, type KvState, kvMachine, kvQueries } from './support.ts';

const systems: RaftSystem[] = [];
afterEach(async () => {
  for (const s of systems.splice(0)) await s.stop();
});

describe('leader hooks', () => {
  it('fire on the leader at the right moments', async () => {
    const events: string[] = [];
    const committed: [KvState, KvCommand, unknown, KvState][] = [];
    const hooks: LeaderHooks<KvCommand, unknown, KvState> = {
      onElected: (id: ServerId, term: number) => events.push(`elected ${id.node} ${term}`),
      onCommandCommitted: (before, command, reply, after) => committed.push([before, command, reply, after]),
      onFollowerAdded: (member: ClusterMember) => events.push(`added ${member.id.node}`),
      onFollowerRemoved: (id: ServerId) => events.push(`removed ${id.node}`),
      onQueryAnswered: (count: number) => events.push(`queries ${count}`),
      onRestoredFromFiles: (meta) => events.push(`restored ${meta.index}`),
    };
    const net = new LoopbackNetwork();
    const nodes = ['n1', 'n2', 'n3', 'n4'].map((name) => new Node({ name }));
    for (const n of nodes) net.join(n);
    for (const n of nodes) {
      systems.push(
        await startSystem(n, {
          machines: { kv: { machine: kvMachine, hooks, queries: kvQueries } as never },
          tickMs: 30,
        }),
      );
    }
    const s1 = systems[0]!;
    const ids = nodes.slice(0, 3).map((n) => ({ name: 'kv', node: n.name }));
    await startCluster(s1, 'kv', { module: 'kv' }, ids);
    const first = await processCommand(s1, ids[0]!, { op: 'put', key: 'a', value: '1' });
    expect(events.filter((e) => e.startsWith('elected'))).toEqual([
      `elected ${first.leader.node} ${first.term}`,
    ]);
    await processCommand(s1, ids[0]!, { op: 'put', key: 'a', value: '2' });
    expect(committed).toEqual([
      [{}, { op: 'put', key: 'a', value: '1' }, null, { a: '1' }],
      [{ a: '1' }, { op: 'put', key: 'a', value: '2' }, '1', { a: '2' }],
    ]);
    await consistentQuery(s1, first.leader, { name: 'get', args: ['a'] });
    expect(events).toContain('queries 1');
    const n4 = { name: 'kv', node: 'n4' };
    await startServer(s1, { cluster: 'kv', id: n4, machine: { module: 'kv' }, members: [...ids, n4] });
    await addMember(s1, ids[0]!, n4);
    expect(events).toContain('added n4');
    await eventually(async () => ((await overview(s1, first.leader)).commitIndex >= 4 ? true : undefined));
    await eventually(async () => {
      try {
        await removeMember(s1, ids[0]!, n4);
        return true;
      } catch {
        return undefined;
      }
    });
    expect(events).toContain('removed n4');
    // past a release_cursor (every 64 entries), a restarted server restores from its snapshot
    for (let i = 0; i < 70; i++) await processCommand(s1, ids[0]!, { op: 'put', key: `k${i}`, value: 'v' });
    const member = ids.find((id) => id.node !== first.leader.node)!;
    await eventually(async () => ((await overview(s1, member)).snapshot !== null ? true : undefined));
    await stopServer(s1, member);
    await restartServer(s1, member);
    await eventually(() => (events.some((e) => e.startsWith('restored')) ? true : undefined));
  });
});
