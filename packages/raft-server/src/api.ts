import {
  CallTimeoutError,
  ExitError,
  type GenServer,
  type Node,
  NoProcError,
  type RegName,
} from '@otra/actors';
import {
  type Correlation,
  commandProblem,
  isServerId,
  type Pid,
  type ServerId,
  serverIdEquals,
  serverIdKey,
} from '@otra/protocol';
import type { CommandOf, Machine, Reply, ReplyOf, StateOf } from '@otra/raft-core';
import {
  ClusterChangeNotPermittedError,
  CommandOutcomeUnknownError,
  InvalidRequestError,
  MachineError,
  NotLeaderError,
  NotUpToDateError,
  RaftError,
  RequestRefusedError,
  ServerNotFoundError,
  TimeoutError,
} from './errors.ts';
import { END_OF_LIFE } from './internal/machine-wrapper.ts';
import { pipelineCast, READ_INDEX_QUERY, type ServerCall, type ShellError } from './internal/server.ts';
import { type ManagerReply, type ManagerRequest, names } from './internal/system.ts';
import type {
  AppendResult,
  CommandOptions,
  CommandResult,
  KeyMetrics,
  MachineRef,
  MemberInfo,
  Overview,
  Query,
  QueryOptions,
  QueryResult,
  RaftNotification,
  StartClusterResult,
} from './types.ts';

/**
 * What every API call needs: the local node to call from and the raft system's name. A
 * `RaftSystem` is one; a node that only talks to clusters elsewhere uses `raftClient(node)`.
 */
export interface RaftRef {
  readonly node: Node;
  readonly name: string;
}

/** A handle for calling servers of system `name` from `node` (which may host no servers itself). */
export function raftClient(node: Node, name = 'default'): RaftRef {
  return { node, name };
}

const DEFAULT_TIMEOUT = 5000;

/** Options of the calls that only take a timeout (default 5,000 ms). */
export interface TimeoutOption {
  readonly timeoutMs?: number;
}
const DEFAULT_HOPS = 5;
/** How long a leader found unreachable is not tried again within one call. */
const UNREACHABLE_MS = 250;

function address(id: ServerId): RegName {
  return { name: id.name, node: id.node };
}

function checkId(id: unknown, what: string): asserts id is ServerId {
  if (!isServerId(id)) throw new InvalidRequestError(`${what} must be a server id { name, node }`);
}

type AnyReply = Reply | ShellError;
type ErrorReply = Extract<Reply, { type: 'error' }> | ShellError;

/** Turns an actor-level call failure into the API's typed errors. */
function mapCallError(err: unknown, server: ServerId, timeoutMs: number): Error {
  if (err instanceof CallTimeoutError) return new TimeoutError(server, timeoutMs);
  if (err instanceof NoProcError) return new ServerNotFoundError(server, 'noproc');
  if (err instanceof ExitError)
    return new ServerNotFoundError(server, typeof err.reason === 'string' ? err.reason : 'exited');
  return err instanceof Error ? err : new Error(String(err));
}

/** Turns an error reply into the API's typed error. */
function replyError(reply: ErrorReply, server: ServerId): Error {
  const leader = reply.leader;
  const message = reply.message ?? reply.error;
  switch (reply.error) {
    case 'not_leader':
    case 'leadership_lost':
      return new NotLeaderError(server, leader);
    case 'cluster_change_not_permitted':
      return new ClusterChangeNotPermittedError(leader);
    case 'machine_error':
    case 'query_error':
      return new MachineError(message);
    case 'not_up_to_date':
    case 'not_voter':
      return new NotUpToDateError(server, reply.error);
    case 'invalid_request':
    case 'unknown_query':
      return new InvalidRequestError(message);
    default:
      return new RequestRefusedError(reply.error, message);
  }
}

function sleep(system: RaftRef, ms: number): Promise<void> {
  return new Promise((resolve) => system.node.clock.setTimeout(resolve, ms));
}

