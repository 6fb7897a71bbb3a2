/**
 * A node process paused (SIGSTOP, as a long GC or a synchronous snapshot encode would pause it)
 * for longer than the election timeout must not campaign when it resumes: the leader's
 * AppendEntries from the pause are waiting in its sockets. Every node is killed by pid in
 * `afterEach`; every wait is bounded.
 */
import type { ServerId } from '@otra/protocol';
import { awaitLeader, overview, processCommand, type RaftRef, startCluster } from '@otra/raft';
import { afterEach, describe, expect, it } from 'vitest';
import { type NodeProcess, ProcessCluster } from '../apps/node/src/process-cluster.ts';

let cluster: ProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A 3-node KV cluster with 150-300 ms election timeouts, its leader and its followers' processes. */
async function started(): Promise<{ raft: RaftRef; leader: ServerId; followers: ServerId[] }> {
  cluster = await ProcessCluster.start({ nodes: 3, electionTimeoutMs: [150, 300], tickMs: 50 });
  const raft = cluster.client.raft;
  const ids = cluster.ids('kv');
  await startCluster(raft, 'kv', { module: 'kv' }, ids);
  const leader = await awaitLeader(raft, ids, { timeoutMs: 10_000 });
  return { raft, leader, followers: ids.filter((id) => id.node !== leader.node) };
}

/**
 * Pauses `processes` together (SIGSTOP) `rounds` times for `pauseMs`, `gapMs` apart, under a steady
 * trickle of commands (an idle group quiesces and stops its timers), then leaves `settleMs` for
 * whatever a resumed process would wrongly do. The processes always end resumed.
 */
async function pauseUnderLoad(
  raft: RaftRef,
  leader: ServerId,
  processes: readonly NodeProcess[],
  schedule: { rounds: number; pauseMs: number; gapMs: number; settleMs: number },
): Promise<void> {
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing && i < 10_000; i++) {
      await processCommand(raft, leader, { op: 'put', key: `k${i % 100}`, value: i }, { timeoutMs: 5_000 });
      await sleep(5);
    }
  })();
  try {
    for (let round = 0; round < schedule.rounds; round++) {
      await sleep(schedule.gapMs);
      for (const p of processes) process.kill(p.pid, 'SIGSTOP');
      await sleep(schedule.pauseMs);
      for (const p of processes) process.kill(p.pid, 'SIGCONT');
    }
    await sleep(schedule.settleMs);
  } finally {
    for (const p of processes) process.kill(p.pid, 'SIGCONT');
    writing = false;
    await writer;
  }
}

describe('pauses', () => {
  it('a follower paused past its election timeout resumes as a follower, without a pre-vote', async () => {
    const { raft, leader, followers } = await started();
    const follower = followers[0]!;
    const before = await overview(raft, follower);
    await pauseUnderLoad(raft, leader, [cluster!.nodes.get(follower.node)!], {
      rounds: 4,
      pauseMs: 600,
      gapMs: 300,
      settleMs: 500,
    });
    const after = await overview(raft, follower);
    expect(after.role).toBe('follower');
    expect(after.term).toBe(before.term);
    expect(after.counters.preVotes).toBe(before.counters.preVotes);
    expect((await overview(raft, leader)).role).toBe('leader');
  }, 60_000);

  it('a leader whose followers both pause for less than the longest election timeout keeps leading', async () => {
    const { raft, leader, followers } = await started();
    const before = await overview(raft, leader);
    // 200 ms: longer than the shortest election timeout (the old check-quorum window), shorter
    // than the longest; both at once, as when both apply the same large snapshot release
    await pauseUnderLoad(
      raft,
      leader,
      followers.map((id) => cluster!.nodes.get(id.node)!),
      { rounds: 6, pauseMs: 200, gapMs: 400, settleMs: 500 },
    );
    const after = await overview(raft, leader);
    expect(after.role).toBe('leader');
    expect(after.term).toBe(before.term);
  }, 60_000);
});
