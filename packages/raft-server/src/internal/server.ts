import type {
  ActorContext,
  From as ActorFrom,
  BatchItem,
  BatchServer,
  DownMessage,
  TimerRef,
} from '@otra/actors';
import { startChild } from '@otra/actors';
import {
  type AppendEntriesRequest,
  assertNever,
  type Correlation,
  commandProblem,
  type From,
  type InstallSnapshotReply,
  isIndex,
  isPid,
  isServerId,
  isSnapshotMeta,
  type LogEntry,
  type Pid,
  pidKey,
  type RaftRpc,
  type ReplyMode,
  type ServerId,
  type SnapshotMeta,
  serverIdEquals,
  serverIdKey,
} from '@otra/protocol';
import {
  type CommandMsg,
  chartTakes,
  type Effect,
  handle,
  type LeaderHook,
  type MachineEffect,
  type Message,
  type QueryKind,
  type RaftMachine,
  type Recovered,
  type Role,
  raftMachine,
  roleChange,
  type ServerState,
  swapAppliedEntries,
} from '@otra/raft-core';
import {
  type LogListener,
  type SnapshotReceiver,
  SnapshotStaleError,
  type StoredEntry,
} from '@otra/raft-log';
import { type Actor, createActor, type SnapshotFrom } from 'xstate';
import type { Counters, KeyMetrics, LeaderHooks, MemberInfo, Overview } from '../types.ts';
import {
  concatBytes,
  decodeEntry,
  decodePacked,
  decodeState,
  encodeEntry,
  encodeStateChunks,
  StoredCommand,
  storedEntry,
} from './codec.ts';
import { type ApplyTap, END_OF_LIFE, wrapMachine } from './machine-wrapper.ts';
import {
  abortLeftReceive,
  closeLeftReader,
  forgetLeader,
  names,
  type ServerRecord,
  type SystemRuntime,
} from './runtime.ts';
import { snapshotSenderSpec } from './snapshot-sender.ts';

type RaftSnapshot = SnapshotFrom<RaftMachine>;
/**
 * The core's statechart, running as an XState actor inside the RaftServer actor (synchronous
 * sends). It takes every role change (`roleChange`); messages that keep the role go straight to
 * `handle`, which saves a chart step per message (10-18% of a server's CPU at one client).
 */
type RaftChart = Actor<RaftMachine>;

/** Requests the API makes to a server with `call`. */
export type ServerCall =
  | {
      readonly type: 'raft.command';
      readonly command: unknown;
      readonly replyFrom: 'after_log_append' | 'await_consensus';
      readonly requestId?: string;
    }
  | {
      readonly type: 'raft.query';
      readonly kind: QueryKind;
      /** A function (same node only) or a named query of the machine's module. */
      readonly query:
        | ((state: unknown) => unknown)
        | { readonly name: string; readonly args?: readonly unknown[] };
      readonly condition?: { readonly index: number; readonly term: number };
    }
  | {
      readonly type: 'raft.join';
      readonly id: ServerId;
      readonly membership: 'voter' | 'promotable' | 'non_voter';
    }
  | { readonly type: 'raft.leave'; readonly id: ServerId }
  | { readonly type: 'raft.transfer'; readonly to: ServerId }
  | { readonly type: 'raft.overview' }
  | { readonly type: 'raft.key_metrics' }
  | { readonly type: 'raft.trigger_election' }
  /** Forwarded to the aux actor with a view of the server; the aux actor answers. */
  | { readonly type: 'raft.aux'; readonly command: unknown };

/**
 * Pipelined commands arrive as casts of a tuple (no key strings on the wire: encoding the object
 * form was over a quarter of a pipelining client's CPU): `[PIPELINE, command, correlation,
 * notifyNode, notifyId, notifyCreation, priority]`, priority 0 normal and 1 low, plus the request
 * id as an eighth element when there is one.
 */
export type PipelineCast =
  | readonly [typeof PIPELINE, unknown, Correlation, string, number, number, 0 | 1]
  | readonly [typeof PIPELINE, unknown, Correlation, string, number, number, 0 | 1, string];

/** The tag of a `PipelineCast`. */
export const PIPELINE = 'raft.pipeline';

/** The object form earlier versions sent, still taken from them. */
interface PipelineCastObject {
  readonly type: typeof PIPELINE;
  readonly command: unknown;
  readonly correlation: unknown;
  readonly notify: unknown;
  readonly priority: unknown;
  readonly requestId?: unknown;
}

/** The cast of one pipelined command. */
export function pipelineCast(
  command: unknown,
  correlation: Correlation,
  notify: Pid,
  priority: 'normal' | 'low',
  requestId: string | undefined,
): PipelineCast {
  const p = priority === 'low' ? 1 : 0;
  return requestId === undefined
    ? [PIPELINE, command, correlation, notify.node, notify.id, notify.creation, p]
    : [PIPELINE, command, correlation, notify.node, notify.id, notify.creation, p, requestId];
}

/** What the shell answers for API errors it detects itself (before the core). */
export interface ShellError {
  readonly type: 'error';
  readonly error: 'invalid_request' | 'unknown_query' | 'query_error';
  readonly message: string;
  readonly leader: ServerId | null;
}

export interface ServerArgs {
  readonly sys: SystemRuntime;
  readonly record: ServerRecord;
  /** The server's own `one_for_all` supervisor: snapshot senders are started under it. */
  readonly supervisor: Pid;
}