/**
 * Calls `id`, following `not_leader` answers to the leader (at most `maxHops` times) and waiting
 * out elections until the deadline. Resolves with the leader's reply; error replies are thrown
 * as typed errors.
 */
async function leaderCall(
  system: RaftRef,
  id: ServerId,
  request: ServerCall,
  timeoutMs: number,
  maxHops: number,
): Promise<{ reply: Reply; server: ServerId }> {
  const clock = system.node.clock;
  const deadline = clock.now() + timeoutMs;
  let target = id;
  let hops = 0;
  // A command, join or leave that may have reached a leader is never sent again: a second copy
  // could be applied too (the first one may be committed already). Queries and transfers may be.
  const resendable = request.type === 'raft.query' || request.type === 'raft.transfer';
  // leaders we could not reach lately during this call: a stale hint naming one is not followed
  // (for a moment: a healed link makes it worth trying again)
  const unreachable = new Map<string, number>();
  const recentlyUnreachable = (leader: ServerId): boolean =>
    clock.now() - (unreachable.get(serverIdKey(leader)) ?? Number.NEGATIVE_INFINITY) < UNREACHABLE_MS;
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const remaining = deadline - clock.now();
    if (remaining <= 0) throw new TimeoutError(target, timeoutMs);
    let reply: AnyReply;
    // with no link up the request is dropped before it leaves, so it cannot have been applied
    const linked = system.node.isConnected(target.node);
    try {
      reply = await system.node.call<AnyReply>(address(target), request, { timeoutMs: remaining });
    } catch (err) {
      const mapped = mapCallError(err, target, timeoutMs);
      if (mapped instanceof ServerNotFoundError && !resendable && linked && mapped.reason !== 'noproc')
        throw new CommandOutcomeUnknownError(target, mapped.reason);
      // A leader we were redirected to may have just died: go back to the server we were given
      // and wait for it to learn of a new leader (not a hop: the deadline bounds it).
      if (mapped instanceof ServerNotFoundError && !serverIdEquals(target, id)) {
        unreachable.set(serverIdKey(target), clock.now());
        target = id;
        await sleep(system, Math.min(25, Math.max(0, deadline - clock.now())));
        continue;
      }
      throw mapped;
    }
    if (reply.type === 'error' && reply.error === 'not_leader') {
      const leader = reply.leader;
      if (leader !== null && !serverIdEquals(leader, target) && !recentlyUnreachable(leader)) {
        if (hops >= maxHops) throw new NotLeaderError(target, leader);
        hops++;
        target = leader;
        continue;
      }
      // no leader known yet (an election is under way): wait a little and ask again
      await sleep(system, Math.min(25, Math.max(0, deadline - clock.now())));
      continue;
    }
    if (reply.type === 'error') throw replyError(reply, target);
    return { reply: reply as Reply, server: target };
  }
  throw new TimeoutError(target, timeoutMs);
}

// ---- commands ---------------------------------------------------------------------------------

/**
 * Submits a command and waits for the leader's answer: by default once it is committed and
 * applied (`await_consensus`, the machine's reply), or once appended (`after_log_append`).
 * Follows `not_leader` redirects transparently. Rejects with `TimeoutError` (the command may
 * still be applied), `NotLeaderError`, `ServerNotFoundError` or `MachineError` (apply threw).
 */
