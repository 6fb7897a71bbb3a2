import type { Node } from '@otra/actors';
import type { ClusterMember, Correlation, Membership, Pid, ServerId, SnapshotMeta } from '@otra/protocol';
import type { RaftError as CoreRaftError, Machine, Role } from '@otra/raft-core';
import type { RaftStorage, WriterStats } from '@otra/raft-log';

/**
 * Leader hooks (as rafted_value's `LeaderHook`): called on the leader only, after the event. A
 * hook may run again for the same event after a leader change (the new leader re-runs it for
 * entries it commits), so hooks must be idempotent or tolerate repeats. A hook that throws is
 * logged and otherwise ignored: it never affects the log.
 */
export interface LeaderHooks<C = unknown, R = unknown, S = unknown> {
  onCommandCommitted?(before: S, command: C, reply: R, after: S): void;
  onElected?(server: ServerId, term: number): void;
  onFollowerAdded?(member: ClusterMember, state: S): void;
  onFollowerRemoved?(id: ServerId, state: S): void;
  onQueryAnswered?(count: number, state: S): void;
  onRestoredFromFiles?(meta: SnapshotMeta, state: S): void;
}

/** A machine registered with a system under a module name, with optional leader hooks. */
export interface MachineModuleSpec<C = unknown, R = unknown, S = unknown> {
  readonly machine: Machine<C, R, S>;
  // biome-ignore lint/suspicious/noExplicitAny: hooks are typed by the machine at definition time
  readonly hooks?: LeaderHooks<any, any, any>;
  /**
   * Named queries: `consistentQuery(system, id, { name: 'get', args: ['k'] })` runs
   * `queries.get(state, 'k')` on whichever member answers, across links.
   */
  readonly queries?: Readonly<Record<string, (state: S, ...args: never[]) => unknown>>;
}

/**
 * Which machine a cluster runs: a module registered on every node's system (functions cannot
 * cross links; names can) plus a serialisable config passed to `init`.
 */
export interface MachineRef {
  readonly module: string;
  readonly config?: Readonly<Record<string, unknown>>;
}

