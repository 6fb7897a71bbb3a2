import type {
  LeaderProbe,
  NoopEntry,
  PreVoteReply,
  PreVoteRequest,
  TimeoutNow,
  VoteReply,
  VoteRequest,
} from '@otra/protocol';
import { type ServerId, serverIdKey } from '@otra/protocol';
import type { Peer } from '../types.ts';
import {
  armElectionTimer,
  type Ctx,
  isMember,
  isVoter,
  mayCampaign,
  persistMetaCoalesced,
  send,
  voterKeys,
} from './context.ts';
import { appendOne, isUpToDate, lastIndex, lastTerm } from './log.ts';
import { wake } from './quiesce.ts';
import { hasQuorum } from './quorum.ts';
import { replicateAll } from './replication.ts';
import { enterRole, observeTerm } from './roles.ts';

/**
 * A leader lease: while a follower hears from a live leader (its election timer has not fired)
 * it refuses pre-votes and ignores vote requests, so a server cut off from the leader alone
 * (a partial partition) cannot depose it.
 */
function inLease(ctx: Ctx): boolean {
  return (
    ctx.role === 'leader' ||
    ((ctx.role === 'follower' || ctx.role === 'receive_snapshot') && ctx.s.leaderId !== null)
  );
}

function voterIds(ctx: Ctx) {
  const self = ctx.s.cfg.idKey;
  const out = [];
  for (const m of ctx.s.configs[ctx.s.configs.length - 1]!.members) {
    if (m.membership === 'voter' && serverIdKey(m.id) !== self) out.push(m.id);
  }
  return out;
}

/** The election timer fired (or `trigger_election`): start a pre-vote round if we may vote. */
export function onElectionTimeout(ctx: Ctx): void {
  if (ctx.role === 'leader' || ctx.role === 'stop') return;
  if (!mayCampaign(ctx.s)) {
    // Non-voters never campaign; keep a timer so a later promotion starts with one armed. A
    // member asks the voters for the leader (`onLeaderProbe`), as a voter's pre-vote does for it;
    // a server outside the configuration (removed, or not yet told it was added) stays quiet.
    const s = ctx.s;
    s.leaderId = null;
    armElectionTimer(ctx);
    if (!isMember(s, s.cfg.idKey)) return;
    const probe: LeaderProbe = { type: 'leader_probe', from: s.cfg.id, term: s.currentTerm };
    for (const id of voterIds(ctx)) send(ctx, id, probe);
    return;
  }
  startPreVote(ctx);
}

export function startPreVote(ctx: Ctx): void {
  const s = ctx.s;
  s.leaderId = null;
  // a snapshot transfer in progress is kept: a pre-vote changes no term, so the leader's next
  // chunk can resume it (`onInstallSnapshot`); a new term ends it
  s.votes = [s.cfg.idKey];
  enterRole(ctx, 'pre_vote');
  armElectionTimer(ctx);
  if (hasQuorum(voterKeys(s), s.votes)) {
    startElection(ctx, false);
    return;
  }
  const rpc: PreVoteRequest = {
    type: 'pre_vote.request',
    from: s.cfg.id,
    term: s.currentTerm + 1,
    lastLogIndex: lastIndex(s.log),
    lastLogTerm: lastTerm(s.log),
  };
  for (const id of voterIds(ctx)) send(ctx, id, rpc);
}

/** Raft's candidate: new term, vote for ourselves (persisted before any request leaves). */
export function startElection(ctx: Ctx, transfer: boolean): void {
  const s = ctx.s;
  s.currentTerm += 1;
  s.votedFor = s.cfg.id;
  s.leaderId = null;
  s.receiving = null;
  s.matchedIndex = 0;
  s.leaderRound = 0;
  s.votes = [s.cfg.idKey];
  enterRole(ctx, 'candidate');
  persistMetaCoalesced(ctx);
  armElectionTimer(ctx);
  if (hasQuorum(voterKeys(s), s.votes)) {
    becomeLeader(ctx);
    return;
  }
  const rpc: VoteRequest = {
    type: 'vote.request',
    from: s.cfg.id,
    term: s.currentTerm,
    lastLogIndex: lastIndex(s.log),
    lastLogTerm: lastTerm(s.log),
    transfer,
  };
  for (const id of voterIds(ctx)) send(ctx, id, rpc);
}

/**
 * A (pre-)vote request from the very leader this server follows: that leader no longer leads (its
 * server restarted, or it stepped down), so the lease it gave is over. Without this, a follower
 * that went to sleep on a quiesce heartbeat the old leader sent just before it restarted watches
 * the restarted server, which lives on as a follower: asleep and in lease, it refused every
 * pre-vote for good.
 */
