/**
 * Quiescence: an idle group's leader sends one `quiesce` heartbeat and stops ticking; followers
 * stop their election timers and watch the leader's process; work, vote requests and monitors
 * going down wake them.
 */
import type { AppendEntriesRequest } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import {
  A,
  ack,
  ackAll,
  ae,
  B,
  C,
  electedLeader,
  empty,
  entry,
  feed,
  fresh,
  from,
  type Srv,
  sends,
  types,
} from './helpers.ts';

const QUIESCE = { quiesceAfterTicks: 2 };

/** `a` elected leader of [a, b, c] with quiescence on, its noop written and acknowledged everywhere. */
function idleLeader(): Srv {
  const a = electedLeader([A, B, C], QUIESCE);
  ackAll(a);
  return a;
}

/** One tick, with both followers answering its heartbeats at their unchanged match. */
function tickAndAnswer(a: Srv, nowMs: number): ReturnType<typeof feed> {
  const r = feed(a, { type: 'tick', nowMs });
  for (const f of [B, C]) feed(a, ack(f, 1));
  return r;
}

function quiesceRequest(p: Partial<AppendEntriesRequest> = {}): AppendEntriesRequest {
  return ae({ prevLogIndex: 1, prevLogTerm: 1, leaderCommit: 1, quiesce: true, ...p });
}

/** `b`, a follower of `a` in term 1 holding and having committed the noop at index 1. */
function caughtUpFollower(): Srv {
  const noop = { type: 'noop', index: 1, term: 1, machineVersion: 0 } as const;
  const r = fresh(B, [A, B, C], { currentTerm: 1, votedFor: A, snapshot: null, entries: [noop] }, QUIESCE);
  const b: Srv = { role: r.role, state: r.state, effects: r.effects };
  feed(b, { ...quiesceRequest(), quiesce: undefined } as unknown as AppendEntriesRequest);
  expect(b.state.commitIndex).toBe(1);
  return b;
}

