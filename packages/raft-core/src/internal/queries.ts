import type { From } from '@otra/protocol';
import type { LocalMessage, PendingQuery } from '../types.ts';
import { type Ctx, peerIndex, reply, replyError, voterKeys } from './context.ts';
import { termAt } from './log.ts';
import { quorumSize } from './quorum.ts';
import { heartbeat } from './replication.ts';

type QueryMsg = Extract<LocalMessage, { type: 'query' }>;

function run(ctx: Ctx, fn: (state: unknown) => unknown, from: From): void {
  const s = ctx.s;
  let result: unknown;
  try {
    result = fn(s.machineState);
  } catch (err) {
    replyError(ctx, from, 'query_error', err instanceof Error ? err.message : String(err));
    return;
  }
  reply(ctx, from, {
    type: 'query',
    index: s.lastApplied,
    term: termAt(s.log, s.lastApplied) ?? s.log.snapshotTerm,
    result,
    leader: s.leaderId,
  });
}

export function onQuery(ctx: Ctx, m: QueryMsg): void {
  const s = ctx.s;
  switch (m.kind) {
    case 'local':
      if (m.condition === undefined || s.lastApplied >= m.condition.index) run(ctx, m.fn, m.from);
      else s.localQueries = [...s.localQueries, { fn: m.fn, from: m.from, condition: m.condition }];
      return;
    case 'leader':
      if (ctx.role === 'leader') run(ctx, m.fn, m.from);
      else replyError(ctx, m.from, 'not_leader');
      return;
    case 'consistent': {
      if (ctx.role !== 'leader') {
        replyError(ctx, m.from, 'not_leader');
        return;
      }
      // Read-index (Raft §6.4): remember the commit index now (at least this term's noop, so that
      // everything committed before we were elected is included), then confirm we are still the
      // leader with a fresh heartbeat round that starts after the query arrived.
      const leader = s.leader!;
      const query: PendingQuery = {
        fn: m.fn,
        from: m.from,
        round: leader.round,
        readIndex: Math.max(s.commitIndex, leader.termStartIndex),
      };
      s.leader = { ...leader, round: leader.round + 1, queries: [...leader.queries, query] };
      for (let i = 0; i < leader.peers.length; i++) heartbeat(ctx, i);
      answerConsistentQueries(ctx);
      return;
    }
  }
}

/** Answers queued consistent queries whose round a majority acknowledged and whose index is applied. */
export function answerConsistentQueries(ctx: Ctx): void {
  const s = ctx.s;
  const leader = s.leader!;
  const voters = voterKeys(s);
  const need = quorumSize(voters.length);
  const rounds: number[] = [];
  for (const key of voters) {
    if (key === s.cfg.idKey) rounds.push(Number.POSITIVE_INFINITY);
    else {
      const j = peerIndex(leader, key);
      rounds.push(j >= 0 ? leader.peers[j]!.ackedRound : 0);
    }
  }
  rounds.sort((a, b) => b - a);
  // The highest round acknowledged by a majority (including ourselves).
  const confirmed = voters.length === 0 ? -1 : rounds[need - 1]!;
  let remaining: PendingQuery[] | null = null;
  let answered = 0;
  for (const q of leader.queries) {
    if (confirmed > q.round && s.lastApplied >= q.readIndex) {
      run(ctx, q.fn, q.from);
      answered++;
    } else (remaining ??= []).push(q);
  }
  if (answered > 0) {
    s.leader = { ...s.leader!, queries: remaining ?? [] };
    ctx.fx.push({ type: 'hook', hook: 'query_answered', count: answered });
  }
}

export function answerLocalQueries(ctx: Ctx): void {
  const s = ctx.s;
  let remaining: typeof s.localQueries | null = null;
  let changed = false;
  for (const q of s.localQueries) {
    if (s.lastApplied >= q.condition.index) {
      run(ctx, q.fn, q.from);
      changed = true;
    } else remaining = [...(remaining ?? []), q];
  }
  if (changed) s.localQueries = remaining ?? [];
}
