import type {
  ClusterConfig,
  ClusterMember,
  Correlation,
  From,
  IndexTerm,
  LogEntry,
  Pid,
  RaftRpc,
  ReplyMode,
  ServerId,
  SnapshotMeta,
} from '@otra/protocol';
import type { LogView } from './internal/log.ts';
import type { RequestTable } from './internal/requests.ts';
import type { AnyMachineModule, Machine, MachineEffect } from './machine.ts';

/** The roles of a server; `stop` is final (the shell terminates the server). */
export type Role = 'follower' | 'pre_vote' | 'candidate' | 'leader' | 'receive_snapshot' | 'stop';

// ---------------------------------------------------------------------------------------------
// Configuration

export interface ServerConfig {
  readonly id: ServerId;
  /** The cluster a fresh server starts with (when neither snapshot nor log holds a config). */
  readonly initialMembers: readonly ServerId[];
  // biome-ignore lint/suspicious/noExplicitAny: machines of any command/reply/state type
  readonly machine: Machine<any, any, any>;
  /** Passed to `machine.init`. */
  readonly machineConfig?: Readonly<Record<string, unknown>>;
  /** The election timer's range; the shell draws a uniformly random delay in it (see `timer.set`). */
  readonly electionTimeoutMs?: readonly [min: number, max: number];
  /**
   * How many `tick`s make one election timeout: the leader checks every this many ticks that it
   * heard from a majority (check-quorum), and a snapshot transfer is retried after this many.
   */
  readonly electionTimeoutTicks?: number;
  /** Most entries in one AppendEntries. */
  readonly maxAppendEntriesBatch?: number;
  /** AppendEntries batches in flight per follower before waiting for acknowledgements. */
  readonly maxInFlight?: number;
  /** Low-priority commands appended per flush. */
  readonly lowPriorityBatch?: number;
  /**
   * Quiescence: a leader whose group stayed idle (everything committed, applied and replicated to
   * every member, no queries or queued commands, no promotable member, a machine without `tick`)
   * for this many ticks sends one `quiesce` heartbeat and stops ticking; its followers stop their
   * election timers and watch the leader's process instead (`monitor.leader`), so a thousand idle
   * groups cost no timers. Any command, query, vote request or member going down wakes the group.
   * 0 (the default) never quiesces.
   */
  readonly quiesceAfterTicks?: number;
  /**
   * Log entries kept in memory below a snapshot once it is written, so that a follower lagging by
   * fewer than this many entries catches up from the log instead of being sent the whole snapshot
   * (hashicorp/raft's `TrailingLogs`, etcd's `SnapshotCatchUpEntries`). The durable log is still
   * truncated at the snapshot: a restarted server keeps none. Default 4096; 0 keeps none.
   */
  readonly trailingEntries?: number;
}

export interface ResolvedConfig {
  readonly id: ServerId;
  readonly idKey: string;
  readonly machine: AnyMachineModule;
  readonly electionTimeoutMs: readonly [number, number];
  readonly electionTimeoutTicks: number;
  readonly maxAppendEntriesBatch: number;
  readonly maxInFlight: number;
  readonly lowPriorityBatch: number;
  readonly quiesceAfterTicks: number;
  readonly trailingEntries: number;
}

/** What durable storage held when the server (re)started. */
export interface Recovered {
  readonly currentTerm: number;
  readonly votedFor: ServerId | null;
  /** The last snapshot; `machineState` as its `snapshot.write` gave it. */
  readonly snapshot: { readonly meta: SnapshotMeta; readonly machineState: unknown } | null;
  /** Log entries after the snapshot, all written. */
  readonly entries: readonly LogEntry[];
}

export const emptyRecovered: Recovered = { currentTerm: 0, votedFor: null, snapshot: null, entries: [] };

// ---------------------------------------------------------------------------------------------
// State

/** A configuration in force from `index` (0 or the snapshot index for the base one). */
export interface ConfigAt {
  readonly index: number;
  readonly members: ClusterConfig;
}