interface ShellState {
  readonly sys: SystemRuntime;
  readonly record: ServerRecord;
  readonly id: ServerId;
  readonly supervisor: Pid;
  readonly tap: ApplyTap;
  readonly hooks: LeaderHooks | undefined;
  readonly queries: Readonly<Record<string, (state: unknown, ...args: unknown[]) => unknown>>;
  readonly chart: RaftChart;
  /** The chart's snapshot after the last role change (or the last time the server went quiet). */
  snap: RaftSnapshot;
  /** Entries received in this batch's AppendEntries, with their bytes (for their log write). */
  received: Map<LogEntry, Uint8Array> | undefined;
  /**
   * What this server stored and has not applied yet, in index order from `unapplied[unappliedHead]`
   * (recovered, appended as leader or received), as the log store holds it: where
   * `keepAppliedAsStored` finds the bytes.
   */
  unapplied: StoredEntry[];
  unappliedHead: number;
  /**
   * The core's live state (the chart's context is as of the last result it took; its role is
   * always the live one, since every role change goes through it).
   */
  server: ServerState;
  /**
   * The election deadline on the node's clock (`Infinity`: none). It moves on every heartbeat,
   * but one timer at a time is armed: when it fires early it is re-armed for the rest, so a
   * follower does not cancel and re-arm a timer per heartbeat.
   */
  electionDeadline: number;
  electionTimer: TimerRef | undefined;
  machineTimers: Map<string, TimerRef>;
  /** Machine monitors by pid key, and what each monitor ref is for. */
  machineMonitors: Map<string, number>;
  monitorRefs: Map<
    number,
    | { kind: 'machine' }
    | { kind: 'sender'; peer: string }
    | { kind: 'leader' }
    | { kind: 'peer'; id: ServerId }
  >;
  /** Quiescence: the monitor of the leader a sleeping follower watches. */
  leaderWatch: number | undefined;
  /** Quiescence: the monitors of the members a sleeping leader watches. */
  peerWatches: number[];
  senders: Map<string, Pid>;
  /**
   * A follower's latest snapshot-chunk acknowledgement that arrived before its sender's pid was
   * known (the sender sends its first chunks while it starts): handed over once it is.
   */
  earlyAcks: Map<string, InstallSnapshotReply>;
  receiver: { receiver: SnapshotReceiver; meta: SnapshotMeta; checksum: number | undefined } | undefined;
  counters: Counters;
  /**
   * A `raft.tick` is armed. Only awake leaders tick (heartbeats, resends, check-quorum, the
   * machine's tick): a follower's core has nothing to do on a tick, and a leader whose group is
   * quiesced sends nothing until it wakes, so a thousand idle groups per node do not wake up for
   * nothing.
   */
  ticking: boolean;
  /** A fatal storage error: the server stops (its supervisor restarts it from disk). */
  failed: Error | undefined;
  /** Turns the log writer's answers for this server into `log.written` / `raft.fatal` messages. */
  logListener: LogListener | undefined;
  /**
   * Ticks left before this server deletes itself after applying the cluster's end-of-life command
   * (0: not ending). A leader waits a few heartbeats so its followers learn the command is committed.
   */
  ending: number;
}

const RPC_TYPES = new Set<string>([
  'append_entries.request',
  'append_entries.reply',
  'vote.request',
  'vote.reply',
  'pre_vote.request',
  'pre_vote.reply',
  'install_snapshot.request',
  'install_snapshot.reply',
  'timeout_now',
  'leader_probe',
]);

const MEMBERSHIPS = new Set<string>(['voter', 'promotable', 'non_voter']);

/** Heartbeat ticks a leader keeps running after applying end of life, so followers learn of it. */
const END_OF_LIFE_TICKS = 4;

/** The registered name of a server's aux actor. */
export function auxName(serverName: string): string {
  return `${serverName}.aux`;
}

function toCoreFrom(from: ActorFrom): From {
  return { pid: { node: from.node, id: 0, creation: from.creation }, ref: from.ref };
}

function toActorFrom(from: From): ActorFrom {
  return { node: from.pid.node, creation: from.pid.creation, ref: from.ref };
}

/**
 * Marks the shell's own messages to itself (timers, write completions, snapshot steps): a message
 * from the network is decoded from CBOR and can never carry a symbol key, so no peer can forge a
 * write completion, a fatal error or an installed snapshot.
 */
const SELF = Symbol('raft.server.self');

function own<T extends object>(msg: T): T {
  return Object.assign(msg, { [SELF]: true });
}

/** Message types only the server itself may send (see `own`). */
const SELF_TYPES = new Set<string>([
  'log.written',
  'snapshot.written',
  'snapshot.installed',
  'raft.tick',
  'raft.election_timeout',
  'raft.machine_timeout',
  'raft.fatal',
  'raft.sender_started',
]);

/**
 * AppendEntries travel with their entries as the bytes the leader stored (each entry is encoded
 * once, at the leader, and sent from the log store's tail); the follower decodes them for the core
 * and persists the same bytes.
 */
interface PackedAppendEntries extends Omit<AppendEntriesRequest, 'entries'> {
  readonly packed: readonly Uint8Array[];
}

function toWire(state: ShellState, rpc: RaftRpc): RaftRpc | PackedAppendEntries {
  if (rpc.type !== 'append_entries.request' || rpc.entries.length === 0) return rpc;
  const { entries, ...rest } = rpc;
  return { ...rest, packed: packedEntries(state, entries) };
}

/**
 * The bytes of `entries` (consecutive, from the core's log): the ones the log store holds in its
 * tail (what was appended last, where nearly every send comes from), encoded again otherwise. An
 * index with the same term holds the same entry (Raft's log matching), which is checked per entry.
 */
function packedEntries(state: ShellState, entries: readonly LogEntry[]): Uint8Array[] {
  const first = (entries[0] as LogEntry).index;
  const last = (entries[entries.length - 1] as LogEntry).index;
  const stored = state.sys.storage.log.tryRead(state.record.uid, first, last);
  const out = new Array<Uint8Array>(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as LogEntry;
    if ((entry as unknown) instanceof StoredCommand) {
      out[i] = (entry as unknown as StoredCommand).data;
      continue;
    }
    const s = stored?.[i];
    out[i] =
      s !== undefined && s.index === entry.index && s.term === entry.term ? s.data : encodeEntry(entry);
  }
  return out;
}

/**
 * The core's form of a received RPC; `undefined` when packed entries do not decode. The bytes of
 * each decoded entry wait in `state.received` for the log write of this batch.
 */
function fromWire(state: ShellState, rpc: RaftRpc | PackedAppendEntries): RaftRpc | undefined {
  if (!('packed' in rpc)) return rpc;
  const { packed, ...rest } = rpc;
  const entries: LogEntry[] = [];
  try {
    for (let i = 0; i < packed.length; i++) {
      const data = packed[i] as Uint8Array;
      const entry = decodePacked(data);
      if (entry.index !== rest.prevLogIndex + 1 + i) return undefined;
      entries.push(entry);
      (state.received ??= new Map()).set(entry, data);
    }
  } catch {
    return undefined;
  }
  return { ...rest, entries };
}

/** The stored form of an entry the core appends: the bytes it arrived as, or encoded now. */
function toStored(state: ShellState, entry: LogEntry): StoredEntry {
  const data = state.received?.get(entry);
  return data === undefined ? storedEntry(entry) : { index: entry.index, term: entry.term, data };
}

/** Rejects malformed RPCs from the network before they reach the core. */
function isValidRpc(msg: { type: string }): msg is RaftRpc {
  const m = msg as Record<string, unknown>;
  if (!isServerId(m.from) || !isIndex(m.term)) return false;
  switch (m.type) {
    case 'append_entries.request':
      return (
        isIndex(m.prevLogIndex) &&
        isIndex(m.prevLogTerm) &&
        isIndex(m.leaderCommit) &&
        isIndex(m.round) &&
        // entries travel packed (as the bytes the leader stored, decoded and checked in fromWire);
        // the unpacked form only ever carries none (a heartbeat)
        (Array.isArray(m.packed)
          ? (m.packed as unknown[]).every((b) => b instanceof Uint8Array)
          : Array.isArray(m.entries) && m.entries.length === 0)
      );
    case 'append_entries.reply':
      return (
        typeof m.success === 'boolean' &&
        isIndex(m.matchIndex) &&
        isIndex(m.lastIndex) &&
        isIndex(m.lastTerm) &&
        isIndex(m.round)
      );
    case 'vote.request':
    case 'pre_vote.request':
      return isIndex(m.lastLogIndex) && isIndex(m.lastLogTerm);
    case 'vote.reply':
    case 'pre_vote.reply':
      return typeof m.granted === 'boolean';
    case 'install_snapshot.request': {
      const d = m.data as Record<string, unknown> | null;
      return (
        isSnapshotMeta(m.meta) &&
        isIndex(m.chunk) &&
        typeof m.last === 'boolean' &&
        typeof d === 'object' &&
        d !== null &&
        d.bytes instanceof Uint8Array &&
        isIndex(d.checksum)
      );
    }
    case 'install_snapshot.reply':
      // chunk -1: "installed" (done), the follower's last answer to a transfer, or "none of it"
      return isSnapshotMeta(m.meta) && typeof m.done === 'boolean' && (isIndex(m.chunk) || m.chunk === -1);
    case 'timeout_now':
    case 'leader_probe':
      return true;
    default:
      return false;
  }
}

