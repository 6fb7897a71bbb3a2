import type { Pid } from '@otra/protocol';
import { pidKey } from '@otra/protocol';
import type { ActorContext, Behaviour, GenServer, SpawnOptions } from './behaviour.ts';
import { StartError } from './errors.ts';
import type { Node } from './node.ts';
import type { ExitReason, From, SystemMessage } from './types.ts';
import { errorReason, isCleanExit } from './types.ts';

/** When a child is restarted: always, only after an abnormal exit, or never. */
export type RestartType = 'permanent' | 'transient' | 'temporary';

/** How long a child gets to stop after `shutdown` before it is killed; `brutal_kill` kills at once. */
export type ShutdownSpec = number | 'brutal_kill' | 'infinity';

export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one' | 'simple_one_for_one';

/** What a child's `start` gets: a spawn that links the child to its supervisor and waits for `init`. */
export interface StartContext {
  readonly node: Node;
  readonly supervisor: Pid;
  spawn<A>(behaviour: Behaviour<A>, args: A, options?: Omit<SpawnOptions, 'link' | 'parent'>): Promise<Pid>;
}

/**
 * A child specification, as OTP's. `start` must return the pid of a live local actor linked to the
 * supervisor: use `ctx.spawn`. For `simple_one_for_one`, `start` also gets the `startChild` args.
 */
export interface ChildSpec {
  readonly id: string;
  start(ctx: StartContext, args?: unknown): Pid | Promise<Pid>;
  /** Default `permanent`. */
  readonly restart?: RestartType;
  /** Default 5,000 ms for workers, `infinity` for supervisors. */
  readonly shutdown?: ShutdownSpec;
  /** Default `worker`. */
  readonly type?: 'worker' | 'supervisor';
}

/** Supervisor flags. More than `intensity` restarts within `periodMs` makes the supervisor exit. */
export interface SupervisorFlags {
  readonly strategy: Strategy;
  /** Default 1 (OTP's default). */
  readonly intensity?: number;
  /** Default 5,000 ms. */
  readonly periodMs?: number;
}

/** One row of `whichChildren`. */
export interface ChildInfo {
  readonly id: string;
  readonly pid: Pid | undefined;
  readonly type: 'worker' | 'supervisor';
  readonly restart: RestartType;
  readonly restarts: number;
}

interface Child {
  readonly spec: ChildSpec;
  readonly args: unknown;
  pid: Pid | undefined;
  restarts: number;
}

interface SupState {
  readonly flags: Required<SupervisorFlags>;
  readonly children: Child[];
  readonly byPid: Map<string, Child>;
  /** The one spec of a `simple_one_for_one` supervisor. */
  readonly template: ChildSpec | undefined;
  restartTimes: number[];
}

type SupRequest =
  | { readonly type: 'supervisor.start_child'; readonly spec?: ChildSpec; readonly args?: unknown }
  | { readonly type: 'supervisor.terminate_child'; readonly id: string | Pid }
  | { readonly type: 'supervisor.restart_child'; readonly id: string }
  | { readonly type: 'supervisor.delete_child'; readonly id: string }
  | { readonly type: 'supervisor.which_children' };

type SupReply = { ok: true; pid?: Pid; children?: ChildInfo[] } | { ok: false; error: string };

interface SupArgs {
  readonly flags: SupervisorFlags;
  readonly children: readonly ChildSpec[];
}

function startContext(node: Node, sup: Pid, child: Child): StartContext {
  return {
    node,
    supervisor: sup,
    spawn: (behaviour, args, options) =>
      node.spawnAndWait(behaviour, args, {
        ...options,
        parent: sup,
        link: sup,
        restarts: child.restarts,
        childId: child.spec.id,
      }),
  };
}

function restartOf(spec: ChildSpec): RestartType {
  return spec.restart ?? 'permanent';
}

/**
 * The supervisor behaviour. It traps exits, starts children in order, restarts them by its
 * strategy and stops them in reverse order. Spawn it with `startSupervisor`.
 */
