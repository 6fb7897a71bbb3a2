import { describe, expect, it } from 'vitest';
import { handle } from '../src/index.ts';
import {
  A,
  ae,
  B,
  C,
  electedLeader,
  entry,
  feed,
  fresh,
  type Srv,
  sends,
  snapshotOf,
  types,
} from './helpers.ts';

function follower(id = B, recovered?: Parameters<typeof fresh>[2]): Srv {
  const r = fresh(id, undefined, recovered);
  return { role: r.role, state: r.state, effects: r.effects };
}

describe('start and pre-vote', () => {
  it('starts as a follower with its election timer armed', () => {
    const r = fresh(A);
    expect(r.role).toBe('follower');
    expect(r.effects).toEqual([{ type: 'timer.set', timer: 'election', minMs: 150, maxMs: 300 }]);
    expect(r.state.currentTerm).toBe(0);
    expect(r.state.commitIndex).toBe(0);
  });

  it('on election timeout asks for pre-votes at term + 1 without changing its term', () => {
    const a = follower(A);
    const r = feed(a, { type: 'election.timeout' });
    expect(r.role).toBe('pre_vote');
    expect(r.state.currentTerm).toBe(0);
    expect(r.state.votedFor).toBeNull();
    expect(r.effects).toEqual([
      { type: 'timer.set', timer: 'election', minMs: 150, maxMs: 300 },
      {
        type: 'send_rpc',
        to: B,
        rpc: { type: 'pre_vote.request', from: A, term: 1, lastLogIndex: 0, lastLogTerm: 0 },
      },
      {
        type: 'send_rpc',
        to: C,
        rpc: { type: 'pre_vote.request', from: A, term: 1, lastLogIndex: 0, lastLogTerm: 0 },
      },
    ]);
  });

  it('becomes candidate on a pre-vote majority: term and vote persisted before vote requests leave', () => {
    const a = follower(A);
    feed(a, { type: 'election.timeout' });
    const r = feed(a, { type: 'pre_vote.reply', from: B, term: 1, granted: true });
    expect(r.role).toBe('candidate');
    expect(r.state.currentTerm).toBe(1);
    expect(r.state.votedFor).toEqual(A);
    expect(r.effects).toEqual([
      { type: 'meta.persist', currentTerm: 1, votedFor: A },
      { type: 'timer.set', timer: 'election', minMs: 150, maxMs: 300 },
      {
        type: 'send_rpc',
        to: B,
        rpc: { type: 'vote.request', from: A, term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false },
      },
      {
        type: 'send_rpc',
        to: C,
        rpc: { type: 'vote.request', from: A, term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false },
      },
    ]);
  });

  it('a refused pre-vote with a higher term makes the pre-candidate adopt it', () => {
    const a = follower(A);
    feed(a, { type: 'election.timeout' });
    const r = feed(a, { type: 'pre_vote.reply', from: B, term: 5, granted: false });
    expect(r.role).toBe('follower');
    expect(r.state.currentTerm).toBe(5);
    expect(types(r.effects)).toEqual(['meta.persist', 'timer.set']);
  });

  it('grants a pre-vote only without a leader, for a higher term and an up-to-date log', () => {
    const b = follower(B, { currentTerm: 2, votedFor: null, snapshot: null, entries: [entry(1, 2)] });
    const ask = (term: number, lastLogIndex: number, lastLogTerm: number) =>
      sends(
        handle(b.role, b.state, { type: 'pre_vote.request', from: A, term, lastLogIndex, lastLogTerm })
          .effects,
      )[0]!.rpc;
    expect(ask(3, 1, 2)).toEqual({ type: 'pre_vote.reply', from: B, term: 3, granted: true });
    expect(ask(3, 0, 0)).toEqual({ type: 'pre_vote.reply', from: B, term: 2, granted: false });
    expect(ask(2, 5, 2)).toEqual({ type: 'pre_vote.reply', from: B, term: 2, granted: false });
    // Pre-votes change nothing on the voter.
    const before = snapshotOf(b.state);
    handle(b.role, b.state, { type: 'pre_vote.request', from: A, term: 3, lastLogIndex: 1, lastLogTerm: 2 });
    expect(snapshotOf(b.state)).toBe(before);
  });

  it('a follower hearing from a leader refuses pre-votes (leader lease)', () => {
    const b = follower(B);
    feed(b, ae({}));
    const r = feed(b, { type: 'pre_vote.request', from: C, term: 2, lastLogIndex: 5, lastLogTerm: 1 });
    expect(sends(r.effects)[0]!.rpc).toEqual({ type: 'pre_vote.reply', from: B, term: 1, granted: false });
    // ...until its own election timer fires: the leader is presumed gone.
    feed(b, { type: 'election.timeout' });
    const r2 = handle(b.role, b.state, {
      type: 'pre_vote.request',
      from: C,
      term: 2,
      lastLogIndex: 5,
      lastLogTerm: 1,
    });
    expect(sends(r2.effects)[0]!.rpc).toMatchObject({ granted: true });
  });
});

