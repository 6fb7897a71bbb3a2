/**
 * No input from the network may crash a server: seeded random mutations of every RPC a peer can
 * send (fields dropped, retyped, out of range, nested garbage, corrupted entry bytes) are fed to a
 * live RaftServer. It must never crash or restart, and the cluster must still commit afterwards.
 * (It found a term of 2^60, an integer but not a safe one, passing the RPC checks and crashing the
 * server when it stored its meta.) `FUZZ_SEED` and `FUZZ_COUNT` run other seeds.
 */
import { createCodec } from '@otra/protocol';
import type { MachineEffect, MachineModule } from '@otra/raft-core';
import { Prng } from '@otra/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { awaitLeader, consistentQuery, overview, processCommand, startCluster } from '../src/index.ts';
import { eventually, type LocalCluster, localCluster } from './support.ts';

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const codec = createCodec();
const n2 = { name: 'kv', node: 'n2' };
const pid = { node: 'n2', id: 4, creation: 5 };
const command = (index: number) =>
  codec.encode([0, index, 1, 0, { op: 'put', key: `f${index}`, value: 'x' }, [0]]);
const cluster3 = [n2, { name: 'kv', node: 'n1' }, { name: 'kv', node: 'n3' }].map((id) => ({
  id,
  membership: 'voter',
}));

/** Well-formed RPCs of every type, as a peer in term 1 would send them. */
const templates = (): Record<string, unknown>[] => [
  {
    type: 'append_entries.request',
    from: n2,
    term: 1,
    prevLogIndex: 0,
    prevLogTerm: 0,
    leaderCommit: 0,
    round: 0,
    entries: [],
    packed: [command(1), command(2)],
  },
  {
    type: 'append_entries.reply',
    from: n2,
    term: 1,
    success: true,
    matchIndex: 1,
    lastIndex: 1,
    lastTerm: 1,
    round: 0,
  },
  { type: 'vote.request', from: n2, term: 1, lastLogIndex: 0, lastLogTerm: 0 },
  { type: 'vote.reply', from: n2, term: 1, granted: true },
  { type: 'pre_vote.request', from: n2, term: 1, lastLogIndex: 0, lastLogTerm: 0 },
  { type: 'pre_vote.reply', from: n2, term: 1, granted: true },
  {
    type: 'install_snapshot.request',
    from: n2,
    term: 1,
    meta: { index: 3, term: 1, cluster: cluster3, machineVersion: 0 },
    chunk: 0,
    last: true,
    data: codec.encode({ state: { a: '1' } }),
  },
  {
    type: 'install_snapshot.reply',
    from: n2,
    term: 1,
    meta: { index: 3, term: 1, cluster: cluster3, machineVersion: 0 },
    chunk: 0,
    done: true,
  },
  { type: 'timeout_now', from: n2, term: 1 },
  { type: 'leader_probe', from: n2, term: 1 },
];

const GARBAGE: unknown[] = [
  undefined,
  null,
  -1,
  0,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  2 ** 60,
  1_000_000,
  '',
  'x'.repeat(3000),
  true,
  [],
  [null, -1, 'x'],
  {},
  { name: 1, node: [] },
  { type: 'command' },
  new Uint8Array([0xff, 0xfe, 0x00]),
  new Uint8Array(0),
  pid,
];

/** One random mutation of `msg` (a deep copy), 1-3 fields at any depth. */
function mutate(msg: Record<string, unknown> | unknown[], rnd: () => number): unknown {
  const copy = structuredClone(msg) as Record<string, unknown>;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
  const edits = 1 + Math.floor(rnd() * 3);
  for (let e = 0; e < edits; e++) {
    // walk down to a random container
    let target: Record<string, unknown> | unknown[] = copy;
    for (let depth = 0; depth < 3; depth++) {
      const keys = Object.keys(target);
      if (keys.length === 0) break;
      const next = (target as Record<string, unknown>)[pick(keys)];
      if (typeof next !== 'object' || next === null || next instanceof Uint8Array || rnd() < 0.4) break;
      target = next as Record<string, unknown>;
    }
    // the type is left alone most of the time, so most mutations reach the RPC's own checks
    const keys = Object.keys(target).filter((k) => target !== copy || k !== 'type' || rnd() < 0.1);
    const key = keys.length > 0 && rnd() < 0.9 ? pick(keys) : pick(['extra', '0']);
    const roll = rnd();
    const slot = target as Record<string, unknown>;
    if (roll < 0.2) delete slot[key];
    else if (roll < 0.35 && slot[key] instanceof Uint8Array) {
      // flip bytes of an encoded entry or chunk
      const bytes = Uint8Array.from(slot[key] as Uint8Array);
      for (let i = 0; i < 1 + rnd() * 4; i++)
        bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256);
      slot[key] = bytes;
    } else if (roll < 0.45 && typeof slot[key] === 'number')
      slot[key] = (slot[key] as number) + pick([1, -1, 7]);
    else slot[key] = structuredClone(pick(GARBAGE));
  }
  return copy;
}