function emptyCounters(): Counters {
  return {
    commands: 0,
    pipelined: 0,
    elections: 0,
    preVotes: 0,
    queries: 0,
    droppedSends: 0,
    snapshotsWritten: 0,
    snapshotsInstalled: 0,
    snapshotsSent: 0,
    snapshotsResumed: 0,
    hookErrors: 0,
    entriesSent: 0,
    appendsSent: 0,
    appendsReceived: 0,
    entriesReceived: 0,
  };
}

/** Reads what storage holds for `uid`: snapshot, then the log after it, then meta. */
async function recover(
  sys: SystemRuntime,
  uid: string,
): Promise<{ recovered: Recovered; stored: StoredEntry[] }> {
  const found = sys.storage.recover(uid);
  let snapshot: Recovered['snapshot'] = null;
  if (found.snapshot !== null) {
    const reader = await sys.storage.snapshots.openRead(uid);
    if (reader !== null) {
      try {
        const chunks: Uint8Array[] = [];
        for await (const chunk of reader.chunks()) chunks.push(chunk);
        snapshot = {
          meta: reader.info.meta as unknown as SnapshotMeta,
          machineState: await decodeState(concatBytes(chunks)),
        };
      } finally {
        await reader.close();
      }
    }
  }
  const from = snapshot === null ? found.firstIndex : Math.max(found.firstIndex, snapshot.meta.index + 1);
  const stored = found.last.index >= from ? await sys.storage.log.read(uid, from, found.last.index) : [];
  return {
    recovered: {
      currentTerm: found.meta.currentTerm,
      votedFor: found.meta.votedFor,
      snapshot,
      entries: stored.map(decodeEntry),
    },
    stored,
  };
}

function core(state: ShellState): ServerState {
  return state.server;
}

function roleOf(state: ShellState): Role {
  return state.snap.context.role;
}

/**
 * The RaftServer actor (ra's `ra_server_proc`): hosts the core's statechart and is the one place
 * that executes its effects. It is a batch actor: every message queued since the last turn is
 * handled in one go, consecutive commands become one `commands` event (one append, one
 * AppendEntries per follower), and effects run once per batch.
 */
export const raftServerBehaviour: BatchServer<ShellState, ServerArgs> = {
  kind: 'batch',
  maxBatchSize: 1024,

  async init({ sys, record, supervisor }, ctx) {
    const spec = sys.machines.get(record.module);
    if (spec === undefined)
      throw new Error(`machine module not registered on ${sys.node.name}: ${record.module}`);
    ctx.register(record.id.name);
    // a receive the previous instance of this server left open (it crashed or was killed)
    await abortLeftReceive(sys, record.uid);
    const tap: ApplyTap = {
      applied: [],
      record: spec.hooks?.onCommandCommitted !== undefined,
      endOfLife: null,
    };
    const { recovered, stored } = await recover(sys, record.uid);
    const chart = createActor(raftMachine, {
      input: {
        config: {
          id: record.id,
          initialMembers: record.initialMembers,
          machine: wrapMachine(spec.machine, tap),
          ...(record.machineConfig === undefined ? {} : { machineConfig: record.machineConfig }),
          electionTimeoutMs: sys.settings.electionTimeoutMs,
          electionTimeoutTicks: sys.settings.electionTimeoutTicks,
          quiesceAfterTicks: sys.settings.quiesceAfterTicks,
          ...(sys.settings.maxAppendEntriesBatch === undefined
            ? {}
            : { maxAppendEntriesBatch: sys.settings.maxAppendEntriesBatch }),
          ...(sys.settings.maxInFlight === undefined ? {} : { maxInFlight: sys.settings.maxInFlight }),
          ...(sys.settings.trailingEntries === undefined
            ? {}
            : { trailingEntries: sys.settings.trailingEntries }),
        },
        recovered,
      },
    });
    // an error observer keeps XState from rethrowing asynchronously; `step` checks the status
    chart.subscribe({ error: () => undefined });
    chart.start();
    const snap = chart.getSnapshot();
    if (snap.status === 'error') throw snap.error;
    const state: ShellState = {
      sys,
      record,
      id: record.id,
      supervisor,
      tap,
      hooks: spec.hooks,
      queries: (spec.queries ?? {}) as ShellState['queries'],
      chart,
      snap,
      server: snap.context.server,
      received: undefined,
      unapplied: stored,
      unappliedHead: 0,
      electionDeadline: Number.POSITIVE_INFINITY,
      electionTimer: undefined,
      machineTimers: new Map(),
      machineMonitors: new Map(),
      monitorRefs: new Map(),
      leaderWatch: undefined,
      peerWatches: [],
      senders: new Map(),
      earlyAcks: new Map(),
      receiver: undefined,
      counters: emptyCounters(),
      failed: undefined,
      logListener: undefined,
      ending: 0,
      ticking: false,
    };
    sys.leaders.set(record.cluster, null);
    if (recovered.snapshot !== null && spec.hooks?.onRestoredFromFiles !== undefined) {
      runHook(state, () =>
        spec.hooks?.onRestoredFromFiles?.(recovered.snapshot!.meta, core(state).machineState),
      );
    }
    for (const e of snap.context.effects) noteElectionTimer(state, e);
    await execute(state, ctx, [...snap.context.effects]);
    return state;
  },

  handleBatch(items, state, ctx) {
    const effects: Effect[] = [];
    const applied = core(state).lastApplied;
    // runs of consecutive commands become one core event each (no closure per batch: under tsx,
    // esbuild's keepNames turns each named closure into a defineProperty call)
    let commands: CommandMsg[] = [];
    for (const item of items) {
      const command = asCommand(state, item, ctx);
      if (command === null) continue;
      if (command !== undefined) {
        commands.push(command);
        continue;
      }
      if (commands.length > 0) {
        stepCommands(state, commands, effects);
        commands = [];
      }
      handleItem(state, item, effects, ctx);
    }
    if (commands.length > 0) stepCommands(state, commands, effects);
    if (state.failed !== undefined) throw state.failed;
    const done = execute(state, ctx, effects);
    if (done instanceof Promise) return done.then(() => afterBatch(state, ctx, applied));
    afterBatch(state, ctx, applied);
    return state;
  },

  terminate(_reason, state) {
    state.chart.stop();
    void dropReceive(state);
    // this node no longer knows a leader it hosted
    forgetLeader(state.sys, state.record.cluster, state.id);
  },

  describe: (state) => state.snap.value,
};

