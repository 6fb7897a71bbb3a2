import type { MachineEffect, MachineModule } from '@otra/raft';

/** A stored value: anything JSON can say (the HTTP API takes and returns JSON). */
export type KvValue =
  | null
  | boolean
  | number
  | string
  | readonly KvValue[]
  | { readonly [k: string]: KvValue };

/**
 * Commands of the replicated KV service. `rid`, a request id unique to one client request, makes
 * a resent copy harmless: a command whose `rid` was applied among the last `RECENT_REQUESTS`
 * commands is not applied again, it answers what the first copy answered (client request
 * de-duplication, as the Raft thesis' client sessions and rafted_value do).
 */
export type KvCommand =
  /** `prev: true`: the reply also says what the key held before (etcd's `prev_kv`). */
  (
    | { readonly op: 'put'; readonly key: string; readonly value: KvValue; readonly prev?: boolean }
    | { readonly op: 'delete'; readonly key: string; readonly prev?: boolean }
    /**
     * Compare-and-set: writes `value` only if the key currently holds a value equal (as JSON) to
     * `expect`; without `expect`, only if the key is absent.
     */
    | { readonly op: 'cas'; readonly key: string; readonly expect?: KvValue; readonly value: KvValue }
    /** Deletes every key that starts with `prefix` (1-1024 characters); answers how many. */
    | { readonly op: 'delete_prefix'; readonly prefix: string }
  ) & { readonly rid?: string };

/** What a key holds: `{ value }`, or null when it is absent (a stored null is `{ value: null }`). */
export type KvEntry = { readonly value: KvValue } | null;

/**
 * `put`/`delete` answer whether the key existed before, and with `prev: true` what it held;
 * `cas` whether it wrote and what the key holds now; `delete_prefix` how many keys it deleted.
 * Replies stay small unless asked: they are
 * sent to the caller and remembered (with snapshots) for every request id.
 */
export type KvReply =
  | { readonly existed: boolean; readonly previous?: KvEntry }
  | { readonly ok: boolean; readonly current: KvEntry }
  | { readonly deleted: number };

export interface KvState {
  /**
   * A Map while running. A snapshot stores it as `[key, value]` pairs, because a CBOR map decodes
   * into a plain object, where a key such as `__proto__` would be lost.
   */
  data: Map<string, KvValue> | ReadonlyArray<readonly [string, KvValue]> | Record<string, KvValue>;
  /**
   * The replies of the last `RECENT_REQUESTS` commands that carried a `rid`, oldest first (a Map
   * while running, `[rid, reply]` pairs in a snapshot). Absent in states from before it existed.
   */
  recent?: Map<string, KvReply> | ReadonlyArray<readonly [string, KvReply]>;
  /** Entries applied since the last release_cursor. */
  readonly sinceRelease: number;
}

/** The state's Map, converting (once) a snapshot-decoded form back into one. */
export function kvData(state: KvState): Map<string, KvValue> {
  if (state.data instanceof Map) return state.data;
  const map = Array.isArray(state.data)
    ? new Map(state.data as ReadonlyArray<readonly [string, KvValue]>)
    : new Map(Object.entries(state.data));
  state.data = map;
  return map;
}

/**
 * The release_cursor policy: a snapshot once RELEASE_PER_ENTRY times as many commands were applied
 * as the state holds entries (keys plus remembered request ids), but never more often than every
 * RELEASE_MIN commands and never less often than every RELEASE_MAX. Encoding a snapshot costs time
 * in proportion to the state, so this keeps it to about a quarter of an encoded state entry per
 * applied command (at one per command it was 3% of every node's CPU under load), while the log
 * between snapshots (kept in memory by the core) stays bounded.
 */
export const RELEASE_PER_ENTRY = 4;
export const RELEASE_MIN = 4096;
export const RELEASE_MAX = 65_536;

function releaseInterval(data: Map<string, KvValue>, recent: Map<string, KvReply>): number {
  return Math.min(RELEASE_MAX, Math.max(RELEASE_MIN, RELEASE_PER_ENTRY * (data.size + recent.size)));
}

/**
 * How many request ids the machine remembers: a resend is recognised while fewer than this many
 * requests were applied after the first copy (minutes of traffic at thousands of writes a second;
 * about 100 bytes each).
 */
export const RECENT_REQUESTS = 100_000;

/** The state's request-id table, converting a snapshot-decoded form back into a Map. */
function recentOf(state: KvState): Map<string, KvReply> {
  const recent = state.recent;
  if (recent instanceof Map) return recent;
  const map = new Map<string, KvReply>(recent ?? []);
  state.recent = map;
  return map;
}

/** Longest key, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 1024;

/** Why `key` is not a valid key, or undefined when it is. */
export function keyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH)
    return `a key is a string of 1-${MAX_KEY_LENGTH} characters`;
  return undefined;
}

/** Whether two JSON values are equal: same type, same members, in any key order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ak = Object.keys(a);
  if (ak.length !== Object.keys(b).length) return false;
  for (const k of ak) {
    if (!Object.hasOwn(b, k)) return false;
    if (!jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

function entryOf(data: Map<string, KvValue>, key: string): KvEntry {
  return data.has(key) ? { value: data.get(key) as KvValue } : null;
}

/**
 * The KV machine behind `otra node`. State is a Map mutated in place: `apply` owns the state, and
 * the core only keeps the latest version (snapshots are taken by encoding a copy at release time).
 * Stored values are never mutated, so the copy can share them.
 */
