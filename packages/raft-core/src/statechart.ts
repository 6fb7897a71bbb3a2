import { assign, setup } from 'xstate';
import { handle, initServer, startServer } from './server.ts';
import type { Effect, HandleResult, Message, Recovered, Role, ServerConfig, ServerState } from './types.ts';

/**
 * The roles as an XState v5 statechart. The pure handlers decide; the chart follows the role they
 * return (`always` transitions on `context.role`) and its actions only store the effects of the
 * last event in `context.effects`, which the shell executes after each `transition`.
 *
 * Two ways to drive it:
 * - Every message through the chart, which runs the handler:
 *     let [snap] = initialTransition(raftMachine, { config, recovered }); // effects: snap.context.effects
 *     [snap] = transition(raftMachine, snap, msg);                        // one message, its effects
 * - Every message through `handle`, and through the chart (`roleChange(result)`) only the results
 *   `chartTakes` picks: every role change, and the moment a server goes quiet. The chart still
 *   takes every role transition, and a message that keeps the role costs no chart step. The
 *   caller keeps the live state; the chart's context is the state as of the last result it took.
 *   The RaftServer shell and the simulator's `roles` driver run this way.
 */

export interface RaftContext {
  readonly role: Role;
  readonly server: ServerState;
  /** Effects of the last event only, in execution order. */
  readonly effects: readonly Effect[];
}

export interface RaftInput {
  readonly config: ServerConfig;
  readonly recovered: Recovered;
}

/** A result that `handle` computed outside the chart: the chart adopts it (and moves, if its role differs). */
export interface RoleChangeEvent {
  readonly type: 'raft.role';
  readonly result: HandleResult;
}

/** The event that hands the chart a result `handle` computed outside it (see `chartTakes`). */
export function roleChange(result: HandleResult): RoleChangeEvent {
  return { type: 'raft.role', result };
}

/**
 * Whether `result`, from `handle` in `role` and `state`, goes to the chart: when it changes the
 * role, and when the server has just gone quiet, so that an idle server's chart holds its
 * current state and not an old version kept alive beside it.
 */
export function chartTakes(role: Role, state: ServerState, result: HandleResult): boolean {
  return result.role !== role || (result.state.quiesced && !state.quiesced);
}

const ROLES = [
  'follower',
  'pre_vote',
  'candidate',
  'leader',
  'receive_snapshot',
  'stop',
] as const satisfies readonly Role[];

function follow(self: Role) {
  return ROLES.filter((r) => r !== self).map((r) => ({
    guard: { type: 'roleIs' as const, params: { role: r } },
    target: `#raft.${r}`,
  }));
}

function roleState(self: Role) {
  return {
    on: { 'raft.role': { actions: 'adopt' as const }, '*': { actions: 'handle' as const } },
    always: follow(self),
  };
}

export const raftMachine = setup({
  types: {
    context: {} as RaftContext,
    events: {} as Message | RoleChangeEvent,
    input: {} as RaftInput,
  },
  actions: {
    /** Runs the pure core on the event; keeps its role, state and effects. */
    handle: assign(({ context, event }) => {
      const r = handle(context.role, context.server, event as Message);
      return { role: r.role, server: r.state, effects: r.effects };
    }),
    /** Takes a result `handle` computed outside the chart (see `roleChange`). */
    adopt: assign(({ event }) => {
      const r = (event as RoleChangeEvent).result;
      return { role: r.role, server: r.state, effects: r.effects };
    }),
    /** Recovery done: start as a follower with the election timer armed. */
    start: assign(({ context }) => {
      const r = startServer(context.server);
      return { role: r.role, server: r.state, effects: r.effects };
    }),
  },
  guards: {
    roleIs: ({ context }, params: { role: Role }) => context.role === params.role,
  },
}).createMachine({
  id: 'raft',
  context: ({ input }) => ({
    role: 'follower',
    server: initServer(input.config, input.recovered),
    effects: [],
  }),
  initial: 'recover',
  states: {
    /** Rebuilds state from storage (`initServer`), then becomes a follower. */
    recover: { entry: 'start', always: { target: 'follower' } },
    follower: roleState('follower'),
    pre_vote: roleState('pre_vote'),
    candidate: roleState('candidate'),
    leader: roleState('leader'),
    receive_snapshot: roleState('receive_snapshot'),
    /** Final: the shell terminates the server. */
    stop: { type: 'final' },
  },
});

export type RaftMachine = typeof raftMachine;
export type { ServerState };
