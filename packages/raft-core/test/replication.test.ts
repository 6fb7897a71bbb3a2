import type { AppendEntriesReply, AppendEntriesRequest } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import { defineMachine, handle, type Machine } from '../src/index.ts';
import {
  A,
  ack,
  ackAll,
  ae,
  B,
  C,
  electedLeader,
  entry,
  feed,
  fresh,
  from,
  type Srv,
  sends,
  types,
} from './helpers.ts';

const pid = { node: 'client', id: 7, creation: 1 };

function follower(recovered?: Parameters<typeof fresh>[2]): Srv {
  const r = fresh(B, undefined, recovered);
  return { role: r.role, state: r.state, effects: r.effects };
}

describe('follower AppendEntries (§5.3)', () => {
  it('appends, asks the writer to persist, and acknowledges only what is written', () => {
    const b = follower();
    const r = feed(b, ae({ entries: [entry(1, 1), entry(2, 1)], leaderCommit: 0, round: 3 }));
    expect(r.role).toBe('follower');
    expect(r.state.leaderId).toEqual(A);
    expect(r.state.currentTerm).toBe(1);
    // no reply on receipt: the acknowledgement waits for the write
    expect(r.effects).toEqual([
      { type: 'meta.persist', currentTerm: 1, votedFor: null },
      { type: 'timer.set', timer: 'election', minMs: 150, maxMs: 300 },
      { type: 'log.append', entries: [entry(1, 1), entry(2, 1)] },
    ]);
    // ... and carries the heartbeat round received with the entries (read-index confirmation)
    const w = feed(b, { type: 'log.written', upTo: 2, term: 1 });
    expect(w.effects).toEqual([{ type: 'send_rpc', to: A, rpc: ack(B, 2, 3) }]);
    // a request that brings nothing new is answered at once, durable or not
    feed(b, ae({ prevLogIndex: 2, prevLogTerm: 1, entries: [entry(3, 1)], round: 4 }));
    const again = feed(b, ae({ prevLogIndex: 2, prevLogTerm: 1, entries: [entry(3, 1)], round: 5 }));
    expect(again.effects).toEqual([
      { type: 'timer.set', timer: 'election', minMs: 150, maxMs: 300 },
      { type: 'send_rpc', to: A, rpc: { ...ack(B, 2, 5), lastIndex: 3 } },
    ]);
  });

  it('forgets the round of an earlier term: a new leader is never answered with its predecessor round', () => {
    const b = follower();
    feed(b, ae({ entries: [entry(1, 1)], round: 9 }));
    feed(b, ae({ term: 2, prevLogIndex: 1, prevLogTerm: 1, entries: [entry(2, 2)], round: 1 }));
    const w = feed(b, { type: 'log.written', upTo: 2, term: 2 });
    const reply = w.effects.find((e) => e.type === 'send_rpc');
    expect(reply).toMatchObject({ rpc: { term: 2, matchIndex: 2, round: 1 } });
  });

  it('rejects a request whose previous entry does not match, hinting where its log ends', () => {
    const b = follower({ currentTerm: 1, votedFor: null, snapshot: null, entries: [entry(1, 1)] });
    const r = feed(b, ae({ prevLogIndex: 5, prevLogTerm: 1, entries: [entry(6, 1)] }));
    expect(r.state.log.length).toBe(1);
    expect(sends(r.effects)[0]!.rpc).toEqual({
      type: 'append_entries.reply',
      from: B,
      term: 1,
      success: false,
      matchIndex: 0,
      lastIndex: 1,
      lastTerm: 1,
      round: 0,
    });
  });

  it('rejects stale terms without changing anything', () => {
    const b = follower({ currentTerm: 3, votedFor: null, snapshot: null, entries: [] });
    const r = feed(b, ae({ term: 2 }));
    expect(r.state.currentTerm).toBe(3);
    expect(r.state.leaderId).toBeNull();
    expect(sends(r.effects)[0]!.rpc).toMatchObject({ success: false, term: 3 });
  });

  it('truncates a conflicting uncommitted suffix atomically with the append', () => {
    const b = follower({
      currentTerm: 2,
      votedFor: null,
      snapshot: null,
      entries: [entry(1, 1), entry(2, 2), entry(3, 2)],
    });
    const r = feed(b, ae({ term: 3, prevLogIndex: 1, prevLogTerm: 1, entries: [entry(2, 3, 10)] }));
    expect(r.state.log.length).toBe(2);
    expect(r.state.log.entries[1]).toEqual(entry(2, 3, 10));
    expect(r.state.lastWritten).toEqual({ index: 1, term: 1 });
    expect(r.effects).toContainEqual({ type: 'log.append', entries: [entry(2, 3, 10)], truncateFrom: 2 });
    // A confirmation for the discarded branch is ignored; the new one counts.
    expect(feed(b, { type: 'log.written', upTo: 3, term: 2 }).state.lastWritten).toEqual({
      index: 1,
      term: 1,
    });
    expect(feed(b, { type: 'log.written', upTo: 2, term: 3 }).state.lastWritten).toEqual({
      index: 2,
      term: 3,
    });
  });

  it('skips entries it already has (duplicates and reordering are harmless)', () => {
    const b = follower({
      currentTerm: 1,
      votedFor: null,
      snapshot: null,
      entries: [entry(1, 1), entry(2, 1)],
    });
    const r = feed(b, ae({ entries: [entry(1, 1), entry(2, 1)], leaderCommit: 2 }));
    expect(types(r.effects)).not.toContain('log.append');
    expect(r.state.commitIndex).toBe(2);
    expect(r.state.lastApplied).toBe(2);
    expect(r.state.machineState).toBe(2);
  });

  it('commits no further than what it verified against this leader', () => {
    const b = follower({
      currentTerm: 1,
      votedFor: null,
      snapshot: null,
      entries: [entry(1, 1), entry(2, 1), entry(3, 1)],
    });
    const r = feed(b, ae({ prevLogIndex: 1, prevLogTerm: 1, leaderCommit: 3 }));
    expect(r.state.commitIndex).toBe(1);
  });
});

