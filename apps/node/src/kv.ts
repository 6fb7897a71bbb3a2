import type { MachineEffect, MachineModule } from '@otra/raft';

/** Commands of the replicated KV service. */
export type KvCommand =
  | { readonly op: 'put'; readonly key: string; readonly value: string }
  | { readonly op: 'delete'; readonly key: string }
  /** Compare-and-set: writes `value` only if the key currently holds `expected` (null: absent). */
  | { readonly op: 'cas'; readonly key: string; readonly expected: string | null; readonly value: string };

/** `put`/`delete` answer the previous value; `cas` answers whether it wrote. */
export type KvReply = string | null | { readonly ok: boolean; readonly current: string | null };

export interface KvState {
  /** A Map while running; a plain object after a snapshot was decoded (CBOR maps decode as objects). */
  data: Map<string, string> | Record<string, string>;
  /** Entries applied since the last release_cursor. */
  readonly sinceRelease: number;
}

/** The state's Map, converting (once) a snapshot-decoded object back into one. */
export function kvData(state: KvState): Map<string, string> {
  if (state.data instanceof Map) return state.data;
  const map = new Map(Object.entries(state.data));
  state.data = map;
  return map;
}

/** Snapshot every this many applied commands (the machine's release_cursor policy). */
const RELEASE_EVERY = 4096;

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024)
    throw new Error('a key is a string of 1-1024 characters');
}

/**
 * The KV machine behind `otra kv`. State is a Map mutated in place: `apply` owns the state, and the
 * core only keeps the latest version (snapshots are taken by encoding it at release time).
 */
export const kvMachine: MachineModule<KvCommand, KvReply, KvState> = {
  init: () => ({ data: new Map(), sinceRelease: 0 }),
  apply(meta, command, state) {
    checkKey(command.key);
    const data = kvData(state);
    const previous = data.get(command.key) ?? null;
    let reply: KvReply;
    switch (command.op) {
      case 'put':
        if (typeof command.value !== 'string') throw new Error('a value is a string');
        data.set(command.key, command.value);
        reply = previous;
        break;
      case 'delete':
        data.delete(command.key);
        reply = previous;
        break;
      case 'cas': {
        const ok = previous === command.expected;
        if (ok) data.set(command.key, command.value);
        reply = { ok, current: ok ? command.value : previous };
        break;
      }
      default:
        throw new Error(`unknown op ${(command as { op?: unknown }).op}`);
    }
    const since = state.sinceRelease + 1;
    if (since < RELEASE_EVERY) return [{ data, sinceRelease: since }, reply];
    // the snapshot gets a copy: the live Map keeps changing after the release point
    const release: MachineEffect = {
      type: 'release_cursor',
      index: meta.index,
      machineState: { data: new Map(data), sinceRelease: 0 },
    };
    return [{ data, sinceRelease: 0 }, reply, [release]];
  },
  overview: (state) => ({ keys: kvData(state).size }),
};

/** Named queries: they cross links (functions cannot). */
export const kvQueries = {
  get: (state: unknown, key: unknown) => kvData(state as KvState).get(String(key)) ?? null,
  size: (state: unknown) => kvData(state as KvState).size,
  keys: (state: unknown, prefix: unknown = '', limit: unknown = 100) =>
    [...kvData(state as KvState).keys()].filter((k) => k.startsWith(String(prefix))).slice(0, Number(limit)),
};
