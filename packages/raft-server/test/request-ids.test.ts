/**
 * Request ids (command de-duplication): a command sent with `requestId` is applied once however
 * often it is sent, and every copy is answered with the first one's outcome; the ids survive a
 * snapshot installed on a member that then leads.
 */
import type { ServerId } from '@otra/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  awaitLeader,
  CommandOutcomeUnknownError,
  consistentQuery,
  InvalidRequestError,
  overview,
  pipelineCommand,
  processCommand,
  type RaftNotification,
  restartServer,
  startCluster,
  startPipelineClient,
  stopServer,
  transferLeadership,
} from '../src/index.ts';
import {
  countingMachine,
  countingQueries,
  cutOffAfterCommit,
  eventually,
  type LocalCluster,
  localCluster,
  systemOf,
} from './support.ts';

const machines = { kv: { machine: countingMachine, queries: countingQueries } };

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function count(c: LocalCluster, id: ServerId, key: string): Promise<number> {
  const q = await consistentQuery(systemOf(c, id), id, { name: 'count', args: [key] });
  return q.result as number;
}

describe('request ids', () => {
  it('a command resent with its request id after an unknown outcome is applied once and answered with the first reply', async () => {
    const { cluster: c, follower, followerSys, rest } = await cutOffAfterCommit();
    cluster = c;
    const options = { timeoutMs: 5000, requestId: 'client-7.1' };
    await expect(processCommand(followerSys, follower, { add: 'once' }, options)).rejects.toBeInstanceOf(
      CommandOutcomeUnknownError,
    );
    await awaitLeader(followerSys, rest, { timeoutMs: 5000 });
    // the resend: the entry is committed (the new leader holds it), so it is answered, not applied
    const again = await eventually(
      () => processCommand(followerSys, follower, { add: 'once' }, options),
      10_000,
    );
    expect(again.reply).toBe(1);
    expect(await count(c, follower, 'once')).toBe(1);
    // and again, from the same index
    const third = await processCommand(followerSys, follower, { add: 'once' }, options);
    expect(third.index).toBe(again.index);
    expect(await count(c, follower, 'once')).toBe(1);
    // another id is another request
    const other = await processCommand(followerSys, follower, { add: 'once' }, { requestId: 'client-7.2' });
    expect(other.reply).toBe(2);
  });

  it('pipelined copies are each notified with the first reply; bad ids are refused at the API', async () => {
    cluster = await localCluster(3, { machines });
    const c = cluster;
    const s1 = c.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, c.ids);
    const leader = await awaitLeader(s1, c.ids);
    const seen: Array<[unknown, unknown]> = [];
    const client = startPipelineClient(s1, (n: RaftNotification) => {
      if (n.type === 'raft.applied') seen.push(...(n.applied as Array<[unknown, unknown]>));
    });
    for (const corr of ['a', 'b', 'c'])
      expect(pipelineCommand(s1, leader, { add: 'p' }, corr, client, 'normal', 'pipe-1')).toBe('ok');
    expect(pipelineCommand(s1, leader, { add: 'p' }, 'd', client, 'normal', 'pipe-2')).toBe('ok');
    await eventually(() => (seen.length === 4 ? true : undefined));
    expect(seen).toEqual([
      ['a', 1],
      ['b', 1],
      ['c', 1],
      ['d', 2],
    ]);
    expect(await count(c, leader, 'p')).toBe(2);

    await expect(processCommand(s1, leader, { add: 'x' }, { requestId: '' })).rejects.toBeInstanceOf(
      InvalidRequestError,
    );
    await expect(
      processCommand(s1, leader, { add: 'x' }, { requestId: 'r'.repeat(257) }),
    ).rejects.toBeInstanceOf(InvalidRequestError);
    expect(() => pipelineCommand(s1, leader, { add: 'x' }, 'e', client, 'normal', 7 as never)).toThrow(
      InvalidRequestError,
    );
    expect(await count(c, leader, 'x')).toBe(0);
  });

  it('the ids travel in snapshots: a member that installed one, then leads, still recognises a copy', async () => {
    cluster = await localCluster(3, { machines, snapshotChunkBytes: 512, trailingEntries: 0 });
    const c = cluster;
    const s1 = c.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, c.ids);
    const leader = await awaitLeader(s1, c.ids, { timeoutMs: 10_000 });
    const leaderSys = systemOf(c, leader);
    const lagging = c.ids.find((id) => id.node !== leader.node)!;
    const first = await processCommand(leaderSys, leader, { add: 'once' }, { requestId: 'snap-1' });
    await stopServer(leaderSys, lagging);
    for (let i = 0; i < 200; i++) await processCommand(leaderSys, leader, { add: `k${i % 10}` });
    await eventually(async () => {
      const v = await overview(leaderSys, leader);
      return v.snapshot !== null && v.snapshot.index > first.index ? true : undefined;
    });
    await restartServer(leaderSys, lagging);
    const laggingSys = systemOf(c, lagging);
    const caught = await eventually(async () => {
      const v = await overview(laggingSys, lagging);
      return v.lastApplied >= first.index + 200 ? v : undefined;
    }, 10_000);
    expect(caught.counters.snapshotsInstalled).toBeGreaterThanOrEqual(1);
    expect(caught.snapshot!.index).toBeGreaterThan(first.index);
    await transferLeadership(leaderSys, leader, lagging);
    await eventually(async () =>
      (await overview(laggingSys, lagging)).role === 'leader' ? true : undefined,
    );
    const copy = await processCommand(laggingSys, lagging, { add: 'once' }, { requestId: 'snap-1' });
    expect(copy.reply).toBe(1);
    expect(copy.index).toBe(first.index);
    expect(await count(c, lagging, 'once')).toBe(1);
  });
});
