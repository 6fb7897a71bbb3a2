import type {
  AppendEntriesReply,
  AppendEntriesRequest,
  ConfigEntry,
  LeaderProbe,
  LogEntry,
} from '@otra/protocol';
import { serverIdKey } from '@otra/protocol';
import type { Peer, ServerState } from '../types.ts';
import { applyCommitted } from './apply.ts';
import { flushLowPriority } from './client.ts';
import {
  armElectionTimer,
  type Ctx,
  heartbeatRequest,
  peerIndex,
  send,
  updatePeer,
  voterKeys,
} from './context.ts';
import { append, lastIndex, lastTerm, slice, termAt, truncateFrom } from './log.ts';
import { maybePromote } from './membership.ts';
import { answerConsistentQueries } from './queries.ts';
import { followerAfterAppend, wake } from './quiesce.ts';
import { committedIndex, quorumSize } from './quorum.ts';
import { becomeFollower, observeTerm } from './roles.ts';

// ---------------------------------------------------------------------------------------------
// Leader side

/**
 * Sends what the follower at `i` lacks, up to `maxInFlight` batches of `maxAppendEntriesBatch`
 * entries, without waiting for our own write (Raft allows the leader to write in parallel).
 * A follower behind the snapshot is sent the snapshot instead.
 */
export function replicate(ctx: Ctx, i: number): boolean {
  const s = ctx.s;
  let peer = s.leader!.peers[i]!;
  if (peer.snapshotTicks > 0) return false;
  if (peer.nextIndex <= s.log.snapshotIndex) {
    if (s.snapshot === null) return false;
    wake(ctx);
    // a retried transfer of the same snapshot resumes where the follower's acknowledgements stopped
    const was = peer.snapshotProgress;
    const from = was !== null && was.index === s.snapshot.index ? was.next : 0;
    updatePeer(ctx, i, {
      snapshotTicks: 2 * s.cfg.electionTimeoutTicks,
      inFlight: 0,
      snapshotProgress: { index: s.snapshot.index, from, next: from, answered: false },
    });
    ctx.fx.push({
      type: 'snapshot.send',
      to: peer.id,
      term: s.currentTerm,
      meta: s.snapshot,
      fromChunk: from,
    });
    return true;
  }
  const last = lastIndex(s.log);
  if (peer.nextIndex > last || peer.inFlight >= s.cfg.maxInFlight) return false;
  // whatever the leader sends, it keeps ticking until the group is idle again
  wake(ctx);
  let { nextIndex, inFlight } = peer;
  const round = s.leader!.round;
  while (inFlight < s.cfg.maxInFlight && nextIndex <= last) {
    const to = Math.min(last, nextIndex + s.cfg.maxAppendEntriesBatch - 1);
    const rpc: AppendEntriesRequest = {
      type: 'append_entries.request',
      from: s.cfg.id,
      term: s.currentTerm,
      prevLogIndex: nextIndex - 1,
      prevLogTerm: termAt(s.log, nextIndex - 1)!,
      entries: slice(s.log, nextIndex, to),
      leaderCommit: s.commitIndex,
      round,
    };
    send(ctx, peer.id, rpc);
    nextIndex = to + 1;
    inFlight++;
  }
  peer = updatePeer(ctx, i, { nextIndex, inFlight });
  return true;
}

export function replicateAll(ctx: Ctx): void {
  const n = ctx.s.leader!.peers.length;
  for (let i = 0; i < n; i++) replicate(ctx, i);
}

/** An AppendEntries without entries whose previous entry is the last one sent to `peer`. */
function probeRequest(s: ServerState, peer: Peer): AppendEntriesRequest {
  const prev = Math.min(peer.nextIndex - 1, lastIndex(s.log));
  return { ...heartbeatRequest(s, peer), prevLogIndex: prev, prevLogTerm: termAt(s.log, prev)! };
}

/** Sends `heartbeatRequest` to the follower at `i` (not while a snapshot goes to it). */
export function heartbeat(ctx: Ctx, i: number): void {
  const peer = ctx.s.leader!.peers[i]!;
  if (peer.snapshotTicks > 0) return;
  wake(ctx);
  send(ctx, peer.id, heartbeatRequest(ctx.s, peer));
}

/**
 * A member the leader is sending a snapshot to asked for a (pre-)vote: it has lost track of the
 * leader (its server restarted, or its link was down), so the transfer has stalled. Retry it now,
 * resuming after the member's last acknowledged chunk, instead of when the transfer's silence
 * times out (up to two election timeouts later). Chunks a restarted member cannot take it answers
 * with what it holds, and the leader starts over from there.
 */
