/**
 * Node-to-node links between two processes on loopback, against raw `ws` + `cbor-x` with one
 * message per frame, measured in the same run:
 *
 *   links.oneway msgs=N/s        100 B messages from an actor's node to an actor on the other node
 *   links.call p50=..us p99=..us sequential `call` round trips
 *   raw.oneway msgs=N/s          one CBOR-encoded 100 B message per WebSocket frame
 *   raw.rtt p50=..us p99=..us    one request frame, one reply frame
 *
 * Each figure is the median of five alternating rounds (otra, raw, otra, raw, ...), since the
 * machine is shared and noisy. Run: `pnpm exec tsx bench/links.ts`.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type GenServer, Node } from '@otra/actors';
import type { Pid } from '@otra/protocol';
import { startTransport } from '@otra/transport-ws';
import { Decoder, Encoder } from 'cbor-x';
import WebSocket, { WebSocketServer } from 'ws';

const COOKIE = 'bench-cookie';
const PAYLOAD = 'x'.repeat(100);
const ONEWAY_MESSAGES = 150_000;
const RTT_CALLS = 3_000;
const ROUNDS = 5;

interface ServerInfo {
  url: string;
  rawUrl: string;
  sink: Pid;
  echo: Pid;
}

// ---- the far side: an otra node with a sink and an echo actor, and a raw ws server ------------

async function serve(): Promise<void> {
  const node = new Node({ name: 'far' });
  const transport = await startTransport(node, { cookie: COOKIE });
  const sink: GenServer<{ count: number }, void> = {
    init: () => ({ count: 0 }),
    handleInfo: (_msg, state) => {
      state.count++;
      return state;
    },
    handleCall: (_req, _from, state) => {
      const count = state.count;
      state.count = 0;
      return { reply: count, state };
    },
  };
  const echo: GenServer<null, void> = {
    init: () => null,
    handleCall: (request, _from, state) => ({ reply: request, state }),
  };
  const sinkPid = node.spawn(sink, undefined, { name: 'sink' });
  const echoPid = node.spawn(echo, undefined, { name: 'echo' });

  const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
  const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  wss.on('connection', (ws) => {
    let count = 0;
    ws.on('message', (data) => {
      const msg = decoder.decode(data as Buffer) as { t: string; id?: number; msg?: unknown };
      if (msg.t === 'send') count++;
      else if (msg.t === 'call') ws.send(encoder.encode({ t: 'reply', id: msg.id, value: msg.msg }));
      else if (msg.t === 'count') {
        ws.send(encoder.encode({ t: 'reply', id: msg.id, value: count }));
        count = 0;
      }
    });
  });
  const address = wss.address() as { port: number };
  const info: ServerInfo = {
    url: transport.url,
    rawUrl: `ws://127.0.0.1:${address.port}`,
    sink: sinkPid,
    echo: echoPid,
  };
  process.stdout.write(`${JSON.stringify(info)}\n`);
  createInterface({ input: process.stdin }).on('close', () => process.exit(0));
}

// ---- the near side ------------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function otraOneway(
  node: Node,
  transport: Awaited<ReturnType<typeof startTransport>>,
  sink: Pid,
  n: number,
) {
  const start = performance.now();
  const msg = { payload: PAYLOAD };
  for (let i = 0; i < n; ) {
    const status = node.send(sink, msg);
    if (status === 'ok') i++;
    else if (status === 'busy') await transport.whenWritable(sink.node);
    else throw new Error(`send ${status}`);
  }
  const received = await node.call<number>(sink, 'count', { timeoutMs: 60_000 });
  if (received !== n) throw new Error(`sink got ${received} of ${n}`);
  return n / ((performance.now() - start) / 1000);
}

async function otraCalls(node: Node, echo: Pid, n: number): Promise<number[]> {
  const samples: number[] = [];
  const request = { payload: PAYLOAD };
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await node.call(echo, request);
    samples.push((performance.now() - t0) * 1000);
  }
  return samples.sort((a, b) => a - b);
}

class RawClient {
  private readonly encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
  private readonly decoder = new Decoder({ useRecords: false, mapsAsObjects: true });
  private waiting: ((value: unknown) => void) | undefined;
  private nextId = 1;

  constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const reply = this.decoder.decode(data as Buffer) as { value: unknown };
      const w = this.waiting;
      this.waiting = undefined;
      w?.(reply.value);
    });
  }

  static async open(url: string): Promise<RawClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new RawClient(ws);
  }

  request(t: string, msg: unknown): Promise<unknown> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.ws.send(this.encoder.encode({ t, id: this.nextId++, msg }));
    });
  }

  /** One message per frame; waits for the socket to drain when it holds more than 1 MiB. */
  async oneway(n: number): Promise<number> {
    const start = performance.now();
    const msg = { t: 'send', msg: { payload: PAYLOAD } };
    for (let i = 0; i < n; i++) {
      this.ws.send(this.encoder.encode(msg));
      if (this.ws.bufferedAmount > 1024 * 1024) {
        while (this.ws.bufferedAmount > 256 * 1024) await new Promise((r) => setImmediate(r));
      }
    }
    const received = (await this.request('count', null)) as number;
    if (received !== n) throw new Error(`raw sink got ${received} of ${n}`);
    return n / ((performance.now() - start) / 1000);
  }

  async rtt(n: number): Promise<number[]> {
    const samples: number[] = [];
    const payload = { payload: PAYLOAD };
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await this.request('call', payload);
      samples.push((performance.now() - t0) * 1000);
    }
    return samples.sort((a, b) => a - b);
  }

  close(): void {
    this.ws.close();
  }
}

