import { describe, expect, it } from 'vitest';
import { runSimulation } from '../src/index.ts';

/**
 * Seeded simulations: random faults, the four safety properties after every step, progress once
 * healed, and a linearizable client history. A failure prints its seed; replay it with
 * `pnpm soak --seed <n>` (add `--transcript` for one line per message).
 */
function seeds(from: number, count: number, servers: number, snapshotEvery: (seed: number) => number) {
  let steps = 0;
  let okOps = 0;
  let installs = 0;
  for (let seed = from; seed < from + count; seed++) {
    const r = runSimulation({ seed, servers, snapshotEvery: snapshotEvery(seed) });
    steps += r.steps;
    okOps += r.ops.ok;
    installs += r.effects['snapshot.install'] ?? 0;
  }
  return { steps, okOps, installs };
}

/**
 * Membership churn over seeds `from..to`: odd seeds 3 servers, even 5, every third snapshotting
 * often, every fourth through the `roles` driver, with `extra` options. Returns the configuration
 * changes committed in all.
 */
function churn(from: number, to: number, extra: Partial<Parameters<typeof runSimulation>[0]>): number {
  let changes = 0;
  for (let seed = from; seed <= to; seed++) {
    const r = runSimulation({
      seed,
      servers: seed % 2 === 1 ? 3 : 5,
      membership: true,
      snapshotEvery: seed % 3 === 0 ? 7 : 0,
      driver: seed % 4 === 0 ? 'roles' : 'handle',
      ...extra,
    });
    changes += r.membershipChanges.committed;
  }
  return changes;
}

