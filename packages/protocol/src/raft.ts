/**
 * Raft wire types: log entries and the RPCs servers exchange. Everything here is plain data
 * (no classes, Maps or functions) because it crosses WebSocket links as CBOR and is written to the
 * durable log. Entries are immutable once created: the transport may cache an entry's encoding in
 * a WeakMap keyed by the entry object, and several versions of the core's log share them.
 */
import type { Pid, ServerId } from './ids.ts';

/** A position in the log: `index` counts from 1; index 0 with term 0 is the empty log. */
export interface IndexTerm {
  readonly index: number;
  readonly term: number;
}

/**
 * Who waits for a command's or query's answer: an opaque token from the shell (the caller's pid
 * and a per-call reference, as an Erlang `from`). The core only copies it into `reply` effects.
 */
export interface From {
  readonly pid: Pid;
  readonly ref: number;
}

/**
 * How the leader answers a command (ra's reply modes):
 * - `after_log_append`: reply `{index, term}` as soon as the leader has appended it (not yet durable
 *   nor committed);
 * - `await_consensus`: reply with the machine's reply once the entry is committed and applied;
 * - `notify`: no reply to `from`; the pid receives `{correlation, reply}` pairs, batched per pid per
 *   event, once applied (or a `rejected` notification when the server is not the leader);
 * - `noreply`: fire and forget.
 */
export type ReplyMode =
  | { readonly mode: 'after_log_append'; readonly from: From }
  | { readonly mode: 'await_consensus'; readonly from: From }
  | { readonly mode: 'notify'; readonly to: Pid; readonly correlation: Correlation }
  | { readonly mode: 'noreply' };

/** A caller-chosen correlation id for pipelined (`notify`) commands. */
export type Correlation = string | number;

/** Voting status of a member, as ra's: promotable members become voters once caught up. */
export type Membership = 'voter' | 'promotable' | 'non_voter';

export interface ClusterMember {
  readonly id: ServerId;
  readonly membership: Membership;
  /** For `promotable`: the log index the member must have replicated before it is promoted. */
  readonly targetIndex?: number;
}

/** A cluster configuration, the value of a `config` entry. Members are kept sorted by key. */
export type ClusterConfig = readonly ClusterMember[];

/** A machine command submitted by a client. `reply` says who is answered and when. */
export interface CommandEntry {
  readonly type: 'command';
  readonly index: number;
  readonly term: number;
  readonly command: unknown;
  readonly reply: ReplyMode;
  /** Leader's wall clock when appended; handed to `apply` as `meta.systemTime` on every member. */
  readonly systemTime: number;
  /**
   * The caller's id for this request (at most 256 characters): a later entry with the same id,
   * committed within the machine's request window, is not applied again and gets this one's reply.
   */
  readonly requestId?: string;
}

/** Appended by a new leader: commits its term and says which machine version applies from here. */
export interface NoopEntry {
  readonly type: 'noop';
  readonly index: number;
  readonly term: number;
  readonly machineVersion: number;
}

/** A membership change: the new configuration takes effect on each member as soon as appended. */
export interface ConfigEntry {
  readonly type: 'config';
  readonly index: number;
  readonly term: number;
  readonly cluster: ClusterConfig;
  /** Who asked for the change (answered on commit), if anyone. */
  readonly from?: From;
}

/** Runtime events turned into log entries so every member's machine sees them in the same order. */
export type SystemCommand =
  | { readonly type: 'down'; readonly pid: Pid; readonly reason: unknown }
  | { readonly type: 'nodedown'; readonly node: string }
  | { readonly type: 'nodeup'; readonly node: string }
  | { readonly type: 'timeout'; readonly name: string };

export interface SystemEntry {
  readonly type: 'system';
  readonly index: number;
  readonly term: number;
  readonly event: SystemCommand;
  readonly systemTime: number;
}

export type LogEntry = CommandEntry | NoopEntry | ConfigEntry | SystemEntry;