/** Replication progress of one follower, as the leader sees it (etcd's `tracker.Progress`). */
export interface Peer {
  readonly id: ServerId;
  readonly key: string;
  readonly nextIndex: number;
  readonly matchIndex: number;
  readonly inFlight: number;
  /** Highest heartbeat round acknowledged this term (read-index). */
  readonly ackedRound: number;
  /** Heard from since the last check-quorum. */
  readonly active: boolean;
  /**
   * Made progress (match advanced, or nothing outstanding) since the last tick: if not, what was
   * sent past the match is presumed lost and resent.
   */
  readonly replied: boolean;
  /** Ticks left before a snapshot transfer in progress is considered lost (0: none). */
  readonly snapshotTicks: number;
  /** Where the follower is in receiving our current snapshot (null: no transfer of it). */
  readonly snapshotProgress: SnapshotProgress | null;
}

/** A snapshot transfer to one follower, as far as the leader knows. */
export interface SnapshotProgress {
  /** The snapshot's index. */
  readonly index: number;
  /** The chunk the transfer in progress started at. */
  readonly from: number;
  /** The first chunk the follower has not acknowledged: where a retry resumes. */
  readonly next: number;
  /**
   * Whether the follower answered this transfer with a chunk at or after `from - 1`: it is alive
   * even if it moved nothing (it holds every chunk and is installing the snapshot).
   */
  readonly answered: boolean;
}

export interface PendingQuery {
  readonly fn: (machineState: unknown) => unknown;
  readonly from: From;
  /** Consistent queries: answered once a majority acknowledged a round > `round` ... */
  readonly round: number;
  /** ... and once `lastApplied >= readIndex`. */
  readonly readIndex: number;
}

export interface LocalQuery {
  readonly fn: (machineState: unknown) => unknown;
  readonly from: From;
  readonly condition: IndexTerm;
}

export interface PendingCommand {
  readonly command: unknown;
  readonly reply: ReplyMode;
  readonly requestId?: string;
}

export interface LeaderState {
  readonly peers: readonly Peer[];
  /** Current heartbeat round; bumped when a consistent query needs a fresh round. */
  readonly round: number;
  readonly ticks: number;
  /** Index of this term's noop: nothing of this term is committed before it. */
  readonly termStartIndex: number;
  readonly queries: readonly PendingQuery[];
  readonly lowQueue: readonly PendingCommand[];
  /** Consecutive ticks the group was idle (quiescence). */
  readonly idleTicks: number;
}

export interface ServerState {
  readonly cfg: ResolvedConfig;
  readonly currentTerm: number;
  readonly votedFor: ServerId | null;
  /** The known leader of `currentTerm`; on a follower, cleared when its election timer fires. */
  readonly leaderId: ServerId | null;
  readonly log: LogView;
  /** Highest entry the log writer confirmed durable (`log.written`). */
  readonly lastWritten: IndexTerm;
  /** Follower: highest index verified to match the current leader's log in this term. */
  readonly matchedIndex: number;
  /**
   * Follower: the highest heartbeat round received from the current leader in this term. The
   * acknowledgement of new entries waits for them to be durable and carries this round.
   */
  readonly leaderRound: number;
  readonly commitIndex: number;
  readonly lastApplied: number;
  readonly machineState: unknown;
  /** The machine version in force (from the last applied noop). */
  readonly machineVersion: number;
  /** Request ids applied recently (command de-duplication, see `CommandEntry.requestId`). */
  readonly requests: RequestTable;
  /** Set when a noop asked for a machine version this code does not have: applying stops. */
  readonly awaitingUpgrade: number | null;
  /** Configurations in the log, oldest first; the last one is in force. */
  readonly configs: readonly ConfigAt[];
  readonly snapshot: SnapshotMeta | null;
  /** A `snapshot.write` issued and not yet confirmed. */
  readonly snapshotWriting: SnapshotMeta | null;
  /**
   * The newest `release_cursor` that came while `snapshotWriting` was being written: written as
   * soon as that one is confirmed (the state as released, wrapped with its request records).
   */
  readonly snapshotPending: { readonly meta: SnapshotMeta; readonly machineState: unknown } | null;
  /** Pre-vote or vote grants collected (server keys), including our own. */
  readonly votes: readonly string[];
  readonly leader: LeaderState | null;
  readonly localQueries: readonly LocalQuery[];
  /** receive_snapshot: the snapshot being received and the next chunk expected. */
  readonly receiving: {
    readonly meta: SnapshotMeta;
    readonly nextChunk: number;
    readonly leader: ServerId;
  } | null;
  /** The clock from the last `tick`, used as entries' `systemTime`. */
  readonly nowMs: number;
  /**
   * Quiescence: a leader that stopped heartbeating an idle group, or a follower that stopped its
   * election timer on the leader's `quiesce` heartbeat and watches the leader's process instead.
   */
  readonly quiesced: boolean;
}

