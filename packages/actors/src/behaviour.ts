import type { NodeName, Pid } from '@otra/protocol';
import type { AnyActorLogic, InputFrom } from 'xstate';
import type { Dest, ExitReason, From, MonitorRef, RegName, SendStatus, SystemMessage } from './types.ts';

/** Options for spawning an actor. */
export interface SpawnOptions {
  /** Register the actor under this name on its node (fails if the name is taken). */
  readonly name?: string;
  /** Link the new actor to this pid before `init` runs. */
  readonly link?: Pid;
  /** The supervising or spawning actor, shown as the parent in `inspectTree()`. */
  readonly parent?: Pid;
  /** Start with exit trapping on (as `process_flag(trap_exit, true)` first thing in init). */
  readonly trapExit?: boolean;
  /** Shown in `inspectTree()` (set by supervisors). */
  readonly restarts?: number;
  /** The child spec id, shown in `inspectTree()` (set by supervisors). */
  readonly childId?: string;
}

/** Options for `call`. */
export interface CallOptions {
  /** Default 5,000 ms; `Infinity` waits forever (the callee's exit still ends the call). */
  readonly timeoutMs?: number;
}

/** A cancellable timer started by `sendAfter`. */
export interface TimerRef {
  readonly timer: number;
}

/**
 * What a handler can do, bound to the actor it runs in (`self`). The same object is passed to
 * every handler of one actor.
 */
export interface ActorContext {
  readonly self: Pid;
  readonly nodeName: NodeName;
  /** Time from the node's injected clock. */
  now(): number;
  send(dest: Dest, msg: unknown): SendStatus;
  cast(dest: Dest, msg: unknown): SendStatus;
  call<R = unknown>(dest: Dest, request: unknown, options?: CallOptions): Promise<R>;
  /** Answers a call that was not answered from `handleCall`'s return value. */
  reply(from: From, value: unknown): void;
  spawn<A>(behaviour: Behaviour<A>, args: A, options?: SpawnOptions): Pid;
  spawnLink<A>(behaviour: Behaviour<A>, args: A, options?: SpawnOptions): Pid;
  link(pid: Pid): void;
  unlink(pid: Pid): void;
  /** One `@actors.down` when the actor exits (by pid, or whatever process holds the name then). */
  monitor(pid: Pid | RegName): MonitorRef;
  demonitor(ref: MonitorRef): void;
  /** Delivers `@actors.nodeup` / `@actors.nodedown` for `node` to this actor. */
  monitorNode(node: NodeName, enable?: boolean): void;
  /** Turns exit signals from links into `@actors.exit` messages (except `kill`). */
  trapExit(enable: boolean): void;
  /** Sends an exit signal to `pid` (as `erlang:exit/2`). */
  exit(pid: Pid, reason: ExitReason): void;
  /** Stops this actor with `reason` once the current message has been handled (terminate runs). */
  stop(reason?: ExitReason): void;
  register(name: string): void;
  unregister(): void;
  sendAfter(ms: number, msg: unknown, dest?: Dest): TimerRef;
  cancelTimer(ref: TimerRef): boolean;
}

/** What `handleCall` returns: the reply now, or `noreply` to answer later with `ctx.reply(from, ...)`. */
export type CallResult<S, R> =
  | { readonly reply: R; readonly state: S }
  | { readonly noreply: true; readonly state: S };

type MaybePromise<T> = T | Promise<T>;

/**
 * A gen_server: one message at a time, handlers return the next state (or a promise of it).
 * `handleInfo` also receives runtime messages (`@actors.down`, `@actors.exit` when trapping).
 */
export interface GenServer<S, A = void, Req = never, Rep = unknown, Cast = never, Info = unknown> {
  /** `supervisor` only for supervisors (shown by inspection); otherwise omit it. */
  readonly kind?: 'gen_server' | 'supervisor';
  init(args: A, ctx: ActorContext): MaybePromise<S>;
  handleCall?(request: Req, from: From, state: S, ctx: ActorContext): MaybePromise<CallResult<S, Rep>>;
  handleCast?(msg: Cast, state: S, ctx: ActorContext): MaybePromise<S>;
  handleInfo?(msg: Info | SystemMessage, state: S, ctx: ActorContext): MaybePromise<S>;
  /** Runs when the actor stops itself, crashes, or is stopped by its parent while trapping exits. */
  terminate?(reason: ExitReason, state: S, ctx: ActorContext): MaybePromise<void>;
  /** Shown as `stateValue` in `inspectTree()` (e.g. a statechart's state value). */
  describe?(state: S): unknown;
}

/** One queued message handed to a batch behaviour. */
export type BatchItem =
  | { readonly kind: 'info'; readonly msg: unknown }
  | { readonly kind: 'cast'; readonly msg: unknown }
  | { readonly kind: 'call'; readonly request: unknown; readonly from: From };

/**
 * A batch server (as `gen_batch_server`): `handleBatch` receives every message queued so far, up to
 * `maxBatchSize`, so high-throughput actors (the log writer) amortise per-message work.
 */
export interface BatchServer<S, A = void> {
  readonly kind: 'batch';
  readonly maxBatchSize?: number;
  init(args: A, ctx: ActorContext): MaybePromise<S>;
  handleBatch(items: BatchItem[], state: S, ctx: ActorContext): MaybePromise<S>;
  terminate?(reason: ExitReason, state: S, ctx: ActorContext): MaybePromise<void>;
  describe?(state: S): unknown;
}

/**
 * An XState v5 actor logic hosted as an actor: messages (sends, casts) become events; a call becomes
 * the request event with `from` added, answered with `ctx.reply`. The actor exits `normal` when the
 * statechart reaches a final state and with the error when it fails.
 */
export interface StatechartBehaviour<L extends AnyActorLogic, A = void> {
  readonly kind: 'statechart';
  readonly logic: L;
  input?(args: A, ctx: ActorContext): InputFrom<L>;
}

// biome-ignore lint/suspicious/noExplicitAny: behaviours are contravariant in their message types; the runtime erases them
type Erased = any;
export type AnyGenServer<A> = GenServer<Erased, A, Erased, Erased, Erased, Erased>;
export type Behaviour<A = Erased> =
  | AnyGenServer<A>
  | BatchServer<Erased, A>
  | StatechartBehaviour<AnyActorLogic, A>;

/** The behaviour kinds shown by inspection. */
export type BehaviourKind = 'gen_server' | 'batch' | 'statechart' | 'supervisor';

/** Wraps an XState logic as a behaviour. */
export function fromStatechart<L extends AnyActorLogic, A = void>(
  logic: L,
  input?: (args: A, ctx: ActorContext) => InputFrom<L>,
): StatechartBehaviour<L, A> {
  return input === undefined ? { kind: 'statechart', logic } : { kind: 'statechart', logic, input };
}