function afterBatch(state: ShellState, ctx: ActorContext, applied: number): ShellState {
  keepAppliedAsStored(state, applied + 1);
  state.received = undefined;
  if (state.receiver !== undefined && core(state).receiving === null) {
    // the core gave this receive up (installed the same snapshot from an earlier transfer, or a
    // new term or leader): its temporary file would wait for the next chunk 0 or the server's end
    void dropReceive(state);
  }
  if (state.ending === 1) {
    // The manager stops this server (and its helpers), then deletes its record and data.
    state.ending = -1;
    state.sys.log(
      'info',
      `${serverIdKey(state.id)}: cluster ${state.record.cluster} deleted; removing its data`,
    );
    ctx
      .call(
        { name: names.manager(state.sys.name), node: state.sys.node.name },
        { type: 'manager.delete_server', name: state.id.name },
        { timeoutMs: 60_000 },
      )
      .catch((err: unknown) =>
        state.sys.log('error', `${serverIdKey(state.id)}: could not delete: ${asError(err).message}`),
      );
    return state;
  }
  const role = roleOf(state);
  if (role === 'stop') ctx.stop('normal');
  else if (role === 'leader' && !state.ticking && !core(state).quiesced) {
    // a new leader ticks at once (its entries carry the wall clock of its last tick), then every tickMs
    state.ticking = true;
    ctx.send(ctx.self, own({ type: 'raft.tick' }));
  }
  return state;
}

/**
 * Records stored entries as not applied yet: after those before `truncateFrom` (if any), or in place
 * of everything when they do not follow on (a snapshot was installed in between).
 */
function noteUnapplied(state: ShellState, entries: readonly StoredEntry[], truncateFrom?: number): void {
  if (entries.length === 0) return;
  const list = state.unapplied;
  const head = state.unappliedHead;
  const first = list[head]?.index;
  if (first !== undefined && truncateFrom !== undefined && truncateFrom < first + list.length - head)
    list.length = Math.max(head, head + truncateFrom - first);
  const next = list.length > head ? (list[list.length - 1] as StoredEntry).index + 1 : undefined;
  if (next !== (entries[0] as StoredEntry).index) {
    state.unapplied = entries.slice();
    state.unappliedHead = 0;
    return;
  }
  for (const e of entries) list.push(e);
}

/**
 * The command entries this batch applied (from index `from` on) stay in the core's log as the
 * bytes they were stored as, until the next snapshot (`StoredCommand`), and leave `unapplied`.
 */
function keepAppliedAsStored(state: ShellState, from: number): void {
  const s = core(state);
  const applied = s.lastApplied;
  const list = state.unapplied;
  let head = state.unappliedHead;
  const first = list[head]?.index;
  if (first === undefined) return;
  if (from <= applied) {
    swapAppliedEntries(s, from, (entry) => {
      if (entry.type !== 'command') return entry;
      const stored = list[head + entry.index - first];
      if (stored === undefined || stored.index !== entry.index || stored.term !== entry.term) return entry;
      return new StoredCommand(stored.index, stored.term, stored.data).asEntry();
    });
  }
  while (head < list.length && (list[head] as StoredEntry).index <= applied) head++;
  if (head === list.length) {
    state.unapplied = [];
    head = 0;
  } else if (head >= 1024 && head * 2 >= list.length) {
    state.unapplied = list.slice(head);
    head = 0;
  }
  state.unappliedHead = head;
}

function stepCommands(state: ShellState, commands: CommandMsg[], effects: Effect[]): void {
  step(state, commands.length === 1 ? (commands[0] as CommandMsg) : { type: 'commands', commands }, effects);
}

/**
 * Pipelined and `processCommand` commands, gathered into one core event per batch: the command,
 * `undefined` when the item is not a command, `null` when it was one and is dropped.
 */
function asCommand(state: ShellState, item: BatchItem, ctx: ActorContext): CommandMsg | undefined | null {
  if (item.kind === 'cast') {
    const m: unknown = item.msg;
    let command: unknown;
    let correlation: unknown;
    let notify: unknown;
    let low: boolean;
    let requestId: unknown;
    if (Array.isArray(m)) {
      // a PipelineCast, its fields checked below
      if (m[0] !== PIPELINE) return undefined;
      command = m[1];
      correlation = m[2];
      notify = m.length === 7 || m.length === 8 ? { node: m[3], id: m[4], creation: m[5] } : undefined;
      low = m[6] === 1;
      requestId = m[7];
    } else {
      const o = m as PipelineCastObject | null;
      if (o?.type !== PIPELINE) return undefined;
      ({ command, correlation, notify, requestId } = o);
      low = o.priority === 'low';
    }
    if (
      !isPid(notify) ||
      (typeof correlation !== 'string' && typeof correlation !== 'number') ||
      commandProblem(command, requestId) !== undefined
    ) {
      // from the network, malformed: there is nobody to tell, so it is dropped (and logged)
      state.sys.log(
        'warn',
        `${serverIdKey(state.id)}: dropped a pipelined command without a valid notify pid, correlation or request id, or nested too deep`,
      );
      return null;
    }
    state.counters.pipelined++;
    const reply: ReplyMode = { mode: 'notify', to: notify, correlation };
    const priority = low ? 'low' : 'normal';
    return requestId === undefined
      ? { type: 'command', command, reply, priority }
      : { type: 'command', command, reply, priority, requestId: requestId as string };
  }
  if (item.kind === 'call') {
    const r = item.request as ServerCall;
    if (r?.type !== 'raft.command') return undefined;
    const problem = commandProblem(r.command, r.requestId);
    if (problem !== undefined) {
      ctx.reply(item.from, {
        type: 'error',
        error: 'invalid_request',
        message: problem,
        leader: core(state).leaderId,
      } satisfies ShellError);
      return null;
    }
    state.counters.commands++;
    const mode = r.replyFrom === 'after_log_append' ? 'after_log_append' : 'await_consensus';
    const reply: ReplyMode = { mode, from: toCoreFrom(item.from) };
    return r.requestId === undefined
      ? { type: 'command', command: r.command, reply }
      : { type: 'command', command: r.command, reply, requestId: r.requestId };
  }
  return undefined;
}