describe('quiescence (idle groups sleep)', () => {
  it('the leader of an idle group sends one quiesce heartbeat after quiesceAfterTicks idle ticks, then nothing', () => {
    const a = idleLeader();
    const first = tickAndAnswer(a, 100);
    expect(first.state.quiesced).toBe(false);
    expect(types(first.effects)).toEqual([
      'send_rpc:append_entries.request>b',
      'send_rpc:append_entries.request>c',
    ]);
    const second = feed(a, { type: 'tick', nowMs: 150 });
    expect(second.state.quiesced).toBe(true);
    expect(second.effects).toEqual([
      { type: 'send_rpc', to: B, rpc: quiesceRequest() },
      { type: 'send_rpc', to: C, rpc: quiesceRequest() },
      { type: 'monitor.peers', peers: [B, C] },
    ]);
    // a stray tick (queued before the shell stopped ticking) changes nothing
    const stray = feed(a, { type: 'tick', nowMs: 200 });
    expect(stray.effects).toEqual([]);
    expect(stray.state.quiesced).toBe(true);
  });

  it('does not quiesce while anything is outstanding: an unacknowledged entry, a silent follower, a machine tick', () => {
    const a = idleLeader();
    feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } });
    feed(a, { type: 'log.written', upTo: 2, term: 1 });
    for (let t = 1; t <= 4; t++) {
      feed(a, { type: 'tick', nowMs: t * 50 });
      feed(a, ack(B, 2));
      // c never acknowledges index 2
    }
    expect(a.state.quiesced).toBe(false);
    expect(a.state.leader?.idleTicks).toBe(0);

    const silent = idleLeader();
    for (let t = 1; t <= 4; t++) {
      feed(silent, { type: 'tick', nowMs: t * 50 });
      feed(silent, ack(B, 1));
    }
    expect(silent.state.quiesced).toBe(false);

    const ticking = fresh(A, [A], empty, {
      ...QUIESCE,
      machine: { init: () => 0, apply: (_m, _c, s) => [s, null], tick: () => [] },
    });
    const solo: Srv = { role: ticking.role, state: ticking.state, effects: ticking.effects };
    feed(solo, { type: 'election.timeout' });
    feed(solo, { type: 'log.written', upTo: 1, term: 1 });
    for (let t = 1; t <= 4; t++) feed(solo, { type: 'tick', nowMs: t * 50 });
    expect(solo.role).toBe('leader');
    expect(solo.state.quiesced).toBe(false);
  });

  it('a command wakes the leader: it stops watching, starts a fresh check-quorum window and replicates', () => {
    const a = idleLeader();
    tickAndAnswer(a, 100);
    feed(a, { type: 'tick', nowMs: 150 });
    expect(a.state.quiesced).toBe(true);
    const r = feed(a, { type: 'command', command: 5, reply: { mode: 'await_consensus', from: from(1) } });
    expect(r.state.quiesced).toBe(false);
    expect(r.state.leader?.ticks).toBe(0);
    expect(r.state.leader?.peers.every((p) => !p.active)).toBe(true);
    expect(types(r.effects)).toEqual([
      'monitor.peers',
      'log.append',
      'send_rpc:append_entries.request>b',
      'send_rpc:append_entries.request>c',
    ]);
    expect(r.effects[0]).toEqual({ type: 'monitor.peers', peers: [] });
    for (const s of sends(r.effects)) expect((s.rpc as AppendEntriesRequest).quiesce).toBeUndefined();
  });

  it('a vote request or a watched member going down wakes the leader, which heartbeats everyone at once', () => {
    for (const msg of [
      { type: 'pre_vote.request', from: C, term: 2, lastLogIndex: 1, lastLogTerm: 1 } as const,
      { type: 'peer.down', id: C } as const,
    ]) {
      const a = idleLeader();
      tickAndAnswer(a, 100);
      feed(a, { type: 'tick', nowMs: 150 });
      const r = feed(a, msg);
      expect(r.state.quiesced).toBe(false);
      expect(r.role).toBe('leader');
      const heartbeats = sends(r.effects, 'append_entries.request');
      expect(heartbeats.map((h) => h.to)).toEqual(['b', 'c']);
      expect(r.effects[0]).toEqual({ type: 'monitor.peers', peers: [] });
    }
  });

  it('a caught-up follower sleeps on the quiesce heartbeat: acknowledges, cancels its timer, watches the leader', () => {
    const b = caughtUpFollower();
    const r = feed(b, quiesceRequest());
    expect(r.state.quiesced).toBe(true);
    expect(r.effects).toEqual([
      { type: 'timer.set', timer: 'election', minMs: 150, maxMs: 300 },
      {
        type: 'send_rpc',
        to: A,
        rpc: {
          type: 'append_entries.reply',
          from: B,
          term: 1,
          success: true,
          matchIndex: 1,
          lastIndex: 1,
          lastTerm: 1,
          round: 0,
        },
      },
      { type: 'timer.cancel', timer: 'election' },
      { type: 'monitor.leader', leader: A },
    ]);
    // a repeated quiesce heartbeat keeps the same watch
    const again = feed(b, quiesceRequest());
    expect(types(again.effects)).toEqual(['timer.set', 'send_rpc:append_entries.reply>a', 'timer.cancel']);
  });

  it('a follower that lags or has not learned the commit index stays awake', () => {
    const behind = caughtUpFollower();
    const r = feed(behind, quiesceRequest({ prevLogIndex: 2, prevLogTerm: 1, leaderCommit: 2 }));
    expect(r.state.quiesced).toBe(false);
    expect(types(r.effects)).not.toContain('timer.cancel');
    const uncommitted = caughtUpFollower();
    feed(uncommitted, {
      ...quiesceRequest({ leaderCommit: 1, prevLogIndex: 1 }),
      entries: [entry(2, 1)],
      quiesce: undefined,
    } as unknown as AppendEntriesRequest);
    const r2 = feed(uncommitted, quiesceRequest({ prevLogIndex: 2, leaderCommit: 2 }));
    // index 2 is not yet written here: matched, but the commit index it learns is 2, so it may sleep
    expect(r2.state.commitIndex).toBe(2);
    expect(r2.state.quiesced).toBe(true);
  });

  it('the watched leader going down wakes the follower, which re-arms its election timer and keeps its leader until it fires', () => {
    const b = caughtUpFollower();
    feed(b, quiesceRequest());
    const r = feed(b, { type: 'leader.down' });
    expect(r.state.quiesced).toBe(false);
    expect(r.state.leaderId).toEqual(A);
    expect(r.effects).toEqual([
      { type: 'monitor.leader', leader: null },
      { type: 'timer.set', timer: 'election', minMs: 150, maxMs: 300 },
    ]);
    const timeout = feed(b, { type: 'election.timeout' });
    expect(timeout.role).toBe('pre_vote');
  });

  it('any ordinary AppendEntries wakes a sleeping follower; a stale leader changes nothing', () => {
    const b = caughtUpFollower();
    feed(b, quiesceRequest());
    const stale = feed(b, { ...quiesceRequest(), term: 0 });
    expect(stale.state.quiesced).toBe(true);
    expect(types(stale.effects)).toEqual(['send_rpc:append_entries.reply>a']);
    const r = feed(b, {
      ...quiesceRequest({ leaderCommit: 1 }),
      entries: [entry(2, 1)],
      quiesce: undefined,
    } as unknown as AppendEntriesRequest);
    expect(r.state.quiesced).toBe(false);
    // the new entry is acknowledged once written
    expect(types(r.effects)).toEqual(['timer.set', 'log.append', 'monitor.leader']);
    expect(r.effects.at(-1)).toEqual({ type: 'monitor.leader', leader: null });
  });

  it('a (pre-)vote request from the leader it sleeps on ends its lease and wakes it (seed 1700368)', () => {
    // The leader sent a quiesce heartbeat and restarted; the heartbeat arrived after, so b watches
    // the restarted server (alive, a follower now). Its pre-vote says it no longer leads: b stops
    // watching, re-arms its timer and grants it, instead of refusing it (and everyone) for good.
    const b = caughtUpFollower();
    feed(b, quiesceRequest());
    expect(b.state.quiesced).toBe(true);
    const r = feed(b, { type: 'pre_vote.request', from: A, term: 2, lastLogIndex: 1, lastLogTerm: 1 });
    expect(r.state.quiesced).toBe(false);
    expect(r.state.leaderId).toBeNull();
    expect(r.effects).toContainEqual({ type: 'monitor.leader', leader: null });
    expect(r.effects).toContainEqual({ type: 'timer.set', timer: 'election', minMs: 150, maxMs: 300 });
    expect(sends(r.effects, 'pre_vote.reply')).toMatchObject([{ to: 'a', rpc: { granted: true, term: 2 } }]);
    // a pre-vote from another server still meets the lease of a follower that has a leader
    const d = caughtUpFollower();
    feed(d, quiesceRequest());
    const other = feed(d, { type: 'pre_vote.request', from: C, term: 2, lastLogIndex: 1, lastLogTerm: 1 });
    expect(other.state.quiesced).toBe(true);
    expect(sends(other.effects, 'pre_vote.reply')).toMatchObject([{ to: 'c', rpc: { granted: false } }]);
  });

  it('a sleeping follower that starts an election (trigger_election) stops watching first', () => {
    const b = caughtUpFollower();
    feed(b, quiesceRequest());
    const r = feed(b, { type: 'trigger_election' });
    expect(r.role).toBe('pre_vote');
    expect(r.state.quiesced).toBe(false);
    expect(r.effects[0]).toEqual({ type: 'monitor.leader', leader: null });
  });

  it('is off by default', () => {
    const r = fresh(A, [A]);
    const a: Srv = { role: r.role, state: r.state, effects: r.effects };
    feed(a, { type: 'election.timeout' });
    feed(a, { type: 'log.written', upTo: 1, term: 1 });
    for (let t = 1; t <= 20; t++) feed(a, { type: 'tick', nowMs: t * 50 });
    expect(a.state.quiesced).toBe(false);
  });
});