export const kvMachine: MachineModule<KvCommand, KvReply, KvState> = {
  init: () => ({ data: new Map(), recent: new Map(), sinceRelease: 0 }),
  apply(meta, command, state) {
    const recent = recentOf(state);
    const rid = command.rid;
    if (rid !== undefined && (typeof rid !== 'string' || rid.length > 256))
      throw new Error('a rid is a string of at most 256 characters');
    const seen = rid === undefined ? undefined : recent.get(rid);
    if (seen !== undefined) return release(meta.index, state, seen);
    const data = kvData(state);
    let reply: KvReply;
    if (command.op === 'delete_prefix') {
      const problem = keyProblem(command.prefix);
      if (problem !== undefined) throw new Error(`a prefix: ${problem}`);
      let deleted = 0;
      // deleting the current key while iterating a Map is safe: iteration goes on with the next
      for (const k of data.keys())
        if (k.startsWith(command.prefix)) {
          data.delete(k);
          deleted++;
        }
      return remember(meta.index, state, rid, { deleted });
    }
    const problem = keyProblem(command.key);
    if (problem !== undefined) throw new Error(problem);
    const key = command.key;
    switch (command.op) {
      case 'put': {
        if (command.value === undefined) throw new Error('a put needs a value');
        if (command.prev === true) {
          const before = entryOf(data, key);
          data.set(key, command.value);
          reply = { existed: before !== null, previous: before };
          break;
        }
        // one hash lookup, not two: a set that adds no key found it there
        const size = data.size;
        data.set(key, command.value);
        reply = { existed: data.size === size };
        break;
      }
      case 'delete': {
        const before = command.prev === true ? entryOf(data, key) : undefined;
        const existed = data.delete(key);
        reply = before === undefined ? { existed } : { existed, previous: before };
        break;
      }
      case 'cas': {
        if (command.value === undefined) throw new Error('a cas needs a value');
        const before = entryOf(data, key);
        const ok =
          command.expect === undefined
            ? before === null
            : before !== null && jsonEqual(before.value, command.expect);
        if (ok) data.set(key, command.value);
        reply = { ok, current: ok ? { value: command.value } : before };
        break;
      }
      default:
        throw new Error(`unknown op ${String((command as { op?: unknown }).op)}`);
    }
    return remember(meta.index, state, rid, reply);
  },
  overview: (state) => ({ keys: kvData(state).size }),
};

/** Records the reply of a request id (if any), then `release`. */
function remember(
  index: number,
  state: KvState,
  rid: string | undefined,
  reply: KvReply,
): [KvState, KvReply, MachineEffect[]?] {
  if (rid !== undefined) {
    const recent = recentOf(state);
    recent.set(rid, reply);
    // forget the oldest: the same on every member, since every member applies the same commands
    if (recent.size > RECENT_REQUESTS) recent.delete(recent.keys().next().value as string);
  }
  return release(index, state, reply);
}

/** The next state after one applied entry, releasing the cursor as `releaseInterval` says. */
function release(index: number, state: KvState, reply: KvReply): [KvState, KvReply, MachineEffect[]?] {
  const data = kvData(state);
  const recent = recentOf(state);
  const since = state.sinceRelease + 1;
  if (since < releaseInterval(data, recent)) return [{ data, recent, sinceRelease: since }, reply];
  // the snapshot gets copies: the live Maps keep changing after the release point
  const effect: MachineEffect = {
    type: 'release_cursor',
    index,
    machineState: { data: [...data], recent: [...recent], sinceRelease: 0 },
  };
  return [{ data, recent, sinceRelease: 0 }, reply, [effect]];
}

/** Named queries: they cross links (functions cannot). */
export const kvQueries = {
  /** The value, or null when absent (use `entry` to tell a stored null from an absent key). */
  get: (state: unknown, key: unknown) => kvData(state as KvState).get(String(key)) ?? null,
  entry: (state: unknown, key: unknown): KvEntry => entryOf(kvData(state as KvState), String(key)),
  size: (state: unknown) => kvData(state as KvState).size,
  keys: (state: unknown, prefix: unknown = '', limit: unknown = 100) => {
    const out: string[] = [];
    const p = String(prefix);
    const max = Math.max(0, Math.min(10_000, Number(limit) || 0));
    for (const k of kvData(state as KvState).keys()) {
      if (out.length >= max) break;
      if (k.startsWith(p)) out.push(k);
    }
    return out;
  },
  range: (state: unknown, prefix: unknown = '', after: unknown = null, limit: unknown = 100) =>
    rangeOf(kvData(state as KvState), String(prefix), after === null ? null : String(after), Number(limit)),
};

/** Most items one `range` answers. */
export const RANGE_MAX = 1000;

/** A page of `range`: the items in key order, and whether more follow the last one. */
export interface KvRange {
  readonly items: readonly { readonly key: string; readonly value: KvValue }[];
  readonly more: boolean;
}

/**
 * The keys that start with `prefix` and sort after `after` (JavaScript string order), with their
 * values, at most `limit` of them (1..RANGE_MAX). It scans every key: O(keys) plus a sort of
 * the matches, on the member that answers.
 */
function rangeOf(data: Map<string, KvValue>, prefix: string, after: string | null, limit: number): KvRange {
  const max = Number.isInteger(limit) ? Math.max(1, Math.min(RANGE_MAX, limit)) : 100;
  const keys: string[] = [];
  for (const k of data.keys()) if (k.startsWith(prefix) && (after === null || k > after)) keys.push(k);
  keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const page = keys.length > max ? keys.slice(0, max) : keys;
  return { items: page.map((key) => ({ key, value: data.get(key) as KvValue })), more: keys.length > max };
}
