import { assign, setup } from 'xstate';
import { handle, initServer, startServer } from './server.ts';
import type { Effect, Message, Recovered, Role, ServerConfig, ServerState } from './types.ts';

/**
 * The roles as an XState v5 statechart. The pure handlers decide; the chart mirrors the role they
 * return (`always` transitions on `context.role`) and its actions only store the effects of the
 * last event in `context.effects`, which the shell executes after each `transition`.
 *
 * Drive it without an actor:
 *   let [snap] = initialTransition(raftMachine, { config, recovered });   // effects: snap.context.effects
 *   [snap] = transition(raftMachine, snap, msg);                         // one message, its effects
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
    on: { '*': { actions: 'handle' as const } },
    always: follow(self),
  };
}

export const raftMachine = setup({
  types: {
    context: {} as RaftContext,
    events: {} as Message,
    input: {} as RaftInput,
  },
  actions: {
    /** Runs the pure core on the event; keeps its role, state and effects. */
    handle: assign(({ context, event }) => {
      const r = handle(context.role, context.server, event);
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
