/**
 * Identities shared by every otra package. All of them are plain data so that they
 * cross a WebSocket link (CBOR) unchanged.
 */

/** The name of one runtime instance, e.g. `"n1"` or `"n1@host"`. Unique in a cluster of nodes. */
export type NodeName = string;

/**
 * A process identifier. `creation` tells incarnations of a node apart: a node restarted under the
 * same name gets a new creation, so pids of the old incarnation stay dead instead of being
 * silently rebound to new actors (as Erlang's pid creation does).
 */
export interface Pid {
  readonly node: NodeName;
  readonly id: number;
  readonly creation: number;
}

/** A Raft server's identity: the server's name (unique per node) and the node it runs on. */
export interface ServerId {
  readonly name: string;
  readonly node: NodeName;
}

/** True when both pids name the same process. */
export function pidEquals(a: Pid, b: Pid): boolean {
  return a.id === b.id && a.node === b.node && a.creation === b.creation;
}

/** A stable string form, usable as a map key: `<node.id.creation>` as Erlang prints pids. */
export function pidKey(pid: Pid): string {
  return `<${pid.node}.${pid.id}.${pid.creation}>`;
}

/** True when both server ids name the same server. */
export function serverIdEquals(a: ServerId, b: ServerId): boolean {
  return a.name === b.name && a.node === b.node;
}

/** A stable string form of a server id, usable as a map key: `name@node`. */
export function serverIdKey(id: ServerId): string {
  return `${id.name}@${id.node}`;
}

/** Runtime check that a value received from the network is a well-formed pid. */
export function isPid(value: unknown): value is Pid {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.node === 'string' && Number.isInteger(v.id) && Number.isInteger(v.creation);
}

/** Runtime check that a value received from the network is a well-formed server id. */
export function isServerId(value: unknown): value is ServerId {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.name === 'string' && typeof v.node === 'string';
}

/** Exhaustiveness helper for discriminated unions: `default: return assertNever(x)`. */
export function assertNever(value: never, message = 'unexpected value'): never {
  throw new Error(`${message}: ${JSON.stringify(value)}`);
}