async function main(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--import', 'tsx', self, '--serve'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const info = await new Promise<ServerInfo>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('bench server did not start')), 20_000);
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', (line) => {
        clearTimeout(timer);
        resolve(JSON.parse(line) as ServerInfo);
      });
      child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
    });
    const node = new Node({ name: 'near' });
    const transport = await startTransport(node, { cookie: COOKIE, listen: false, peers: { far: info.url } });
    await transport.connect('far');
    const raw = await RawClient.open(info.rawUrl);

    // warm up both paths (JIT, socket buffers)
    await otraOneway(node, transport, info.sink, 20_000);
    await raw.oneway(20_000);
    await otraCalls(node, info.echo, 500);
    await raw.rtt(500);

    const linksOneway: number[] = [];
    const rawOneway: number[] = [];
    const linksCall: number[][] = [];
    const rawRtt: number[][] = [];
    for (let round = 0; round < ROUNDS; round++) {
      linksOneway.push(await otraOneway(node, transport, info.sink, ONEWAY_MESSAGES));
      rawOneway.push(await raw.oneway(ONEWAY_MESSAGES));
      linksCall.push(await otraCalls(node, info.echo, RTT_CALLS));
      rawRtt.push(await raw.rtt(RTT_CALLS));
    }
    const p = (runs: number[][], q: number) => Math.round(median(runs.map((s) => percentile(s, q))));
    const lo = median(linksOneway);
    const ro = median(rawOneway);
    console.log(`links.oneway msgs=${Math.round(lo)}/s`);
    console.log(`links.call p50=${p(linksCall, 0.5)}us p99=${p(linksCall, 0.99)}us`);
    console.log(`raw.oneway msgs=${Math.round(ro)}/s`);
    console.log(`raw.rtt p50=${p(rawRtt, 0.5)}us p99=${p(rawRtt, 0.99)}us`);
    console.log(
      `links.vs_raw oneway=${(lo / ro).toFixed(2)}x p50=${(p(linksCall, 0.5) / p(rawRtt, 0.5)).toFixed(2)}x`,
    );
    const frames = transport.stats().links[0];
    if (frames !== undefined) {
      console.log(`links.frames signals_per_frame=${(frames.signalsOut / frames.framesOut).toFixed(1)}`);
    }
    raw.close();
    await transport.close();
  } finally {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }
}

if (process.argv.includes('--serve')) await serve();
else await main();
