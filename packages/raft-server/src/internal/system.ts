import {
  type ChildSpec,
  type GenServer,
  type Node,
  startChild,
  startSupervisor,
  supervisorBehaviour,
  terminateChild,
} from '@otra/actors';
import { type Pid, type ServerId, serverIdKey } from '@otra/protocol';
import {
  createMemoryStorage,
  logWriterBehaviour,
  newServerUid,
  openRocksStorage,
  type RaftStorage,
  type RocksStorage,
  spawnLogWriter,
  type WriterStats,
} from '@otra/raft-log';
import type { MachineModuleSpec, MachineRef, RaftSystemHandle, SystemOptions } from '../types.ts';
import { auxSpec } from './aux.ts';
import {
  abortLeftReceive,
  deleteServer,
  forgetLeader,
  names,
  readRecord,
  recordedServers,
  type ServerRecord,
  type SystemRuntime,
  writeRecord,
} from './runtime.ts';
import { raftServerBehaviour } from './server.ts';

/** What a node is asked to do with one of its servers (from any node, via the manager). */
export type ManagerRequest =
  | {
      readonly type: 'manager.start_server';
      readonly cluster: string;
      readonly id: ServerId;
      readonly machine: MachineRef;
      readonly members: readonly ServerId[];
    }
  | { readonly type: 'manager.restart_server'; readonly name: string }
  | { readonly type: 'manager.stop_server'; readonly name: string }
  | { readonly type: 'manager.delete_server'; readonly name: string };

export type ManagerReply =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: string; readonly message: string };

function serverSupervisorSpec(sys: SystemRuntime): ChildSpec {
  return {
    id: 'server',
    type: 'supervisor',
    // a server that keeps crashing stops (its supervisor exits `shutdown`) instead of looping forever
    restart: 'transient',
    shutdown: 'infinity',
    start: (ctx, args) => {
      const record = args as ServerRecord;
      const children: ChildSpec[] = [
        {
          id: 'raft_server',
          restart: 'transient',
          shutdown: 5000,
          start: (c) => c.spawn(raftServerBehaviour, { sys, record, supervisor: c.supervisor }),
        },
        auxSpec(sys, record),
      ];
      return ctx.spawn(
        supervisorBehaviour(ctx.node),
        { flags: { strategy: 'one_for_all', intensity: 5, periodMs: 10_000 }, children },
        { name: names.serverSup(record.id.name) },
      );
    },
  };
}

function serversSpec(sys: SystemRuntime): ChildSpec {
  return {
    id: 'servers',
    type: 'supervisor',
    shutdown: 'infinity',
    start: (ctx) =>
      ctx.spawn(
        supervisorBehaviour(ctx.node),
        {
          flags: { strategy: 'simple_one_for_one', intensity: 100, periodMs: 10_000 },
          children: [serverSupervisorSpec(sys)],
        },
        { name: names.servers(sys.name) },
      ),
  };
}

function serversSup(sys: SystemRuntime): Pid {
  const pid = sys.serversSup();
  if (pid === undefined) throw new Error(`raft system ${sys.name} is not running`);
  return pid;
}

async function startLocalServer(sys: SystemRuntime, record: ServerRecord): Promise<void> {
  if (sys.node.whereis(record.id.name) !== undefined)
    throw new ManagerError('already_started', `${serverIdKey(record.id)} is running`);
  await startChild(sys.node, serversSup(sys), { args: record });
}

async function stopLocalServer(sys: SystemRuntime, name: string): Promise<boolean> {
  const sup = sys.node.whereis(names.serverSup(name));
  if (sup === undefined) return false;
  await terminateChild(sys.node, serversSup(sys), sup);
  // the server's actor was stopped without its `terminate`: drop what it held on this node
  const record = readRecord(sys, name);
  if (record !== undefined) {
    await abortLeftReceive(sys, record.uid);
    forgetLeader(sys, record.cluster, record.id);
  }
  return true;
}

class ManagerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The system manager: the actor other nodes call to start, stop, restart or delete this node's
 * servers (functions cannot cross links, so a remote start names a machine module registered here).
 */
function managerBehaviour(sys: SystemRuntime): GenServer<null, void, ManagerRequest, ManagerReply> {
  const run = async (request: ManagerRequest): Promise<void> => {
    switch (request.type) {
      case 'manager.start_server': {
        if (request.id.node !== sys.node.name)
          throw new ManagerError('wrong_node', `${serverIdKey(request.id)} is not on ${sys.node.name}`);
        if (!sys.machines.has(request.machine.module)) {
          throw new ManagerError(
            'unknown_module',
            `machine module ${request.machine.module} is not registered on ${sys.node.name}`,
          );
        }
        const existing = readRecord(sys, request.id.name);
        if (existing !== undefined && existing.cluster !== request.cluster) {
          throw new ManagerError('name_taken', `${request.id.name} belongs to cluster ${existing.cluster}`);
        }
        const record: ServerRecord = existing ?? {
          uid: newServerUid(request.id.name),
          cluster: request.cluster,
          id: request.id,
          module: request.machine.module,
          ...(request.machine.config === undefined ? {} : { machineConfig: request.machine.config }),
          initialMembers: request.members,
        };
        if (existing === undefined) await writeRecord(sys, record, record.id.name);
        await startLocalServer(sys, record);
        return;
      }
      case 'manager.restart_server': {
        const record = readRecord(sys, request.name);
        if (record === undefined)
          throw new ManagerError('not_found', `no server ${request.name} on ${sys.node.name}`);
        await stopLocalServer(sys, request.name);
        await startLocalServer(sys, record);
        return;
      }
      case 'manager.stop_server':
        if (!(await stopLocalServer(sys, request.name)))
          throw new ManagerError('not_found', `${request.name} is not running`);
        return;
      case 'manager.delete_server': {
        const record = readRecord(sys, request.name);
        await stopLocalServer(sys, request.name);
        if (record !== undefined) await deleteServer(sys, record);
        return;
      }
    }
  };
  return {
    init: () => null,
    async handleCall(request, _from, state) {
      try {
        await run(request);
        return { reply: { ok: true }, state };
      } catch (err) {
        const e = err as Partial<ManagerError>;
        return { reply: { ok: false, error: e.code ?? 'error', message: e.message ?? String(err) }, state };
      }
    },
  };
}

