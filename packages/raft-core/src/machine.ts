import type { LogEntry, Pid, ServerId, SystemCommand } from '@otra/protocol';

/** What `apply` learns about the entry being applied. */
export interface ApplyMeta {
  readonly index: number;
  readonly term: number;
  /** The leader's clock (from its last `tick`) when the entry was appended; same on every member. */
  readonly systemTime: number;
  readonly machineVersion: number;
}

/** The roles a machine is told about in `stateEnter`. */
export type MachineRole = 'follower' | 'pre_vote' | 'candidate' | 'leader' | 'receive_snapshot' | 'stop';

/**
 * Effects a machine asks for. They run on the leader only (followers compute and drop them),
 * except `release_cursor`, `checkpoint` and `aux`, which matter on every member. Effects carrying
 * functions (`log`, `mod_call`) are local values: they never cross a link.
 */
export type MachineEffect =
  | { readonly type: 'send_msg'; readonly to: Pid; readonly msg: unknown }
  | { readonly type: 'monitor'; readonly kind: 'process'; readonly pid: Pid }
  | { readonly type: 'monitor'; readonly kind: 'node'; readonly node: string }
  | { readonly type: 'demonitor'; readonly kind: 'process'; readonly pid: Pid }
  | { readonly type: 'demonitor'; readonly kind: 'node'; readonly node: string }
  /** Arms (or with `ms: 'infinity'` cancels) a named timer; on expiry the shell sends `machine.timeout`. */
  | { readonly type: 'timer'; readonly name: string; readonly ms: number | 'infinity' }
  /**
   * Everything up to `index` is no longer needed: `machineState` is the state after applying
   * `index`. The core writes it as a snapshot and then truncates the log prefix.
   */
  | { readonly type: 'release_cursor'; readonly index: number; readonly machineState: unknown }
  /** A snapshot point that does not truncate the log: passed through to the shell as is. */
  | { readonly type: 'checkpoint'; readonly index: number; readonly machineState: unknown }
  | { readonly type: 'mod_call'; readonly fn: () => void }
  /** Appends a new command to the log (leader only; `noreply`). */
  | { readonly type: 'append'; readonly command: unknown }
  /** Reads entries by index from the in-memory log and turns them into more effects. */
  | {
      readonly type: 'log';
      readonly indexes: readonly number[];
      readonly fn: (entries: readonly LogEntry[]) => readonly MachineEffect[];
    }
  | { readonly type: 'aux'; readonly command: unknown };

/** `apply` returns the new state, the reply for the caller and optional effects. */
export type ApplyResult<S, R> = readonly [state: S, reply: R, effects?: readonly MachineEffect[]];

export interface MachineConfig {
  readonly name: string;
  readonly serverId: ServerId;
  readonly [key: string]: unknown;
}

/**
 * The module form of a machine (ra's `ra_machine` behaviour). `C` is the command type, `R` the
 * reply type and `S` the state type; they flow into the server API.
 *
 * `apply` must be deterministic. If it throws, the core treats the entry as applied without
 * changing the state (no effects) and answers the caller with `{type:'error', error:'machine_error'}`:
 * every member does the same, so replay stays consistent and the core never crashes on it.
 */
export interface MachineModule<C, R, S> {
  init(config: MachineConfig): S;
  apply(meta: ApplyMeta, command: C, state: S): ApplyResult<S, R>;
  /** Runtime events (`down`, `nodedown`, `nodeup`, machine `timeout`), ordered through the log. */
  applySystem?(meta: ApplyMeta, event: SystemCommand, state: S): readonly [S, (readonly MachineEffect[])?];
  stateEnter?(role: MachineRole, state: S): readonly MachineEffect[];
  tick?(timeMs: number, state: S): readonly MachineEffect[];
  overview?(state: S): unknown;
  /** The version this code implements; a new leader appends a noop carrying it. Default 0. */
  version?(): number;
  /** The module that applies entries written under `version` (for upgrades). Default: this one. */
  whichModule?(version: number): MachineModule<C, R, S>;
  snapshotInstalled?(meta: ApplyMeta, state: S): readonly MachineEffect[];
  /**
   * Command de-duplication: a command carrying a `requestId` is not applied again when the same id
   * was applied within this many log entries before it (the copy is answered with the first reply).
   * Part of the machine's definition, so that every member decides alike: change it only with a new
   * machine version (`whichModule`), and only downwards (a member restored from a snapshot holds
   * the ids of the window in force when it was taken, no older ones). Default
   * `DEFAULT_REQUEST_WINDOW` (100,000 entries).
   */
  readonly requestWindow?: number;
  /** Aux types are carried for the shell's aux actor; the core never calls them. */
  initAux?(name: string): unknown;
  handleAux?(
    role: MachineRole,
    command: unknown,
    auxState: unknown,
    machineState: S,
  ): readonly [unknown, unknown?];
}

/** The simple form: a fold over commands; the reply is the new state. */
export interface SimpleMachine<C, S> {
  readonly simple: (command: C, state: S) => S;
  readonly initial: S;
}

export type Machine<C = unknown, R = unknown, S = unknown> = MachineModule<C, R, S> | SimpleMachine<C, S>;

/** A machine with its type parameters erased, as the core holds it. */
// biome-ignore lint/suspicious/noExplicitAny: type erasure point between typed machines and the core
export type AnyMachineModule = MachineModule<any, any, any>;

export type CommandOf<M> =
  M extends SimpleMachine<infer C, infer _S>
    ? C
    : M extends MachineModule<infer C, infer _R, infer _S>
      ? C
      : never;
export type StateOf<M> =
  M extends SimpleMachine<infer _C, infer S>
    ? S
    : M extends MachineModule<infer _C, infer _R, infer S>
      ? S
      : never;
/** A simple machine's reply is its new state. */
export type ReplyOf<M> =
  M extends SimpleMachine<infer _C, infer S>
    ? S
    : M extends MachineModule<infer _C, infer R, infer _S>
      ? R
      : never;

/** Turns either form into the module form. */
/** How many log entries a request id is remembered for unless the machine says otherwise. */
export const DEFAULT_REQUEST_WINDOW = 100_000;

export function toModule<C, R, S>(machine: Machine<C, R, S>): MachineModule<C, R, S> {
  if ('simple' in machine) {
    const { simple, initial } = machine;
    return {
      init: () => initial,
      apply: (_meta, command, state) => {
        const next = simple(command, state);
        return [next, next as unknown as R];
      },
    };
  }
  return machine;
}

/** Defines a module machine with its types inferred (an identity helper). */
export function defineMachine<C, R, S>(machine: MachineModule<C, R, S>): MachineModule<C, R, S> {
  return machine;
}
