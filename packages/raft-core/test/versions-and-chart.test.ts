import { describe, expect, it } from 'vitest';
import { assign, initialTransition, transition } from 'xstate';
import {
  chartTakes,
  defineMachine,
  handle,
  type Machine,
  type MachineModule,
  raftMachine,
  roleChange,
  toModule,
} from '../src/index.ts';
import { A, ae, B, C, config, empty, entry, feed, fresh, type Srv } from './helpers.ts';

function versioned(v: number): MachineModule<number, number, number> {
  const m: MachineModule<number, number, number> = {
    init: () => 0,
    version: () => v,
    // Version 2 doubles what version 1 added.
    whichModule: (at) => (at >= 2 ? { ...m, apply: (_meta, n, s) => [s + 2 * n, s + 2 * n] } : m),
    apply: (_meta, n, s) => [s + n, s + n],
  };
  return m;
}

describe('machine versions', () => {
  it('a new leader appends a noop carrying its machine version', () => {
    const r = fresh(A, undefined, empty, { machine: versioned(2) as Machine<unknown, unknown, unknown> });
    const a: Srv = { role: r.role, state: r.state, effects: r.effects };
    feed(a, { type: 'election.timeout' });
    feed(a, { type: 'pre_vote.reply', from: B, term: 1, granted: true });
    feed(a, { type: 'vote.reply', from: B, term: 1, granted: true });
    expect(a.state.log.entries[0]).toEqual({ type: 'noop', index: 1, term: 1, machineVersion: 2 });
  });

  it('a follower on older code keeps replicating but stops applying at a newer version', () => {
    const r = fresh(B, undefined, empty, { machine: versioned(1) as Machine<unknown, unknown, unknown> });
    const b: Srv = { role: r.role, state: r.state, effects: r.effects };
    const noop = { type: 'noop' as const, index: 2, term: 1, machineVersion: 2 };
    feed(b, ae({ entries: [entry(1, 1, 1), noop, entry(3, 1, 1)], leaderCommit: 3 }));
    expect(b.state.commitIndex).toBe(3);
    expect(b.state.lastApplied).toBe(1);
    expect(b.state.awaitingUpgrade).toBe(2);
    // It still acknowledges what it writes.
    const w = feed(b, { type: 'log.written', upTo: 3, term: 1 });
    expect(w.effects[0]).toMatchObject({
      rpc: { type: 'append_entries.reply', success: true, matchIndex: 3 },
    });
    // Upgraded (restarted with version 2 code), it applies with the version-2 module.
    const up = fresh(
      B,
      undefined,
      { currentTerm: 1, votedFor: null, snapshot: null, entries: b.state.log.entries },
      {
        machine: versioned(2) as Machine<unknown, unknown, unknown>,
      },
    );
    const b2: Srv = { role: up.role, state: up.state, effects: up.effects };
    feed(b2, ae({ prevLogIndex: 3, prevLogTerm: 1, leaderCommit: 3 }));
    expect(b2.state.lastApplied).toBe(3);
    expect(b2.state.machineVersion).toBe(2);
    expect(b2.state.machineState).toBe(1 + 2);
  });

  it('the simple form folds commands and replies with the new state', () => {
    const m = toModule({ simple: (n: number, s: number) => s + n, initial: 10 });
    expect(m.init({ name: 'x', serverId: A })).toBe(10);
    expect(m.apply({ index: 1, term: 1, systemTime: 0, machineVersion: 0 }, 5, 10)).toEqual([15, 15]);
  });
});