export function supervisorBehaviour(node: Node): GenServer<SupState, SupArgs, SupRequest, SupReply> {
  const startChild = async (ctx: ActorContext, state: SupState, child: Child): Promise<Pid> => {
    const pid = await child.spec.start(startContext(node, ctx.self, child), child.args);
    child.pid = pid;
    state.byPid.set(pidKey(pid), child);
    return pid;
  };

  const stopChild = async (ctx: ActorContext, state: SupState, child: Child): Promise<void> => {
    const pid = child.pid;
    if (pid === undefined) return;
    child.pid = undefined;
    state.byPid.delete(pidKey(pid));
    const shutdown = child.spec.shutdown ?? (child.spec.type === 'supervisor' ? 'infinity' : 5000);
    const exited = node.awaitExit(pid);
    if (shutdown === 'brutal_kill') {
      ctx.exit(pid, 'kill');
      await exited;
      return;
    }
    ctx.exit(pid, 'shutdown');
    await node.withTimeout(exited, shutdown === 'infinity' ? Number.POSITIVE_INFINITY : shutdown, () =>
      ctx.exit(pid, 'kill'),
    );
  };

  const stopAll = async (ctx: ActorContext, state: SupState, children: Child[]): Promise<void> => {
    if (state.flags.strategy === 'simple_one_for_one') {
      await Promise.all(children.map((c) => stopChild(ctx, state, c)));
      return;
    }
    for (const child of [...children].reverse()) await stopChild(ctx, state, child);
  };

  /** Records a restart; false when the intensity is exceeded. */
  const allowRestart = (ctx: ActorContext, state: SupState): boolean => {
    const now = ctx.now();
    state.restartTimes = state.restartTimes.filter((t) => now - t < state.flags.periodMs);
    state.restartTimes.push(now);
    return state.restartTimes.length <= state.flags.intensity;
  };

  const escalate = async (ctx: ActorContext, state: SupState): Promise<SupState> => {
    node.emit({ type: '@actors.escalated', supervisor: ctx.self, restarts: state.restartTimes.length });
    await stopAll(ctx, state, state.children);
    ctx.stop('shutdown');
    return state;
  };

  /** Restarts `children` in order; a failed start counts as another restart. */
  const restartInOrder = async (ctx: ActorContext, state: SupState, children: Child[]): Promise<boolean> => {
    for (const child of children) {
      for (;;) {
        child.restarts++;
        try {
          const pid = await startChild(ctx, state, child);
          node.emit({
            type: '@actors.restarted',
            supervisor: ctx.self,
            childId: child.spec.id,
            pid,
            restarts: child.restarts,
          });
          break;
        } catch {
          if (!allowRestart(ctx, state)) return false;
        }
      }
    }
    return true;
  };

  const removeChild = (state: SupState, child: Child): void => {
    const i = state.children.indexOf(child);
    if (i >= 0) state.children.splice(i, 1);
  };

  const onChildExit = async (ctx: ActorContext, state: SupState, child: Child, reason: ExitReason) => {
    child.pid = undefined;
    const restart = restartOf(child.spec);
    const wanted = restart === 'permanent' || (restart === 'transient' && !isCleanExit(reason));
    if (!wanted) {
      if (restart === 'temporary' || state.flags.strategy === 'simple_one_for_one') removeChild(state, child);
      return state;
    }
    if (!allowRestart(ctx, state)) return escalate(ctx, state);
    const strategy = state.flags.strategy;
    let toRestart: Child[];
    if (strategy === 'one_for_all') {
      await stopAll(
        ctx,
        state,
        state.children.filter((c) => c !== child),
      );
      toRestart = state.children.filter((c) => c === child || restartOf(c.spec) !== 'temporary');
      for (const c of state.children) if (!toRestart.includes(c)) removeChild(state, c);
    } else if (strategy === 'rest_for_one') {
      const later = state.children.slice(state.children.indexOf(child) + 1);
      await stopAll(ctx, state, later);
      toRestart = [child, ...later.filter((c) => restartOf(c.spec) !== 'temporary')];
      for (const c of later) if (!toRestart.includes(c)) removeChild(state, c);
    } else toRestart = [child];
    // children whose spec was kept without a pid (a transient that ended cleanly) stay down
    toRestart = toRestart.filter((c) => c === child || c.pid === undefined);
    if (!(await restartInOrder(ctx, state, toRestart))) return escalate(ctx, state);
    return state;
  };

  const info = (state: SupState): ChildInfo[] =>
    state.children.map((c) => ({
      id: c.spec.id,
      pid: c.pid,
      type: c.spec.type ?? 'worker',
      restart: restartOf(c.spec),
      restarts: c.restarts,
    }));

  const find = (state: SupState, id: string | Pid): Child | undefined =>
    typeof id === 'string' ? state.children.find((c) => c.spec.id === id) : state.byPid.get(pidKey(id));

  return {
    kind: 'supervisor',
    async init(args, ctx) {
      ctx.trapExit(true);
      const flags: Required<SupervisorFlags> = {
        strategy: args.flags.strategy,
        intensity: args.flags.intensity ?? 1,
        periodMs: args.flags.periodMs ?? 5000,
      };
      const simple = flags.strategy === 'simple_one_for_one';
      if (simple && args.children.length !== 1)
        throw new Error('simple_one_for_one takes exactly one child spec');
      const template = simple ? args.children[0] : undefined;
      const state: SupState = { flags, children: [], byPid: new Map(), template, restartTimes: [] };
      if (simple) return state;
      const ids = new Set<string>();
      for (const spec of args.children) {
        if (ids.has(spec.id)) throw new Error(`duplicate child id: ${spec.id}`);
        ids.add(spec.id);
        const child: Child = { spec, args: undefined, pid: undefined, restarts: 0 };
        state.children.push(child);
        try {
          await startChild(ctx, state, child);
        } catch (err) {
          await stopAll(ctx, state, state.children);
          throw err instanceof StartError ? err : new StartError(undefined, errorReason(err));
        }
      }
      return state;
    },

    async handleInfo(msg: SystemMessage | unknown, state, ctx) {
      const m = msg as SystemMessage;
      if (m.type !== '@actors.exit') return state;
      const child = state.byPid.get(pidKey(m.from));
      if (child === undefined) return state;
      state.byPid.delete(pidKey(m.from));
      return onChildExit(ctx, state, child, m.reason);
    },

    async handleCall(request, _from: From, state, ctx) {
      switch (request.type) {
        case 'supervisor.start_child': {
          let child: Child;
          if (state.flags.strategy === 'simple_one_for_one') {
            child = { spec: state.template as ChildSpec, args: request.args, pid: undefined, restarts: 0 };
          } else {
            const spec = request.spec;
            if (spec === undefined) return { reply: { ok: false, error: 'a child spec is required' }, state };
            if (find(state, spec.id) !== undefined) {
              return { reply: { ok: false, error: `already present: ${spec.id}` }, state };
            }
            child = { spec, args: undefined, pid: undefined, restarts: 0 };
          }
          try {
            const pid = await startChild(ctx, state, child);
            state.children.push(child);
            return { reply: { ok: true, pid }, state };
          } catch (err) {
            return { reply: { ok: false, error: String((err as Error).message ?? err) }, state };
          }
        }
        case 'supervisor.terminate_child': {
          const child = find(state, request.id);
          if (child === undefined) return { reply: { ok: false, error: 'not_found' }, state };
          await stopChild(ctx, state, child);
          if (state.flags.strategy === 'simple_one_for_one' || restartOf(child.spec) === 'temporary') {
            removeChild(state, child);
          }
          return { reply: { ok: true }, state };
        }
        case 'supervisor.restart_child': {
          const child = find(state, request.id);
          if (child === undefined) return { reply: { ok: false, error: 'not_found' }, state };
          if (child.pid !== undefined) return { reply: { ok: false, error: 'running' }, state };
          try {
            const pid = await startChild(ctx, state, child);
            return { reply: { ok: true, pid }, state };
          } catch (err) {
            return { reply: { ok: false, error: String((err as Error).message ?? err) }, state };
          }
        }
        case 'supervisor.delete_child': {
          const child = find(state, request.id);
          if (child === undefined) return { reply: { ok: false, error: 'not_found' }, state };
          if (child.pid !== undefined) return { reply: { ok: false, error: 'running' }, state };
          removeChild(state, child);
          return { reply: { ok: true }, state };
        }
        case 'supervisor.which_children':
          return { reply: { ok: true, children: info(state) }, state };
      }
    },

    async terminate(_reason, state, ctx) {
      await stopAll(ctx, state, state.children);
    },

    describe: (state) => state.flags.strategy,
  };
}

