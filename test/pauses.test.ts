/**
 * A node process paused (SIGSTOP, as a long GC or a synchronous snapshot encode would pause it)
 * for longer than the election timeout must not campaign when it resumes: the leader's
 * AppendEntries from the pause are waiting in its sockets. Every node is killed by pid in
 * `afterEach`; every wait is bounded.
 */
import { awaitLeader, overview, processCommand, startCluster } from '@otra/raft';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessCluster } from '../apps/node/src/process-cluster.ts';

let cluster: ProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('pauses', () => {
  it('a follower paused past its election timeout resumes as a follower, without a pre-vote', async () => {
    cluster = await ProcessCluster.start({ nodes: 3, electionTimeoutMs: [150, 300], tickMs: 50 });
    const raft = cluster.client.raft;
    const ids = cluster.ids('kv');
    await startCluster(raft, 'kv', { module: 'kv' }, ids);
    const leader = await awaitLeader(raft, ids, { timeoutMs: 10_000 });
    const follower = ids.find((id) => id.node !== leader.node)!;
    const paused = cluster.nodes.get(follower.node)!;
    const before = await overview(raft, follower);
    // a steady trickle of commands keeps the group awake (an idle group quiesces and stops timers)
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing && i < 10_000; i++) {
        await processCommand(raft, leader, { op: 'put', key: `k${i % 100}`, value: i }, { timeoutMs: 5_000 });
        await sleep(5);
      }
    })();
    try {
      for (let round = 0; round < 4; round++) {
        await sleep(300);
        process.kill(paused.pid, 'SIGSTOP');
        await sleep(600);
        process.kill(paused.pid, 'SIGCONT');
      }
      await sleep(500);
    } finally {
      process.kill(paused.pid, 'SIGCONT');
      writing = false;
      await writer;
    }
    const after = await overview(raft, follower);
    expect(after.role).toBe('follower');
    expect(after.term).toBe(before.term);
    expect(after.counters.preVotes).toBe(before.counters.preVotes);
    expect((await overview(raft, leader)).role).toBe('leader');
  }, 60_000);

  it('a leader whose followers both pause for less than the longest election timeout keeps leading', async () => {
    cluster = await ProcessCluster.start({ nodes: 3, electionTimeoutMs: [150, 300], tickMs: 50 });
    const raft = cluster.client.raft;
    const ids = cluster.ids('kv');
    await startCluster(raft, 'kv', { module: 'kv' }, ids);
    const leader = await awaitLeader(raft, ids, { timeoutMs: 10_000 });
    const followers = ids.filter((id) => id.node !== leader.node).map((id) => cluster!.nodes.get(id.node)!);
    const before = await overview(raft, leader);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing && i < 10_000; i++) {
        await processCommand(raft, leader, { op: 'put', key: `k${i % 100}`, value: i }, { timeoutMs: 5_000 });
        await sleep(5);
      }
    })();
    try {
      // 200 ms: longer than the shortest election timeout (the old check-quorum window), shorter
      // than the longest; both at once, as when both apply the same large snapshot release
      for (let round = 0; round < 6; round++) {
        await sleep(400);
        for (const f of followers) process.kill(f.pid, 'SIGSTOP');
        await sleep(200);
        for (const f of followers) process.kill(f.pid, 'SIGCONT');
      }
      await sleep(500);
    } finally {
      for (const f of followers) process.kill(f.pid, 'SIGCONT');
      writing = false;
      await writer;
    }
    const after = await overview(raft, leader);
    expect(after.role).toBe('leader');
    expect(after.term).toBe(before.term);
  }, 60_000);
});
