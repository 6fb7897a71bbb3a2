import { describe, expect, it } from 'vitest';
import { A, ack, ackAll, ae, B, C, D, electedLeader, feed, fresh, from, type Srv, sends } from './helpers.ts';

const voter = (id: typeof A) => ({ id, membership: 'voter' as const });

describe('membership changes (one at a time)', () => {
  it('refuses a change before the leader committed its noop', () => {
    const a = electedLeader();
    const r = feed(a, { type: 'membership.join', member: voter(D), from: from(1) });
    expect(r.effects).toEqual([
      {
        type: 'reply',
        to: from(1),
        reply: { type: 'error', error: 'cluster_change_not_permitted', leader: A },
      },
    ]);
  });

  it('a join takes effect when appended, a second change waits for the first to commit', () => {
    const a = electedLeader();
    ackAll(a);
    const r = feed(a, { type: 'membership.join', member: voter(D), from: from(1) });
    const cfg = r.state.log.entries[1]!;
    expect(cfg).toMatchObject({
      type: 'config',
      index: 2,
      cluster: [voter(A), voter(B), voter(C), voter(D)],
    });
    expect(r.state.leader!.peers.map((p) => p.key)).toEqual(['b@b', 'c@c', 'd@d']);
    expect(sends(r.effects, 'append_entries.request').map((s) => s.to)).toEqual(['b', 'c', 'd']);
    expect(r.effects).toContainEqual({ type: 'hook', hook: 'follower_added', member: voter(D) });
    const second = feed(a, { type: 'membership.leave', id: C, from: from(2) });
    expect(second.effects).toEqual([
      {
        type: 'reply',
        to: from(2),
        reply: { type: 'error', error: 'cluster_change_not_permitted', leader: A },
      },
    ]);
    // Four voters now: the leader and one follower are not a majority.
    feed(a, { type: 'log.written', upTo: 2, term: 1 });
    feed(a, ack(B, 2));
    expect(a.state.commitIndex).toBe(1);
    const done = feed(a, ack(D, 2));
    expect(done.state.commitIndex).toBe(2);
    expect(done.effects).toContainEqual({ type: 'reply', to: from(1), reply: { type: 'ok', leader: A } });
  });

  it('answers already_member and not_member', () => {
    const a = electedLeader();
    ackAll(a);
    expect(feed(a, { type: 'membership.join', member: voter(B), from: from(1) }).effects[0]).toMatchObject({
      reply: { error: 'already_member' },
    });
    expect(feed(a, { type: 'membership.leave', id: D, from: from(1) }).effects[0]).toMatchObject({
      reply: { error: 'not_member' },
    });
  });

  it('a promotable member does not count until caught up, then is promoted to voter', () => {
    const a = electedLeader();
    ackAll(a);
    feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } });
    feed(a, { type: 'membership.join', member: { id: D, membership: 'promotable' }, from: from(1) });
    expect(a.state.log.entries[2]).toMatchObject({
      type: 'config',
      cluster: [voter(A), voter(B), voter(C), { id: D, membership: 'promotable', targetIndex: 2 }],
    });
    ackAll(a, [B, C]);
    expect(a.state.commitIndex).toBe(3);
    const r = feed(a, ack(D, 3));
    expect(r.state.log.entries[3]).toMatchObject({
      type: 'config',
      index: 4,
      cluster: [voter(A), voter(B), voter(C), voter(D)],
    });
  });

  it('a removed leader keeps leading until its removal commits, then steps down', () => {
    const a = electedLeader();
    ackAll(a);
    feed(a, { type: 'membership.leave', id: A, from: from(1) });
    expect(a.role).toBe('leader');
    // Its own write no longer counts: b and c are the voters.
    feed(a, { type: 'log.written', upTo: 2, term: 1 });
    feed(a, ack(B, 2));
    expect(a.state.commitIndex).toBe(1);
    const r = feed(a, ack(C, 2));
    expect(r.state.commitIndex).toBe(2);
    expect(r.role).toBe('follower');
    expect(r.effects).toContainEqual({ type: 'reply', to: from(1), reply: { type: 'ok', leader: A } });
    expect(r.effects).toContainEqual({ type: 'hook', hook: 'follower_removed', id: A });
    // Not a voter any more: it never campaigns.
    expect(feed(a, { type: 'election.timeout' }).role).toBe('follower');
  });
});

