import type { SnapshotMeta } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import {
  defineMachine,
  type Effect,
  initServer,
  type Machine,
  type MachineModule,
  startServer,
} from '../src/index.ts';
import {
  A,
  ackAll,
  ae,
  B,
  C,
  config,
  D,
  empty,
  entry,
  feed,
  fresh,
  from,
  type Srv,
  sends,
  types,
} from './helpers.ts';

/** Releases the cursor at every applied command: snapshots as often as possible. */
const releasing = defineMachine<number, number, number>({
  init: () => 0,
  apply: (meta, n, s) => [s + n, s + n, [{ type: 'release_cursor', index: meta.index, machineState: s + n }]],
});

/** A leader of a, b and c running `machine`; `trailingEntries` 0 unless given. */
function leaderWith(machine: MachineModule<number, number, number>, trailingEntries = 0): Srv {
  const machineAny = machine as Machine<unknown, unknown, unknown>;
  const r = startServer(
    initServer(config(A, [A, B, C], { machine: machineAny, trailingEntries }), {
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

/**
 * `leaderWith(releasing)` whose follower c has nothing while the log starts after a snapshot at 2:
 * c rejects an AppendEntries (`first`, the leader's result) and is being sent the snapshot. `ackChunk` feeds c's acknowledgement of a chunk; `tickUntilSent`
 * ticks (b answering each) until the leader starts a transfer, at most 100 ticks, and returns it.
 */
function transferringToC() {
  const a = leaderWith(releasing);
  ackAll(a, [B]);
  feed(a, { type: 'command', command: 5, reply: { mode: 'noreply' } });
  ackAll(a, [B]);
  feed(a, { type: 'snapshot.written', meta: meta(2) });
  const first = feed(a, {
    type: 'append_entries.reply',
    from: C,
    term: 1,
    success: false,
    matchIndex: 0,
    lastIndex: 0,
    lastTerm: 0,
    round: 0,
  });
  const sendsOf = (fx: readonly Effect[]) => fx.filter((e) => e.type === 'snapshot.send');
  expect(sendsOf(first.effects)).toEqual([expect.objectContaining({ fromChunk: 0 })]);
  const ackChunk = (chunk: number) =>
    feed(a, { type: 'install_snapshot.reply', from: C, term: 1, meta: meta(2), chunk, done: false });
  const tickUntilSent = (nowMs: number) => {
    for (let t = 0; t < 100; t++) {
      const sent = sendsOf(feed(a, { type: 'tick', nowMs: nowMs + t }).effects);
      ackAll(a, [B]);
      if (sent.length > 0) return sent;
    }
    return [];
  };
  return { a, first, ackChunk, tickUntilSent, sendsOf };
}

/**
 * A fresh follower c, and `chunk` feeding it chunk `n` of a's snapshot at 2 in term 1 (its data
 * the chunk number unless given).
 */
function receivingC() {
  const r0 = fresh(C);
  const c: Srv = { role: r0.role, state: r0.state, effects: r0.effects };
  const chunk = (n: number, last: boolean, data = `${n}`) =>
    feed(c, { type: 'install_snapshot.request', from: A, term: 1, meta: meta(2), chunk: n, last, data });
  return { c, chunk };
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
    // c rejects: it has nothing. The entries it needs are gone: send the snapshot.
    const { a, first: r } = transferringToC();
    expect(r.effects).toContainEqual({ type: 'snapshot.send', to: C, term: 1, meta: meta(2), fromChunk: 0 });
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

  it('keeps trailingEntries below a snapshot: a follower lagging by fewer gets entries, not the snapshot', () => {
    const a = leaderWith(releasing, 2);
    ackAll(a, [B]);
    for (let i = 0; i < 4; i++) feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } });
    ackAll(a, [B]);
    // the first release (at 2) is being written; of the releases at 3-5 made meanwhile, the
    // newest is written once it is durable
    expect(a.state.snapshotWriting).toEqual(meta(2));
    expect(a.state.snapshotPending).toMatchObject({ meta: meta(5), machineState: 4 });
    const first = feed(a, { type: 'snapshot.written', meta: meta(2) });
    expect(first.effects).toEqual([
      { type: 'log.truncate_prefix', upTo: 2 },
      { type: 'snapshot.write', meta: meta(5), machineState: 4 },
    ]);
    // nothing below 2 to drop yet: 2 - 2 trailing entries is the log's start
    expect(a.state.log).toMatchObject({ snapshotIndex: 0, length: 5 });
    // the release at 6 comes while 5 is written: it waits for 5, and replaces nothing older
    feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } });
    expect(ackAll(a, [B]).filter((e) => e.type === 'snapshot.write')).toEqual([]);
    expect(a.state.snapshotPending).toMatchObject({ meta: meta(6), machineState: 5 });
    const second = feed(a, { type: 'snapshot.written', meta: meta(5) });
    expect(second.effects).toEqual([
      { type: 'log.truncate_prefix', upTo: 5 },
      { type: 'snapshot.write', meta: meta(6), machineState: 5 },
    ]);
    expect(a.state.snapshotPending).toBeNull();
    const done = feed(a, { type: 'snapshot.written', meta: meta(6) });
    // the durable log goes up to the snapshot; the memory keeps 4 and 5 behind it
    expect(done.effects).toEqual([{ type: 'log.truncate_prefix', upTo: 6 }]);
    expect(done.state.snapshot).toEqual(meta(6));
    expect(done.state.log).toMatchObject({ snapshotIndex: 4, snapshotTerm: 1, length: 2 });
    const reply = (matchIndex: number) =>
      feed(a, {
        type: 'append_entries.reply',
        from: C,
        term: 1,
        success: false,
        matchIndex,
        lastIndex: matchIndex,
        lastTerm: 1,
        round: 0,
      });
    // c has up to 4: entries 5 and 6 from memory
    const near = reply(4);
    expect(types(near.effects)).not.toContain('snapshot.send');
    expect(sends(near.effects, 'append_entries.request')).toContainEqual({
      to: 'c',
      rpc: expect.objectContaining({
        prevLogIndex: 4,
        entries: [expect.objectContaining({ index: 5 }), expect.objectContaining({ index: 6 })],
      }),
    });
  });

  it('a follower drops a release deferred behind its own write once it installs a newer snapshot', () => {
    const r0 = fresh(C, undefined, empty, { machine: releasing as Machine<unknown, unknown, unknown> });
    const c: Srv = { role: r0.role, state: r0.state, effects: r0.effects };
    feed(c, ae({ entries: [entry(1, 1), entry(2, 1), entry(3, 1)], leaderCommit: 3 }));
    feed(c, { type: 'log.written', upTo: 3, term: 1 });
    expect(c.state.snapshotWriting).toEqual(meta(1));
    expect(c.state.snapshotPending).toMatchObject({ meta: meta(3), machineState: 3 });
    // the leader's snapshot at 5 comes and is installed while c's own write at 1 goes on
    feed(c, {
      type: 'install_snapshot.request',
      from: A,
      term: 1,
      meta: meta(5),
      chunk: 0,
      last: true,
      data: '9',
    });
    feed(c, { type: 'snapshot.installed', meta: meta(5), machineState: 9 });
    // its own write settles (the store refuses it as stale): the release at 3 is behind 5, dropped
    const settled = feed(c, { type: 'snapshot.written', meta: meta(1) });
    expect(types(settled.effects)).not.toContain('snapshot.write');
    expect(settled.state.snapshotPending).toBeNull();
    expect(settled.state.snapshot).toEqual(meta(5));
  });

  it('still sends the snapshot to a follower lagging by more than trailingEntries', () => {
    const a = leaderWith(releasing, 2);
    ackAll(a, [B]);
    const effects = [];
    for (let i = 0; i < 5; i++) {
      effects.push(...feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } }).effects);
      const fx = ackAll(a, [B]);
      effects.push(...fx);
      const w = fx.find((e) => e.type === 'snapshot.write');
      if (w !== undefined && w.type === 'snapshot.write')
        effects.push(...feed(a, { type: 'snapshot.written', meta: w.meta }).effects);
    }
    expect(a.state.snapshot).toEqual(meta(6));
    expect(a.state.log.snapshotIndex).toBe(4);
    // c never answered: once the log it lacks was dropped, it is sent a snapshot (b never is)
    const sent = effects.filter((e) => e.type === 'snapshot.send');
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((e) => e.type === 'snapshot.send' && e.to === C)).toBe(true);
  });

  it('a follower takes chunks in order, installs, and acknowledges once installed', () => {
    const { c, chunk } = receivingC();
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
    // Out of order: not taken; the leader learns the last chunk c has
    const gap = chunk(2, true, '?');
    expect(types(gap.effects)).toEqual(['timer.set', 'send_rpc:install_snapshot.reply>a']);
    expect(sends(gap.effects)[0]!.rpc).toMatchObject({ chunk: 0, done: false });
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

  it('a transfer its own pre-vote interrupted resumes at the next chunk, and installs in pre_vote', () => {
    const { c, chunk } = receivingC();
    expect(chunk(0, false, '{"x":').role).toBe('receive_snapshot');
    // chunks slower than the election timeout: a pre-vote starts (same term)
    const timedOut = feed(c, { type: 'election.timeout' });
    expect(timedOut.role).toBe('pre_vote');
    expect(timedOut.state.currentTerm).toBe(1);
    // the leader's next chunk continues the transfer; chunk 0 is not needed again
    const last = chunk(1, true, '1}');
    expect(last.role).toBe('receive_snapshot');
    expect(last.effects).toContainEqual({
      type: 'snapshot.chunk.write',
      meta: meta(2),
      chunk: 1,
      last: true,
      data: '1}',
    });
    expect(last.effects).toContainEqual({ type: 'snapshot.install', meta: meta(2) });
    // the timer fires again while the shell installs: the installed snapshot is still taken
    expect(feed(c, { type: 'election.timeout' }).role).toBe('pre_vote');
    const inst = feed(c, { type: 'snapshot.installed', meta: meta(2), machineState: 7 });
    expect(inst.role).toBe('follower');
    expect(inst.state).toMatchObject({ lastApplied: 2, machineState: 7, leaderId: A, receiving: null });
    expect(sends(inst.effects, 'install_snapshot.reply')).toEqual([
      { to: 'a', rpc: expect.objectContaining({ meta: meta(2), chunk: -1, done: true }) },
    ]);
  });

  it('a leader retrying a stalled transfer from chunk 0 restarts it, where it was waiting for chunk 2', () => {
    const { c, chunk } = receivingC();
    chunk(0, false);
    chunk(1, false);
    expect(c.state.receiving).toMatchObject({ nextChunk: 2 });
    // chunk 2 was lost; the leader's new sender begins again
    const again = chunk(0, false);
    expect(again.role).toBe('receive_snapshot');
    expect(again.effects).toContainEqual(expect.objectContaining({ type: 'snapshot.chunk.write', chunk: 0 }));
    chunk(1, false);
    expect(types(chunk(2, true).effects)).toContain('snapshot.install');
  });

  it('a new term ends a transfer: a candidate drops it and takes only a chunk 0 again', () => {
    const { c, chunk } = receivingC();
    chunk(0, false, 'x');
    feed(c, { type: 'election.timeout' });
    // granted pre-votes: c campaigns in term 2
    const cand = feed(c, { type: 'pre_vote.reply', from: B, term: 2, granted: true });
    expect(cand.role).toBe('candidate');
    expect(cand.state.receiving).toBeNull();
    // b wins term 2 and sends its own snapshot's second chunk: dropped, c waits for chunk 0
    const late = feed(c, {
      type: 'install_snapshot.request',
      from: B,
      term: 2,
      meta: meta(2),
      chunk: 1,
      last: true,
      data: 'y',
    });
    expect(late.role).toBe('follower');
    expect(types(late.effects)).not.toContain('snapshot.chunk.write');
    // and tells b it holds none of it, so b's transfer starts again from chunk 0
    expect(sends(late.effects, 'install_snapshot.reply')).toEqual([
      { to: 'b', rpc: expect.objectContaining({ meta: meta(2), chunk: -1, done: false }) },
    ]);
  });

  it('a retried transfer resumes after the last chunk the follower acknowledged', () => {
    const { a, ackChunk, tickUntilSent, sendsOf } = transferringToC();
    ackChunk(0);
    ackChunk(1);
    ackChunk(0); // a late duplicate does not move it back
    expect(a.state.leader!.peers.find((p) => p.key === 'c@c')!.snapshotProgress).toEqual({
      index: 2,
      from: 0,
      next: 2,
      answered: true,
    });
    // then silence: after two election timeouts of ticks the transfer is presumed lost and retried
    expect(tickUntilSent(10)).toEqual([
      { type: 'snapshot.send', to: C, term: 1, meta: meta(2), fromChunk: 2 },
    ]);
    // c has lost what it had (say it restarted): it answers the resumed chunks with chunk -1, and
    // the leader starts over from chunk 0 at once, not after another stall
    const lost = ackChunk(-1);
    expect(sendsOf(lost.effects)).toEqual([
      { type: 'snapshot.send', to: C, term: 1, meta: meta(2), fromChunk: 0 },
    ]);
    // the second chunk of the resumed window says the same: nothing more to do
    expect(sendsOf(ackChunk(-1).effects)).toEqual([]);
    // a newer snapshot is sent from its chunk 0, whatever the follower had of the older one
    ackChunk(0);
    feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } });
    ackAll(a, [B]);
    feed(a, { type: 'snapshot.written', meta: meta(3) });
    expect(tickUntilSent(200)).toEqual([
      { type: 'snapshot.send', to: C, term: 1, meta: meta(3), fromChunk: 0 },
    ]);
  });

  it('a member asking for a (pre-)vote mid-transfer gets the transfer again at once, resumed', () => {
    const { a, ackChunk, sendsOf } = transferringToC();
    ackChunk(0);
    ackChunk(1);
    // c's server restarted (or lost the leader) and campaigns: no need to wait for the stall timeout
    const preVote = feed(a, {
      type: 'pre_vote.request',
      from: C,
      term: 2,
      lastLogIndex: 0,
      lastLogTerm: 0,
    });
    expect(preVote.role).toBe('leader');
    expect(sendsOf(preVote.effects)).toEqual([
      { type: 'snapshot.send', to: C, term: 1, meta: meta(2), fromChunk: 2 },
    ]);
    // it lost what it held: the leader starts over from chunk 0 at once
    expect(sendsOf(ackChunk(-1).effects)).toEqual([expect.objectContaining({ fromChunk: 0 })]);
    // a vote request of a higher term inside the leader's lease does the same, and the leader stays
    const vote = feed(a, {
      type: 'vote.request',
      from: C,
      term: 2,
      lastLogIndex: 0,
      lastLogTerm: 0,
      transfer: false,
    });
    expect(vote.role).toBe('leader');
    expect(sendsOf(vote.effects)).toEqual([expect.objectContaining({ fromChunk: 0 })]);
    // a member with no transfer under way that asks gets no snapshot
    const fromB = feed(a, { type: 'pre_vote.request', from: B, term: 2, lastLogIndex: 3, lastLogTerm: 1 });
    expect(sendsOf(fromB.effects)).toEqual([]);
  });

  it('a leader probe mid-transfer resumes the transfer at once; otherwise it gets a heartbeat', () => {
    const { a, ackChunk, sendsOf } = transferringToC();
    ackChunk(0);
    ackChunk(1);
    // a non-voting member whose server restarted mid-transfer asks for the leader instead of
    // campaigning: no need to wait for the stall timeout (two election timeouts)
    const probe = feed(a, { type: 'leader_probe', from: C, term: 1 });
    expect(probe.role).toBe('leader');
    expect(sendsOf(probe.effects)).toEqual([
      { type: 'snapshot.send', to: C, term: 1, meta: meta(2), fromChunk: 2 },
    ]);
    // a probe of a later term is left alone (a newer leader exists)
    expect(feed(a, { type: 'leader_probe', from: C, term: 2 }).effects).toEqual([]);
    // a member with no transfer under way gets a heartbeat, which tells it who leads
    const fromB = feed(a, { type: 'leader_probe', from: B, term: 1 });
    expect(sendsOf(fromB.effects)).toEqual([]);
    expect(sends(fromB.effects, 'append_entries.request').map((s) => s.to)).toEqual(['b']);
    // a server that is not a member gets nothing
    expect(feed(a, { type: 'leader_probe', from: D, term: 1 }).effects).toEqual([]);
  });

  it('a non-voting member that lost its leader asks the voters for it; a follower leaves a probe alone', () => {
    const withD: SnapshotMeta = {
      ...meta(2),
      cluster: [...meta(2).cluster, { id: D, membership: 'non_voter' }],
    };
    const d = fresh(D, [A, B, C], {
      currentTerm: 1,
      votedFor: null,
      snapshot: { meta: withD, machineState: 0 },
      entries: [],
    });
    const timedOut = feed(d, { type: 'election.timeout' });
    expect(timedOut.role).toBe('follower');
    expect(sends(timedOut.effects, 'leader_probe')).toEqual([
      { to: 'a', rpc: { type: 'leader_probe', from: D, term: 1 } },
      { to: 'b', rpc: { type: 'leader_probe', from: D, term: 1 } },
      { to: 'c', rpc: { type: 'leader_probe', from: D, term: 1 } },
    ]);
    expect(types(timedOut.effects).filter((t) => t.includes('vote'))).toEqual([]);
    // a server outside the configuration stays quiet
    const outsider = fresh(D, [A, B, C]);
    expect(sends(feed(outsider, { type: 'election.timeout' }).effects, 'leader_probe')).toEqual([]);
    // a follower answers nothing, and its state does not change
    const b = fresh(B, [A, B, C], { ...empty, currentTerm: 1 });
    const before = b.state;
    const probed = feed(b, { type: 'leader_probe', from: D, term: 1 });
    expect(probed.effects).toEqual([]);
    expect(probed.state).toEqual(before);
  });

  it('a resumed transfer that moves nothing (no answer at all) is retried from chunk 0', () => {
    const { ackChunk, tickUntilSent } = transferringToC();
    ackChunk(0);
    ackChunk(1);
    expect(tickUntilSent(10)).toEqual([expect.objectContaining({ fromChunk: 2 })]);
    // a follower that drops what it cannot take without a word (an older version): not resumed again
    expect(tickUntilSent(200)).toEqual([expect.objectContaining({ fromChunk: 0 })]);
    // while a resumed transfer that moved on resumes again
    ackChunk(0);
    ackChunk(1);
    ackChunk(2);
    expect(tickUntilSent(400)).toEqual([expect.objectContaining({ fromChunk: 3 })]);
    ackChunk(3);
    expect(tickUntilSent(600)).toEqual([expect.objectContaining({ fromChunk: 4 })]);
  });

  it('a resumed transfer the follower answers without moving on (it is installing) is resumed again', () => {
    const { ackChunk, tickUntilSent } = transferringToC();
    ackChunk(0);
    ackChunk(1);
    expect(tickUntilSent(10)).toEqual([expect.objectContaining({ fromChunk: 2 })]);
    // c answers the resumed chunk with the chunk before it: it holds everything up to there (as a
    // follower holding every chunk of the snapshot answers a repeat of the last while installing)
    ackChunk(1);
    // then silence: it is alive, so the retry asks again from the same place, not from chunk 0
    expect(tickUntilSent(200)).toEqual([expect.objectContaining({ fromChunk: 2 })]);
  });

  it('a follower takes a resumed transfer at its next chunk', () => {
    const { chunk } = receivingC();
    chunk(0, false);
    chunk(1, false);
    // chunk 2 was lost and the transfer stalled; the leader's retry resumes at chunk 2
    const resumed = chunk(2, false);
    expect(resumed.effects).toContainEqual(
      expect.objectContaining({ type: 'snapshot.chunk.write', chunk: 2 }),
    );
    expect(sends(resumed.effects, 'install_snapshot.reply')[0]!.rpc).toMatchObject({ chunk: 2, done: false });
    expect(types(chunk(3, true).effects)).toContain('snapshot.install');
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