describe('votes (§5.2, §5.4.1)', () => {
  it('a higher term is persisted with the vote before the vote is sent', () => {
    const b = follower(B);
    const r = feed(b, {
      type: 'vote.request',
      from: A,
      term: 3,
      lastLogIndex: 0,
      lastLogTerm: 0,
      transfer: false,
    });
    expect(r.role).toBe('follower');
    expect(r.state.currentTerm).toBe(3);
    expect(r.state.votedFor).toEqual(A);
    // One coalesced barrier carries both the term and the vote.
    expect(r.effects).toEqual([
      { type: 'meta.persist', currentTerm: 3, votedFor: A },
      { type: 'timer.set', timer: 'election', minMs: 150, maxMs: 300 },
      { type: 'send_rpc', to: A, rpc: { type: 'vote.reply', from: B, term: 3, granted: true } },
    ]);
  });

  it('votes at most once per term', () => {
    const b = follower(B);
    feed(b, { type: 'vote.request', from: A, term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false });
    const again = feed(b, {
      type: 'vote.request',
      from: A,
      term: 1,
      lastLogIndex: 0,
      lastLogTerm: 0,
      transfer: false,
    });
    expect(sends(again.effects)[0]!.rpc).toMatchObject({ granted: true });
    const other = feed(b, {
      type: 'vote.request',
      from: C,
      term: 1,
      lastLogIndex: 9,
      lastLogTerm: 1,
      transfer: false,
    });
    expect(other.effects).toEqual([
      { type: 'send_rpc', to: C, rpc: { type: 'vote.reply', from: B, term: 1, granted: false } },
    ]);
  });

  it('refuses a candidate whose log is less up to date, but still adopts its term', () => {
    const b = follower(B, {
      currentTerm: 2,
      votedFor: null,
      snapshot: null,
      entries: [entry(1, 1), entry(2, 2)],
    });
    const lowerTerm = handle(b.role, b.state, {
      type: 'vote.request',
      from: A,
      term: 3,
      lastLogIndex: 5,
      lastLogTerm: 1,
      transfer: false,
    });
    expect(lowerTerm.state.currentTerm).toBe(3);
    expect(lowerTerm.state.votedFor).toBeNull();
    expect(types(lowerTerm.effects)).toEqual(['meta.persist', 'send_rpc:vote.reply>a']);
    expect(sends(lowerTerm.effects)[0]!.rpc).toMatchObject({ granted: false, term: 3 });
    const shorter = handle(b.role, b.state, {
      type: 'vote.request',
      from: A,
      term: 3,
      lastLogIndex: 1,
      lastLogTerm: 2,
      transfer: false,
    });
    expect(sends(shorter.effects)[0]!.rpc).toMatchObject({ granted: false });
  });

  it('refuses stale terms', () => {
    const b = follower(B, { currentTerm: 4, votedFor: null, snapshot: null, entries: [] });
    const r = feed(b, {
      type: 'vote.request',
      from: A,
      term: 3,
      lastLogIndex: 0,
      lastLogTerm: 0,
      transfer: false,
    });
    expect(r.effects).toEqual([
      { type: 'send_rpc', to: A, rpc: { type: 'vote.reply', from: B, term: 4, granted: false } },
    ]);
  });

  it('a candidate with a majority becomes leader: noop appended, timer cancelled, followers sent it', () => {
    const a = electedLeader();
    expect(a.role).toBe('leader');
    expect(a.state.currentTerm).toBe(1);
    const noop = { type: 'noop' as const, index: 1, term: 1, machineVersion: 0 };
    expect(a.effects).toEqual([
      { type: 'timer.cancel', timer: 'election' },
      { type: 'log.append', entries: [noop] },
      { type: 'hook', hook: 'elected', term: 1 },
      {
        type: 'send_rpc',
        to: B,
        rpc: ae({ entries: [noop] }),
      },
      {
        type: 'send_rpc',
        to: C,
        rpc: ae({ entries: [noop] }),
      },
    ]);
  });

  it('a leader steps down on any message with a higher term', () => {
    const a = electedLeader();
    const r = feed(a, { type: 'vote.reply', from: B, term: 7, granted: false });
    expect(r.role).toBe('follower');
    expect(r.state.currentTerm).toBe(7);
    expect(r.state.leader).toBeNull();
    expect(types(r.effects)).toEqual(['meta.persist', 'timer.set']);
  });

  it('a live leader ignores higher-term vote requests that are not transfers', () => {
    const a = electedLeader();
    const r = feed(a, {
      type: 'vote.request',
      from: C,
      term: 9,
      lastLogIndex: 9,
      lastLogTerm: 9,
      transfer: false,
    });
    expect(r.role).toBe('leader');
    expect(r.state.currentTerm).toBe(1);
    const t = feed(a, {
      type: 'vote.request',
      from: C,
      term: 9,
      lastLogIndex: 9,
      lastLogTerm: 9,
      transfer: true,
    });
    expect(t.role).toBe('follower');
    expect(t.state.votedFor).toEqual(C);
  });
});