// ---------------------------------------------------------------------------------------------
// Messages into the core (besides the RPCs)

export type Priority = 'normal' | 'low';

export interface CommandMsg {
  readonly type: 'command';
  readonly command: unknown;
  readonly reply: ReplyMode;
  readonly priority?: Priority;
  /** De-duplication: see `CommandEntry.requestId`. */
  readonly requestId?: string;
}

export type QueryKind = 'local' | 'leader' | 'consistent';

export type LocalMessage =
  /** The election timer (armed by `timer.set`) fired. */
  | { readonly type: 'election.timeout' }
  /** Periodic, every heartbeat interval, on every role: heartbeats, check-quorum, machine tick. */
  | { readonly type: 'tick'; readonly nowMs: number }
  /** The log writer made entries up to `upTo` durable; `term` is the term of entry `upTo`. */
  | { readonly type: 'log.written'; readonly upTo: number; readonly term: number }
  /** A `snapshot.write` is durable. */
  | { readonly type: 'snapshot.written'; readonly meta: SnapshotMeta }
  /** A `snapshot.install` is durable; carries the decoded state, as the leader's `snapshot.write` gave it. */
  | { readonly type: 'snapshot.installed'; readonly meta: SnapshotMeta; readonly machineState: unknown }
  | CommandMsg
  | { readonly type: 'commands'; readonly commands: readonly CommandMsg[] }
  | {
      readonly type: 'query';
      readonly kind: QueryKind;
      readonly fn: (machineState: unknown) => unknown;
      readonly from: From;
      /** Local queries only: wait until the entry `{index, term}` is applied. */
      readonly condition?: IndexTerm;
    }
  | { readonly type: 'membership.join'; readonly member: ClusterMember; readonly from: From }
  | { readonly type: 'membership.leave'; readonly id: ServerId; readonly from: From }
  | { readonly type: 'transfer_leadership'; readonly to: ServerId; readonly from: From }
  | { readonly type: 'trigger_election' }
  | { readonly type: 'down'; readonly pid: Pid; readonly reason: unknown }
  | { readonly type: 'nodedown'; readonly node: string }
  | { readonly type: 'nodeup'; readonly node: string }
  /** A machine `timer` effect expired. */
  | { readonly type: 'machine.timeout'; readonly name: string }
  /** The leader watched by a quiesced follower (`monitor.leader`) exited or its link dropped. */
  | { readonly type: 'leader.down' }
  /** A member watched by a quiesced leader (`monitor.peers`) exited or its link dropped. */
  | { readonly type: 'peer.down'; readonly id: ServerId };

export type Message = RaftRpc | LocalMessage;

// ---------------------------------------------------------------------------------------------
// Replies and effects

export type RaftError =
  | 'not_leader'
  | 'cluster_change_not_permitted'
  | 'machine_error'
  | 'query_error'
  | 'not_member'
  | 'not_voter'
  | 'not_up_to_date'
  | 'already_member'
  | 'leadership_lost';

export type Reply =
  | {
      readonly type: 'applied';
      readonly index: number;
      readonly term: number;
      readonly reply: unknown;
      readonly leader: ServerId;
    }
  | { readonly type: 'appended'; readonly index: number; readonly term: number; readonly leader: ServerId }
  | {
      readonly type: 'query';
      readonly index: number;
      readonly term: number;
      readonly result: unknown;
      readonly leader: ServerId | null;
    }
  | { readonly type: 'ok'; readonly leader: ServerId | null }
  | {
      readonly type: 'error';
      readonly error: RaftError;
      readonly leader: ServerId | null;
      readonly message?: string;
    };

export type LeaderHook =
  | { readonly hook: 'elected'; readonly term: number }
  | { readonly hook: 'command_committed'; readonly index: number; readonly count: number }
  | { readonly hook: 'follower_added'; readonly member: ClusterMember }
  | { readonly hook: 'follower_removed'; readonly id: ServerId }
  | { readonly hook: 'query_answered'; readonly count: number }
  | { readonly hook: 'restored'; readonly meta: SnapshotMeta };