/** Starts a supervisor and resolves with its pid once every child has started. */
export function startSupervisor(
  node: Node,
  flags: SupervisorFlags,
  children: readonly ChildSpec[],
  options?: SpawnOptions,
): Promise<Pid> {
  return node.spawnAndWait(supervisorBehaviour(node), { flags, children }, options);
}

/**
 * A child spec for a nested supervisor, so trees read as data:
 * `supervisorSpec('servers', { strategy: 'simple_one_for_one' }, [serverSpec])`.
 */
export function supervisorSpec(
  id: string,
  flags: SupervisorFlags,
  children: readonly ChildSpec[],
  restart: RestartType = 'permanent',
): ChildSpec {
  return {
    id,
    type: 'supervisor',
    restart,
    shutdown: 'infinity',
    start: (ctx) => ctx.spawn(supervisorBehaviour(ctx.node), { flags, children }),
  };
}

/** Thrown by the supervisor helpers when the supervisor refuses a request. */
export class SupervisorError extends Error {
  override readonly name = 'SupervisorError';
}

async function supCall(node: Node, sup: Pid, request: SupRequest): Promise<SupReply & { ok: true }> {
  const reply = await node.call<SupReply>(sup, request, { timeoutMs: Number.POSITIVE_INFINITY });
  if (!reply.ok) throw new SupervisorError(reply.error);
  return reply;
}