/** What a snapshot covers: the machine state after applying `index`, and the cluster then. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly cluster: ClusterConfig;
  readonly machineVersion: number;
}

// ---------------------------------------------------------------------------------------------
// RPCs. Every RPC carries the sender (`from`) and the sender's current term.

export interface AppendEntriesRequest {
  readonly type: 'append_entries.request';
  readonly from: ServerId;
  readonly term: number;
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly LogEntry[];
  readonly leaderCommit: number;
  /**
   * The leader's heartbeat round when sent, echoed in the reply: a consistent query that arrived
   * in round r is answered once a majority acknowledged a request of round > r (read-index).
   */
  readonly round: number;
  /**
   * Quiescence: the leader has nothing more to send and stops heartbeating this idle group. A
   * follower whose log and commit index match the leader's stops its election timer and watches
   * the leader's process instead (it campaigns when that process exits or its link drops).
   */
  readonly quiesce?: true;
}

export interface AppendEntriesReply {
  readonly type: 'append_entries.reply';
  readonly from: ServerId;
  readonly term: number;
  readonly success: boolean;
  /**
   * On success: the highest index known to match the leader's log and written to stable storage.
   * On failure: 0.
   */
  readonly matchIndex: number;
  /** The follower's last log index and term: on failure the leader backs off to here at once. */
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly round: number;
}

export interface VoteRequest {
  readonly type: 'vote.request';
  readonly from: ServerId;
  readonly term: number;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set when the election follows a leadership transfer: voters ignore their leader lease. */
  readonly transfer: boolean;
}

export interface VoteReply {
  readonly type: 'vote.reply';
  readonly from: ServerId;
  readonly term: number;
  readonly granted: boolean;
}

/**
 * Pre-vote (Raft thesis §9.6): asks whether the sender could win an election at `term` (its current
 * term + 1) without anyone changing their term. Receivers that heard from a live leader refuse.
 */
export interface PreVoteRequest {
  readonly type: 'pre_vote.request';
  readonly from: ServerId;
  readonly term: number;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
}

export interface PreVoteReply {
  readonly type: 'pre_vote.reply';
  readonly from: ServerId;
  /** The term being asked about when granted; the receiver's current term when refused. */
  readonly term: number;
  readonly granted: boolean;
}

export interface InstallSnapshotRequest {
  readonly type: 'install_snapshot.request';
  readonly from: ServerId;
  readonly term: number;
  readonly meta: SnapshotMeta;
  /** 0-based chunk number; `last` marks the final chunk. */
  readonly chunk: number;
  readonly last: boolean;
  readonly data: unknown;
}

export interface InstallSnapshotReply {
  readonly type: 'install_snapshot.reply';
  readonly from: ServerId;
  readonly term: number;
  /** The snapshot index once installed, or the chunk acknowledged while receiving. */
  readonly meta: SnapshotMeta;
  /**
   * The last chunk the follower holds, in order, of this transfer: the one acknowledged, or (for a
   * chunk it could not take) where it is, -1 holding none. -1 with `done` once it has installed it.
   */
  readonly chunk: number;
  /** The follower holds the whole snapshot (installed, or had it already): the transfer is over. */
  readonly done: boolean;
}

/** Leadership transfer: the leader tells an up-to-date voter to start an election now. */
export interface TimeoutNow {
  readonly type: 'timeout_now';
  readonly from: ServerId;
  readonly term: number;
}

/**
 * A non-voting member that lost track of the leader asks the voters for it (a voter would start a
 * pre-vote instead). Only the leader answers: it resumes a snapshot transfer to the member that
 * stalled (the member's server restarted mid-transfer), or sends it a heartbeat.
 */
export interface LeaderProbe {
  readonly type: 'leader_probe';
  readonly from: ServerId;
  readonly term: number;
}

export type RaftRpc =
  | AppendEntriesRequest
  | AppendEntriesReply
  | VoteRequest
  | VoteReply
  | PreVoteRequest
  | PreVoteReply
  | InstallSnapshotRequest
  | InstallSnapshotReply
  | TimeoutNow
  | LeaderProbe;
