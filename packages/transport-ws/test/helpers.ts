import type { GenServer } from '@otra/actors';
import { Node } from '@otra/actors';
import { startTransport, type Transport, type TransportOptions } from '../src/index.ts';

/** Polls `check` every 5 ms until it holds; fails after `ms`. */
export async function until(check: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A node with a transport on 127.0.0.1:0 and a log it records into. */
export async function startNode(
  name: string,
  options: Partial<TransportOptions> = {},
): Promise<{ node: Node; transport: Transport; logs: string[] }> {
  const node = new Node({ name });
  const logs: string[] = [];
  const transport = await startTransport(node, {
    cookie: 'test-cookie',
    ...options,
    log: (level, message) => logs.push(`${level}: ${message}`),
  });
  return { node, transport, logs };
}

/** Echoes calls, records infos and casts. */
export function echo(seen: unknown[]): GenServer<null, void> {
  return {
    init: () => null,
    handleCall: (request, _from, state) => ({ reply: { echo: request }, state }),
    handleCast: (msg, state) => {
      seen.push({ cast: msg });
      return state;
    },
    handleInfo: (msg, state) => {
      seen.push(msg);
      return state;
    },
  };
}