function handleItem(state: ShellState, item: BatchItem, effects: Effect[], ctx: ActorContext): void {
  if (item.kind === 'call') {
    handleCall(state, item.request as ServerCall, item.from, effects, ctx);
    return;
  }
  const msg = item.msg as { type?: unknown } | null;
  if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string') {
    state.sys.log('warn', `${serverIdKey(state.id)}: ignored a malformed message`);
    return;
  }
  const type = msg.type;
  if (RPC_TYPES.has(type)) {
    if (!isValidRpc(msg as { type: string })) {
      state.sys.log('warn', `${serverIdKey(state.id)}: dropped a malformed ${type}`);
      return;
    }
    const rpc = fromWire(state, msg as RaftRpc);
    if (rpc === undefined) {
      state.sys.log(
        'warn',
        `${serverIdKey(state.id)}: dropped an append_entries.request with undecodable entries`,
      );
      return;
    }
    if (rpc.type === 'append_entries.request') {
      state.counters.appendsReceived++;
      state.counters.entriesReceived += rpc.entries.length;
    }
    if (rpc.type === 'install_snapshot.reply') {
      const peer = serverIdKey(rpc.from);
      const sender = state.senders.get(peer);
      if (sender !== undefined) ctx.send(sender, rpc);
      else state.earlyAcks.set(peer, rpc);
    }
    step(state, rpc, effects);
    return;
  }
  if (SELF_TYPES.has(type) && (msg as Record<symbol, unknown>)[SELF] !== true) {
    state.sys.log('warn', `${serverIdKey(state.id)}: ignored a ${type} it did not send itself`);
    return;
  }
  switch (type) {
    case 'log.written':
    case 'snapshot.written':
    case 'snapshot.installed':
      step(state, msg as Message, effects);
      return;
    case 'raft.tick':
      if (state.ending > 1) state.ending--;
      step(state, { type: 'tick', nowMs: Date.now() }, effects);
      // a quiesced leader stops ticking (unless it is counting down its end of life)
      if (roleOf(state) === 'leader' && (!core(state).quiesced || state.ending > 0))
        ctx.sendAfter(state.sys.settings.tickMs, own({ type: 'raft.tick' }));
      else state.ticking = false;
      return;
    case 'raft.election_timeout': {
      state.electionTimer = undefined;
      const left = state.electionDeadline - ctx.now();
      if (left === Number.POSITIVE_INFINITY) return;
      if (left > 1) armElectionTimer(state, ctx);
      else if ((msg as { afterIo?: boolean }).afterIo !== true) {
        // Expired, but look once more after the event loop has read its sockets: timers run
        // before I/O in a loop turn, so after a pause (a GC, a large snapshot encode) the deadline
        // has passed while the leader's AppendEntries from that pause still wait unread.
        // Campaigning on them would drop this server out of the leader's lease for nothing.
        state.electionTimer = ctx.sendAfter(0, own({ type: 'raft.election_timeout', afterIo: true }));
      } else {
        state.electionDeadline = Number.POSITIVE_INFINITY;
        step(state, { type: 'election.timeout' }, effects);
      }
      return;
    }
    case 'raft.machine_timeout': {
      const name = String((msg as { name?: unknown }).name);
      state.machineTimers.delete(name);
      step(state, { type: 'machine.timeout', name }, effects);
      return;
    }
    case 'raft.fatal':
      state.failed = (msg as unknown as { error: Error }).error;
      return;
    case 'raft.sender_started': {
      const m = msg as unknown as { peer: string; pid: Pid };
      const ref = ctx.monitor(m.pid);
      state.monitorRefs.set(ref, { kind: 'sender', peer: m.peer });
      state.senders.set(m.peer, m.pid);
      const early = state.earlyAcks.get(m.peer);
      if (early !== undefined) {
        state.earlyAcks.delete(m.peer);
        ctx.send(m.pid, early);
      }
      return;
    }
    case '@actors.down': {
      const down = msg as unknown as DownMessage;
      const what = state.monitorRefs.get(down.ref);
      state.monitorRefs.delete(down.ref);
      if (what?.kind === 'sender') {
        if (state.senders.get(what.peer)?.id === (down.pid as Pid).id) state.senders.delete(what.peer);
        // a killed sender, or one whose init failed, could not close its reader
        void closeLeftReader(state.sys, down.pid as Pid);
      } else if (what?.kind === 'machine') {
        state.machineMonitors.delete(pidKey(down.pid as Pid));
        step(state, { type: 'down', pid: down.pid as Pid, reason: down.reason }, effects);
      } else if (what?.kind === 'leader') {
        if (state.leaderWatch === down.ref) state.leaderWatch = undefined;
        step(state, { type: 'leader.down' }, effects);
      } else if (what?.kind === 'peer') {
        state.peerWatches = state.peerWatches.filter((ref) => ref !== down.ref);
        step(state, { type: 'peer.down', id: what.id }, effects);
      }
      return;
    }
    case '@actors.nodeup':
    case '@actors.nodedown': {
      const node = String((msg as { node?: unknown }).node);
      step(state, { type: type === '@actors.nodeup' ? 'nodeup' : 'nodedown', node }, effects);
      return;
    }
    default:
      state.sys.log('warn', `${serverIdKey(state.id)}: ignored an unknown message ${type}`);
  }
}

function handleCall(
  state: ShellState,
  request: ServerCall,
  from: ActorFrom,
  effects: Effect[],
  ctx: ActorContext,
) {
  const refuse = (message: string, error: ShellError['error'] = 'invalid_request'): void => {
    ctx.reply(from, { type: 'error', error, message, leader: core(state).leaderId } satisfies ShellError);
  };
  switch (request?.type) {
    case 'raft.query': {
      state.counters.queries++;
      const fn = resolveQuery(state, request.query);
      if (typeof fn === 'string') {
        refuse(fn, 'unknown_query');
        return;
      }
      step(
        state,
        {
          type: 'query',
          kind: request.kind,
          fn,
          from: toCoreFrom(from),
          ...(request.condition === undefined ? {} : { condition: request.condition }),
        },
        effects,
      );
      return;
    }
    case 'raft.join':
      if (!isServerId(request.id)) return refuse('join needs a server id');
      if (request.membership !== undefined && !MEMBERSHIPS.has(request.membership)) {
        return refuse('membership is voter, promotable or non_voter');
      }
      step(
        state,
        {
          type: 'membership.join',
          member: { id: request.id, membership: request.membership ?? 'voter' },
          from: toCoreFrom(from),
        },
        effects,
      );
      return;
    case 'raft.leave':
      if (!isServerId(request.id)) return refuse('leave needs a server id');
      step(state, { type: 'membership.leave', id: request.id, from: toCoreFrom(from) }, effects);
      return;
    case 'raft.transfer':
      if (!isServerId(request.to)) return refuse('transfer needs a server id');
      step(state, { type: 'transfer_leadership', to: request.to, from: toCoreFrom(from) }, effects);
      return;
    case 'raft.trigger_election':
      step(state, { type: 'trigger_election' }, effects);
      ctx.reply(from, { type: 'ok', leader: core(state).leaderId });
      return;
    case 'raft.aux':
      ctx.send(auxName(state.id.name), {
        type: 'aux.command',
        command: request.command,
        view: auxView(state),
        from,
      });
      return;
    case 'raft.overview':
      ctx.reply(from, overview(state));
      return;
    case 'raft.key_metrics':
      ctx.reply(from, keyMetrics(state));
      return;
    default:
      refuse(`unknown request ${String((request as { type?: unknown })?.type)}`);
  }
}