export async function processCommand<M extends Machine = Machine>(
  system: RaftRef,
  serverId: ServerId,
  command: CommandOf<M>,
  options?: CommandOptions & { readonly replyFrom?: 'await_consensus' },
): Promise<CommandResult<ReplyOf<M>>>;
export async function processCommand<M extends Machine = Machine>(
  system: RaftRef,
  serverId: ServerId,
  command: CommandOf<M>,
  options: CommandOptions & { readonly replyFrom: 'after_log_append' },
): Promise<AppendResult>;
export async function processCommand(
  system: RaftRef,
  serverId: ServerId,
  command: unknown,
  options: CommandOptions = {},
): Promise<CommandResult<unknown> | AppendResult> {
  checkId(serverId, 'serverId');
  checkCommand(command, options.requestId);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT;
  const replyFrom = options.replyFrom ?? 'await_consensus';
  const requestId = options.requestId;
  const { reply } = await leaderCall(
    system,
    serverId,
    requestId === undefined
      ? { type: 'raft.command', command, replyFrom }
      : { type: 'raft.command', command, replyFrom, requestId },
    timeoutMs,
    options.maxHops ?? DEFAULT_HOPS,
  );
  if (reply.type === 'applied')
    return { reply: reply.reply, index: reply.index, term: reply.term, leader: reply.leader };
  if (reply.type === 'appended') return { index: reply.index, term: reply.term, leader: reply.leader };
  throw new RaftError('unexpected_reply', `unexpected reply ${reply.type} to a command`);
}

/**
 * Pipelines a command: returns at once; `notify` (an actor pid, see `startPipelineClient`) later
 * receives `{ type: 'raft.applied', applied: [[correlation, reply], ...] }`, batched, or
 * `{ type: 'raft.rejected', leader }` when `serverId` is not the leader (resend there).
 * With a `requestId` (see `CommandOptions.requestId`) a resent command is applied once; each copy
 * is notified, under its own correlation, with the first copy's reply.
 */
export function pipelineCommand<M extends Machine = Machine>(
  system: RaftRef,
  serverId: ServerId,
  command: CommandOf<M>,
  correlation: Correlation,
  notify: Pid,
  priority: 'normal' | 'low' = 'normal',
  requestId?: string,
): 'ok' | 'busy' | 'dropped' {
  checkId(serverId, 'serverId');
  checkCommand(command, requestId);
  return system.node.cast(address(serverId), pipelineCast(command, correlation, notify, priority, requestId));
}

function checkCommand(command: unknown, requestId: unknown): void {
  const problem = commandProblem(command, requestId);
  if (problem !== undefined) throw new InvalidRequestError(problem);
}

/**
 * Spawns an actor that receives pipeline notifications and hands each to `onNotification`; use its
 * pid as `notify` in `pipelineCommand`. Stop it with `system.node.stop(pid)`.
 */
export function startPipelineClient<R = unknown>(
  system: RaftRef,
  onNotification: (notification: RaftNotification<R>) => void,
): Pid {
  const behaviour: GenServer<null, void> = {
    init: () => null,
    handleInfo: (msg, state) => {
      const type = (msg as { type?: unknown })?.type;
      if (type === 'raft.applied' || type === 'raft.rejected') onNotification(msg as RaftNotification<R>);
      return state;
    },
  };
  return system.node.spawn(behaviour, undefined);
}

// ---- queries ----------------------------------------------------------------------------------

function queryResult<T>(reply: Reply): QueryResult<T> {
  if (reply.type !== 'query')
    throw new RaftError('unexpected_reply', `unexpected reply ${reply.type} to a query`);
  return { result: reply.result as T, index: reply.index, term: reply.term, leader: reply.leader };
}

async function directQuery<T>(
  system: RaftRef,
  serverId: ServerId,
  request: ServerCall & { type: 'raft.query' },
  timeoutMs: number,
): Promise<Reply | ShellError> {
  try {
    return await system.node.call<Reply | ShellError>(address(serverId), request, { timeoutMs });
  } catch (err) {
    throw mapCallError(err, serverId, timeoutMs) as T;
  }
}

function checkFunctionQuery(system: RaftRef, serverId: ServerId, query: unknown): void {
  if (typeof query === 'function' && serverId.node !== system.node.name) {
    throw new InvalidRequestError(
      `a function query runs on a member on this node (${system.node.name}); use a named query ({ name, args }) for ${serverId.name}@${serverId.node}`,
    );
  }
}

/**
 * Reads the machine state of `serverId` as it is now (may be stale). With `condition`, waits until
 * that entry is applied there.
 */
