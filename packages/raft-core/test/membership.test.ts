import { describe, expect, it } from 'vitest';
import { A, ack, ackAll, ae, B, C, D, electedLeader, feed, from, sends } from './helpers.ts';

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