/** The built-in named query used for follower reads: answers nothing, but only after a read-index round. */
export const READ_INDEX_QUERY = '@otra.read_index';

function resolveQuery(
  state: ShellState,
  query: ServerCall & { type: 'raft.query' } extends { query: infer Q } ? Q : never,
) {
  if (typeof query === 'function') return query;
  if (query === null || typeof query !== 'object' || typeof query.name !== 'string')
    return 'a query is a function or { name, args }';
  if (query.name === READ_INDEX_QUERY) return () => null;
  const named = state.queries[query.name];
  if (named === undefined) return `unknown query ${query.name} for module ${state.record.module}`;
  const args = Array.isArray(query.args) ? query.args : [];
  return (machineState: unknown) => named(machineState, ...args);
}

/**
 * Runs one event through the core and collects its effects; a role change goes through the
 * statechart. Leader hooks fire here. An exception inside the core (or a chart that does not
 * follow it) crashes the server, which restarts from disk.
 */
function step(state: ShellState, msg: Message, effects: Effect[]): void {
  const before = roleOf(state);
  const r = handle(before, state.server, msg);
  const takes = chartTakes(before, state.server, r);
  state.server = r.state;
  const after = r.role;
  if (takes) {
    state.chart.send(roleChange(r));
    const next = state.chart.getSnapshot();
    if (next.status === 'error') throw next.error;
    if (next.value !== after)
      throw new Error(`the statechart is in ${String(next.value)}, the core in ${after}`);
    state.snap = next;
  }
  for (const e of r.effects) {
    noteElectionTimer(state, e);
    effects.push(e);
  }
  if (before !== after) onRoleChange(state, after);
  if (state.tap.applied.length > 0) {
    const applied = state.tap.applied;
    state.tap.applied = [];
    if (after === 'leader' && state.hooks?.onCommandCommitted !== undefined) {
      for (const a of applied)
        runHook(state, () => state.hooks?.onCommandCommitted?.(a.before, a.command, a.reply, a.after));
    }
  }
  if (state.tap.endOfLife !== null) {
    // every member deletes its data once it applied the end-of-life command (after this batch)
    state.tap.endOfLife = null;
    state.ending = after === 'leader' ? END_OF_LIFE_TICKS : 1;
  }
  const leader = r.state.leaderId;
  state.sys.leaders.set(state.record.cluster, leader);
}

function onRoleChange(state: ShellState, role: Role): void {
  if (role === 'candidate') state.counters.elections++;
  if (role === 'pre_vote') state.counters.preVotes++;
}

function runHook(state: ShellState, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    state.counters.hookErrors++;
    state.sys.log(
      'warn',
      `${serverIdKey(state.id)}: leader hook threw: ${(err as Error)?.message ?? String(err)}`,
    );
  }
}

function runLeaderHook(state: ShellState, hook: LeaderHook): void {
  const hooks = state.hooks;
  if (hooks === undefined) return;
  const machineState = core(state).machineState;
  switch (hook.hook) {
    case 'elected':
      if (hooks.onElected !== undefined) runHook(state, () => hooks.onElected?.(state.id, hook.term));
      return;
    case 'command_committed':
      // per-command hooks fire from the apply tap in `step`, with before/after states
      return;
    case 'follower_added':
      if (hooks.onFollowerAdded !== undefined)
        runHook(state, () => hooks.onFollowerAdded?.(hook.member, machineState));
      return;
    case 'follower_removed':
      if (hooks.onFollowerRemoved !== undefined)
        runHook(state, () => hooks.onFollowerRemoved?.(hook.id, machineState));
      return;
    case 'query_answered':
      if (hooks.onQueryAnswered !== undefined)
        runHook(state, () => hooks.onQueryAnswered?.(hook.count, machineState));
      return;
    case 'restored':
      if (hooks.onRestoredFromFiles !== undefined)
        runHook(state, () => hooks.onRestoredFromFiles?.(hook.meta, machineState));
      return;
    default:
      assertNever(hook);
  }
}

// ---- the effect interpreter -------------------------------------------------------------------

/**
 * Executes effects in order. Synchronous until a barrier (`meta.persist`, snapshot chunk writes and
 * installs) needs the disk; then it returns a promise and resumes after it. Nothing after a barrier
 * runs before the barrier is durable.
 */
function execute(
  state: ShellState,
  ctx: ActorContext,
  effects: readonly Effect[],
  from = 0,
): void | Promise<void> {
  for (let i = from; i < effects.length; i++) {
    const effect = effects[i] as Effect;
    const pending = executeOne(state, ctx, effect);
    if (pending !== undefined) return pending.then(() => execute(state, ctx, effects, i + 1));
  }
  return undefined;
}