function isRocks(storage: RaftStorage): storage is RocksStorage {
  return typeof (storage as Partial<RocksStorage>).routeWrites === 'function';
}

/**
 * The system's shared WAL writer (first child: `rest_for_one` restarts everything after it when it
 * restarts). Every server's appends and meta writes go through its mailbox, one synced batch at a time.
 */
function logWriterSpec(storage: RocksStorage, system: string): ChildSpec {
  return {
    id: 'log_writer',
    restart: 'permanent',
    start: (ctx) =>
      spawnLogWriter(ctx.node, storage, (args) =>
        ctx.spawn(logWriterBehaviour, args, { name: names.writer(system) }),
      ),
  };
}

function resolveModules(machines: SystemOptions['machines']): Map<string, MachineModuleSpec> {
  const out = new Map<string, MachineModuleSpec>();
  for (const [name, value] of Object.entries(machines)) {
    out.set(
      name,
      'machine' in value && typeof value.machine === 'object'
        ? (value as MachineModuleSpec)
        : { machine: value as MachineModuleSpec['machine'] },
    );
  }
  return out;
}

/** A running raft system (what `startSystem` returns). */
export interface RaftSystem extends RaftSystemHandle {
  /** @internal the runtime shared with the system's servers */
  readonly runtime: SystemRuntime;
}

/**
 * Starts a raft system on `node`: its storage (RocksDB under `dataDir`, or memory), a
 * `rest_for_one` supervisor with the manager and a `simple_one_for_one` supervisor of servers.
 * Servers recorded on disk are restarted from their durable state (unless `restartServers: false`).
 */
export async function startSystem(node: Node, options: SystemOptions): Promise<RaftSystem> {
  const name = options.name ?? 'default';
  if (node.whereis(names.system(name)) !== undefined)
    throw new Error(`raft system ${name} already runs on ${node.name}`);
  const trailing = options.trailingEntries;
  if (trailing !== undefined && !(Number.isSafeInteger(trailing) && trailing >= 0))
    throw new RangeError(`trailingEntries is a whole number of entries, 0 or more, not ${trailing}`);
  const storage: RaftStorage =
    options.storage ??
    (options.dataDir !== undefined ? await openRocksStorage(options.dataDir) : createMemoryStorage());
  const electionTimeoutMs = options.electionTimeoutMs ?? [150, 300];
  const tickMs = options.tickMs ?? 50;
  const logFn = options.log ?? (() => undefined);
  const runtime: SystemRuntime = {
    name,
    node,
    storage,
    settings: {
      electionTimeoutMs,
      tickMs,
      // check-quorum runs once per maximum election timeout: a leader steps down only after a
      // majority was silent for longer than any follower waits before campaigning, so a pause of
      // its followers shorter than that (a GC, a large snapshot encode) does not depose it
      electionTimeoutTicks: Math.max(2, Math.ceil(electionTimeoutMs[1] / tickMs)),
      quiesceAfterTicks: options.quiesceAfterTicks ?? 10,
      ...(options.maxAppendEntriesBatch === undefined
        ? {}
        : { maxAppendEntriesBatch: options.maxAppendEntriesBatch }),
      ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
      ...(options.trailingEntries === undefined ? {} : { trailingEntries: options.trailingEntries }),
      snapshotChunkBytes: options.snapshotChunkBytes ?? 256 * 1024,
    },
    machines: resolveModules(options.machines),
    leaders: new Map(),
    receives: new Map(),
    senderReaders: new Map(),
    serversSup: () => node.whereis(names.servers(name)),
    log: (level, message) => logFn(level, `[${node.name}/${name}] ${message}`),
  };
  const supervisor = await startSupervisor(
    node,
    { strategy: 'rest_for_one', intensity: 5, periodMs: 10_000 },
    [
      ...(isRocks(storage) ? [logWriterSpec(storage, name)] : []),
      {
        id: 'manager',
        start: (ctx) => ctx.spawn(managerBehaviour(runtime), undefined, { name: names.manager(name) }),
      },
      serversSpec(runtime),
    ],
    { name: names.system(name) },
  );
  if (options.restartServers !== false) {
    // servers recorded on disk come back as they were (a restarted node rejoins its clusters)
    for (const serverName of recordedServers(runtime)) {
      const record = readRecord(runtime, serverName);
      if (record === undefined) continue;
      await startLocalServer(runtime, record).catch((err: unknown) =>
        runtime.log('error', `could not restart ${serverName}: ${(err as Error)?.message ?? String(err)}`),
      );
    }
  }
  return {
    name,
    node,
    supervisor,
    storage,
    runtime,
    leaderboard: () => new Map(runtime.leaders),
    leaderOf: (cluster) => runtime.leaders.get(cluster) ?? null,
    recordedServers: () => recordedServers(runtime),
    writerStats: async () => {
      const pid = node.whereis(names.writer(name));
      if (pid === undefined) return undefined;
      return node.call<WriterStats>(pid, { type: 'wal.stats' }, { timeoutMs: 1000 }).catch(() => undefined);
    },
    stop: async () => {
      await node.stop(supervisor, 'shutdown', 30_000);
      await storage.close();
    },
  };
}

export { names };
