import type { ClusterMember, LogEntry } from '@otra/protocol';
import { assertNever, serverIdKey } from '@otra/protocol';
import { applyCommitted, machineEffects } from './internal/apply.ts';
import { appendCommands, flushLowPriority, onCommands, onSystemEvent } from './internal/client.ts';
import { armElectionTimer, type Ctx, type Draft } from './internal/context.ts';
import {
  onElectionTimeout,
  onPreVoteReply,
  onPreVoteRequest,
  onTimeoutNow,
  onVoteReply,
  onVoteRequest,
} from './internal/election.ts';
import { lastIndex, lastTerm, logFromEntries, swapEntries } from './internal/log.ts';
import { onJoin, onLeave, onTransfer } from './internal/membership.ts';
import { onQuery } from './internal/queries.ts';
import { maybeQuiesce, wake } from './internal/quiesce.ts';
import {
  heartbeat,
  leaderTick,
  noteConfigs,
  onAppendEntries,
  onAppendEntriesReply,
  onLeaderProbe,
  onLogWritten,
  retryTransferTo,
} from './internal/replication.ts';
import { emptyRequests, requestsFrom, unwrapSnapshotState } from './internal/requests.ts';
import {
  onInstallSnapshot,
  onInstallSnapshotReply,
  onSnapshotInstalled,
  onSnapshotWritten,
} from './internal/snapshot.ts';
import { type MachineConfig, toModule } from './machine.ts';
import type {
  HandleResult,
  Message,
  Recovered,
  ResolvedConfig,
  Role,
  ServerConfig,
  ServerState,
} from './types.ts';

export const defaults = {
  electionTimeoutMs: [1000, 2000] as const,
  electionTimeoutTicks: 10,
  maxAppendEntriesBatch: 256,
  maxInFlight: 4,
  lowPriorityBatch: 32,
  quiesceAfterTicks: 0,
  trailingEntries: 4096,
};

export function resolveConfig(config: ServerConfig): ResolvedConfig {
  return {
    id: config.id,
    idKey: serverIdKey(config.id),
    machine: toModule(config.machine),
    electionTimeoutMs: config.electionTimeoutMs ?? defaults.electionTimeoutMs,
    electionTimeoutTicks: config.electionTimeoutTicks ?? defaults.electionTimeoutTicks,
    maxAppendEntriesBatch: config.maxAppendEntriesBatch ?? defaults.maxAppendEntriesBatch,
    maxInFlight: config.maxInFlight ?? defaults.maxInFlight,
    lowPriorityBatch: config.lowPriorityBatch ?? defaults.lowPriorityBatch,
    quiesceAfterTicks: config.quiesceAfterTicks ?? defaults.quiesceAfterTicks,
    trailingEntries: config.trailingEntries ?? defaults.trailingEntries,
  };
}

/**
 * Builds a server's state from what durable storage held. Everything recovered counts as written.
 * The commit index restarts at the snapshot: committed entries after it are re-applied once a
 * leader tells us its commit index.
 */
export function initServer(config: ServerConfig, recovered: Recovered): ServerState {
  const cfg = resolveConfig(config);
  const snap = recovered.snapshot;
  const snapIndex = snap?.meta.index ?? 0;
  const snapTerm = snap?.meta.term ?? 0;
  const log = logFromEntries(snapIndex, snapTerm, recovered.entries);
  const stored = snap === null ? null : unwrapSnapshotState(snap.machineState);
  const initial: ClusterMember[] = config.initialMembers.map((id) => ({ id, membership: 'voter' }));
  const machineConfig: MachineConfig = {
    name: config.id.name,
    serverId: config.id,
    ...(config.machineConfig ?? {}),
  };
  const state: Draft = {
    cfg,
    currentTerm: recovered.currentTerm,
    votedFor: recovered.votedFor,
    leaderId: null,
    log,
    lastWritten: { index: lastIndex(log), term: lastTerm(log) },
    matchedIndex: 0,
    leaderRound: 0,
    commitIndex: snapIndex,
    lastApplied: snapIndex,
    machineState: stored !== null ? stored.machineState : cfg.machine.init(machineConfig),
    machineVersion: snap?.meta.machineVersion ?? 0,
    requests: stored !== null ? requestsFrom(stored.requests) : emptyRequests(),
    awaitingUpgrade: null,
    configs: [{ index: snapIndex, members: snap?.meta.cluster ?? initial }],
    snapshot: snap?.meta ?? null,
    snapshotWriting: null,
    snapshotPending: null,
    votes: [],
    leader: null,
    localQueries: [],
    receiving: null,
    nowMs: 0,
    quiesced: false,
  };
  const ctx: Ctx = { s: state, role: 'follower', fx: [], notify: null, lastNotify: null };
  noteConfigs(ctx, log.entries.slice(0, log.length));
  return state;
}

/** The first step after `initServer`: the server starts as a follower with its election timer armed. */
export function startServer(state: ServerState): HandleResult {
  const ctx: Ctx = { s: { ...state }, role: 'follower', fx: [], notify: null, lastNotify: null };
  armElectionTimer(ctx);
  const machine = state.cfg.machine;
  if (machine.stateEnter !== undefined) {
    for (const effect of machine.stateEnter('follower', state.machineState))
      ctx.fx.push({ type: 'machine', effect });
  }
  return { role: ctx.role, state: ctx.s, effects: ctx.fx };
}