export function retryTransferTo(ctx: Ctx, key: string): void {
  if (ctx.role !== 'leader') return;
  const i = peerIndex(ctx.s.leader!, key);
  if (i < 0) return;
  const peer = ctx.s.leader!.peers[i]!;
  if (peer.snapshotTicks === 0) return;
  updatePeer(ctx, i, { snapshotTicks: 0, nextIndex: peer.matchIndex + 1 });
  replicate(ctx, i);
}

/**
 * A non-voting member lost track of the leader (`onElectionTimeout`): the counterpart of a voter's
 * pre-vote for `retryTransferTo`. A transfer to it that is under way resumes now (its server most
 * likely restarted mid-transfer, and would otherwise wait for the transfer's silence to time out,
 * two election timeouts); otherwise it gets a heartbeat, which tells it who leads. A probe of a
 * later term than ours is left alone: a newer leader exists, and the member will hear from it.
 */
export function onLeaderProbe(ctx: Ctx, m: LeaderProbe): void {
  if (ctx.role !== 'leader' || m.term > ctx.s.currentTerm) return;
  const key = serverIdKey(m.from);
  const i = peerIndex(ctx.s.leader!, key);
  if (i < 0) return;
  if (ctx.s.leader!.peers[i]!.snapshotTicks > 0) retryTransferTo(ctx, key);
  else heartbeat(ctx, i);
}

/** Leader's periodic work: resend lost batches, heartbeat idle followers, check quorum. */
export function leaderTick(ctx: Ctx): void {
  const s = ctx.s;
  const n = s.leader!.peers.length;
  for (let i = 0; i < n; i++) {
    const peer = s.leader!.peers[i]!;
    if (peer.snapshotTicks > 0) {
      // A snapshot transfer that stays silent this long is presumed lost: retry it, resuming
      // after the follower's last acknowledged chunk, unless this was a resumed transfer that
      // moved nothing and got no answer (a follower that drops what it cannot take without a
      // word): then from chunk 0. A follower installing the snapshot answers, and is asked again.
      const left = peer.snapshotTicks - 1;
      if (left > 0) updatePeer(ctx, i, { snapshotTicks: left });
      else {
        const p = peer.snapshotProgress;
        const stuck = p !== null && p.from > 0 && p.next === p.from && !p.answered;
        updatePeer(ctx, i, {
          snapshotTicks: 0,
          nextIndex: peer.matchIndex + 1,
          ...(stuck ? { snapshotProgress: { ...p, next: 0 } } : {}),
        });
      }
      continue;
    }
    // Entries sent but not acknowledged through a whole tick were lost (a partition drops them
    // while heartbeats probing at matchIndex still succeed), or the follower is busy writing.
    // Probe at the end of what was sent: a link keeps order, so the follower reads the probe after
    // those entries; only one that lacks them fails it, and its failure backs nextIndex off to
    // what it holds. Resending everything instead made a slow follower slower under load.
    const probe =
      !peer.replied && peer.nextIndex > peer.matchIndex + 1 && peer.nextIndex > s.log.snapshotIndex;
    updatePeer(ctx, i, { replied: false });
    if (probe) send(ctx, peer.id, probeRequest(s, peer));
    if (!replicate(ctx, i) && !probe) heartbeat(ctx, i);
  }
  const leader = s.leader!;
  const ticks = leader.ticks + 1;
  if (ticks < s.cfg.electionTimeoutTicks) {
    s.leader = { ...leader, ticks };
    return;
  }
  // Check-quorum: step down if a majority of voters was silent for an election timeout, so a
  // leader cut off in a minority stops serving (stale) consistent reads and leader queries.
  const voters = voterKeys(s);
  let active = 0;
  for (const key of voters) {
    if (key === s.cfg.idKey) active++;
    else {
      const j = peerIndex(leader, key);
      if (j >= 0 && leader.peers[j]!.active) active++;
    }
  }
  if (active < quorumSize(voters.length)) {
    becomeFollower(ctx, null);
    return;
  }
  s.leader = {
    ...leader,
    ticks: 0,
    peers: leader.peers.map((p) => (p.active ? { ...p, active: false } : p)),
  };
}