export async function localQuery<M extends Machine, T>(
  system: RaftRef,
  serverId: ServerId,
  query: Query<StateOf<M>, T>,
  options: QueryOptions = {},
): Promise<QueryResult<T>> {
  checkId(serverId, 'serverId');
  checkFunctionQuery(system, serverId, query);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT;
  const reply = await directQuery(
    system,
    serverId,
    {
      type: 'raft.query',
      kind: 'local',
      query: query as ServerCall & { type: 'raft.query' } extends { query: infer Q } ? Q : never,
      ...(options.condition === undefined ? {} : { condition: options.condition }),
    },
    timeoutMs,
  );
  if (reply.type === 'error') throw replyError(reply, serverId);
  return queryResult<T>(reply);
}

async function leaderSideQuery<T>(
  system: RaftRef,
  serverId: ServerId,
  kind: 'leader' | 'consistent',
  query: Query<unknown, T>,
  options: QueryOptions,
): Promise<QueryResult<T>> {
  checkId(serverId, 'serverId');
  checkFunctionQuery(system, serverId, query);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT;
  const q = query as ServerCall & { type: 'raft.query' } extends { query: infer Q } ? Q : never;
  if (typeof query !== 'function') {
    const { reply } = await leaderCall(
      system,
      serverId,
      { type: 'raft.query', kind, query: q },
      timeoutMs,
      DEFAULT_HOPS,
    );
    return queryResult<T>(reply);
  }
  const start = system.node.clock.now();
  const local = await directQuery(system, serverId, { type: 'raft.query', kind, query: q }, timeoutMs);
  if (local.type !== 'error') return queryResult<T>(local);
  if (local.error !== 'not_leader') throw replyError(local, serverId);
  // A function cannot cross a link: get a read index from the leader (a consistent no-op query,
  // answered after a heartbeat round), then run the function here once that index is applied.
  const remaining = Math.max(1, timeoutMs - (system.node.clock.now() - start));
  const { reply } = await leaderCall(
    system,
    local.leader ?? serverId,
    { type: 'raft.query', kind: 'consistent', query: { name: READ_INDEX_QUERY } },
    remaining,
    DEFAULT_HOPS,
  );
  const readIndex = queryResult<null>(reply);
  const left = Math.max(1, timeoutMs - (system.node.clock.now() - start));
  const answer = await directQuery(
    system,
    serverId,
    {
      type: 'raft.query',
      kind: 'local',
      query: q,
      condition: { index: readIndex.index, term: readIndex.term },
    },
    left,
  );
  if (answer.type === 'error') throw replyError(answer, serverId);
  return { ...queryResult<T>(answer), leader: readIndex.leader };
}

/** Runs the query on the leader (following redirects); may be stale if the leader was just deposed. */
export function leaderQuery<M extends Machine, T>(
  system: RaftRef,
  serverId: ServerId,
  query: Query<StateOf<M>, T>,
  options: QueryOptions = {},
): Promise<QueryResult<T>> {
  return leaderSideQuery(system, serverId, 'leader', query as Query<unknown, T>, options);
}

/**
 * A linearizable read (Raft §8, read-index): answered by the leader after a heartbeat round that
 * began after the query arrived was acknowledged by a majority, once the commit index seen on
 * arrival is applied. A function query addressed to a follower on this node runs there after
 * getting that read index from the leader.
 */
export function consistentQuery<M extends Machine, T>(
  system: RaftRef,
  serverId: ServerId,
  query: Query<StateOf<M>, T>,
  options: QueryOptions = {},
): Promise<QueryResult<T>> {
  return leaderSideQuery(system, serverId, 'consistent', query as Query<unknown, T>, options);
}

// ---- membership -------------------------------------------------------------------------------

async function okCall(
  system: RaftRef,
  serverId: ServerId,
  request: ServerCall,
  timeoutMs: number,
): Promise<ServerId | null> {
  const { reply } = await leaderCall(system, serverId, request, timeoutMs, DEFAULT_HOPS);
  if (reply.type !== 'ok') throw new RaftError('unexpected_reply', `unexpected reply ${reply.type}`);
  return reply.leader;
}