describe('seeded simulation', () => {
  it('400 seeds of 3 servers (a third with frequent snapshots)', () => {
    const r = seeds(1, 400, 3, (s) => (s % 3 === 0 ? 7 : 0));
    expect(r.okOps).toBeGreaterThan(400 * 20);
    expect(r.installs).toBeGreaterThan(0);
  });

  it('300 seeds of 5 servers (a third with frequent snapshots)', () => {
    const r = seeds(10_001, 300, 5, (s) => (s % 3 === 0 ? 7 : 0));
    expect(r.okOps).toBeGreaterThan(300 * 20);
    expect(r.installs).toBeGreaterThan(0);
  });

  it('200 seeds of 3 and 100 of 5 servers with quiescence: idle groups sleep and wake under faults', () => {
    let ok = 0;
    let sleeps = 0;
    for (const [from, count, servers] of [
      [30_001, 200, 3],
      [40_001, 100, 5],
    ] as const) {
      for (let seed = from; seed < from + count; seed++) {
        const r = runSimulation({
          seed,
          servers,
          quiesceAfterTicks: 2,
          snapshotEvery: seed % 3 === 0 ? 7 : 0,
        });
        ok += r.ops.ok;
        // one monitor.peers effect when a leader falls asleep, one when it wakes
        sleeps += r.effects['monitor.peers'] ?? 0;
      }
    }
    expect(ok).toBeGreaterThan(300 * 10);
    expect(sleeps).toBeGreaterThan(300);
  });

  it('300 seeds where puts carry request ids and a fifth are sent twice: each applies once', () => {
    let copies = 0;
    let ok = 0;
    for (let seed = 30_001; seed <= 30_300; seed++) {
      const servers = seed % 4 === 0 ? 5 : 3;
      const r = runSimulation({ seed, servers, snapshotEvery: seed % 3 === 0 ? 7 : 0, requestIds: true });
      copies += r.ops.copies;
      ok += r.ops.ok;
    }
    expect(copies).toBeGreaterThan(300);
    expect(ok).toBeGreaterThan(300 * 5);
  });

  it('300 seeds whose log writers confirm appends that complete together with one log.written', () => {
    // as the real group-commit writer does: one follower reply may then answer several requests
    let coalesced = 0;
    let ok = 0;
    for (let seed = 40_001; seed <= 40_300; seed++) {
      const servers = seed % 4 === 0 ? 5 : 3;
      const r = runSimulation({ seed, servers, snapshotEvery: seed % 3 === 0 ? 7 : 0, groupCommit: true });
      coalesced += r.writesCoalesced;
      ok += r.ops.ok;
    }
    expect(coalesced).toBeGreaterThan(1000);
    expect(ok).toBeGreaterThan(300 * 5);
  });

  it('20 seeds through the XState statechart (pure transition) instead of raw handlers', () => {
    // A seed's fault phase may commit nothing (heavy faults); each run still throws if the healed
    // cluster makes no progress, so the figure that must hold is the total.
    let ok = 0;
    for (let seed = 20_001; seed <= 20_020; seed++) {
      ok += runSimulation({ seed, servers: 3, driver: 'statechart', faultMs: 2000, snapshotEvery: 10 }).ops
        .ok;
    }
    expect(ok).toBeGreaterThan(20 * 5);
  });

  it('40 seeds through the handlers with every role change through the chart, as the shell runs', () => {
    // driver 'roles' throws if the chart ever lands in a role other than the core's; half the
    // seeds quiesce, so the chart also takes results in the same role (going quiet)
    let ok = 0;
    for (let seed = 21_001; seed <= 21_040; seed++) {
      ok += runSimulation({
        seed,
        servers: seed % 2 === 0 ? 3 : 5,
        driver: 'roles',
        faultMs: 2000,
        snapshotEvery: 10,
        ...(seed % 4 < 2 ? { quiesceAfterTicks: 2 } : {}),
      }).ops.ok;
    }
    expect(ok).toBeGreaterThan(40 * 5);
  });

  it('200 seeds with 4-character snapshot chunks: long transfers stall under faults and resume', () => {
    let ok = 0;
    let resumed = 0;
    let installs = 0;
    for (let seed = 50_001; seed <= 50_200; seed++) {
      const r = runSimulation({
        seed,
        servers: seed % 2 === 0 ? 3 : 5,
        snapshotEvery: 7,
        snapshotChunkChars: 4,
      });
      ok += r.ops.ok;
      resumed += r.transfersResumed;
      installs += r.effects['snapshot.install'] ?? 0;
    }
    expect(ok).toBeGreaterThan(200 * 10);
    expect(resumed).toBeGreaterThan(15);
    expect(installs).toBeGreaterThan(100);
  });

  it('counts a put still unanswered at the check as an unknown outcome (seed 809757)', () => {
    // Seeds 806035 and 819091 once failed without this: a put whose retry was still in flight
    // when the run ended was left out of the history while an earlier copy had been applied and
    // read. Since clients retry once per error (seed 2614322 below) those seeds end with nothing
    // pending, and none of 24,000 seeds fails without the rule; this seed takes the path (807407
    // did until a member receiving a snapshot began answering heartbeats, which changed its run).
    const r = runSimulation({ seed: 809_757, servers: 3, groupCommit: true, requestIds: true });
    expect(r.ops.pendingAtEnd).toBeGreaterThan(0);
  });

  it('a member removed and added again mid-transfer is sent the snapshot again (seed 210771)', () => {
    // The leader removed n1 while sending it a snapshot and added it back: as a new peer it got
    // heartbeats, which n1, still waiting in receive_snapshot, took without answering, its election
    // timer re-armed by each. It never caught up. Now it answers them as a member that lags.
    // (Seed 210699 found it, before leadership transfers joined the churn and changed its run.)
    const r = runSimulation({
      seed: 210_771,
      servers: 3,
      snapshotEvery: 7,
      membership: true,
      snapshotChunkChars: 16,
      requestIds: true,
      driver: 'roles',
    });
    expect(r.membershipChanges.committed).toBeGreaterThan(1);
  });

  it('100 seeds with members joining (voter, promotable, non-voter), leaving and handing over leadership under faults', () => {
    expect(churn(1, 100, { snapshotChunkChars: 16 })).toBeGreaterThan(200);
  });

  it('a leader that removed itself from two voters and was cut off still commits its removal (seed 930145)', () => {
    // n2 led {n2, n3}, appended {n3} and was cut off before n3 had it. n3 alone could not win (its
    // only peer n2 refused it as behind) and n2, outside its own latest configuration, never
    // campaigned: no leader ever again. A voter of the configuration before an uncommitted one
    // that removed it now campaigns, and steps down once its removal commits.
    const r = runSimulation({ seed: 930_145, servers: 3, snapshotEvery: 0, membership: true, minVoters: 1 });
    expect(r.membershipChanges.committed).toBeGreaterThan(0);
  });

  it('a follower asleep on the quiesce heartbeat of a leader that restarted wakes at its pre-vote (seed 1700368)', () => {
    // n4's quiesce heartbeat reached n1, n2 and n5 after n4 had restarted: they slept watching the
    // restarted n4, a follower now, and refused every pre-vote (n4's too) in its lease for good.
    const r = runSimulation({
      seed: 1_700_368,
      servers: 5,
      snapshotEvery: 0,
      membership: true,
      quiesceAfterTicks: 3,
    });
    expect(r.ops.ok).toBeGreaterThan(0);
  });

  it('a lone voter that elected itself and crashed before its term was durable is no second leader (seed 2504517)', () => {
    // n2, the one voter of {n2}, elected itself in term 3 in one step and crashed before term 3
    // was durable: nothing it did in term 3 ran (meta.persist is a barrier). Restarted in term 2,
    // it voted for n1 (removed by an entry n1 did not know committed) in term 3. The checker took
    // n2's in-memory term-3 leadership for a second leader; it now forgets what a restarted server
    // held in a term it never made durable.
    const r = runSimulation({
      seed: 2_504_517,
      servers: 3,
      snapshotEvery: 7,
      membership: true,
      minVoters: 1,
      groupCommit: true,
      requestIds: true,
      snapshotChunkChars: 8,
    });
    expect(r.elections).toBeGreaterThan(2);
  });

  it('100 seeds of membership churn down to one voter', () => {
    expect(churn(1, 100, { minVoters: 1 })).toBeGreaterThan(200);
  });

  it('100 seeds of membership churn down to one voter with quiescence (idle groups sleep)', () => {
    expect(churn(101, 200, { minVoters: 1, quiesceAfterTicks: 3 })).toBeGreaterThan(200);
  });

  it('a duplicated error reply makes its client retry once, not twice (seed 2614322)', () => {
    // client5's put got not_leader twice (the network duplicated the reply) before its delayed
    // retry went out: it sent the put twice, both copies were applied, and a read of the second
    // (after another client's write) looked like a stale read of the first
    const r = runSimulation({ seed: 2_614_322, servers: 5, snapshotEvery: 0 });
    expect(r.ops.ok).toBeGreaterThan(100);
  });

  it('a run replays exactly from its seed', () => {
    const a: string[] = [];
    const b: string[] = [];
    const ra = runSimulation({ seed: 4242, servers: 5, snapshotEvery: 5, transcript: (l) => a.push(l) });
    const rb = runSimulation({ seed: 4242, servers: 5, snapshotEvery: 5, transcript: (l) => b.push(l) });
    expect(rb).toEqual(ra);
    expect(b).toEqual(a);
    expect(a.length).toBeGreaterThan(500);
  });
});
