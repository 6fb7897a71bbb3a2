/**
 * A command that reached a leader which then became unreachable is never resent by
 * `processCommand`: the first copy may be committed already, and a second would be applied too.
 * (Found by a partition experiment over real links: a create-only compare-and-set forwarded by a
 * follower answered `compare_failed` with the client's own value.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { awaitLeader, CommandOutcomeUnknownError, consistentQuery, processCommand } from '../src/index.ts';
import { cutOffAfterCommit, eventually, type LocalCluster } from './support.ts';

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('processCommand and an unreachable leader', () => {
  it('does not resend a command the leader may have committed: it rejects with CommandOutcomeUnknownError', async () => {
    const { cluster: c, follower, followerSys, rest } = await cutOffAfterCommit();
    cluster = c;
    // sent to a follower, redirected to the leader, committed there, the answer lost
    await expect(
      processCommand(followerSys, follower, { add: 'once' }, { timeoutMs: 5000 }),
    ).rejects.toBeInstanceOf(CommandOutcomeUnknownError);
    // the majority side elects a new leader, which holds the entry: applied exactly once
    await awaitLeader(followerSys, rest, { timeoutMs: 5000 });
    const count = await eventually(async () => {
      const q = await consistentQuery(followerSys, follower, { name: 'count', args: ['once'] });
      return q.result as number;
    });
    expect(count).toBe(1);
    // a command whose call never left (no link) is still retried until a leader answers
    const r = await processCommand(followerSys, follower, { add: 'later' }, { timeoutMs: 5000 });
    expect(r.reply).toBe(1);
  });
});