export function onAppendEntriesReply(ctx: Ctx, m: AppendEntriesReply): void {
  const s = ctx.s;
  if (m.term > s.currentTerm) {
    observeTerm(ctx, m.term, null);
    return;
  }
  if (ctx.role !== 'leader' || m.term < s.currentTerm) return;
  const i = peerIndex(s.leader!, keyOf(m.from));
  if (i < 0) return;
  const peer = s.leader!.peers[i]!;
  if (peer.snapshotTicks > 0) {
    updatePeer(ctx, i, { active: true, replied: true });
    return;
  }
  const ackedRound = Math.max(peer.ackedRound, m.round);
  if (m.success) {
    const matchIndex = Math.max(peer.matchIndex, m.matchIndex);
    updatePeer(ctx, i, {
      matchIndex,
      nextIndex: Math.max(peer.nextIndex, matchIndex + 1),
      // One reply may answer several requests (a follower acknowledges each durable write, which
      // may hold several): once it holds all that was sent, nothing is in flight.
      inFlight: m.lastIndex >= peer.nextIndex - 1 ? 0 : Math.max(0, peer.inFlight - 1),
      ackedRound,
      active: true,
      // `replied` means progress: a heartbeat answered at an unchanged match does not count
      replied: peer.replied || matchIndex > peer.matchIndex || matchIndex + 1 >= peer.nextIndex,
    });
    if (matchIndex > peer.matchIndex) {
      advanceCommit(ctx);
      if (ctx.role !== 'leader') return;
      maybePromote(ctx, keyOf(m.from), matchIndex);
    }
  } else {
    // Fast back-off: skip to the follower's last index, then further back over our entries whose
    // term is newer than the follower's term there (they cannot match: etcd's findConflictByTerm).
    let idx = Math.min(m.lastIndex, lastIndex(s.log));
    while (idx > s.log.snapshotIndex && (termAt(s.log, idx) ?? 0) > m.lastTerm) idx--;
    updatePeer(ctx, i, {
      nextIndex: Math.max(peer.matchIndex + 1, idx + 1),
      inFlight: 0,
      ackedRound,
      active: true,
      replied: true,
    });
  }
  if (ctx.role !== 'leader') return;
  const j = peerIndex(s.leader!, keyOf(m.from));
  if (j >= 0) replicate(ctx, j);
  if (s.leader!.queries.length > 0) answerConsistentQueries(ctx);
}

/**
 * The commit index is the highest index stored on a majority of voters, and only if it is of the
 * current term (Raft §5.4.2, Figure 8): earlier-term entries commit indirectly with it. Our own
 * match is what our log writer confirmed, never what is merely appended in memory.
 */
export function advanceCommit(ctx: Ctx): void {
  const s = ctx.s;
  const leader = s.leader!;
  const matches: number[] = [];
  for (const key of voterKeys(s)) {
    if (key === s.cfg.idKey) matches.push(s.lastWritten.index);
    else {
      const j = peerIndex(leader, key);
      matches.push(j >= 0 ? leader.peers[j]!.matchIndex : 0);
    }
  }
  const n = committedIndex(matches);
  if (n > s.commitIndex && termAt(s.log, n) === s.currentTerm) {
    const from = s.commitIndex;
    s.commitIndex = n;
    ctx.fx.push({ type: 'hook', hook: 'command_committed', index: n, count: n - from });
    applyCommitted(ctx);
  }
}

// ---------------------------------------------------------------------------------------------
// Follower side

/**
 * A follower's AppendEntries, then quiescence: a `quiesce` heartbeat that leaves this follower
 * in step with the leader stops its election timer; any other wakes it.
 */
export function onAppendEntries(ctx: Ctx, m: AppendEntriesRequest): void {
  const s = ctx.s;
  // a stale leader's request changes nothing here, asleep or not
  if (m.term < s.currentTerm) {
    appendEntries(ctx, m);
    return;
  }
  const watching = s.quiesced && ctx.role === 'follower' ? s.leaderId : null;
  // asleep only while the last request said so: appendEntries re-arms the timer, a quiesce
  // heartbeat that applies cancels it again
  if (watching !== null) s.quiesced = false;
  const ok = appendEntries(ctx, m);
  if (ok) followerAfterAppend(ctx, m, watching);
  else if (watching !== null) ctx.fx.push({ type: 'monitor.leader', leader: null });
}