function executeOne(state: ShellState, ctx: ActorContext, effect: Effect): Promise<void> | undefined {
  const { sys, record } = state;
  switch (effect.type) {
    case 'meta.persist':
      return sys.storage.meta
        .store(record.uid, { currentTerm: effect.currentTerm, votedFor: effect.votedFor })
        .then(() => undefined);
    case 'log.append': {
      const entries = effect.entries.map((e) => toStored(state, e));
      const options = effect.truncateFrom === undefined ? undefined : { truncateFrom: effect.truncateFrom };
      // one listener per server, called by the writer as each batch completes: no promise per append
      state.logListener ??= {
        logWritten: (_uid, upTo, term) => ctx.send(ctx.self, own({ type: 'log.written', upTo, term })),
        logWriteFailed: (_uid, error) => ctx.send(ctx.self, own({ type: 'raft.fatal', error })),
      };
      sys.storage.log.appendNotify(record.uid, entries, options, state.logListener);
      // the store's copy, now in its tail: a received entry's own bytes are a view of its frame
      const first = (entries[0] as StoredEntry).index;
      const copies = sys.storage.log.tryRead(record.uid, first, first + entries.length - 1);
      noteUnapplied(state, copies ?? entries, effect.truncateFrom);
      return undefined;
    }
    case 'log.truncate_prefix': {
      const s = core(state);
      const term =
        s.snapshot !== null && s.snapshot.index === effect.upTo
          ? s.snapshot.term
          : sys.storage.log.termAt(record.uid, effect.upTo);
      if (term === undefined) return undefined;
      sys.storage.log
        .deletePrefix(record.uid, { index: effect.upTo, term })
        .catch((err: unknown) => ctx.send(ctx.self, own({ type: 'raft.fatal', error: asError(err) })));
      return undefined;
    }
    case 'send_rpc':
      if (effect.rpc.type === 'append_entries.request') {
        state.counters.appendsSent++;
        state.counters.entriesSent += effect.rpc.entries.length;
      }
      if (ctx.send({ name: effect.to.name, node: effect.to.node }, toWire(state, effect.rpc)) !== 'ok')
        state.counters.droppedSends++;
      return undefined;
    case 'reply':
      ctx.reply(toActorFrom(effect.to), effect.reply);
      return undefined;
    case 'notify':
      ctx.send(effect.to, { type: 'raft.applied', server: state.id, applied: effect.applied });
      return undefined;
    case 'notify.rejected':
      ctx.send(effect.to, {
        type: 'raft.rejected',
        server: state.id,
        correlations: effect.correlations,
        error: effect.error,
        leader: effect.leader,
      });
      return undefined;
    case 'timer.set':
      // the deadline moved when the event was handled (`step`); make sure a timer is armed
      if (state.electionTimer === undefined) armElectionTimer(state, ctx);
      return undefined;
    case 'timer.cancel':
      // the deadline is gone (`step`); an armed timer that fires finds nothing to do
      return undefined;
    case 'monitor.leader':
      if (state.leaderWatch !== undefined) {
        ctx.demonitor(state.leaderWatch);
        state.monitorRefs.delete(state.leaderWatch);
        state.leaderWatch = undefined;
      }
      if (effect.leader !== null) {
        const ref = ctx.monitor({ name: effect.leader.name, node: effect.leader.node });
        state.leaderWatch = ref;
        state.monitorRefs.set(ref, { kind: 'leader' });
      }
      return undefined;
    case 'monitor.peers':
      for (const ref of state.peerWatches) {
        ctx.demonitor(ref);
        state.monitorRefs.delete(ref);
      }
      state.peerWatches = [];
      for (const id of effect.peers) {
        const ref = ctx.monitor({ name: id.name, node: id.node });
        state.peerWatches.push(ref);
        state.monitorRefs.set(ref, { kind: 'peer', id });
      }
      return undefined;
    case 'snapshot.write': {
      const meta = effect.meta;
      // encoded in time slices, with event-loop turns between, while the store writes earlier chunks
      sys.storage.snapshots.write(record.uid, meta as never, encodeStateChunks(effect.machineState)).then(
        () => {
          state.counters.snapshotsWritten++;
          ctx.send(ctx.self, own({ type: 'snapshot.written', meta }));
        },
        (err: unknown) => {
          if (err instanceof SnapshotStaleError) {
            // a newer snapshot, installed from the leader while this one was written, is the
            // current one: the write is settled (the core ignores a snapshot behind its own)
            sys.log('info', `${serverIdKey(state.id)}: ${err.message}`);
            ctx.send(ctx.self, own({ type: 'snapshot.written', meta }));
          } else ctx.send(ctx.self, own({ type: 'raft.fatal', error: asError(err) }));
        },
      );
      return undefined;
    }
    case 'snapshot.send':
      startSnapshotSender(state, ctx, effect);
      return undefined;
    case 'snapshot.chunk.write':
      return writeChunk(state, effect.meta, effect.chunk, effect.last, effect.data);
    case 'snapshot.install':
      return installSnapshot(state, ctx, effect.meta);
    case 'machine':
      try {
        machineEffect(state, ctx, effect.effect);
      } catch (err) {
        // a malformed effect is the machine's bug: crashing would replay it, and crash again
        state.sys.log(
          'warn',
          `${serverIdKey(state.id)}: ignored a machine effect ${describeEffect(effect.effect)}: ${asError(err).message}`,
        );
      }
      return undefined;
    case 'hook':
      runLeaderHook(state, effect);
      return undefined;
    default:
      return assertNever(effect, 'unknown effect');
  }
}

/**
 * Election deadlines move as an event is handled, not when the batch's effects run: a timeout
 * queued behind a heartbeat in the same batch must see the heartbeat's new deadline. The delay is
 * drawn here, uniformly in the core's range (the core has no randomness).
 */
function noteElectionTimer(state: ShellState, e: Effect): void {
  if (e.type === 'timer.set') {
    state.electionDeadline =
      state.sys.node.clock.now() + e.minMs + Math.random() * Math.max(0, e.maxMs - e.minMs);
  } else if (e.type === 'timer.cancel') state.electionDeadline = Number.POSITIVE_INFINITY;
}