describe('statechart', () => {
  it('drives the same core through pure transitions, mirroring the role in its state value', () => {
    const [s0] = initialTransition(raftMachine, { config: config(A), recovered: empty });
    expect(s0.value).toBe('follower');
    expect(s0.context.effects).toEqual([{ type: 'timer.set', timer: 'election', minMs: 150, maxMs: 300 }]);
    const [s1] = transition(raftMachine, s0, { type: 'election.timeout' });
    expect(s1.value).toBe('pre_vote');
    const direct = handle('follower', s0.context.server, { type: 'election.timeout' });
    expect(s1.context.effects).toEqual(direct.effects);
    const [s2] = transition(raftMachine, s1, { type: 'pre_vote.reply', from: B, term: 1, granted: true });
    expect(s2.value).toBe('candidate');
    const [s3] = transition(raftMachine, s2, { type: 'vote.reply', from: C, term: 1, granted: true });
    expect(s3.value).toBe('leader');
    expect(s3.context.effects.map((e) => e.type)).toEqual([
      'timer.cancel',
      'log.append',
      'hook',
      'send_rpc',
      'send_rpc',
    ]);
    // The previous snapshot is untouched.
    expect(s2.context.server.log.length).toBe(0);
    expect(s2.value).toBe('candidate');
  });

  it('takes a role change that handle decided outside it, as the shell drives it', () => {
    const [s0] = initialTransition(raftMachine, { config: config(A), recovered: empty });
    // same role: nothing for the chart
    const kept = handle('follower', s0.context.server, { type: 'tick', nowMs: 1 });
    expect(kept.role).toBe('follower');
    // a role change: the chart adopts the result without running the handler again
    const r = handle('follower', kept.state, { type: 'election.timeout' });
    expect(r.role).toBe('pre_vote');
    const [s1] = transition(raftMachine, s0, roleChange(r));
    expect(s1.value).toBe('pre_vote');
    expect(s1.context.server).toBe(r.state);
    expect(s1.context.effects).toBe(r.effects);
    const r2 = handle('pre_vote', r.state, { type: 'pre_vote.reply', from: B, term: 1, granted: true });
    const [s2] = transition(raftMachine, s1, roleChange(r2));
    expect(s2.value).toBe('candidate');
    const r3 = handle('candidate', r2.state, { type: 'vote.reply', from: C, term: 1, granted: true });
    const [s3] = transition(raftMachine, s2, roleChange(r3));
    expect(s3.value).toBe('leader');
    expect(s3.context.server.currentTerm).toBe(1);
  });

  it('chartTakes picks role changes and the moment a server goes quiet', () => {
    const [s0] = initialTransition(raftMachine, { config: config(A), recovered: empty });
    const state = s0.context.server;
    const same = handle('follower', state, { type: 'tick', nowMs: 1 });
    expect(chartTakes('follower', state, same)).toBe(false);
    expect(chartTakes('follower', state, handle('follower', state, { type: 'election.timeout' }))).toBe(true);
    const quiet = { ...same, state: { ...same.state, quiesced: true } };
    expect(chartTakes('follower', state, quiet)).toBe(true);
    // already quiet: nothing new for the chart
    expect(chartTakes('follower', quiet.state, quiet)).toBe(false);
  });

  it('lets tests swap the handler with provide()', () => {
    const m = raftMachine.provide({
      actions: { handle: assign({ effects: [{ type: 'timer.cancel', timer: 'election' }] }) },
    });
    const [s0] = initialTransition(m, { config: config(A), recovered: empty });
    const [s1] = transition(m, s0, { type: 'tick', nowMs: 1 });
    expect(s1.context.effects).toEqual([{ type: 'timer.cancel', timer: 'election' }]);
    expect(s1.value).toBe('follower');
  });

  it('typed machines keep their types', () => {
    const kv = defineMachine<{ k: string; v: number }, number | null, Record<string, number>>({
      init: () => ({}),
      apply: (_m, c, s) => [{ ...s, [c.k]: c.v }, s[c.k] ?? null],
    });
    const [next, reply] = kv.apply(
      { index: 1, term: 1, systemTime: 0, machineVersion: 0 },
      { k: 'a', v: 1 },
      {},
    );
    expect(next).toEqual({ a: 1 });
    expect(reply).toBeNull();
  });
});

describe('machine tick', () => {
  it('runs on the leader only; its append effects enter the log', async () => {
    const { electedLeader: elected } = await import('./helpers.ts');
    const ticking = defineMachine<number, number, number>({
      init: () => 0,
      apply: (_m, n, s) => [s + n, s + n],
      tick: (now) => [
        { type: 'append', command: now },
        { type: 'send_msg', to: { node: 'x', id: 1, creation: 1 }, msg: 'hi' },
      ],
    });
    const f = fresh(B, undefined, empty, { machine: ticking as Machine<unknown, unknown, unknown> });
    expect(handle(f.role, f.state, { type: 'tick', nowMs: 5 }).effects).toEqual([]);
    const a = elected();
    const withTick = { ...a, state: { ...a.state, cfg: { ...a.state.cfg, machine: toModule(ticking) } } };
    const r = feed(withTick, { type: 'tick', nowMs: 7 });
    expect(r.effects).toContainEqual({
      type: 'machine',
      effect: { type: 'send_msg', to: { node: 'x', id: 1, creation: 1 }, msg: 'hi' },
    });
    expect(r.state.log.entries[r.state.log.length - 1]).toMatchObject({
      type: 'command',
      command: 7,
      systemTime: 7,
    });
  });
});
