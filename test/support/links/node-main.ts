/**
 * A node in its own process, driven by a test over stdin/stdout (one JSON object per line).
 *
 * argv[2] is the JSON config (`NodeConfig`). Once listening it prints `{"ready": {...}}` with its
 * port; then it answers each request line `{id, cmd, ...}` with `{id, ok: value}` or
 * `{id, error}`, and reports asynchronous happenings as `{"event": ...}`. Transport logs go to stderr.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { type GenServer, Node, type SystemMessage } from '@otra/actors';
import type { Pid } from '@otra/protocol';
import { startTransport, type TransportOptions } from '@otra/transport-ws';

export interface NodeConfig {
  name: string;
  cookie: string;
  peers?: Record<string, string>;
  tls?: { certFile: string; keyFile: string; caFile: string };
  maxPayload?: number;
  tickMs?: number;
  sendBufferBytes?: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as NodeConfig;
const node = new Node({ name: config.name });
const options: TransportOptions = {
  cookie: config.cookie,
  peers: config.peers ?? {},
  reconnect: { initialMs: 50, maxMs: 500 },
  log: (level, message) => process.stderr.write(`[${config.name}] ${level}: ${message}\n`),
  ...(config.maxPayload === undefined ? {} : { maxPayload: config.maxPayload }),
  ...(config.tickMs === undefined ? {} : { tickMs: config.tickMs }),
  ...(config.sendBufferBytes === undefined ? {} : { sendBufferBytes: config.sendBufferBytes }),
  ...(config.tls === undefined
    ? {}
    : {
        tls: {
          cert: readFileSync(config.tls.certFile),
          key: readFileSync(config.tls.keyFile),
          ca: readFileSync(config.tls.caFile),
        },
      }),
};
const transport = await startTransport(node, options);

function emit(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** Answers calls with `{echo, node}`; reports casts and infos as events. */
const echo: GenServer<null, void> = {
  init: () => null,
  handleCall: (request, _from, state) => ({ reply: { echo: request, node: config.name }, state }),
  handleCast: (msg, state) => {
    emit({ event: 'cast', msg });
    return state;
  },
  handleInfo: (msg, state) => {
    emit({ event: 'info', msg });
    return state;
  },
};

interface Collected {
  count: number;
  next: number;
  outOfOrder: number;
}
const collected = new Map<string, Collected>();

/** Counts `{seq}` messages and how many arrived out of order. */
const collector: GenServer<Collected, string> = {
  init: (name) => {
    const state = { count: 0, next: 0, outOfOrder: 0 };
    collected.set(name, state);
    return state;
  },
  handleInfo: (msg, state) => {
    const seq = (msg as { seq?: number }).seq;
    state.count++;
    if (seq !== state.next) state.outOfOrder++;
    state.next = (seq ?? state.next) + 1;
    return state;
  },
};

/** Monitors a pid and the node it lives on, and reports what happens to it. */
const watcher: GenServer<{ since: number }, Pid> = {
  init: (pid, ctx) => {
    ctx.monitor(pid);
    ctx.monitorNode(pid.node);
    return { since: Date.now() };
  },
  handleInfo: (msg, state) => {
    const m = msg as SystemMessage;
    emit({ event: m.type, msg: m, at: Date.now() });
    return state;
  },
};

type Request = { id: number; cmd: string } & Record<string, unknown>;

async function handle(req: Request): Promise<unknown> {
  switch (req.cmd) {
    case 'spawnEcho':
      return node.spawn(echo, undefined, { name: req.name as string });
    case 'collector':
      return node.spawn(collector, req.name as string, { name: req.name as string });
    case 'collected':
      return collected.get(req.name as string) ?? null;
    case 'call':
      return node.call(req.dest as Pid, req.request, { timeoutMs: (req.timeoutMs as number) ?? 5000 });
    case 'cast':
      return node.cast(req.dest as Pid, req.msg);
    case 'sendSeq': {
      // one sender, `count` messages in order; waits for room on `busy` so none is lost
      const dest = req.dest as Pid;
      const count = req.count as number;
      let busy = 0;
      for (let i = 0; i < count; ) {
        const status = node.send(dest, { seq: i });
        if (status === 'ok') i++;
        else if (status === 'busy') {
          busy++;
          await transport.whenWritable(dest.node);
        } else throw new Error(`send ${i} ${status}`);
      }
      return { sent: count, busy };
    }
    case 'watch':
      return node.spawn(watcher, req.pid as Pid);
    case 'connect':
      if (typeof req.url === 'string') transport.setPeer(req.node as string, req.url);
      await transport.connect(req.node as string, { timeoutMs: (req.timeoutMs as number) ?? 5000 });
      return true;
    case 'peers':
      return transport.peers();
    case 'stats':
      return transport.stats();
    case 'alive':
      return { actors: node.size, creation: node.creation };
    default:
      throw new Error(`unknown command ${req.cmd}`);
  }
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let req: Request;
  try {
    req = JSON.parse(line) as Request;
  } catch {
    return;
  }
  handle(req).then(
    (value) => emit({ id: req.id, ok: value ?? null }),
    (err: unknown) =>
      emit({
        id: req.id,
        error: err instanceof Error ? { name: err.name, message: err.message } : { message: String(err) },
      }),
  );
});
// the test closing stdin (or dying) ends the node
lines.on('close', () => {
  void transport.close().then(() => process.exit(0));
});

emit({ ready: { name: config.name, port: transport.port, url: transport.url, creation: node.creation } });