/** Uniform in [0, 1) from the project's seeded PRNG. */
function seeded(seed: number): () => number {
  const prng = new Prng(seed);
  return () => prng.next();
}

describe('RPC fuzzing', () => {
  it('2,000 mutated RPCs from a peer neither crash nor restart the server, and the cluster still commits', async () => {
    const logs: string[] = [];
    cluster = await localCluster(3, { log: (_level, message) => logs.push(message) });
    const c = cluster;
    const s1 = c.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, c.ids);
    await awaitLeader(s1, c.ids, { timeoutMs: 10_000 });
    await processCommand(s1, c.ids[0]!, { op: 'put', key: 'before', value: '1' });
    const node = c.nodes[0]!;
    const server = node.whereis('kv')!;
    const restarts: string[] = [];
    const crashes: string[] = [];
    node.inspect((e) => {
      if (e.type === '@actors.restarted') restarts.push(e.childId);
      if (e.type === '@actors.exited' && e.pid.id === server.id) crashes.push(JSON.stringify(e.reason));
    });
    const rnd = seeded(Number(process.env.FUZZ_SEED ?? 20261201));
    const kinds = templates();
    for (let i = 0; i < Number(process.env.FUZZ_COUNT ?? 2000); i++) {
      node.send(server, mutate(kinds[i % kinds.length]!, rnd));
      // let the server work through them in batches, as it would from a link
      if (i % 50 === 49) await new Promise((r) => setImmediate(r));
    }
    // a call queued behind them: once it is answered, the server has handled all of them
    await overview(s1, c.ids[0]!);
    expect(crashes).toEqual([]);
    expect(node.whereis('kv')).toEqual(server);
    expect(restarts).toEqual([]);
    expect(logs.some((l) => /dropped a malformed/.test(l))).toBe(true);
    // forged terms may have forced elections: the cluster settles and commits again
    const after = await eventually(
      () => processCommand(s1, c.ids[0]!, { op: 'put', key: 'after', value: '2' }, { timeoutMs: 2000 }),
      20_000,
    );
    expect(after.index).toBeGreaterThan(1);
    const read = await eventually(async () => {
      const q = await consistentQuery(s1, c.ids[0]!, { name: 'get', args: ['after'] });
      return q.result === '2' ? q : undefined;
    }, 10_000);
    expect(read.result).toBe('2');
    expect(node.whereis('kv')).toEqual(server);
  }, 60_000);

  it('2,000 mutated API calls and pipelined casts are answered or dropped; the server lives on', async () => {
    cluster = await localCluster(3);
    const c = cluster;
    const s1 = c.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, c.ids);
    await awaitLeader(s1, c.ids, { timeoutMs: 10_000 });
    const node = c.nodes[0]!;
    const server = node.whereis('kv')!;
    const crashes: string[] = [];
    node.inspect((e) => {
      if (e.type === '@actors.exited' && e.pid.id === server.id) crashes.push(JSON.stringify(e.reason));
    });
    const notify = node.spawn({ init: () => null }, undefined);
    const calls: Record<string, unknown>[] = [
      { type: 'raft.command', command: { op: 'put', key: 'k', value: 'v' }, replyFrom: 'await_consensus' },
      {
        type: 'raft.command',
        command: { op: 'put', key: 'k', value: 'v' },
        replyFrom: 'after_log_append',
        requestId: 'r-1',
      },
      { type: 'raft.query', kind: 'local', query: { name: 'get', args: ['k'] } },
      {
        type: 'raft.query',
        kind: 'consistent',
        query: { name: 'get', args: ['k'] },
        condition: { index: 1, term: 1 },
      },
      { type: 'raft.overview' },
      { type: 'raft.key_metrics' },
      { type: 'raft.aux', command: { any: 1 } },
      // membership calls only with ids that are never valid: a valid one would change the cluster
      { type: 'raft.join', id: 'n9', membership: 'voter' },
      { type: 'raft.leave', id: { name: 3 } },
      { type: 'raft.transfer', to: null },
    ];
    const casts: (Record<string, unknown> | unknown[])[] = [
      {
        type: 'raft.pipeline',
        command: { op: 'put', key: 'p', value: 'v' },
        correlation: 1,
        notify,
        priority: 'normal',
      },
      {
        type: 'raft.pipeline',
        command: { op: 'put', key: 'p', value: 'v' },
        correlation: 'c',
        notify,
        priority: 'low',
        requestId: 'p-1',
      },
      // the tuple form pipelineCommand sends (the object form above is what earlier versions sent)
      ['raft.pipeline', { op: 'put', key: 'p', value: 'v' }, 2, notify.node, notify.id, notify.creation, 0],
      [
        'raft.pipeline',
        { op: 'put', key: 'p', value: 'v' },
        'd',
        notify.node,
        notify.id,
        notify.creation,
        1,
        'p-2',
      ],
    ];
    const rnd = seeded(Number(process.env.FUZZ_SEED ?? 7));
    let answered = 0;
    let timedOut = 0;
    for (let i = 0; i < 1000; i += 50) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < i + 50; j++) {
        node.cast(server, mutate(casts[j % casts.length]!, rnd));
        const request = mutate(calls[j % calls.length]!, rnd) as Record<string, unknown>;
        // a membership call must keep its invalid id
        if (
          request.type === 'raft.join' ||
          request.type === 'raft.leave' ||
          request.type === 'raft.transfer'
        ) {
          request.id = 'n9';
          request.to = 'n9';
        }
        batch.push(
          node.call(server, request, { timeoutMs: 500 }).then(
            () => answered++,
            () => timedOut++,
          ),
        );
      }
      await Promise.all(batch);
    }
    expect(crashes).toEqual([]);
    expect(node.whereis('kv')).toEqual(server);
    expect(answered).toBeGreaterThan(500);
    expect(answered + timedOut).toBe(1000);
    const after = await processCommand(s1, c.ids[0]!, { op: 'put', key: 'after', value: '2' });
    expect(after.index).toBeGreaterThan(1);
  }, 60_000);

  it('a malformed machine effect is logged and ignored, not replayed into a crash loop', async () => {
    const logs: string[] = [];
    type Cmd = { readonly effect: unknown };
    const machine: MachineModule<Cmd, number, number> = {
      init: () => 0,
      apply: (_meta, cmd, state) => [state + 1, state + 1, [cmd.effect as MachineEffect]],
    };
    cluster = await localCluster(3, {
      machines: { kv: { machine } },
      log: (_level, message) => logs.push(message),
    });
    const c = cluster;
    const s1 = c.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, c.ids);
    const leader = await awaitLeader(s1, c.ids, { timeoutMs: 10_000 });
    const node = c.nodes.find((n) => n.name === leader.node)!;
    const server = node.whereis('kv')!;
    for (const effect of [
      { type: 'monitor', kind: 'process', pid: 'not a pid' },
      { type: 'send_msg', to: 42, msg: 'x' },
      { type: 'no_such_effect' },
    ]) {
      await processCommand(s1, leader, { effect });
    }
    const last = await processCommand(s1, leader, {
      effect: { type: 'checkpoint', index: 1, machineState: 0 },
    });
    expect(last.reply).toBe(4);
    expect(node.whereis('kv')).toEqual(server);
    // the unknown type throws in the shell and is logged; the others are refused by the runtime quietly
    expect(logs.some((l) => /ignored a machine effect no_such_effect/.test(l))).toBe(true);
  });
});