describe('check-quorum', () => {
  it('a leader that heard from no majority for an election timeout steps down', () => {
    const a = electedLeader();
    for (let i = 0; i < 2; i++) expect(feed(a, { type: 'tick', nowMs: i }).role).toBe('leader');
    const r = feed(a, { type: 'tick', nowMs: 3 });
    expect(r.role).toBe('follower');
    expect(r.state.leaderId).toBeNull();
    expect(r.state.currentTerm).toBe(1);
  });

  it('one live follower is a majority of three with the leader', () => {
    const a = electedLeader();
    for (let i = 0; i < 9; i++) {
      feed(a, {
        type: 'append_entries.reply',
        from: B,
        term: 1,
        success: true,
        matchIndex: 0,
        lastIndex: 0,
        lastTerm: 0,
        round: 0,
      });
      expect(feed(a, { type: 'tick', nowMs: i }).role).toBe('leader');
    }
  });
});

describe('purity', () => {
  it('never mutates the input state', () => {
    const a = electedLeader();
    const before = snapshotOf(a.state);
    const s0 = a.state;
    handle('leader', s0, { type: 'command', command: 5, reply: { mode: 'noreply' } });
    handle('leader', s0, { type: 'tick', nowMs: 10 });
    handle('leader', s0, { type: 'vote.reply', from: B, term: 9, granted: false });
    expect(snapshotOf(s0)).toBe(before);
  });

  it('branches of one state append independently (structural sharing)', () => {
    const a = electedLeader();
    const s0 = a.state;
    const x = handle('leader', s0, { type: 'command', command: 1, reply: { mode: 'noreply' } }).state;
    const y = handle('leader', s0, { type: 'command', command: 2, reply: { mode: 'noreply' } }).state;
    expect(x.log.entries[x.log.length - 1]).toMatchObject({ command: 1 });
    expect(y.log.entries[y.log.length - 1]).toMatchObject({ command: 2 });
    expect(s0.log.length).toBe(1);
  });
});