/**
 * Lets the host keep applied entries in a cheaper form: each entry from index `from` up to the
 * last applied one becomes `swap(entry)`, which must be the same entry (same type, index and term,
 * every field reading the same; otherwise this throws). The core reads an applied entry's fields
 * again only to send it to a follower that lags and for a machine's `log` effect (its index and
 * term whenever it matches logs); a server keeps its log in memory from its last snapshot on, so
 * the objects of a command it applied long ago cost the host memory for nothing. The RaftServer
 * shell keeps each applied command as the bytes it stored.
 */
export function swapAppliedEntries(
  state: ServerState,
  from: number,
  swap: (entry: LogEntry) => LogEntry,
): void {
  if (from <= state.lastApplied) swapEntries(state.log, from, state.lastApplied, swap);
}

/**
 * The core: one message in, the next role, state and effects out. Never mutates `state` (nested
 * values are replaced, the log array is shared append-only, see `LogView`).
 */
export function handle(role: Role, state: ServerState, msg: Message): HandleResult {
  if (role === 'stop') return { role, state, effects: [] };
  const ctx: Ctx = { s: { ...state }, role, fx: [], notify: null, lastNotify: null };
  dispatch(ctx, msg);
  if (ctx.notify !== null) {
    for (const b of ctx.notify.values()) ctx.fx.push({ type: 'notify', to: b.to, applied: b.applied });
  }
  return { role: ctx.role, state: ctx.s, effects: ctx.fx };
}

function dispatch(ctx: Ctx, msg: Message): void {
  switch (msg.type) {
    case 'append_entries.request':
      onAppendEntries(ctx, msg);
      return;
    case 'append_entries.reply':
      onAppendEntriesReply(ctx, msg);
      return;
    case 'vote.request':
      wakeToAnswer(ctx);
      onVoteRequest(ctx, msg);
      retryTransferTo(ctx, serverIdKey(msg.from));
      return;
    case 'vote.reply':
      onVoteReply(ctx, msg);
      return;
    case 'pre_vote.request':
      wakeToAnswer(ctx);
      onPreVoteRequest(ctx, msg);
      retryTransferTo(ctx, serverIdKey(msg.from));
      return;
    case 'pre_vote.reply':
      onPreVoteReply(ctx, msg);
      return;
    case 'install_snapshot.request':
      onInstallSnapshot(ctx, msg);
      return;
    case 'install_snapshot.reply':
      onInstallSnapshotReply(ctx, msg);
      return;
    case 'timeout_now':
      onTimeoutNow(ctx, msg);
      return;
    case 'leader_probe':
      // no wakeToAnswer: only a leader answers, and it wakes when it does
      onLeaderProbe(ctx, msg);
      return;
    case 'election.timeout':
    case 'trigger_election':
      onElectionTimeout(ctx);
      return;
    case 'tick':
      onTick(ctx, msg.nowMs);
      return;
    case 'log.written':
      onLogWritten(ctx, msg.upTo, msg.term);
      return;
    case 'snapshot.written':
      onSnapshotWritten(ctx, msg.meta);
      return;
    case 'snapshot.installed':
      onSnapshotInstalled(ctx, msg.meta, msg.machineState);
      return;
    case 'command':
      if (ctx.role === 'leader') wake(ctx);
      onCommands(ctx, [msg]);
      return;
    case 'commands':
      if (ctx.role === 'leader') wake(ctx);
      onCommands(ctx, msg.commands);
      return;
    case 'query':
      onQuery(ctx, msg);
      return;
    case 'membership.join':
      onJoin(ctx, msg.member, msg.from);
      return;
    case 'membership.leave':
      onLeave(ctx, msg.id, msg.from);
      return;
    case 'transfer_leadership':
      onTransfer(ctx, msg.to, msg.from);
      return;
    case 'down':
      onSystemEvent(ctx, { type: 'down', pid: msg.pid, reason: msg.reason });
      return;
    case 'nodedown':
      onSystemEvent(ctx, { type: 'nodedown', node: msg.node });
      return;
    case 'nodeup':
      onSystemEvent(ctx, { type: 'nodeup', node: msg.node });
      return;
    case 'machine.timeout':
      onSystemEvent(ctx, { type: 'timeout', name: msg.name });
      return;
    case 'leader.down':
      if (ctx.role === 'follower') wake(ctx);
      return;
    case 'peer.down':
      wakeToAnswer(ctx);
      return;
    default:
      assertNever(msg, 'unknown message');
  }
}

/**
 * A quiesced leader heard from outside (a vote request: someone lost track of it; a watched member
 * went down): it wakes and heartbeats everyone at once, so a restarted member learns of it.
 */
function wakeToAnswer(ctx: Ctx): void {
  if (ctx.role !== 'leader' || !ctx.s.quiesced) return;
  wake(ctx);
  for (let i = 0; i < ctx.s.leader!.peers.length; i++) heartbeat(ctx, i);
}

function onTick(ctx: Ctx, nowMs: number): void {
  const s = ctx.s;
  s.nowMs = nowMs;
  if (ctx.role !== 'leader' || s.quiesced) return;
  if (maybeQuiesce(ctx)) return;
  leaderTick(ctx);
  if (ctx.role !== 'leader') return;
  flushLowPriority(ctx);
  const machine = s.cfg.machine;
  if (machine.tick !== undefined) {
    // Routed like apply's effects: `release_cursor`, `append` and `log` are handled by the core.
    const appended = machineEffects(ctx, machine.tick(nowMs, s.machineState), true, null);
    if (appended !== null)
      appendCommands(
        ctx,
        appended.map((command) => ({ command, reply: { mode: 'noreply' } })),
      );
  }
  applyCommitted(ctx);
}
