/**
 * Pure-core throughput: commands per second through a 3-server cluster of the real core in one
 * process, with a zero-latency network and a log writer that confirms every append at once. No
 * I/O: this is the ceiling the core itself sets. Prints one line per figure: `name key=value ...`.
 *
 *   pnpm exec tsx bench/core.ts
 */
import type { ServerId } from '@otra/protocol';
import {
  type CommandMsg,
  defineMachine,
  type Effect,
  handle,
  initServer,
  type Message,
  type Role,
  raftMachine,
  type ServerState,
  startServer,
} from '@otra/raft-core';
import { type Actor, createActor, initialTransition, type SnapshotFrom, transition } from 'xstate';

const counter = defineMachine<number, number, number>({
  init: () => 0,
  apply: (_meta, n, state) => [state + n, state + n],
});

interface Node {
  id: ServerId;
  role: Role;
  state: ServerState;
  chart: SnapshotFrom<typeof raftMachine> | null;
  actor: Actor<typeof raftMachine> | null;
}

type Driver = 'handle' | 'transition' | 'actor';

function run(opts: { batch: number; commands: number; mode: 'noreply' | 'notify'; driver: Driver }) {
  const ids: ServerId[] = ['a', 'b', 'c'].map((n) => ({ name: n, node: n }));
  const nodes = new Map<string, Node>();
  const queue: [string, Message][] = [];
  let head = 0;
  let notified = 0;
  const exec = (name: string, effects: readonly Effect[]) => {
    for (const e of effects) {
      switch (e.type) {
        case 'send_rpc':
          queue.push([e.to.name, e.rpc]);
          break;
        case 'log.append': {
          const last = e.entries[e.entries.length - 1]!;
          queue.push([name, { type: 'log.written', upTo: last.index, term: last.term }]);
          break;
        }
        case 'notify':
          notified += e.applied.length;
          break;
        default:
          break;
      }
    }
  };
  const step = (name: string, msg: Message) => {
    const n = nodes.get(name)!;
    if (n.actor !== null) {
      n.actor.send(msg);
      const ctx = n.actor.getSnapshot().context;
      n.role = ctx.role;
      n.state = ctx.server;
      exec(name, ctx.effects);
    } else if (n.chart !== null) {
      const [next] = transition(raftMachine, n.chart, msg);
      n.chart = next;
      n.role = next.context.role;
      n.state = next.context.server;
      exec(name, next.context.effects);
    } else {
      const r = handle(n.role, n.state, msg);
      n.role = r.role;
      n.state = r.state;
      exec(name, r.effects);
    }
  };
  const drain = () => {
    while (head < queue.length) {
      const [to, msg] = queue[head++]!;
      step(to, msg);
    }
    queue.length = 0;
    head = 0;
  };
  for (const id of ids) {
    const config = { id, initialMembers: ids, machine: counter, maxAppendEntriesBatch: 1024, maxInFlight: 8 };
    const recovered = { currentTerm: 0, votedFor: null, snapshot: null, entries: [] };
    if (opts.driver === 'transition') {
      const [snap] = initialTransition(raftMachine, { config, recovered });
      nodes.set(id.name, {
        id,
        role: snap.context.role,
        state: snap.context.server,
        chart: snap,
        actor: null,
      });
    } else if (opts.driver === 'actor') {
      const actor = createActor(raftMachine, { input: { config, recovered } }).start();
      const ctx = actor.getSnapshot().context;
      nodes.set(id.name, { id, role: ctx.role, state: ctx.server, chart: null, actor });
    } else {
      const r = startServer(initServer(config, recovered));
      nodes.set(id.name, { id, role: r.role, state: r.state, chart: null, actor: null });
    }
  }
  step('a', { type: 'election.timeout' });
  drain();
  if (nodes.get('a')!.role !== 'leader') throw new Error('no leader');
  const pid = { node: 'bench', id: 1, creation: 1 };
  let corr = 0;
  const batchOf = (): CommandMsg[] =>
    Array.from({ length: opts.batch }, () => ({
      type: 'command' as const,
      command: 1,
      reply:
        opts.mode === 'notify'
          ? { mode: 'notify' as const, to: pid, correlation: corr++ }
          : { mode: 'noreply' as const },
    }));
  const leader = nodes.get('a')!;
  const startApplied = leader.state.lastApplied;
  const t0 = performance.now();
  for (let sent = 0; sent < opts.commands; sent += opts.batch) {
    step('a', { type: 'commands', commands: batchOf() });
    drain();
  }
  const ms = performance.now() - t0;
  const applied = leader.state.lastApplied - startApplied;
  if (applied < opts.commands) throw new Error(`only ${applied} of ${opts.commands} applied`);
  if (opts.mode === 'notify' && notified < opts.commands) throw new Error(`only ${notified} notified`);
  return { opsPerSec: Math.round((applied / ms) * 1000), usPerOp: (ms * 1000) / applied };
}

function report(name: string, opts: Parameters<typeof run>[0]) {
  run({ ...opts, commands: Math.min(opts.commands, 50_000) }); // warm-up
  const r = run(opts);
  console.log(
    `${name} ops=${r.opsPerSec}/s batch=${opts.batch} mode=${opts.mode} driver=${opts.driver} ` +
      `us_per_op=${r.usPerOp.toFixed(2)} servers=3`,
  );
}

// The pure handlers, as a shell calling `handle` directly runs them.
report('core.throughput', { batch: 64, commands: 500_000, mode: 'noreply', driver: 'handle' });
report('core.throughput', { batch: 64, commands: 500_000, mode: 'notify', driver: 'handle' });
report('core.throughput', { batch: 1, commands: 50_000, mode: 'noreply', driver: 'handle' });
// The statechart run as an XState actor (a few µs per event on top of the handlers).
report('core.throughput', { batch: 64, commands: 300_000, mode: 'noreply', driver: 'actor' });
report('core.throughput', { batch: 1, commands: 20_000, mode: 'noreply', driver: 'actor' });
// The statechart through xstate's pure `transition` (~25 µs per event: meant for tests).
report('core.throughput', { batch: 64, commands: 100_000, mode: 'noreply', driver: 'transition' });