function leaseEndedBy(ctx: Ctx, from: ServerId): void {
  const s = ctx.s;
  if (ctx.role === 'leader' || s.leaderId === null || serverIdKey(s.leaderId) !== serverIdKey(from)) return;
  s.leaderId = null;
  wake(ctx);
}

export function onPreVoteRequest(ctx: Ctx, m: PreVoteRequest): void {
  const s = ctx.s;
  leaseEndedBy(ctx, m.from);
  const granted = m.term > s.currentTerm && !inLease(ctx) && isUpToDate(s.log, m.lastLogIndex, m.lastLogTerm);
  const reply: PreVoteReply = {
    type: 'pre_vote.reply',
    from: s.cfg.id,
    term: granted ? m.term : s.currentTerm,
    granted,
  };
  send(ctx, m.from, reply);
}

export function onPreVoteReply(ctx: Ctx, m: PreVoteReply): void {
  const s = ctx.s;
  if (!m.granted) {
    if (m.term > s.currentTerm) observeTerm(ctx, m.term, null);
    return;
  }
  if (ctx.role !== 'pre_vote' || m.term !== s.currentTerm + 1) return;
  const key = serverIdKey(m.from);
  if (s.votes.includes(key)) return;
  s.votes = [...s.votes, key];
  if (hasQuorum(voterKeys(s), s.votes)) startElection(ctx, false);
}

export function onVoteRequest(ctx: Ctx, m: VoteRequest): void {
  const s = ctx.s;
  leaseEndedBy(ctx, m.from);
  if (m.term > s.currentTerm) {
    // Disruption guard: a live leader's followers ignore higher terms unless it is a transfer.
    if (inLease(ctx) && !m.transfer) {
      send(ctx, m.from, { type: 'vote.reply', from: s.cfg.id, term: s.currentTerm, granted: false });
      return;
    }
    observeTerm(ctx, m.term, null);
  }
  let granted = false;
  if (m.term === s.currentTerm) {
    const canVote = s.votedFor === null || serverIdKey(s.votedFor) === serverIdKey(m.from);
    granted = canVote && isUpToDate(s.log, m.lastLogIndex, m.lastLogTerm);
    if (granted && s.votedFor === null) {
      s.votedFor = m.from;
      persistMetaCoalesced(ctx);
    }
    if (granted) armElectionTimer(ctx);
  }
  const reply: VoteReply = { type: 'vote.reply', from: s.cfg.id, term: s.currentTerm, granted };
  send(ctx, m.from, reply);
}

export function onVoteReply(ctx: Ctx, m: VoteReply): void {
  const s = ctx.s;
  if (m.term > s.currentTerm) {
    observeTerm(ctx, m.term, null);
    return;
  }
  if (ctx.role !== 'candidate' || m.term !== s.currentTerm || !m.granted) return;
  const key = serverIdKey(m.from);
  if (s.votes.includes(key)) return;
  s.votes = [...s.votes, key];
  if (hasQuorum(voterKeys(s), s.votes)) becomeLeader(ctx);
}

/** Leadership transfer: the leader asked us to campaign now, bypassing pre-vote and leases. */
export function onTimeoutNow(ctx: Ctx, m: TimeoutNow): void {
  const s = ctx.s;
  if (m.term < s.currentTerm) return;
  observeTerm(ctx, m.term, m.from);
  if (ctx.role === 'leader' || ctx.role === 'stop' || !isVoter(s, s.cfg.idKey)) return;
  startElection(ctx, true);
}

export function becomeLeader(ctx: Ctx): void {
  const s = ctx.s;
  s.leaderId = s.cfg.id;
  s.votes = [];
  const next = lastIndex(s.log) + 1;
  const peers: Peer[] = [];
  for (const m of s.configs[s.configs.length - 1]!.members) {
    const key = serverIdKey(m.id);
    if (key === s.cfg.idKey) continue;
    peers.push(newPeer(m.id, key, next));
  }
  const noop: NoopEntry = {
    type: 'noop',
    index: next,
    term: s.currentTerm,
    machineVersion: s.cfg.machine.version?.() ?? 0,
  };
  s.log = appendOne(s.log, noop);
  s.leader = { peers, round: 0, ticks: 0, termStartIndex: next, queries: [], lowQueue: [], idleTicks: 0 };
  enterRole(ctx, 'leader');
  ctx.fx.push({ type: 'timer.cancel', timer: 'election' });
  ctx.fx.push({ type: 'log.append', entries: [noop] });
  ctx.fx.push({ type: 'hook', hook: 'elected', term: s.currentTerm });
  replicateAll(ctx);
}

export function newPeer(id: Peer['id'], key: string, nextIndex: number): Peer {
  return {
    id,
    key,
    nextIndex,
    matchIndex: 0,
    inFlight: 0,
    ackedRound: 0,
    active: false,
    replied: true,
    snapshotTicks: 0,
    snapshotProgress: null,
  };
}