/** Options of a raft system: one shared log (one RocksDB database) and the servers using it. */
export interface SystemOptions {
  /** Default `default`. Several systems may run on one node. */
  readonly name?: string;
  /** Where RocksDB and snapshots live. Without it (and without `storage`), storage is in memory. */
  readonly dataDir?: string;
  /** Inject a storage implementation (tests). */
  readonly storage?: RaftStorage;
  /** Machines by module name. Every node that hosts a member must register the same modules. */
  readonly machines: Readonly<Record<string, Machine | MachineModuleSpec>>;
  /** Election timeout range; the shell draws uniformly in it. Default [150, 300]. */
  readonly electionTimeoutMs?: readonly [number, number];
  /** Heartbeat / tick interval. Default 50 ms. */
  readonly tickMs?: number;
  /**
   * Quiescence: a group idle for this many ticks stops heartbeating; its followers stop their
   * election timers and watch the leader's process instead, so idle groups cost no timers. A
   * quiesced group then learns of a leader's failure from the link (at once when the process
   * dies or its TCP connection resets; after the transport's `tickMs` liveness timeout for a
   * silent network failure) rather than from an election timeout. Default 10; 0 never quiesces.
   */
  readonly quiesceAfterTicks?: number;
  /** Entries per AppendEntries, in-flight batches per follower (core defaults otherwise). */
  readonly maxAppendEntriesBatch?: number;
  readonly maxInFlight?: number;
  /**
   * Log entries each server keeps in memory below its latest snapshot, so that a follower lagging
   * by fewer than this many is sent entries instead of the whole snapshot (hashicorp/raft's
   * `TrailingLogs`). The durable log is truncated at the snapshot. Default 4096; 0 keeps none.
   */
  readonly trailingEntries?: number;
  /** Bytes per snapshot chunk sent to a lagging follower. Default 256 KiB. */
  readonly snapshotChunkBytes?: number;
  /** Restart the servers recorded on disk when the system starts. Default true. */
  readonly restartServers?: boolean;
  /** Where warnings go. */
  readonly log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

/** Reply modes of `processCommand`. */
export type ReplyFrom = 'after_log_append' | 'await_consensus';

export interface CommandOptions {
  /** Default 5,000 ms. */
  readonly timeoutMs?: number;
  /** Default `await_consensus`. */
  readonly replyFrom?: ReplyFrom;
  /** Redirections to the leader before giving up with `NotLeaderError`. Default 5. */
  readonly maxHops?: number;
  /**
   * Makes the command safe to resend (exactly-once): a string of 1-256 characters unique to this
   * request (a UUID, or `client-id.sequence`). A copy committed with the same id within the
   * machine's request window (`requestWindow`, default 100,000 log entries) is not applied again,
   * and its caller gets the first copy's reply, index and term. Send the same id again after a
   * `TimeoutError` or `CommandOutcomeUnknownError` to learn the outcome.
   */
  readonly requestId?: string;
}

export interface CommandResult<R> {
  readonly reply: R;
  readonly index: number;
  readonly term: number;
  readonly leader: ServerId;
}

export interface AppendResult {
  readonly index: number;
  readonly term: number;
  readonly leader: ServerId;
}

/**
 * A query: a function of the machine state (runs on a member on this node: local, or after a
 * read-index round trip to the leader for `leader`/`consistent`), or a named query from the
 * machine's `queries` table with serialisable args (runs wherever the answer is, across links).
 */
export type Query<S, T> = ((state: S) => T) | { readonly name: string; readonly args?: readonly unknown[] };

export interface QueryOptions {
  readonly timeoutMs?: number;
  /** Local queries: wait until this entry is applied. */
  readonly condition?: { readonly index: number; readonly term: number };
}

export interface QueryResult<T> {
  readonly result: T;
  readonly index: number;
  readonly term: number;
  readonly leader: ServerId | null;
}

/** Sent to the `notify` pid of pipelined commands once applied (batched per event). */
export interface AppliedNotification<R = unknown> {
  readonly type: 'raft.applied';
  readonly server: ServerId;
  readonly applied: readonly (readonly [Correlation, R])[];
}

/** Sent to the `notify` pid when pipelined commands reached a server that is not the leader. */
export interface RejectedNotification {
  readonly type: 'raft.rejected';
  readonly server: ServerId;
  readonly correlations: readonly Correlation[];
  readonly error: CoreRaftError;
  readonly leader: ServerId | null;
}

export type RaftNotification<R = unknown> = AppliedNotification<R> | RejectedNotification;

export interface MemberInfo {
  readonly id: ServerId;
  readonly membership: Membership;
  /** Leader's view of the member's replicated index (leader only). */
  readonly matchIndex?: number;
  /**
   * Leader only, while the member is being sent a snapshot: its index, and the first chunk the
   * member has not acknowledged yet (where a retry would resume).
   */
  readonly snapshotTransfer?: { readonly index: number; readonly nextChunk: number };
}

/** `overview(serverId)`. */
export interface Overview {
  readonly id: ServerId;
  readonly uid: string;
  readonly cluster: string;
  readonly role: Role;
  readonly stateValue: unknown;
  readonly term: number;
  readonly votedFor: ServerId | null;
  readonly leader: ServerId | null;
  readonly commitIndex: number;
  readonly lastApplied: number;
  readonly lastIndex: number;
  readonly lastWritten: number;
  /** The group sleeps: the leader stopped heartbeating it, or this follower stopped its election timer. */
  readonly quiesced: boolean;
  readonly snapshot: { readonly index: number; readonly term: number } | null;
  readonly machineVersion: number;
  readonly members: readonly MemberInfo[];
  readonly machine: unknown;
  readonly counters: Counters;
}

/** Per-server counters. */
export interface Counters {
  commands: number;
  pipelined: number;
  elections: number;
  preVotes: number;
  queries: number;
  droppedSends: number;
  snapshotsWritten: number;
  snapshotsInstalled: number;
  /** Snapshot transfers this server started as leader, resumed ones included. */
  snapshotsSent: number;
  /** Of those, transfers that resumed a stalled one after the follower's last acknowledged chunk. */
  snapshotsResumed: number;
  hookErrors: number;
  /** Entries this server sent in AppendEntries (a resent entry counts again). */
  entriesSent: number;
  /** Entries this server received in AppendEntries (a duplicate counts again). */
  entriesReceived: number;
  /** AppendEntries requests this server sent, heartbeats and probes included. */
  appendsSent: number;
  /** AppendEntries requests this server received, heartbeats included. */
  appendsReceived: number;
}

/** `keyMetrics(serverId)`: a cheap subset of the overview. */
export interface KeyMetrics {
  readonly role: Role;
  readonly term: number;
  readonly commitIndex: number;
  readonly lastApplied: number;
  readonly lastIndex: number;
  readonly lastWritten: number;
  readonly commands: number;
}

/** `startCluster` result: it succeeds when a majority started. */
export interface StartClusterResult {
  readonly started: readonly ServerId[];
  readonly notStarted: readonly ServerId[];
}

/** What `startSystem` returns: a handle used by every API call made from this node. */
export interface RaftSystemHandle {
  readonly name: string;
  readonly node: Node;
  /** The system's supervisor (rest_for_one: the log writer, then the servers). */
  readonly supervisor: Pid;
  readonly storage: RaftStorage;
  /** Which server leads each cluster, as far as this node knows (a copy). */
  leaderboard(): ReadonlyMap<string, ServerId | null>;
  /** The leader of one cluster as far as this node knows (null: none known, or no member here). */
  leaderOf(cluster: string): ServerId | null;
  /** Names of the servers recorded in this system's storage (running or not). */
  recordedServers(): readonly string[];
  /**
   * The shared log writer's counters (batches, entries, sync time, batch sizes); undefined with
   * in-memory storage (no writer) or when the writer does not answer within a second.
   */
  writerStats(): Promise<WriterStats | undefined>;
  stop(): Promise<void>;
}