describe('leader replication and commitment', () => {
  it('pipelines without waiting for its own write, and commits on a written majority', () => {
    const a = electedLeader();
    const r = feed(a, { type: 'command', command: 5, reply: { mode: 'await_consensus', from: from(1) } });
    expect(types(r.effects)).toEqual([
      'log.append',
      'send_rpc:append_entries.request>b',
      'send_rpc:append_entries.request>c',
    ]);
    // A follower's ack alone is not a majority while our own write is pending.
    feed(a, ack(B, 2));
    expect(a.state.commitIndex).toBe(0);
    const w = feed(a, { type: 'log.written', upTo: 2, term: 1 });
    expect(w.state.commitIndex).toBe(2);
    expect(w.state.machineState).toBe(5);
    expect(w.effects).toEqual([
      { type: 'hook', hook: 'command_committed', index: 2, count: 2 },
      { type: 'reply', to: from(1), reply: { type: 'applied', index: 2, term: 1, reply: 5, leader: A } },
    ]);
  });

  it('respects the in-flight window and batch size', () => {
    const a = electedLeader();
    for (let i = 0; i < 40; i++) feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } });
    const peer = a.state.leader!.peers[0]!;
    expect(peer.inFlight).toBe(2);
    // noop + first batch sent; at most 16 entries per request.
    const b = handle(a.role, a.state, ack(B, 1));
    const sent = sends(b.effects, 'append_entries.request');
    expect(sent).toHaveLength(1);
    expect((sent[0]!.rpc as AppendEntriesRequest).entries.length).toBe(16);
  });

  it('empties the in-flight window when one reply shows that everything sent arrived', () => {
    const a = electedLeader();
    for (let i = 0; i < 40; i++) feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } });
    const peer = a.state.leader!.peers[0]!;
    expect(peer.inFlight).toBe(2);
    // one durable write on the follower covered both requests: one reply answers them
    const b = handle(a.role, a.state, {
      ...(ack(B, 1) as AppendEntriesReply),
      lastIndex: peer.nextIndex - 1,
    });
    const sent = sends(b.effects, 'append_entries.request');
    expect(sent).toHaveLength(2);
    expect(sent.map((x) => (x.rpc as AppendEntriesRequest).prevLogIndex)).toEqual([
      peer.nextIndex - 1,
      peer.nextIndex + 15,
    ]);
  });

  it('backs off fast to the follower hint on rejection', () => {
    const a = electedLeader();
    for (let i = 0; i < 10; i++) feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } });
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
    const sent = sends(r.effects, 'append_entries.request').filter((s) => s.to === 'c');
    expect(sent[0]!.rpc).toMatchObject({ prevLogIndex: 0, prevLogTerm: 0 });
  });

  it('never commits an entry of an earlier term by counting replicas (Figure 8)', () => {
    // `a` holds entry 2 of term 2 (never committed), is elected in term 4 and appends its noop at 3.
    const r = fresh(A, undefined, {
      currentTerm: 3,
      votedFor: null,
      snapshot: null,
      entries: [entry(1, 1), entry(2, 2)],
    });
    const a: Srv = { role: r.role, state: r.state, effects: r.effects };
    feed(a, { type: 'election.timeout' });
    feed(a, { type: 'pre_vote.reply', from: B, term: 4, granted: true });
    feed(a, { type: 'vote.reply', from: B, term: 4, granted: true });
    expect(a.role).toBe('leader');
    expect(a.state.log.entries[2]).toMatchObject({ type: 'noop', index: 3, term: 4 });
    feed(a, { type: 'log.written', upTo: 3, term: 4 });
    // b and c store entry 2 (a majority has index 2) but not the noop: nothing commits.
    for (const f of [B, C]) {
      feed(a, {
        type: 'append_entries.reply',
        from: f,
        term: 4,
        success: true,
        matchIndex: 2,
        lastIndex: 2,
        lastTerm: 2,
        round: 0,
      });
    }
    expect(a.state.commitIndex).toBe(0);
    // Once a majority stores the current-term noop, everything before it commits with it.
    feed(a, {
      type: 'append_entries.reply',
      from: B,
      term: 4,
      success: true,
      matchIndex: 3,
      lastIndex: 3,
      lastTerm: 4,
      round: 0,
    });
    expect(a.state.commitIndex).toBe(3);
    expect(a.state.machineState).toBe(2);
  });
});

