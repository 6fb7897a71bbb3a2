import { defineMachine, type MachineEffect } from '@otra/raft-core';

/** A replicated key-value store, the machine the simulator checks for linearizability. */
export type KvCommand =
  | { readonly op: 'put'; readonly key: string; readonly value: string }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'cas'; readonly key: string; readonly expected: string | null; readonly value: string }
  /** Throws inside `apply`: exercises the core's handling of failing commands. */
  | { readonly op: 'boom' };

export interface KvState {
  readonly data: Readonly<Record<string, string>>;
  readonly applied: number;
}

/** The previous value of the key (or for `cas`, whether it swapped). */
export type KvReply = string | null | boolean;

/**
 * @param snapshotEvery emit `release_cursor` after this many applied commands (0: never), so the
 * simulator exercises snapshots and snapshot transfer.
 */
export function kvMachine(snapshotEvery = 0) {
  return defineMachine<KvCommand, KvReply, KvState>({
    init: () => ({ data: {}, applied: 0 }),
    apply(meta, cmd, state) {
      const applied = state.applied + 1;
      const effects: MachineEffect[] =
        snapshotEvery > 0 && applied % snapshotEvery === 0
          ? [{ type: 'release_cursor', index: meta.index, machineState: null }]
          : [];
      let next: KvState;
      let reply: KvReply;
      switch (cmd.op) {
        case 'put':
          reply = state.data[cmd.key] ?? null;
          next = { data: { ...state.data, [cmd.key]: cmd.value }, applied };
          break;
        case 'delete': {
          reply = state.data[cmd.key] ?? null;
          const { [cmd.key]: _, ...rest } = state.data;
          next = { data: rest, applied };
          break;
        }
        case 'cas': {
          const cur = state.data[cmd.key] ?? null;
          reply = cur === cmd.expected;
          next = reply ? { data: { ...state.data, [cmd.key]: cmd.value }, applied } : { ...state, applied };
          break;
        }
        case 'boom':
          throw new Error('boom');
      }
      // The snapshot must hold the state after this entry: patch it in once we know it.
      const fx = effects.map((e) => (e.type === 'release_cursor' ? { ...e, machineState: next } : e));
      return [next, reply, fx];
    },
    overview: (state) => ({ keys: Object.keys(state.data).length, applied: state.applied }),
  });
}
