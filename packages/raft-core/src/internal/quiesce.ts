/**
 * Quiescence (CockroachDB's term; ra gets the same effect from Erlang's process monitors): an
 * idle group stops its per-group timers. The leader sends one `quiesce` heartbeat and stops
 * ticking; followers stop their election timers and watch the leader's process. Liveness comes
 * from the node links instead: a follower wakes when the watched leader exits or its link drops,
 * and the leader wakes on any work, on a vote request, or when a watched member goes down.
 *
 * Only timers and heartbeats change, never what is voted, appended or committed, so Raft's
 * safety is untouched; what it costs is failover time for a silent failure (no TCP reset), which
 * is bounded by the link's liveness timeout rather than the election timeout.
 */
import type { AppendEntriesRequest, ServerId } from '@otra/protocol';
import { armElectionTimer, type Ctx, cluster, heartbeatRequest, send } from './context.ts';
import { lastIndex } from './log.ts';

/** Whether the leader's group is idle now: nothing to commit, apply, replicate, answer or promote. */
function groupIdle(ctx: Ctx): boolean {
  const s = ctx.s;
  const leader = s.leader!;
  const last = lastIndex(s.log);
  if (s.cfg.quiesceAfterTicks <= 0 || s.cfg.machine.tick !== undefined) return false;
  if (leader.queries.length > 0 || leader.lowQueue.length > 0 || s.localQueries.length > 0) return false;
  if (s.commitIndex !== last || s.lastApplied !== last || s.lastWritten.index !== last) return false;
  for (const p of leader.peers) {
    // `replied`: a follower answered since the last tick with nothing outstanding
    if (p.matchIndex !== last || p.inFlight !== 0 || p.snapshotTicks !== 0 || !p.replied) return false;
  }
  for (const m of cluster(s)) if (m.membership === 'promotable') return false;
  return true;
}

/**
 * Leader, on a tick: counts idle ticks and, once the group was idle for `quiesceAfterTicks` in a
 * row, quiesces it (instead of heartbeating). Returns whether it did.
 */
export function maybeQuiesce(ctx: Ctx): boolean {
  const s = ctx.s;
  const leader = s.leader!;
  if (!groupIdle(ctx)) {
    if (leader.idleTicks !== 0) s.leader = { ...leader, idleTicks: 0 };
    return false;
  }
  const idleTicks = leader.idleTicks + 1;
  s.leader = { ...leader, idleTicks };
  if (idleTicks < s.cfg.quiesceAfterTicks) return false;
  const peers: ServerId[] = [];
  for (const p of leader.peers) {
    // every match is the last index here (groupIdle), so each request is anchored there
    send(ctx, p.id, { ...heartbeatRequest(s, p), quiesce: true });
    peers.push(p.id);
  }
  s.quiesced = true;
  ctx.fx.push({ type: 'monitor.peers', peers });
  return true;
}

/**
 * Ends quiescence, whatever the role. A leader starts a fresh check-quorum window (it heard from
 * nobody while asleep) and resumes ticking; a follower re-arms its election timer.
 */
export function wake(ctx: Ctx): void {
  const s = ctx.s;
  if (!s.quiesced) return;
  s.quiesced = false;
  if (ctx.role === 'leader' && s.leader !== null) {
    ctx.fx.push({ type: 'monitor.peers', peers: [] });
    s.leader = {
      ...s.leader,
      ticks: 0,
      idleTicks: 0,
      peers: s.leader.peers.map((p) => (p.active ? { ...p, active: false } : p)),
    };
    return;
  }
  ctx.fx.push({ type: 'monitor.leader', leader: null });
  if (ctx.role === 'follower' || ctx.role === 'receive_snapshot' || ctx.role === 'pre_vote')
    armElectionTimer(ctx);
}

/**
 * Follower, after a successful AppendEntries: a `quiesce` heartbeat that found this log and
 * commit index equal to the leader's puts it to sleep; any other AppendEntries wakes it.
 * `watching` is the leader it watched before this request, if it was asleep.
 */
export function followerAfterAppend(ctx: Ctx, m: AppendEntriesRequest, watching: ServerId | null): void {
  const s = ctx.s;
  const eligible =
    m.quiesce === true &&
    ctx.role === 'follower' &&
    m.prevLogIndex === lastIndex(s.log) &&
    s.matchedIndex === m.prevLogIndex &&
    s.commitIndex === m.leaderCommit;
  if (!eligible) {
    if (watching !== null) ctx.fx.push({ type: 'monitor.leader', leader: null });
    return;
  }
  s.quiesced = true;
  ctx.fx.push({ type: 'timer.cancel', timer: 'election' });
  const same = watching !== null && watching.name === m.from.name && watching.node === m.from.node;
  if (!same) ctx.fx.push({ type: 'monitor.leader', leader: m.from });
}