/** Raft's AppendEntries receiver; false when it failed or only kept a snapshot receive going. */
function appendEntries(ctx: Ctx, m: AppendEntriesRequest): boolean {
  const s = ctx.s;
  if (m.term < s.currentTerm) {
    send(ctx, m.from, failure(ctx, m.round, lastIndex(s.log)));
    return false;
  }
  observeTerm(ctx, m.term, m.from);
  if (ctx.role === 'receive_snapshot') {
    // The leader's heartbeats may overtake its snapshot chunks: keep receiving. But answer, as
    // one that lags: a leader that is sending the snapshot ignores it, and one that is not (it
    // removed this member mid-transfer and added it again, so it forgot the transfer) learns
    // that the snapshot is needed. Without the answer the member waited forever, its election
    // timer re-armed by every heartbeat (simulation seed 210771 with membership churn).
    s.leaderId = m.from;
    armElectionTimer(ctx);
    send(ctx, m.from, failure(ctx, m.round, lastIndex(s.log)));
    return false;
  }
  if (ctx.role !== 'follower') becomeFollower(ctx, m.from);
  s.leaderId = m.from;
  armElectionTimer(ctx);

  let prevIndex = m.prevLogIndex;
  let entries = m.entries;
  if (prevIndex < s.log.snapshotIndex) {
    // Our snapshot is committed, hence on the leader: skip what it covers.
    const skip = s.log.snapshotIndex - prevIndex;
    entries = skip >= entries.length ? [] : entries.slice(skip);
    prevIndex = s.log.snapshotIndex;
  } else if (termAt(s.log, prevIndex) !== m.prevLogTerm) {
    send(ctx, m.from, failure(ctx, m.round, Math.min(prevIndex - 1, lastIndex(s.log))));
    return false;
  }

  // Skip entries we already hold; truncate at the first conflict and append the rest.
  let k = 0;
  let conflict = false;
  for (; k < entries.length; k++) {
    const e = entries[k]!;
    const t = termAt(s.log, e.index);
    if (t === undefined) break;
    if (t !== e.term) {
      conflict = true;
      break;
    }
  }
  if (k < entries.length) {
    const rest = k === 0 ? entries : entries.slice(k);
    const first = rest[0]!.index;
    if (conflict) {
      if (first <= s.commitIndex) throw new Error(`conflict at committed index ${first}`);
      truncateLog(ctx, first);
      ctx.fx.push({ type: 'log.append', entries: rest, truncateFrom: first });
    } else {
      ctx.fx.push({ type: 'log.append', entries: rest });
    }
    s.log = append(s.log, rest);
    noteConfigs(ctx, rest);
  }
  const lastNew = prevIndex + entries.length;
  if (lastNew > s.matchedIndex) s.matchedIndex = lastNew;
  const commit = Math.min(m.leaderCommit, s.matchedIndex);
  if (commit > s.commitIndex) s.commitIndex = commit;
  if (m.round > s.leaderRound) s.leaderRound = m.round;
  // New entries are acknowledged once durable (`onLogWritten`), with this round: one reply per
  // write, not one on receipt and another when written. Anything else is answered now.
  if (k === entries.length) send(ctx, m.from, success(ctx));
  applyCommitted(ctx);
  return true;
}

/**
 * Acknowledges only what is both verified against this leader and durable; `lastIndex` is all
 * that was received (the leader's flow control), `round` the last heartbeat round received.
 */
function success(ctx: Ctx): AppendEntriesReply {
  const s = ctx.s;
  return {
    type: 'append_entries.reply',
    from: s.cfg.id,
    term: s.currentTerm,
    success: true,
    matchIndex: Math.min(s.matchedIndex, s.lastWritten.index),
    lastIndex: lastIndex(s.log),
    lastTerm: lastTerm(s.log),
    round: s.leaderRound,
  };
}

function failure(ctx: Ctx, round: number, hint: number): AppendEntriesReply {
  const s = ctx.s;
  const idx = Math.max(hint, 0);
  return {
    type: 'append_entries.reply',
    from: s.cfg.id,
    term: s.currentTerm,
    success: false,
    matchIndex: 0,
    lastIndex: idx,
    lastTerm: termAt(s.log, idx) ?? 0,
    round,
  };
}

/** Drops entries from `index` on, reverting configurations they carried. */
export function truncateLog(ctx: Ctx, index: number): void {
  const s = ctx.s;
  s.log = truncateFrom(s.log, index);
  if (s.lastWritten.index >= index) {
    const idx = index - 1;
    s.lastWritten = { index: idx, term: termAt(s.log, idx) ?? 0 };
  }
  if (s.configs[s.configs.length - 1]!.index >= index) {
    s.configs = s.configs.filter((c, i) => i === 0 || c.index < index);
  }
}

/** A configuration takes effect as soon as it is in the log (ra and the Raft thesis §4.1). */
export function noteConfigs(ctx: Ctx, entries: readonly LogEntry[]): void {
  for (const e of entries) {
    if (e.type === 'config')
      ctx.s.configs = [...ctx.s.configs, { index: e.index, members: (e as ConfigEntry).cluster }];
  }
}

/** The log writer confirmed `upTo` durable. */
export function onLogWritten(ctx: Ctx, upTo: number, term: number): void {
  const s = ctx.s;
  // A confirmation for a branch since truncated refers to entries we no longer hold.
  if (upTo <= s.lastWritten.index || termAt(s.log, upTo) !== term) return;
  s.lastWritten = { index: upTo, term };
  if (ctx.role === 'leader') {
    advanceCommit(ctx);
    if (ctx.role === 'leader') flushLowPriority(ctx);
  } else if (ctx.role === 'follower' && s.leaderId !== null) {
    send(ctx, s.leaderId, success(ctx));
  }
}

function keyOf(id: { readonly name: string; readonly node: string }): string {
  return `${id.name}@${id.node}`;
}
