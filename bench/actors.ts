/**
 * Actor runtime figures: one-way messages between two local actors (batched drain), call round
 * trips, spawn rate and memory per idle gen_server. Run: `pnpm exec tsx bench/actors.ts`.
 */

import { type GenServer, Node } from '@otra/actors';
import type { Pid } from '@otra/protocol';
import { gc, perSecond, report } from './support.ts';

const idle: GenServer<null, void> = { init: () => null };

async function oneWay(total: number): Promise<void> {
  const node = new Node({ name: 'bench' });
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => {
    done = r;
  });
  let received = 0;
  const sink = node.spawn<void>(
    {
      init: () => null,
      handleInfo: (_msg, state) => {
        if (++received === total) done();
        return state;
      },
    },
    undefined,
  );
  const msg = { type: 'bench.msg', payload: 1 };
  const chunk = 10_000;
  const source = node.spawn<Pid>(
    {
      init: (to) => to,
      handleCast: (left: number, to: Pid, ctx) => {
        for (let i = 0; i < chunk; i++) ctx.send(to, msg);
        if (left > chunk) ctx.cast(ctx.self, left - chunk);
        return to;
      },
    },
    sink,
  );
  const start = performance.now();
  node.cast(source, total);
  await finished;
  const ms = performance.now() - start;
  report('actors.send', { ops: perSecond(total, ms), messages: total });
}

async function calls(total: number, inFlight: number): Promise<void> {
  const node = new Node({ name: 'bench' });
  const echo = node.spawn<void>(
    { init: () => null, handleCall: (req: number, _from, state) => ({ reply: req, state }) },
    undefined,
  );
  const start = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++;
      await node.call(echo, next);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const ms = performance.now() - start;
  report('actors.call', { ops: perSecond(total, ms), in_flight: inFlight });
}

function spawns(total: number): void {
  const node = new Node({ name: 'bench' });
  const start = performance.now();
  for (let i = 0; i < total; i++) node.spawn(idle, undefined);
  const ms = performance.now() - start;
  report('actors.spawn', { ops: perSecond(total, ms), actors: total });
}

function memory(total: number): void {
  const node = new Node({ name: 'bench' });
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < total; i++) node.spawn(idle, undefined);
  gc();
  const after = process.memoryUsage().heapUsed;
  report('actors.memory', { bytes_per_idle_actor: Math.round((after - before) / total), actors: node.size });
}

await oneWay(2_000_000);
await oneWay(2_000_000);
await calls(300_000, 1);
await calls(1_000_000, 64);
spawns(300_000);
memory(100_000);
