import type { SnapshotMeta } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import { defineMachine, initServer, type Machine, type MachineModule, startServer } from '../src/index.ts';
import { A, ackAll, ae, B, C, config, entry, feed, fresh, from, type Srv, types } from './helpers.ts';

/** Releases the cursor at every applied command: snapshots as often as possible. */
const releasing = defineMachine<number, number, number>({
  init: () => 0,
  apply: (meta, n, s) => [s + n, s + n, [{ type: 'release_cursor', index: meta.index, machineState: s + n }]],
});

function leaderWith(machine: MachineModule<number, number, number>): Srv {
  const r = startServer(
    initServer(config(A, [A, B, C], { machine: machine as Machine<unknown, unknown, unknown> }), {
      currentTerm: 0,
      votedFor: null,
      snapshot: null,
      entries: [],
    }),
  );
  const a: Srv = { role: r.role, state: r.state, effects: r.effects };
  feed(a, { type: 'election.timeout' });
  feed(a, { type: 'pre_vote.reply', from: B, term: 1, granted: true });
  feed(a, { type: 'vote.reply', from: B, term: 1, granted: true });
  return a;
}

const meta = (index: number, term = 1): SnapshotMeta => ({
  index,
  term,
  cluster: [A, B, C].map((id) => ({ id, membership: 'voter' as const })),
  machineVersion: 0,
});

describe('snapshots', () => {
  it('release_cursor writes a snapshot; once durable the log prefix goes', () => {
    const a = leaderWith(releasing);
    ackAll(a);
    feed(a, { type: 'command', command: 5, reply: { mode: 'noreply' } });
    const fx = ackAll(a);
    expect(fx).toContainEqual({ type: 'snapshot.write', meta: meta(2), machineState: 5 });
    expect(a.state.snapshotWriting).toEqual(meta(2));
    const w = feed(a, { type: 'snapshot.written', meta: meta(2) });
    expect(w.effects).toEqual([{ type: 'log.truncate_prefix', upTo: 2 }]);
    expect(w.state.log).toMatchObject({ snapshotIndex: 2, snapshotTerm: 1, length: 0 });
    expect(w.state.snapshot).toEqual(meta(2));
  });

  it('a follower behind the snapshot is sent the snapshot, then resumes from it', () => {
    const a = leaderWith(releasing);
    ackAll(a, [B]);
    feed(a, { type: 'command', command: 5, reply: { mode: 'noreply' } });
    ackAll(a, [B]);
    feed(a, { type: 'snapshot.written', meta: meta(2) });
    // c rejects: it has nothing. The entries it needs are gone: send the snapshot.
    const r = feed(a, {
      type: 'append_entries.reply',
      from: C,
      term: 1,
      success: false,
      matchIndex: 0,
      lastIndex: 0,
      lastTerm: 0,
      round: 0,
    });
    expect(r.effects).toContainEqual({ type: 'snapshot.send', to: C, term: 1, meta: meta(2) });
    // While the transfer runs, no AppendEntries go to c.
    const t = feed(a, { type: 'tick', nowMs: 1 });
    expect(types(t.effects)).not.toContain('send_rpc:append_entries.request>c');
    const done = feed(a, {
      type: 'install_snapshot.reply',
      from: C,
      term: 1,
      meta: meta(2),
      chunk: -1,
      done: true,
    });
    expect(done.state.leader!.peers.find((p) => p.key === 'c@c')).toMatchObject({
      matchIndex: 2,
      nextIndex: 3,
    });
  });

  it('a follower takes chunks in order, installs, and acknowledges once installed', () => {
    const r0 = fresh(C);
    const c: Srv = { role: r0.role, state: r0.state, effects: r0.effects };
    const chunk = (n: number, last: boolean, data: string) =>
      feed(c, { type: 'install_snapshot.request', from: A, term: 1, meta: meta(2), chunk: n, last, data });
    const first = chunk(0, false, '{"x":');
    expect(first.role).toBe('receive_snapshot');
    expect(first.effects.filter((e) => e.type !== 'meta.persist' && e.type !== 'timer.set')).toEqual([
      { type: 'snapshot.chunk.write', meta: meta(2), chunk: 0, last: false, data: '{"x":' },
      {
        type: 'send_rpc',
        to: A,
        rpc: { type: 'install_snapshot.reply', from: C, term: 1, meta: meta(2), chunk: 0, done: false },
      },
    ]);
    // Out of order: dropped.
    expect(types(chunk(2, true, '?').effects)).toEqual(['timer.set']);
    const last = chunk(1, true, '1}');
    expect(types(last.effects)).toEqual(['timer.set', 'snapshot.chunk.write', 'snapshot.install']);
    const inst = feed(c, { type: 'snapshot.installed', meta: meta(2), machineState: 7 });
    expect(inst.role).toBe('follower');
    expect(inst.state).toMatchObject({
      commitIndex: 2,
      lastApplied: 2,
      machineState: 7,
      lastWritten: { index: 2, term: 1 },
    });
    expect(inst.state.log).toMatchObject({ snapshotIndex: 2, snapshotTerm: 1, length: 0 });
    expect(inst.effects).toEqual([
      {
        type: 'send_rpc',
        to: A,
        rpc: { type: 'install_snapshot.reply', from: C, term: 1, meta: meta(2), chunk: -1, done: true },
      },
    ]);
    // And it continues from the snapshot.
    const next = feed(c, ae({ prevLogIndex: 2, prevLogTerm: 1, entries: [entry(3, 1, 1)], leaderCommit: 3 }));
    expect(next.state.commitIndex).toBe(3);
    expect(next.state.machineState).toBe(8);
  });

  it('recovers from a snapshot plus the entries after it', () => {
    const r = fresh(B, undefined, {
      currentTerm: 1,
      votedFor: null,
      snapshot: { meta: meta(2), machineState: 10 },
      entries: [entry(3, 1, 5)],
    });
    expect(r.state).toMatchObject({
      commitIndex: 2,
      lastApplied: 2,
      machineState: 10,
      lastWritten: { index: 3, term: 1 },
    });
    expect(r.state.log).toMatchObject({ snapshotIndex: 2, length: 1 });
    void from;
  });
});
