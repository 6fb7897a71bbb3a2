/**
 * A command that reached a leader which then became unreachable is never resent by
 * `processCommand`: the first copy may be committed already, and a second would be applied too.
 * (Found by a partition experiment over real links: a create-only compare-and-set forwarded by a
 * follower answered `compare_failed` with the client's own value.)
 */
import type { ServerId } from '@otra/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  awaitLeader,
  CommandOutcomeUnknownError,
  consistentQuery,
  processCommand,
  startCluster,
} from '../src/index.ts';
import {
  type CountCmd,
  countingMachine,
  countingQueries,
  eventually,
  type LocalCluster,
  localCluster,
} from './support.ts';

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('processCommand and an unreachable leader', () => {
  it('does not resend a command the leader may have committed: it rejects with CommandOutcomeUnknownError', async () => {
    let isolate: (() => void) | undefined;
    cluster = await localCluster(3, {
      machines: {
        kv: {
          machine: countingMachine,
          queries: countingQueries,
          hooks: {
            // on the leader, once the command is committed and before its reply leaves: cut the
            // leader off from both followers, so the caller's node sees `noconnection`
            onCommandCommitted: (_before: unknown, command: CountCmd) => {
              if (command.add === 'once') isolate?.();
            },
          },
        },
      },
    });
    const c = cluster;
    await startCluster(c.systems[0]!, 'kv', { module: 'kv' }, c.ids);
    const leader = await awaitLeader(c.systems[0]!, c.ids);
    const follower = c.ids.find((id) => id.node !== leader.node) as ServerId;
    const followerSys = c.systems[Number(follower.node.slice(1)) - 1]!;
    isolate = () => {
      isolate = undefined;
      for (const n of c.nodes) if (n.name !== leader.node) c.net.partition(leader.node, n.name);
    };
    // sent to a follower, redirected to the leader, committed there, the answer lost
    await expect(
      processCommand(followerSys, follower, { add: 'once' }, { timeoutMs: 5000 }),
    ).rejects.toBeInstanceOf(CommandOutcomeUnknownError);
    // the majority side elects a new leader, which holds the entry: applied exactly once
    const rest = c.ids.filter((id) => id.node !== leader.node);
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
