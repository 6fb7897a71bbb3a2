import type { AppendEntriesRequest, From, LogEntry, RaftRpc, ServerId } from '@otra/protocol';
import {
  defineMachine,
  type Effect,
  type HandleResult,
  handle,
  initServer,
  type Machine,
  type Message,
  type Recovered,
  type Role,
  type ServerConfig,
  type ServerState,
  startServer,
} from '../src/index.ts';

export const A: ServerId = { name: 'a', node: 'a' };
export const B: ServerId = { name: 'b', node: 'b' };
export const C: ServerId = { name: 'c', node: 'c' };
export const D: ServerId = { name: 'd', node: 'd' };
export const E: ServerId = { name: 'e', node: 'e' };

/** A counter machine: commands are numbers added to the state; `'boom'` throws. */
export const counter = defineMachine<number | 'boom', number, number>({
  init: () => 0,
  apply: (_meta, cmd, state) => {
    if (cmd === 'boom') throw new Error('boom');
    return [state + cmd, state + cmd];
  },
});

export function config(
  id: ServerId,
  members: readonly ServerId[] = [A, B, C],
  extra: Partial<ServerConfig> = {},
): ServerConfig {
  return {
    id,
    initialMembers: members,
    machine: counter as Machine<unknown, unknown, unknown>,
    electionTimeoutMs: [150, 300],
    electionTimeoutTicks: 3,
    maxAppendEntriesBatch: 16,
    maxInFlight: 2,
    lowPriorityBatch: 2,
    ...extra,
  };
}

export const empty: Recovered = { currentTerm: 0, votedFor: null, snapshot: null, entries: [] };

export function fresh(
  id: ServerId,
  members?: readonly ServerId[],
  recovered: Recovered = empty,
  extra?: Partial<ServerConfig>,
) {
  return startServer(initServer(config(id, members, extra), recovered));
}

export interface Srv {
  role: Role;
  state: ServerState;
  effects: Effect[];
}

/** Feeds one message; returns the result and keeps it in `srv`. */
export function feed(srv: Srv, msg: Message): HandleResult {
  const r = handle(srv.role, srv.state, msg);
  srv.role = r.role;
  srv.state = r.state;
  srv.effects = r.effects;
  return r;
}

export function sends(effects: readonly Effect[], type?: RaftRpc['type']): { to: string; rpc: RaftRpc }[] {
  const out: { to: string; rpc: RaftRpc }[] = [];
  for (const e of effects) {
    if (e.type === 'send_rpc' && (type === undefined || e.rpc.type === type))
      out.push({ to: e.to.name, rpc: e.rpc });
  }
  return out;
}

export function types(effects: readonly Effect[]): string[] {
  return effects.map((e) => (e.type === 'send_rpc' ? `send_rpc:${e.rpc.type}>${e.to.name}` : e.type));
}

export const from = (ref: number): From => ({ pid: { node: 'client', id: 1, creation: 1 }, ref });

/** Makes `a` the leader of a three-server cluster of fresh servers, its noop written everywhere. */
export function electedLeader(members: readonly ServerId[] = [A, B, C], extra?: Partial<ServerConfig>): Srv {
  const r = fresh(A, members, empty, extra);
  const a: Srv = { role: r.role, state: r.state, effects: r.effects };
  feed(a, { type: 'election.timeout' });
  for (const m of members.slice(1)) {
    if (a.role === 'pre_vote') feed(a, { type: 'pre_vote.reply', from: m, term: 1, granted: true });
  }
  for (const m of members.slice(1))
    if (a.role === 'candidate') feed(a, { type: 'vote.reply', from: m, term: 1, granted: true });
  if (a.role !== 'leader') throw new Error(`not leader: ${a.role}`);
  return a;
}

/** Writes everything the leader appended and acknowledges it from every follower; returns all effects. */
export function ackAll(leader: Srv, followers: readonly ServerId[] = [B, C]): Effect[] {
  const last = leader.state.log.snapshotIndex + leader.state.log.length;
  const term = leader.state.log.entries[leader.state.log.length - 1]?.term ?? 0;
  const out: Effect[] = [];
  out.push(...feed(leader, { type: 'log.written', upTo: last, term }).effects);
  for (const f of followers) {
    const r = feed(leader, {
      type: 'append_entries.reply',
      from: f,
      term: leader.state.currentTerm,
      success: true,
      matchIndex: last,
      lastIndex: last,
      lastTerm: term,
      round: leader.state.leader?.round ?? 0,
    });
    out.push(...r.effects);
  }
  return out;
}

/** An AppendEntries from `A` in term 1, empty unless `p` says otherwise. */
export function ae(p: Partial<AppendEntriesRequest>): AppendEntriesRequest {
  return {
    type: 'append_entries.request',
    from: A,
    term: 1,
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [],
    leaderCommit: 0,
    round: 0,
    ...p,
  };
}

/** A follower's successful AppendEntries reply in term 1: it holds and has written up to `matchIndex`. */
export function ack(from: ServerId, matchIndex: number, round = 0): Message {
  return {
    type: 'append_entries.reply',
    from,
    term: 1,
    success: true,
    matchIndex,
    lastIndex: matchIndex,
    lastTerm: 1,
    round,
  };
}

export function entry(index: number, term: number, command: unknown = 1): LogEntry {
  return { type: 'command', index, term, command, reply: { mode: 'noreply' }, systemTime: 0 };
}

/** A plain-data picture of the state for before/after comparisons (the config holds functions). */
export function snapshotOf(state: ServerState): string {
  const { cfg: _cfg, log, ...rest } = state;
  return JSON.stringify({ ...rest, log: { ...log, entries: log.entries.slice(0, log.length) } });
}
