import { describe, expect, it } from 'vitest';
import { handle } from '../src/index.ts';
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
} from './helpers.ts';

const read = (s: unknown) => s;

describe('queries', () => {
  it('local queries run on any member, optionally waiting until an index is applied', () => {
    const r = fresh(B, undefined, {
      currentTerm: 1,
      votedFor: null,
      snapshot: null,
      entries: [entry(1, 1, 3), entry(2, 1, 4)],
    });
    const b: Srv = { role: r.role, state: r.state, effects: r.effects };
    expect(feed(b, { type: 'query', kind: 'local', fn: read, from: from(1) }).effects).toEqual([
      { type: 'reply', to: from(1), reply: { type: 'query', index: 0, term: 0, result: 0, leader: null } },
    ]);
    const waiting = feed(b, {
      type: 'query',
      kind: 'local',
      fn: read,
      from: from(2),
      condition: { index: 2, term: 1 },
    });
    expect(waiting.effects).toEqual([]);
    const applied = feed(b, ae({ prevLogIndex: 2, prevLogTerm: 1, leaderCommit: 2 }));
    expect(applied.effects).toContainEqual({
      type: 'reply',
      to: from(2),
      reply: { type: 'query', index: 2, term: 1, result: 7, leader: A },
    });
  });

  it('leader queries are refused by followers', () => {
    const b = fresh(B);
    expect(
      handle(b.role, b.state, { type: 'query', kind: 'leader', fn: read, from: from(1) }).effects,
    ).toEqual([{ type: 'reply', to: from(1), reply: { type: 'error', error: 'not_leader', leader: null } }]);
    const a = electedLeader();
    expect(feed(a, { type: 'query', kind: 'leader', fn: read, from: from(1) }).effects).toEqual([
      { type: 'reply', to: from(1), reply: { type: 'query', index: 0, term: 0, result: 0, leader: A } },
    ]);
  });

  it('a failing query function answers query_error', () => {
    const a = electedLeader();
    const r = feed(a, {
      type: 'query',
      kind: 'leader',
      fn: () => {
        throw new Error('nope');
      },
      from: from(1),
    });
    expect(r.effects).toEqual([
      {
        type: 'reply',
        to: from(1),
        reply: { type: 'error', error: 'query_error', leader: A, message: 'nope' },
      },
    ]);
  });

  it('consistent queries wait for a fresh heartbeat round acknowledged by a majority (read-index)', () => {
    const a = electedLeader();
    ackAll(a);
    feed(a, { type: 'command', command: 5, reply: { mode: 'noreply' } });
    ackAll(a);
    expect(a.state.lastApplied).toBe(2);
    const q = feed(a, { type: 'query', kind: 'consistent', fn: read, from: from(9) });
    // A new round: heartbeats to every follower carry it; nothing answered yet.
    expect(q.effects.filter((e) => e.type === 'reply')).toEqual([]);
    const hb = sends(q.effects, 'append_entries.request');
    expect(hb.map((h) => [h.to, h.rpc.type === 'append_entries.request' && h.rpc.round])).toEqual([
      ['b', 1],
      ['c', 1],
    ]);
    // An acknowledgement of an older round does not count.
    const old = feed(a, ack(B, 2));
    expect(old.effects.filter((e) => e.type === 'reply')).toEqual([]);
    const ok = feed(a, ack(C, 2, 1));
    expect(ok.effects.filter((e) => e.type === 'reply')).toEqual([
      { type: 'reply', to: from(9), reply: { type: 'query', index: 2, term: 1, result: 5, leader: A } },
    ]);
  });

  it('a consistent query also waits until this term has committed its noop', () => {
    const a = electedLeader();
    const q = feed(a, { type: 'query', kind: 'consistent', fn: read, from: from(3) });
    expect(q.state.leader!.queries[0]!.readIndex).toBe(1);
    feed(a, {
      type: 'append_entries.reply',
      from: B,
      term: 1,
      success: true,
      matchIndex: 0,
      lastIndex: 0,
      lastTerm: 0,
      round: 1,
    });
    expect(a.state.leader!.queries).toHaveLength(1);
    const done = ackAll(a);
    expect(done.filter((e) => e.type === 'reply')).toHaveLength(1);
  });

  it('pending consistent queries fail when leadership is lost', () => {
    const a = electedLeader();
    feed(a, { type: 'query', kind: 'consistent', fn: read, from: from(3) });
    const r = feed(a, { type: 'vote.reply', from: B, term: 5, granted: false });
    expect(r.effects).toContainEqual({
      type: 'reply',
      to: from(3),
      reply: { type: 'error', error: 'leadership_lost', leader: null },
    });
  });
});