/**
 * What the shell must do, in list order. Ordering rules:
 *
 * - `meta.persist` is a BARRIER: it must be durable before any later effect of the same list is
 *   executed (this is how "term and vote persist before the vote is sent" holds).
 * - `log.append` is NOT a barrier: later `send_rpc`s may leave before the write is durable
 *   (the leader pipelines); the core never counts or acknowledges entries before `log.written`.
 *   Appends must be written in the order issued; `truncateFrom` must be applied atomically with
 *   the append it comes with.
 * - `snapshot.write` / `snapshot.install` are answered with `snapshot.written` / `snapshot.installed`;
 *   `log.truncate_prefix` only follows a confirmed snapshot.
 * - Everything else is fire-and-forget and may be executed as soon as reached.
 */
export type Effect =
  | { readonly type: 'meta.persist'; readonly currentTerm: number; readonly votedFor: ServerId | null }
  | { readonly type: 'log.append'; readonly entries: readonly LogEntry[]; readonly truncateFrom?: number }
  | { readonly type: 'log.truncate_prefix'; readonly upTo: number }
  | { readonly type: 'send_rpc'; readonly to: ServerId; readonly rpc: RaftRpc }
  | { readonly type: 'reply'; readonly to: From; readonly reply: Reply }
  /** Applied pipelined commands, one effect per pid per event, in apply order. */
  | {
      readonly type: 'notify';
      readonly to: Pid;
      readonly applied: readonly (readonly [Correlation, unknown])[];
    }
  | {
      readonly type: 'notify.rejected';
      readonly to: Pid;
      readonly correlations: readonly Correlation[];
      readonly error: RaftError;
      readonly leader: ServerId | null;
    }
  /**
   * (Re)arms the election timer, replacing any armed one: the shell draws the delay uniformly in
   * `[minMs, maxMs]` (jitter is the shell's randomness, never the core's) and sends
   * `election.timeout` when it fires. A timer that was replaced or cancelled must not fire.
   */
  | { readonly type: 'timer.set'; readonly timer: 'election'; readonly minMs: number; readonly maxMs: number }
  | { readonly type: 'timer.cancel'; readonly timer: 'election' }
  /**
   * Quiescence, follower: watch this leader's server process (replacing any watched one) and send
   * `leader.down` once when it exits or its node disconnects; `null` stops watching.
   */
  | { readonly type: 'monitor.leader'; readonly leader: ServerId | null }
  /**
   * Quiescence, leader: watch these members' server processes (replacing the watched set) and send
   * `peer.down { id }` once for each that exits or disconnects; `[]` stops watching.
   */
  | { readonly type: 'monitor.peers'; readonly peers: readonly ServerId[] }
  /**
   * Persist `machineState` as the snapshot `meta`; answer `snapshot.written`. It is the machine's
   * state, wrapped together with the recent request ids when there are any: store it as it is and
   * hand it back as it was (in `snapshot.installed` and `Recovered`).
   */
  | { readonly type: 'snapshot.write'; readonly meta: SnapshotMeta; readonly machineState: unknown }
  /**
   * Send the current snapshot to a follower as `install_snapshot.request` chunks (numbered from 0,
   * the last flagged), starting at chunk `fromChunk` (0, or where a retried transfer resumes), with
   * this server's id and the given term; the follower answers the leader.
   */
  | {
      readonly type: 'snapshot.send';
      readonly to: ServerId;
      readonly term: number;
      readonly meta: SnapshotMeta;
      readonly fromChunk: number;
    }
  /** Follower: store one received chunk. */
  | {
      readonly type: 'snapshot.chunk.write';
      readonly meta: SnapshotMeta;
      readonly chunk: number;
      readonly last: boolean;
      readonly data: unknown;
    }
  /**
   * Follower: the chunks are complete; make the snapshot durable as the current one, discard the
   * log up to `meta.index` (all of it unless it holds `meta.index` with `meta.term`), decode the
   * machine state and answer `snapshot.installed`.
   */
  | { readonly type: 'snapshot.install'; readonly meta: SnapshotMeta }
  | { readonly type: 'machine'; readonly effect: MachineEffect }
  | ({ readonly type: 'hook' } & LeaderHook);

export type EffectType = Effect['type'];

export interface HandleResult {
  readonly role: Role;
  readonly state: ServerState;
  readonly effects: Effect[];
}
