import type { Pid } from '@otra/protocol';
import type { GenServer } from '../src/index.ts';
import { flushMicrotasks } from '../src/index.ts';

/** Lets every queued message and microtask run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await flushMicrotasks();
}

/** An actor that records every info message it gets into `seen`. */
export function recorder(seen: unknown[]): GenServer<null, void> {
  return {
    init: () => null,
    handleInfo: (msg, state) => {
      seen.push(msg);
      return state;
    },
  };
}

/** A worker that logs its lifecycle into `log` and exits with whatever reason it is cast. */
export function worker(name: string, log: string[]): GenServer<null, void, 'ping', string, { exit: string }> {
  return {
    init: () => {
      log.push(`start ${name}`);
      return null;
    },
    handleCall: (_req, _from, state) => ({ reply: `pong ${name}`, state }),
    handleCast: (msg, state, ctx) => {
      ctx.stop(msg.exit);
      return state;
    },
    terminate: () => {
      log.push(`stop ${name}`);
    },
  };
}

export function idOf(pid: Pid | undefined): number {
  if (pid === undefined) throw new Error('no pid');
  return pid.id;
}
