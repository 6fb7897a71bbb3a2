import { LoopbackNetwork, Node } from '@otra/actors';
import type { ServerId } from '@otra/protocol';
import type { MachineModule } from '@otra/raft-core';
import type { SnapshotStore } from '@otra/raft-log';
import { awaitLeader, type RaftSystem, type SystemOptions, startCluster, startSystem } from '../src/index.ts';

export type KvCommand =
  | { op: 'put'; key: string; value: string }
  | { op: 'delete'; key: string }
  | { op: 'boom' };
export type KvState = Record<string, string>;

/** A small KV machine used across the tests. */
export const kvMachine: MachineModule<KvCommand, string | null, KvState> = {
  init: () => ({}),
  apply(meta, command, state) {
    switch (command.op) {
      case 'put': {
        const next = { ...state, [command.key]: command.value };
        // every 64 entries the machine no longer needs the log before this point: snapshot it
        const effects =
          meta.index % 64 === 0
            ? [{ type: 'release_cursor' as const, index: meta.index, machineState: next }]
            : [];
        return [next, state[command.key] ?? null, effects];
      }
      case 'delete': {
        const { [command.key]: old, ...rest } = state;
        return [rest, old ?? null];
      }
      case 'boom':
        throw new Error('apply failed on purpose');
    }
  },
  overview: (state) => ({ keys: Object.keys(state).length }),
};

/** A command of `countingMachine`: adds one to the count of `add`. */
export type CountCmd = { readonly add: string };
export type CountState = Record<string, number>;

/**
 * Counts how many times each key was applied (so a command applied twice shows), and releases its
 * cursor every 64 entries; `count(key)` is its query.
 */
export const countingMachine: MachineModule<CountCmd, number, CountState> = {
  init: () => ({}),
  apply: (meta, cmd, state) => {
    const n = (state[cmd.add] ?? 0) + 1;
    const next = { ...state, [cmd.add]: n };
    return [
      next,
      n,
      meta.index % 64 === 0 ? [{ type: 'release_cursor', index: meta.index, machineState: next }] : [],
    ];
  },
};

export const countingQueries = {
  count: (s: unknown, key: unknown) => (s as CountState)[key as string] ?? 0,
};

export const kvQueries = {
  get: (state: unknown, key: unknown) => (state as KvState)[key as string] ?? null,
};

export interface LocalCluster {
  net: LoopbackNetwork;
  nodes: Node[];
  systems: RaftSystem[];
  ids: ServerId[];
  stop(): Promise<void>;
}

/**
 * N nodes in this process, joined by the loopback network, each with a raft system in memory.
 * `options` are every system's, or a function of the node's name giving each its own.
 */
export async function localCluster(
  n: number,
  options: Partial<SystemOptions> | ((node: string) => Partial<SystemOptions>) = {},
  name = 'kv',
): Promise<LocalCluster> {
  const net = new LoopbackNetwork();
  const nodes = Array.from({ length: n }, (_, i) => new Node({ name: `n${i + 1}` }));
  for (const node of nodes) net.join(node);
  const systems = await Promise.all(
    nodes.map((node) =>
      startSystem(node, {
        machines: { kv: { machine: kvMachine, queries: kvQueries } },
        electionTimeoutMs: [150, 300],
        tickMs: 30,
        ...(typeof options === 'function' ? options(node.name) : options),
      }),
    ),
  );
  const ids = nodes.map((node) => ({ name, node: node.name }));
  return {
    net,
    nodes,
    systems,
    ids,
    stop: async () => {
      for (const s of systems) await s.stop();
    },
  };
}

/**
 * Three nodes running `countingMachine` whose leader is cut off from both followers as soon as it
 * has committed `{ add: 'once' }`, before the reply leaves: a caller of that command learns nothing
 * of its outcome (`CommandOutcomeUnknownError`). `follower` is a member on the majority side and
 * `followerSys` its system; `rest` are the members other than the leader.
 */
export async function cutOffAfterCommit(): Promise<{
  cluster: LocalCluster;
  leader: ServerId;
  follower: ServerId;
  followerSys: RaftSystem;
  rest: ServerId[];
}> {
  let isolate: (() => void) | undefined;
  const cluster = await localCluster(3, {
    machines: {
      kv: {
        machine: countingMachine,
        queries: countingQueries,
        hooks: {
          // on the leader, once the command is committed and before its reply leaves
          onCommandCommitted: (_before: unknown, command: CountCmd) => {
            if (command.add === 'once') isolate?.();
          },
        },
      },
    },
  });
  await startCluster(cluster.systems[0]!, 'kv', { module: 'kv' }, cluster.ids);
  const leader = await awaitLeader(cluster.systems[0]!, cluster.ids);
  const rest = cluster.ids.filter((id) => id.node !== leader.node);
  const follower = rest[0]!;
  isolate = () => {
    isolate = undefined;
    for (const n of cluster.nodes) if (n.name !== leader.node) cluster.net.partition(leader.node, n.name);
  };
  return { cluster, leader, follower, followerSys: systemOf(cluster, follower), rest };
}

/** What `watchReceives` calls as a receive goes along; `chunk` counts from 1 per receive. */
export interface ReceiveHooks {
  begun?(): void;
  /** Awaited before chunk `chunk` is written (a disk that stalls there). */
  beforeWrite?(chunk: number): Promise<void>;
  written?(chunk: number): void;
  /** Awaited before the receive completes (an install that takes this long). */
  beforeComplete?(): Promise<void>;
}

/**
 * Wraps `storage`'s snapshot receives: calls `hooks`, and counts the receives open (begun,
 * neither completed nor aborted) in `open()`.
 */
export function watchReceives(
  storage: { snapshots: SnapshotStore },
  hooks: ReceiveHooks = {},
): { open(): number } {
  let open = 0;
  const begin = storage.snapshots.beginReceive.bind(storage.snapshots);
  storage.snapshots.beginReceive = async (uid, meta) => {
    const receiver = await begin(uid, meta);
    open++;
    hooks.begun?.();
    let settled = false;
    const settle = () => {
      if (!settled) open--;
      settled = true;
    };
    let written = 0;
    return {
      ...receiver,
      writeChunk: async (bytes) => {
        await hooks.beforeWrite?.(written + 1);
        await receiver.writeChunk(bytes);
        written++;
        hooks.written?.(written);
      },
      complete: async (checksum) => {
        await hooks.beforeComplete?.();
        return receiver.complete(checksum).finally(settle);
      },
      abort: () => receiver.abort().finally(settle),
    };
  };
  return { open: () => open };
}

/** The raft system of the node `id` is on (nodes are n1, n2, ...). */
export function systemOf(cluster: LocalCluster, id: ServerId): RaftSystem {
  return cluster.systems[Number(id.node.slice(1)) - 1]!;
}

/** Polls `check` every 10 ms until it returns a value other than undefined, or fails after `ms`. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  ms = 5000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (let i = 0; i < 100_000; i++) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`condition not met within ${ms} ms${last ? `: ${(last as Error).message}` : ''}`);
}