/**
 * Adds `newId` to the cluster (one change at a time: `ClusterChangeNotPermittedError` while another
 * is uncommitted). `promotable` members replicate as non-voters and become voters once caught up.
 * Start the new server (`startServer`) before or after; it catches up from the leader.
 */
export async function addMember(
  system: RaftRef,
  serverId: ServerId,
  newId: ServerId,
  options: { readonly membership?: 'voter' | 'promotable' | 'non_voter'; readonly timeoutMs?: number } = {},
): Promise<{ leader: ServerId | null }> {
  checkId(serverId, 'serverId');
  checkId(newId, 'newId');
  const leader = await okCall(
    system,
    serverId,
    { type: 'raft.join', id: newId, membership: options.membership ?? 'voter' },
    options.timeoutMs ?? DEFAULT_TIMEOUT,
  );
  return { leader };
}

/** Removes `id` from the cluster (the leader itself steps down after committing its removal). */
export async function removeMember(
  system: RaftRef,
  serverId: ServerId,
  id: ServerId,
  options: TimeoutOption = {},
): Promise<{ leader: ServerId | null }> {
  checkId(serverId, 'serverId');
  checkId(id, 'id');
  const leader = await okCall(
    system,
    serverId,
    { type: 'raft.leave', id },
    options.timeoutMs ?? DEFAULT_TIMEOUT,
  );
  return { leader };
}

/**
 * Asks the leader to hand leadership to `to` (an up-to-date voter), as Raft's TimeoutNow. A target
 * that lags is asked again until `timeoutMs`; a non-voter is refused at once (`NotUpToDateError`).
 */
export async function transferLeadership(
  system: RaftRef,
  serverId: ServerId,
  to: ServerId,
  options: TimeoutOption = {},
): Promise<void> {
  checkId(serverId, 'serverId');
  checkId(to, 'to');
  const clock = system.node.clock;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT;
  const deadline = clock.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      await okCall(system, serverId, { type: 'raft.transfer', to }, Math.max(1, deadline - clock.now()));
      return;
    } catch (err) {
      if (!(err instanceof NotUpToDateError)) throw err;
      // a target a few entries behind catches up within a heartbeat or two: ask again until the deadline
      if (err.reason !== 'not_up_to_date' || deadline - clock.now() < 50 || attempt >= 1000) {
        throw new NotUpToDateError(to, err.reason);
      }
      await sleep(system, 25);
    }
  }
}

/** The members as the leader sees them (with match indexes), and the leader. */
export async function members(
  system: RaftRef,
  serverId: ServerId,
  options: TimeoutOption = {},
): Promise<{ members: readonly MemberInfo[]; leader: ServerId | null }> {
  let view = await overview(system, serverId, options);
  if (view.leader !== null && !serverIdEquals(view.leader, serverId)) {
    try {
      view = await overview(system, view.leader, options);
    } catch {
      // the leader is unreachable from here: answer with the member's own view
    }
  }
  return { members: view.members, leader: view.leader };
}

// ---- aux ----------------------------------------------------------------------------------------

/**
 * Sends `command` to the aux actor of `serverId` (the machine's `handleAux`, off the Raft path) and
 * resolves with the reply `handleAux` returns as its second element. Runs on that member, whatever
 * its role; nothing is written to the log.
 */
export async function auxCommand<R = unknown>(
  system: RaftRef,
  serverId: ServerId,
  command: unknown,
  options: TimeoutOption = {},
): Promise<R> {
  const reply = await plainCall<{ type: 'aux'; reply: R } | ShellError>(
    system,
    serverId,
    { type: 'raft.aux', command },
    options.timeoutMs ?? DEFAULT_TIMEOUT,
  );
  if (reply.type === 'error') throw replyError(reply, serverId);
  return reply.reply;
}

// ---- introspection ----------------------------------------------------------------------------