describe('reply modes', () => {
  it('after_log_append answers at once; noreply never', () => {
    const a = electedLeader();
    const r = feed(a, {
      type: 'commands',
      commands: [
        { type: 'command', command: 1, reply: { mode: 'after_log_append', from: from(1) } },
        { type: 'command', command: 1, reply: { mode: 'noreply' } },
      ],
    });
    expect(r.effects.filter((e) => e.type === 'reply')).toEqual([
      { type: 'reply', to: from(1), reply: { type: 'appended', index: 2, term: 1, leader: A } },
    ]);
    expect(r.effects.filter((e) => e.type === 'log.append')).toHaveLength(1);
    expect(ackAll(a).filter((e) => e.type === 'reply')).toEqual([]);
  });

  it('notify batches applied correlations per pid per event', () => {
    const a = electedLeader();
    const other = { node: 'client', id: 8, creation: 1 };
    // the same node and id in a later incarnation is another pid (a batch of its own)
    const reborn = { ...pid, creation: pid.creation + 1 };
    feed(a, {
      type: 'commands',
      commands: [
        { type: 'command', command: 1, reply: { mode: 'notify', to: pid, correlation: 'x' } },
        { type: 'command', command: 2, reply: { mode: 'notify', to: other, correlation: 'y' } },
        { type: 'command', command: 3, reply: { mode: 'notify', to: pid, correlation: 'z' } },
        { type: 'command', command: 4, reply: { mode: 'notify', to: reborn, correlation: 'w' } },
        { type: 'command', command: 5, reply: { mode: 'notify', to: { ...pid }, correlation: 'v' } },
      ],
    });
    const notes = ackAll(a).filter((e) => e.type === 'notify');
    expect(notes).toEqual([
      {
        type: 'notify',
        to: pid,
        applied: [
          ['x', 1],
          ['z', 6],
          ['v', 15],
        ],
      },
      { type: 'notify', to: other, applied: [['y', 3]] },
      { type: 'notify', to: reborn, applied: [['w', 10]] },
    ]);
  });

  it('a follower rejects commands with the leader hint; notify correlations batched', () => {
    const b = follower();
    feed(b, ae({}));
    const r = feed(b, {
      type: 'commands',
      commands: [
        { type: 'command', command: 1, reply: { mode: 'await_consensus', from: from(1) } },
        { type: 'command', command: 1, reply: { mode: 'notify', to: pid, correlation: 1 } },
        { type: 'command', command: 1, reply: { mode: 'notify', to: pid, correlation: 2 } },
        { type: 'command', command: 1, reply: { mode: 'noreply' } },
      ],
    });
    expect(r.effects).toEqual([
      { type: 'reply', to: from(1), reply: { type: 'error', error: 'not_leader', leader: A } },
      { type: 'notify.rejected', to: pid, correlations: [1, 2], error: 'not_leader', leader: A },
    ]);
  });

  it('low-priority commands wait and are flushed in bounded batches', () => {
    const a = electedLeader();
    const low = {
      type: 'command' as const,
      command: 1,
      reply: { mode: 'noreply' as const },
      priority: 'low' as const,
    };
    const r = feed(a, { type: 'commands', commands: [low, low, low, low, low] });
    expect(types(r.effects)).toEqual([]);
    expect(a.state.leader!.lowQueue).toHaveLength(5);
    const t = feed(a, { type: 'tick', nowMs: 1 });
    const appended = t.effects.filter((e) => e.type === 'log.append');
    expect(appended).toHaveLength(1);
    expect(appended[0]!.type === 'log.append' && appended[0]!.entries.length).toBe(2);
    expect(a.state.leader!.lowQueue).toHaveLength(3);
  });

  it('a command that throws is applied as a no-op with an error reply, and the next one applies', () => {
    const a = electedLeader();
    feed(a, { type: 'command', command: 'boom', reply: { mode: 'await_consensus', from: from(1) } });
    feed(a, { type: 'command', command: 4, reply: { mode: 'await_consensus', from: from(2) } });
    const fx = ackAll(a);
    expect(a.state.lastApplied).toBe(3);
    expect(a.state.machineState).toBe(4);
    expect(fx.filter((e) => e.type === 'reply')).toEqual([
      {
        type: 'reply',
        to: from(1),
        reply: { type: 'error', error: 'machine_error', leader: A, message: 'boom' },
      },
      { type: 'reply', to: from(2), reply: { type: 'applied', index: 3, term: 1, reply: 4, leader: A } },
    ]);
  });

  it('an apply that returns no [state, reply] (a command it has no case for) is treated as one that threw', () => {
    // found by fuzzing the server: a KV machine whose switch fell through returned undefined, and
    // the leader crashed on `result[0]`
    const partial = defineMachine<string, number, number>({
      init: () => 0,
      apply: (_meta, cmd, state) =>
        (cmd === 'add'
          ? [state + 1, state + 1]
          : cmd === 'bad-effects'
            ? [state, state, 'nope']
            : undefined) as unknown as [number, number],
    });
    const a = electedLeader([A, B, C], { machine: partial as Machine<unknown, unknown, unknown> });
    feed(a, { type: 'command', command: 'unknown', reply: { mode: 'await_consensus', from: from(1) } });
    feed(a, { type: 'command', command: 'bad-effects', reply: { mode: 'await_consensus', from: from(2) } });
    feed(a, { type: 'command', command: 'add', reply: { mode: 'await_consensus', from: from(3) } });
    const fx = ackAll(a);
    expect(a.state.lastApplied).toBe(4);
    expect(a.state.machineState).toBe(1);
    expect(fx.filter((e) => e.type === 'reply').map((e) => (e as { reply: unknown }).reply)).toEqual([
      {
        type: 'error',
        error: 'machine_error',
        leader: A,
        message: "the machine's apply returned undefined, not [state, reply, effects?]",
      },
      {
        type: 'error',
        error: 'machine_error',
        leader: A,
        message: "the machine's apply returned an array of 3, not [state, reply, effects?]",
      },
      { type: 'applied', index: 4, term: 1, reply: 1, leader: A },
    ]);
  });
});
