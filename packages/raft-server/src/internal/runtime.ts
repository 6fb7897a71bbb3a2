import type { Node } from '@otra/actors';
import { type Pid, pidKey, type ServerId, serverIdEquals } from '@otra/protocol';
import type { RaftStorage, SnapshotReader, SnapshotReceiver } from '@otra/raft-log';
import type { MachineModuleSpec } from '../types.ts';

/** What a server's record in the system directory holds: enough to restart it from disk. */
export interface ServerRecord {
  readonly uid: string;
  readonly cluster: string;
  readonly id: ServerId;
  readonly module: string;
  readonly machineConfig?: Readonly<Record<string, unknown>>;
  readonly initialMembers: readonly ServerId[];
}

/** Resolved system settings shared by every server of a system. */
export interface SystemSettings {
  readonly electionTimeoutMs: readonly [number, number];
  readonly tickMs: number;
  readonly electionTimeoutTicks: number;
  readonly quiesceAfterTicks: number;
  readonly maxAppendEntriesBatch?: number;
  readonly maxInFlight?: number;
  readonly trailingEntries?: number;
  readonly snapshotChunkBytes: number;
}

/** A raft system as its servers see it (one per `startSystem`). */
export interface SystemRuntime {
  readonly name: string;
  readonly node: Node;
  readonly storage: RaftStorage;
  readonly settings: SystemSettings;
  readonly machines: ReadonlyMap<string, MachineModuleSpec>;
  /** Cluster name -> leader, as far as this node knows (updated by local servers). */
  readonly leaders: Map<string, ServerId | null>;
  /**
   * Snapshot receives in progress, by server uid. A server's actor owns its receive, but an actor
   * its supervisor stops, or one that is killed, runs no `terminate`: whoever stops or starts the
   * server next aborts what it left open (`abortLeftReceive`), so no temporary file stays open.
   */
  readonly receives: Map<string, SnapshotReceiver>;
  /**
   * The snapshot readers of running snapshot senders, by sender pid key. A sender closes its
   * reader in `terminate`; one that is killed, or whose `init` fails, cannot: its server closes
   * what is left when the sender's DOWN arrives (`closeLeftReader`).
   */
  readonly senderReaders: Map<string, SnapshotReader>;
  /** The `simple_one_for_one` supervisor of per-server supervisors (it may have been restarted). */
  serversSup(): Pid | undefined;
  log(level: 'info' | 'warn' | 'error', message: string): void;
}

/**
 * Aborts the snapshot receive a stopped or killed instance of server `uid` left open, if any. Its
 * temporary file is removed; a failure to remove it is logged (the store removes it on its next
 * open).
 */
export function abortLeftReceive(sys: SystemRuntime, uid: string): Promise<void> {
  const receiver = sys.receives.get(uid);
  if (receiver === undefined) return Promise.resolve();
  sys.receives.delete(uid);
  return receiver
    .abort()
    .catch((err: unknown) =>
      sys.log('warn', `${uid}: could not drop an interrupted snapshot receive: ${String(err)}`),
    );
}

/** Server `id` of `cluster` stopped: this node no longer knows it as that cluster's leader. */
export function forgetLeader(sys: SystemRuntime, cluster: string, id: ServerId): void {
  const leader = sys.leaders.get(cluster);
  if (leader != null && serverIdEquals(leader, id)) sys.leaders.set(cluster, null);
}

/** Closes the snapshot reader a dead snapshot sender left open, if any. */
export function closeLeftReader(sys: SystemRuntime, sender: Pid): Promise<void> {
  const key = pidKey(sender);
  const reader = sys.senderReaders.get(key);
  if (reader === undefined) return Promise.resolve();
  sys.senderReaders.delete(key);
  return reader
    .close()
    .catch((err: unknown) => sys.log('warn', `could not close a snapshot sender's reader: ${String(err)}`));
}

/** The directory key space: one meta "server" holds the system's records by server name. */
export const DIRECTORY_UID = 'system:directory';

export function readRecord(sys: SystemRuntime, name: string): ServerRecord | undefined {
  const value = sys.storage.meta.getValue(DIRECTORY_UID, name);
  return value === undefined || value === null ? undefined : (value as ServerRecord);
}

/** The directory's index: the names of every server recorded in this system. */
const INDEX_KEY = '@servers';

export function recordedServers(sys: SystemRuntime): string[] {
  const names = sys.storage.meta.getValue(DIRECTORY_UID, INDEX_KEY);
  return Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string') : [];
}

export async function writeRecord(
  sys: SystemRuntime,
  record: ServerRecord | null,
  name: string,
): Promise<void> {
  await sys.storage.meta.setValue(DIRECTORY_UID, name, record);
  const names = new Set(recordedServers(sys));
  const had = names.has(name);
  if (record === null) names.delete(name);
  else names.add(name);
  if (had !== names.has(name)) await sys.storage.meta.setValue(DIRECTORY_UID, INDEX_KEY, [...names]);
}

/** The registered names of a system's actors on its node. */
export const names = {
  system: (system: string) => `raft.system.${system}`,
  manager: (system: string) => `raft.manager.${system}`,
  writer: (system: string) => `raft.log_writer.${system}`,
  servers: (system: string) => `raft.servers.${system}`,
  serverSup: (server: string) => `${server}.sup`,
};

/**
 * Removes a stopped server for good: its directory record, then its data. Used by
 * `forceDeleteServer` and after a cluster's end of life (through the manager, which stops it first).
 */
export async function deleteServer(sys: SystemRuntime, record: ServerRecord): Promise<void> {
  await writeRecord(sys, null, record.id.name);
  await sys.storage.deleteServer(record.uid);
}
