import type {
  AppendEntriesRequest,
  ClusterConfig,
  Correlation,
  From,
  Pid,
  RaftRpc,
  ServerId,
} from '@otra/protocol';
import { serverIdKey } from '@otra/protocol';
import type { Effect, LeaderState, Peer, RaftError, Reply, Role, ServerState } from '../types.ts';
import { lastIndex, termAt } from './log.ts';

export type Draft = { -readonly [K in keyof ServerState]: ServerState[K] };

/**
 * One handler invocation: a shallow copy of the input state that the handler edits (nested
 * objects are replaced, never edited, so the caller's state is untouched), the role it ends in,
 * and the effects it emits, in order.
 */
export interface Ctx {
  readonly s: Draft;
  role: Role;
  readonly fx: Effect[];
  /** Per-pid `notify` batches of this event, flushed once at the end. */
  notify: Map<string, NotifyBatch> | null;
  /**
   * The batch the last `notify` answer went to: consecutive commands nearly always come from one
   * client, so most answers find their batch here without building the pid's key.
   */
  lastNotify: NotifyBatch | null;
}

/** The `applied` notifications of one event for one pid. */
export interface NotifyBatch {
  readonly to: Pid;
  readonly applied: [Correlation, unknown][];
}

/**
 * The index the latest snapshot covers. The in-memory log may start below it (`trailingEntries`);
 * without a snapshot it is where the log starts.
 */
export function snapshotPoint(s: ServerState): number {
  return s.snapshot?.index ?? s.log.snapshotIndex;
}

export function cluster(s: ServerState): ClusterConfig {
  return s.configs[s.configs.length - 1]!.members;
}

/** Keys of the voting members of the configuration in force. */
export function voterKeys(s: ServerState): string[] {
  const keys: string[] = [];
  for (const m of cluster(s)) if (m.membership === 'voter') keys.push(serverIdKey(m.id));
  return keys;
}

export function isVoter(s: ServerState, key: string): boolean {
  for (const m of cluster(s)) if (m.membership === 'voter' && serverIdKey(m.id) === key) return true;
  return false;
}

/**
 * Whether this server may start an election: it is a voter of its latest configuration, or of the
 * one before it while the latest (which removed it) is not known to be committed. Until that
 * removal commits, this server may be the one whose log is ahead of every remaining voter's (it
 * led, appended its own removal, and was cut off before a majority took it), and then they refuse
 * each other as behind: it must be able to win their votes, lead them without counting itself,
 * commit the removal and step down (the Raft thesis, section 4.2.2). Its votes are counted in its
 * latest configuration, as every candidate's.
 */
export function mayCampaign(s: ServerState): boolean {
  const key = s.cfg.idKey;
  if (isVoter(s, key)) return true;
  const n = s.configs.length;
  if (n < 2 || s.configs[n - 1]!.index <= s.commitIndex) return false;
  for (const m of s.configs[n - 2]!.members)
    if (m.membership === 'voter' && serverIdKey(m.id) === key) return true;
  return false;
}

export function isMember(s: ServerState, key: string): boolean {
  for (const m of cluster(s)) if (serverIdKey(m.id) === key) return true;
  return false;
}

export function send(ctx: Ctx, to: ServerId, rpc: RaftRpc): void {
  ctx.fx.push({ type: 'send_rpc', to, rpc });
}

export function reply(ctx: Ctx, to: From, r: Reply): void {
  ctx.fx.push({ type: 'reply', to, reply: r });
}

export function replyError(ctx: Ctx, to: From, error: RaftError, message?: string): void {
  const r: Reply =
    message === undefined
      ? { type: 'error', error, leader: ctx.s.leaderId }
      : { type: 'error', error, leader: ctx.s.leaderId, message };
  reply(ctx, to, r);
}

function persistMeta(ctx: Ctx): void {
  ctx.fx.push({ type: 'meta.persist', currentTerm: ctx.s.currentTerm, votedFor: ctx.s.votedFor });
}

export function armElectionTimer(ctx: Ctx): void {
  const [minMs, maxMs] = ctx.s.cfg.electionTimeoutMs;
  ctx.fx.push({ type: 'timer.set', timer: 'election', minMs, maxMs });
}

export function setLeader(ctx: Ctx, leader: LeaderState): void {
  ctx.s.leader = leader;
}

export function updatePeer(ctx: Ctx, i: number, patch: Partial<Peer>): Peer {
  const leader = ctx.s.leader!;
  const peers = leader.peers.slice();
  const next = { ...peers[i]!, ...patch };
  peers[i] = next;
  ctx.s.leader = { ...leader, peers };
  return next;
}

export function peerIndex(leader: LeaderState, key: string): number {
  const peers = leader.peers;
  for (let i = 0; i < peers.length; i++) if (peers[i]!.key === key) return i;
  return -1;
}

/** Coalesces with an immediately preceding `meta.persist` so one barrier covers both changes. */
export function persistMetaCoalesced(ctx: Ctx): void {
  const last = ctx.fx[ctx.fx.length - 1];
  if (last !== undefined && last.type === 'meta.persist') ctx.fx.pop();
  persistMeta(ctx);
}

/**
 * The leader's empty AppendEntries for `peer`, anchored at what the follower is known to hold
 * (so it always matches): it asserts leadership, carries the commit index and the read-index round.
 */
export function heartbeatRequest(s: ServerState, peer: Peer): AppendEntriesRequest {
  const prev = Math.min(Math.max(peer.matchIndex, s.log.snapshotIndex), lastIndex(s.log));
  return {
    type: 'append_entries.request',
    from: s.cfg.id,
    term: s.currentTerm,
    prevLogIndex: prev,
    prevLogTerm: termAt(s.log, prev)!,
    entries: [],
    leaderCommit: s.commitIndex,
    round: s.leader!.round,
  };
}
