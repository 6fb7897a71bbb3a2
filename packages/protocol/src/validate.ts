import { isPid, isServerId } from './ids.ts';
import type { ClusterConfig, From, LogEntry, ReplyMode, SnapshotMeta } from './raft.ts';

/**
 * Runtime checks for Raft values received from the network or read back from storage: whatever
 * passes has the shape its type says, so the core can use it without further checks.
 */

/**
 * A non-negative safe integer: what every index, term, round and chunk number must be. (An unsafe
 * integer such as 2^60 passes `Number.isInteger` but cannot be stored or compared exactly.)
 */
export const isIndex = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

const MEMBERSHIPS = new Set(['voter', 'promotable', 'non_voter']);

/** A cluster configuration: members with a server id, a membership and an optional target index. */
export function isClusterConfig(value: unknown): value is ClusterConfig {
  return (
    Array.isArray(value) &&
    value.every((m: unknown) => {
      if (typeof m !== 'object' || m === null) return false;
      const v = m as Record<string, unknown>;
      return (
        isServerId(v.id) &&
        MEMBERSHIPS.has(v.membership as string) &&
        (v.targetIndex === undefined || isIndex(v.targetIndex))
      );
    })
  );
}

export function isSnapshotMeta(value: unknown): value is SnapshotMeta {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return isIndex(v.index) && isIndex(v.term) && isIndex(v.machineVersion) && isClusterConfig(v.cluster);
}

export function isFrom(value: unknown): value is From {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return isPid(v.pid) && Number.isInteger(v.ref);
}

export function isReplyMode(value: unknown): value is ReplyMode {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  switch (v.mode) {
    case 'noreply':
      return true;
    case 'notify':
      return isPid(v.to) && (typeof v.correlation === 'string' || typeof v.correlation === 'number');
    case 'after_log_append':
    case 'await_consensus':
      return isFrom(v.from);
    default:
      return false;
  }
}

/**
 * Deepest nesting of arrays and objects a command may have. Encoding and decoding recurse once
 * per level: a value nested 10,000 deep overflowed the stack while the leader encoded its entry,
 * and crashed the server on every restart.
 */
export const MAX_COMMAND_DEPTH = 256;

/** Whether `value` nests arrays or objects deeper than `limit` (checked without recursion). */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return false;
  // the common command (a flat object or array) is answered without allocating: it is checked on
  // the command path of every API call and every arrival
  if (limit >= 1 && isFlat(value)) return false;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (depth > limit) return true;
    const children = Array.isArray(v) ? v : Object.values(v as Record<string, unknown>);
    // bytes are a leaf: they encode flat
    for (const child of children)
      if (typeof child === 'object' && child !== null && !(child instanceof Uint8Array))
        stack.push([child, depth + 1]);
  }
  return false;
}

function isFlat(value: object): boolean {
  if (Array.isArray(value)) {
    for (const v of value)
      if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) return false;
    return true;
  }
  for (const k in value) {
    const v = (value as Record<string, unknown>)[k];
    if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) return false;
  }
  return true;
}

/** Longest request id (`CommandEntry.requestId`), in UTF-16 code units. */
export const MAX_REQUEST_ID_LENGTH = 256;

/** A command's request id: a string of 1-256 characters. */
export function isRequestId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_REQUEST_ID_LENGTH;
}

/**
 * Why a command and its request id (`undefined`: none) cannot be appended, or `undefined` when they
 * can: what the API refuses with `InvalidRequestError` and a server refuses when they arrive.
 */
export function commandProblem(command: unknown, requestId: unknown): string | undefined {
  if (requestId !== undefined && !isRequestId(requestId)) {
    const got = typeof requestId === 'string' ? `${requestId.length} characters` : typeof requestId;
    return `a request id is a string of 1-${MAX_REQUEST_ID_LENGTH} characters, got ${got}`;
  }
  if (nestsDeeperThan(command, MAX_COMMAND_DEPTH))
    return `a command nests arrays and objects at most ${MAX_COMMAND_DEPTH} deep`;
  return undefined;
}

/** A log entry of one of the four kinds, with every field its kind needs. */
export function isLogEntry(value: unknown): value is LogEntry {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  if (!isIndex(v.index) || !isIndex(v.term)) return false;
  switch (v.type) {
    case 'command':
      return (
        isReplyMode(v.reply) &&
        typeof v.systemTime === 'number' &&
        (v.requestId === undefined || isRequestId(v.requestId))
      );
    case 'noop':
      return isIndex(v.machineVersion);
    case 'config':
      return isClusterConfig(v.cluster) && (v.from === undefined || isFrom(v.from));
    case 'system': {
      const event = v.event as Record<string, unknown> | null;
      return (
        typeof v.systemTime === 'number' &&
        typeof event === 'object' &&
        event !== null &&
        typeof event.type === 'string'
      );
    }
    default:
      return false;
  }
}