async function plainCall<T>(
  system: RaftRef,
  serverId: ServerId,
  request: ServerCall,
  timeoutMs: number,
): Promise<T> {
  checkId(serverId, 'serverId');
  try {
    return await system.node.call<T>(address(serverId), request, { timeoutMs });
  } catch (err) {
    throw mapCallError(err, serverId, timeoutMs);
  }
}

/**
 * Resolves with whichever of `ids` reports itself leader, asking each in turn (an unreachable
 * member is skipped) until one does or `timeoutMs` (default 5,000) passes (`TimeoutError`). A
 * member cut off from the others may still call itself leader until check-quorum deposes it.
 */
export async function awaitLeader(
  system: RaftRef,
  ids: readonly ServerId[],
  options: TimeoutOption = {},
): Promise<ServerId> {
  for (const id of ids) checkId(id, 'a member');
  const clock = system.node.clock;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT;
  const deadline = clock.now() + timeoutMs;
  for (let round = 0; round < 100_000; round++) {
    for (const id of ids) {
      const left = deadline - clock.now();
      if (left <= 0) break;
      const view = await overview(system, id, { timeoutMs: Math.min(left, 1000) }).catch(() => undefined);
      if (view?.role === 'leader') return id;
    }
    if (clock.now() >= deadline) break;
    await sleep(system, 10);
  }
  throw new TimeoutError(ids[0] ?? { name: '?', node: '?' }, timeoutMs);
}

/** Role, term, leader, indexes, snapshot, members with match indexes, machine overview, counters. */
export function overview(
  system: RaftRef,
  serverId: ServerId,
  options: TimeoutOption = {},
): Promise<Overview> {
  return plainCall<Overview>(
    system,
    serverId,
    { type: 'raft.overview' },
    options.timeoutMs ?? DEFAULT_TIMEOUT,
  );
}

/** A cheap subset of `overview`. */
export function keyMetrics(
  system: RaftRef,
  serverId: ServerId,
  options: TimeoutOption = {},
): Promise<KeyMetrics> {
  return plainCall<KeyMetrics>(
    system,
    serverId,
    { type: 'raft.key_metrics' },
    options.timeoutMs ?? DEFAULT_TIMEOUT,
  );
}

/** Makes `serverId` start an election now (pre-vote is skipped, as ra's trigger_election). */
export async function triggerElection(
  system: RaftRef,
  serverId: ServerId,
  options: TimeoutOption = {},
): Promise<void> {
  await plainCall(system, serverId, { type: 'raft.trigger_election' }, options.timeoutMs ?? DEFAULT_TIMEOUT);
}

// ---- lifecycle --------------------------------------------------------------------------------

async function managerCall(
  system: RaftRef,
  node: string,
  request: ManagerRequest,
  timeoutMs: number,
): Promise<void> {
  const at: RegName = { name: names.manager(system.name), node };
  let reply: ManagerReply;
  try {
    reply = await system.node.call<ManagerReply>(at, request, { timeoutMs });
  } catch (err) {
    if (err instanceof NoProcError)
      throw new ServerNotFoundError(
        { name: names.manager(system.name), node },
        `no raft system ${system.name} on ${node}`,
      );
    throw mapCallError(err, { name: names.manager(system.name), node }, timeoutMs);
  }
  if (!reply.ok) throw new RequestRefusedError(reply.error, reply.message);
}

/** Starts one server (on its node, through that node's system). `members` is the initial cluster. */
export async function startServer(
  system: RaftRef,
  config: {
    readonly cluster: string;
    readonly id: ServerId;
    readonly machine: MachineRef;
    readonly members: readonly ServerId[];
  },
  options: TimeoutOption = {},
): Promise<void> {
  checkId(config.id, 'id');
  if (typeof config.cluster !== 'string' || config.cluster.length === 0)
    throw new InvalidRequestError('cluster must be a name');
  if (typeof config.machine?.module !== 'string')
    throw new InvalidRequestError('machine must be { module, config? }');
  for (const m of config.members) checkId(m, 'a member');
  await managerCall(
    system,
    config.id.node,
    {
      type: 'manager.start_server',
      cluster: config.cluster,
      id: config.id,
      machine: config.machine,
      members: config.members,
    },
    options.timeoutMs ?? DEFAULT_TIMEOUT,
  );
}