function armElectionTimer(state: ShellState, ctx: ActorContext): void {
  const left = state.electionDeadline - ctx.now();
  if (left === Number.POSITIVE_INFINITY) return;
  state.electionTimer = ctx.sendAfter(Math.max(0, left), own({ type: 'raft.election_timeout' }));
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function describeEffect(effect: unknown): string {
  const type = (effect as { type?: unknown } | null)?.type;
  return typeof type === 'string' ? type.slice(0, 64) : typeof effect;
}

function machineEffect(state: ShellState, ctx: ActorContext, effect: MachineEffect): void {
  switch (effect.type) {
    case 'send_msg':
      ctx.send(effect.to, effect.msg);
      return;
    case 'monitor':
      if (effect.kind === 'node') ctx.monitorNode(effect.node, true);
      else if (!state.machineMonitors.has(pidKey(effect.pid))) {
        const ref = ctx.monitor(effect.pid);
        state.machineMonitors.set(pidKey(effect.pid), ref);
        state.monitorRefs.set(ref, { kind: 'machine' });
      }
      return;
    case 'demonitor':
      if (effect.kind === 'node') ctx.monitorNode(effect.node, false);
      else {
        const ref = state.machineMonitors.get(pidKey(effect.pid));
        if (ref !== undefined) {
          ctx.demonitor(ref);
          state.machineMonitors.delete(pidKey(effect.pid));
          state.monitorRefs.delete(ref);
        }
      }
      return;
    case 'timer': {
      const existing = state.machineTimers.get(effect.name);
      if (existing !== undefined) ctx.cancelTimer(existing);
      state.machineTimers.delete(effect.name);
      if (effect.ms !== 'infinity') {
        state.machineTimers.set(
          effect.name,
          ctx.sendAfter(effect.ms, own({ type: 'raft.machine_timeout', name: effect.name })),
        );
      }
      return;
    }
    case 'mod_call':
      try {
        effect.fn();
      } catch (err) {
        state.sys.log('warn', `${serverIdKey(state.id)}: mod_call threw: ${asError(err).message}`);
      }
      return;
    case 'aux':
      ctx.send(auxName(state.id.name), {
        type: 'aux.command',
        command: effect.command,
        view: auxView(state),
      });
      return;
    case 'checkpoint':
      // Checkpoints (snapshots that keep the log) are not persisted yet: the log is kept until the
      // machine's next release_cursor, which is always safe.
      return;
    case 'release_cursor':
    case 'append':
    case 'log':
      // handled inside the core
      return;
    default:
      assertNever(effect, 'unknown machine effect');
  }
}

/** The read-only view the aux actor gets (ra's `ra_aux` accessors). */
export interface AuxView {
  readonly role: Role;
  readonly machineState: unknown;
  readonly commitIndex: number;
  readonly lastApplied: number;
  readonly term: number;
  readonly leader: ServerId | null;
}

function auxView(state: ShellState): AuxView {
  const s = core(state);
  return {
    role: roleOf(state),
    machineState: s.machineState,
    commitIndex: s.commitIndex,
    lastApplied: s.lastApplied,
    term: s.currentTerm,
    leader: s.leaderId,
  };
}

function startSnapshotSender(
  state: ShellState,
  ctx: ActorContext,
  { to, term, meta, fromChunk }: Extract<Effect, { type: 'snapshot.send' }>,
): void {
  const peer = serverIdKey(to);
  // acknowledgements from before this transfer are not this sender's
  state.earlyAcks.delete(peer);
  const old = state.senders.get(peer);
  if (old !== undefined) {
    state.senders.delete(peer);
    ctx.exit(old, 'shutdown');
  }
  // With no link to its node every chunk would be dropped: start nothing. The core retries the
  // transfer when it has been silent long enough, or when the member asks for a vote once back.
  if (!state.sys.node.isConnected(to.node)) return;
  state.counters.snapshotsSent++;
  if (fromChunk > 0) state.counters.snapshotsResumed++;
  const spec = snapshotSenderSpec(state.sys, {
    uid: state.record.uid,
    leader: state.id,
    to,
    term,
    meta,
    fromChunk,
    chunkBytes: state.sys.settings.snapshotChunkBytes,
  });
  startChild(state.sys.node, state.supervisor, spec).then(
    (pid) => ctx.send(ctx.self, own({ type: 'raft.sender_started', peer, pid })),
    (err: unknown) =>
      state.sys.log(
        'warn',
        `${serverIdKey(state.id)}: snapshot sender failed to start: ${asError(err).message}`,
      ),
  );
}

/** Chunk data as the snapshot sender encodes it. */
export interface SnapshotChunkData {
  readonly bytes: Uint8Array;
  /** crc32c of the whole snapshot (set on every chunk). */
  readonly checksum: number;
}

async function writeChunk(
  state: ShellState,
  meta: SnapshotMeta,
  chunk: number,
  last: boolean,
  data: unknown,
): Promise<void> {
  const d = data as SnapshotChunkData;
  if (
    d === null ||
    typeof d !== 'object' ||
    !(d.bytes instanceof Uint8Array) ||
    !Number.isInteger(d.checksum)
  ) {
    throw new Error('malformed snapshot chunk');
  }
  const snapshots = state.sys.storage.snapshots;
  if (chunk === 0 || state.receiver === undefined) {
    await dropReceive(state);
    const receiver = await snapshots.beginReceive(state.record.uid, meta as never);
    state.sys.receives.set(state.record.uid, receiver);
    state.receiver = { receiver, meta, checksum: undefined };
  }
  await state.receiver.receiver.writeChunk(d.bytes);
  if (last) state.receiver.checksum = d.checksum;
}

/** This server's receive is no longer open (completed or aborted): the system forgets it. */
function forgetReceive(state: ShellState, receiver: SnapshotReceiver): void {
  if (state.sys.receives.get(state.record.uid) === receiver) state.sys.receives.delete(state.record.uid);
}

/** Aborts this server's open snapshot receive, if any (its temporary file is removed). */
async function dropReceive(state: ShellState): Promise<void> {
  const open = state.receiver;
  if (open === undefined) return;
  state.receiver = undefined;
  forgetReceive(state, open.receiver);
  await open.receiver
    .abort()
    .catch((err: unknown) =>
      state.sys.log(
        'warn',
        `${serverIdKey(state.id)}: could not drop a snapshot receive: ${asError(err).message}`,
      ),
    );
}

async function installSnapshot(state: ShellState, ctx: ActorContext, meta: SnapshotMeta): Promise<void> {
  const receiving = state.receiver;
  if (receiving === undefined || receiving.checksum === undefined)
    throw new Error('snapshot install without a complete receive');
  state.receiver = undefined;
  forgetReceive(state, receiving.receiver);
  await receiving.receiver.complete(receiving.checksum);
  await state.sys.storage.log.deletePrefix(state.record.uid, { index: meta.index, term: meta.term });
  const reader = await state.sys.storage.snapshots.openRead(state.record.uid);
  if (reader === null) throw new Error('installed snapshot vanished');
  let machineState: unknown;
  try {
    const chunks: Uint8Array[] = [];
    for await (const c of reader.chunks()) chunks.push(c);
    machineState = await decodeState(concatBytes(chunks));
  } finally {
    await reader.close();
  }
  state.counters.snapshotsInstalled++;
  ctx.send(ctx.self, own({ type: 'snapshot.installed', meta, machineState }));
}

// ---- introspection ----------------------------------------------------------------------------

function members(state: ShellState): MemberInfo[] {
  const s = core(state);
  const config = s.configs[s.configs.length - 1]?.members ?? [];
  return config.map((m) => {
    const peer = s.leader?.peers.find((p) => serverIdEquals(p.id, m.id));
    const matchIndex =
      serverIdEquals(m.id, state.id) && s.leader !== null ? s.lastWritten.index : peer?.matchIndex;
    const info: MemberInfo =
      matchIndex === undefined
        ? { id: m.id, membership: m.membership }
        : { id: m.id, membership: m.membership, matchIndex };
    // the progress outlives a stalled transfer (for its retry): shown while one runs
    const transfer = peer !== undefined && peer.snapshotTicks > 0 ? peer.snapshotProgress : null;
    return transfer === null
      ? info
      : { ...info, snapshotTransfer: { index: transfer.index, nextChunk: transfer.next } };
  });
}

function overview(state: ShellState): Overview {
  const s = core(state);
  const machine = s.cfg.machine;
  let machineOverview: unknown;
  try {
    machineOverview = machine.overview?.(s.machineState);
  } catch (err) {
    machineOverview = { error: asError(err).message };
  }
  return {
    id: state.id,
    uid: state.record.uid,
    cluster: state.record.cluster,
    role: roleOf(state),
    stateValue: state.snap.value,
    term: s.currentTerm,
    votedFor: s.votedFor,
    leader: s.leaderId,
    commitIndex: s.commitIndex,
    lastApplied: s.lastApplied,
    lastIndex: s.log.snapshotIndex + s.log.length,
    lastWritten: s.lastWritten.index,
    quiesced: s.quiesced,
    snapshot: s.snapshot === null ? null : { index: s.snapshot.index, term: s.snapshot.term },
    machineVersion: s.machineVersion,
    members: members(state),
    machine: machineOverview,
    counters: { ...state.counters },
  };
}

function keyMetrics(state: ShellState): KeyMetrics {
  const s = core(state);
  return {
    role: roleOf(state),
    term: s.currentTerm,
    commitIndex: s.commitIndex,
    lastApplied: s.lastApplied,
    lastIndex: s.log.snapshotIndex + s.log.length,
    lastWritten: s.lastWritten.index,
    commands: state.counters.commands + state.counters.pipelined,
  };
}

export { END_OF_LIFE };