describe('a voter removed by an entry not yet committed', () => {
  // Two voters, a and b; a led, appended its own removal ({b} alone) and crashed before b had it.
  // b cannot win: its only peer a refuses it as behind. So a, a voter of the configuration before
  // its uncommitted removal, still campaigns: it wins b's vote (b is the one voter of a's latest
  // configuration), commits its removal through b without counting itself, and steps down.
  const recovered = {
    currentTerm: 1,
    votedFor: A,
    snapshot: null,
    entries: [
      { type: 'noop' as const, index: 1, term: 1, machineVersion: 0 },
      { type: 'config' as const, index: 2, term: 1, cluster: [voter(B)] },
    ],
  };

  it('campaigns, leads the remaining voter until its removal commits, then stays quiet', () => {
    const r = fresh(A, [A, B], recovered);
    const a: Srv = { role: r.role, state: r.state, effects: r.effects };
    const pre = feed(a, { type: 'election.timeout' });
    expect(a.role).toBe('pre_vote');
    expect(sends(pre.effects, 'pre_vote.request').map((s) => s.to)).toEqual(['b']);
    const vote = feed(a, { type: 'pre_vote.reply', from: B, term: 2, granted: true });
    expect(a.role).toBe('candidate');
    expect(sends(vote.effects, 'vote.request')).toMatchObject([
      { to: 'b', rpc: { term: 2, lastLogIndex: 2, lastLogTerm: 1 } },
    ]);
    feed(a, { type: 'vote.reply', from: B, term: 2, granted: true });
    expect(a.role).toBe('leader');
    // its own write does not count: it is not a voter of the configuration it leads
    feed(a, { type: 'log.written', upTo: 3, term: 2 });
    expect(a.state.commitIndex).toBe(0);
    const done = feed(a, {
      type: 'append_entries.reply',
      from: B,
      term: 2,
      success: true,
      matchIndex: 3,
      lastIndex: 3,
      lastTerm: 2,
      round: a.state.leader?.round ?? 0,
    });
    expect(a.state.commitIndex).toBe(3);
    expect(a.role).toBe('follower');
    expect(done.effects).toContainEqual({ type: 'hook', hook: 'follower_removed', id: A });
    // the removal is committed: outside the configuration, it never campaigns again
    const after = feed(a, { type: 'election.timeout' });
    expect(a.role).toBe('follower');
    expect(sends(after.effects)).toEqual([]);
  });

  it('a server that was not a voter before an uncommitted configuration does not campaign', () => {
    const r = fresh(C, [A, B], {
      currentTerm: 1,
      votedFor: null,
      snapshot: null,
      entries: [
        { type: 'noop' as const, index: 1, term: 1, machineVersion: 0 },
        {
          type: 'config' as const,
          index: 2,
          term: 1,
          cluster: [voter(A), voter(B), { id: C, membership: 'non_voter' }],
        },
      ],
    });
    const c: Srv = { role: r.role, state: r.state, effects: r.effects };
    const t = feed(c, { type: 'election.timeout' });
    expect(c.role).toBe('follower');
    expect(sends(t.effects, 'pre_vote.request')).toEqual([]);
  });
});

describe('leadership transfer', () => {
  it('sends timeout_now to an up-to-date voter', () => {
    const a = electedLeader();
    ackAll(a);
    const r = feed(a, { type: 'transfer_leadership', to: B, from: from(1) });
    expect(r.effects).toEqual([
      { type: 'send_rpc', to: B, rpc: { type: 'timeout_now', from: A, term: 1 } },
      { type: 'reply', to: from(1), reply: { type: 'ok', leader: A } },
    ]);
  });

  it('refuses a lagging target and a non-member', () => {
    const a = electedLeader();
    expect(feed(a, { type: 'transfer_leadership', to: B, from: from(1) }).effects).toEqual([
      { type: 'reply', to: from(1), reply: { type: 'error', error: 'not_up_to_date', leader: A } },
    ]);
    expect(feed(a, { type: 'transfer_leadership', to: D, from: from(1) }).effects).toEqual([
      { type: 'reply', to: from(1), reply: { type: 'error', error: 'not_voter', leader: A } },
    ]);
  });

  it('the target campaigns at once, past pre-vote and its voters leases', () => {
    const { fresh } = helpersFresh;
    const b0 = fresh(B);
    const b = { role: b0.role, state: b0.state, effects: b0.effects };
    feed(b, ae({}));
    const r = feed(b, { type: 'timeout_now', from: A, term: 1 });
    expect(r.role).toBe('candidate');
    expect(r.state.currentTerm).toBe(2);
    expect(sends(r.effects, 'vote.request')[0]!.rpc).toMatchObject({ transfer: true, term: 2 });
    // c, which still follows a, votes for a transfer despite its lease.
    const c0 = fresh(C);
    const c = { role: c0.role, state: c0.state, effects: c0.effects };
    feed(c, ae({}));
    const v = feed(c, {
      type: 'vote.request',
      from: B,
      term: 2,
      lastLogIndex: 0,
      lastLogTerm: 0,
      transfer: true,
    });
    expect(sends(v.effects)[0]!.rpc).toMatchObject({ granted: true, term: 2 });
  });
});

import * as helpersFresh from './helpers.ts';
