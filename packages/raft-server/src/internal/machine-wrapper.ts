import type { AnyMachineModule, ApplyMeta, Machine } from '@otra/raft-core';
import { toModule } from '@otra/raft-core';

/** The command `deleteCluster` commits: every member deletes its data once it applies it. */
export const END_OF_LIFE = '@otra.end_of_life';

export interface EndOfLifeCommand {
  readonly type: typeof END_OF_LIFE;
}

export function isEndOfLife(command: unknown): command is EndOfLifeCommand {
  return (
    typeof command === 'object' && command !== null && (command as { type?: unknown }).type === END_OF_LIFE
  );
}

/** One applied command, recorded for `onCommandCommitted`. */
export interface AppliedRecord {
  readonly before: unknown;
  readonly command: unknown;
  readonly reply: unknown;
  readonly after: unknown;
}

/** What the wrapper observed during one core step; the shell reads and clears it. */
export interface ApplyTap {
  /** Applied commands (only recorded when `record` is on: the server has an `onCommandCommitted` hook). */
  applied: AppliedRecord[];
  record: boolean;
  /** The end-of-life command was applied at this index. */
  endOfLife: number | null;
}

/**
 * Wraps a user machine so the shell sees what `apply` did without the core knowing about hooks:
 * it records (before, command, reply, after) for leader hooks and handles the end-of-life command
 * (applied as a no-op that answers `ok`). Every other callback is passed through, including the
 * modules `whichModule` picks for older machine versions.
 */
export function wrapMachine(machine: Machine, tap: ApplyTap): AnyMachineModule {
  const wrap = (inner: AnyMachineModule): AnyMachineModule => {
    const wrapped: AnyMachineModule = {
      ...inner,
      apply(meta: ApplyMeta, command: unknown, state: unknown) {
        if (isEndOfLife(command)) {
          tap.endOfLife = meta.index;
          return [state, 'ok'];
        }
        const result = inner.apply(meta, command, state);
        if (tap.record) tap.applied.push({ before: state, command, reply: result[1], after: result[0] });
        return result;
      },
    };
    if (inner.whichModule !== undefined) {
      const pick = inner.whichModule.bind(inner);
      wrapped.whichModule = (version: number) => {
        const chosen = pick(version);
        return chosen === inner ? wrapped : wrap(chosen);
      };
    }
    return wrapped;
  };
  return wrap(toModule(machine) as AnyMachineModule);
}