/**
 * Starts every member of a new cluster and triggers an election on one (chosen by a hash of the
 * cluster name, so many clusters on the same nodes spread their leaders). Succeeds when a majority
 * started (`notStarted` lists the others); otherwise deletes the ones that started and throws.
 */
export async function startCluster(
  system: RaftRef,
  cluster: string,
  machine: MachineRef,
  serverIds: readonly ServerId[],
  options: TimeoutOption = {},
): Promise<StartClusterResult> {
  if (serverIds.length === 0) throw new InvalidRequestError('a cluster needs at least one server');
  const results = await Promise.allSettled(
    serverIds.map((id) => startServer(system, { cluster, id, machine, members: serverIds }, options)),
  );
  const started = serverIds.filter((_, i) => results[i]?.status === 'fulfilled');
  const notStarted = serverIds.filter((_, i) => results[i]?.status !== 'fulfilled');
  if (started.length < Math.floor(serverIds.length / 2) + 1) {
    await Promise.allSettled(started.map((id) => forceDeleteServer(system, id, options)));
    const first = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    throw new RaftError(
      'cluster_not_formed',
      `only ${started.length} of ${serverIds.length} servers started${first ? `: ${(first.reason as Error)?.message}` : ''}`,
    );
  }
  // spread leadership: many clusters on the same nodes should not all be led from one of them
  const first = started[hashName(cluster) % started.length] as ServerId;
  await triggerElection(system, first, options).catch(() => undefined);
  return { started, notStarted };
}

/** Asks `id`'s node to restart, stop or delete it. */
function lifecycleCall(
  system: RaftRef,
  id: ServerId,
  type: 'manager.restart_server' | 'manager.stop_server' | 'manager.delete_server',
  options: TimeoutOption,
): Promise<void> {
  checkId(id, 'id');
  return managerCall(system, id.node, { type, name: id.name }, options.timeoutMs ?? DEFAULT_TIMEOUT);
}

/** A small stable hash (FNV-1a) of a cluster name. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Restarts a server from its durable state (term, vote, log, last snapshot). */
export function restartServer(system: RaftRef, id: ServerId, options: TimeoutOption = {}): Promise<void> {
  return lifecycleCall(system, id, 'manager.restart_server', options);
}

/** Stops a server, keeping its data (restart it with `restartServer`). */
export function stopServer(system: RaftRef, id: ServerId, options: TimeoutOption = {}): Promise<void> {
  return lifecycleCall(system, id, 'manager.stop_server', options);
}

/** Stops a server and deletes its data without telling the cluster (use `removeMember` first). */
export function forceDeleteServer(system: RaftRef, id: ServerId, options: TimeoutOption = {}): Promise<void> {
  return lifecycleCall(system, id, 'manager.delete_server', options);
}

/** Removes `id` from the cluster, then deletes it. */
export async function leaveAndDeleteServer(
  system: RaftRef,
  serverId: ServerId,
  id: ServerId,
  options: TimeoutOption = {},
): Promise<void> {
  await removeMember(system, serverId, id, options);
  await forceDeleteServer(system, id, options);
}

/**
 * Deletes a whole cluster: commits an end-of-life command; every member deletes its data and stops
 * once it applies it. A member that is down then keeps its data until `forceDeleteServer`.
 */
export async function deleteCluster(
  system: RaftRef,
  serverIds: readonly ServerId[],
  options: TimeoutOption = {},
): Promise<{ leader: ServerId }> {
  const first = serverIds[0];
  if (first === undefined) throw new InvalidRequestError('deleteCluster needs the cluster members');
  const result = await processCommand(system, first, { type: END_OF_LIFE } as never, options);
  return { leader: result.leader };
}