/**
 * Adds a child: a spec for the static strategies, or the extra `args` for `simple_one_for_one`.
 * Resolves with the child's pid once it has started.
 */
export async function startChild(
  node: Node,
  sup: Pid,
  specOrArgs: ChildSpec | { args: unknown },
): Promise<Pid> {
  const request: SupRequest =
    'id' in specOrArgs && 'start' in specOrArgs
      ? { type: 'supervisor.start_child', spec: specOrArgs }
      : { type: 'supervisor.start_child', args: specOrArgs.args };
  return (await supCall(node, sup, request)).pid as Pid;
}

/** Stops a child by id (or by pid for `simple_one_for_one`); its spec is kept unless temporary or dynamic. */
export async function terminateChild(node: Node, sup: Pid, id: string | Pid): Promise<void> {
  await supCall(node, sup, { type: 'supervisor.terminate_child', id });
}

/** Starts a stopped child again from its kept spec. */
export async function restartChild(node: Node, sup: Pid, id: string): Promise<Pid> {
  return (await supCall(node, sup, { type: 'supervisor.restart_child', id })).pid as Pid;
}

/** Removes the spec of a stopped child. */
export async function deleteChild(node: Node, sup: Pid, id: string): Promise<void> {
  await supCall(node, sup, { type: 'supervisor.delete_child', id });
}

/** The children in start order. */
export async function whichChildren(node: Node, sup: Pid): Promise<ChildInfo[]> {
  return (await supCall(node, sup, { type: 'supervisor.which_children' })).children ?? [];
}
