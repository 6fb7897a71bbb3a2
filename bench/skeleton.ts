/**
 * The bare replication skeleton that `cluster.ts`'s targets were set against, measured on this
 * box in the same hour: three node processes and this process as the client, `ws` + `cbor-x` +
 * one `fdatasync` per batch, and no Raft logic (no terms, elections, checks or recovery). The
 * leader takes the client's commands (one per frame), appends each event-loop turn's commands
 * to its file as one write and sends them to both followers as one frame, encoded once; a
 * follower writes the bytes it received and acknowledges what is durable; the leader commits
 * what a majority holds, applies it to a `Map` and answers each command in a frame of its own.
 * One write and sync is in flight per process at a time; what arrives meanwhile goes into the
 * next one. Same workload as `cluster.ts`: puts of a 100 B value to `key-%012d` over 10,000 keys.
 *
 *   pnpm exec tsx bench/skeleton.ts [latency] [throughput]
 *
 * Knobs (env): MEASURE_S (10), WARMUP_S (2), IN_FLIGHT ("64,1024"). The nodes get the same V8
 * flags as `cluster.ts`'s (`benchV8Flags`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fdatasync, mkdirSync, mkdtempSync, openSync, rmSync, writev } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { decode, encode } from 'cbor-x';
import { WebSocket, WebSocketServer } from 'ws';
import { benchV8Flags, percentile, report } from './support.ts';

const MEASURE_S = Number(process.env.MEASURE_S ?? 10);
const WARMUP_S = Number(process.env.WARMUP_S ?? 2);
const IN_FLIGHT = (process.env.IN_FLIGHT ?? '64,1024').split(',').map(Number);
const VALUE = 'v'.repeat(100);
const STARTUP_MS = 10_000;

/** What a node process reports when asked (a `stats` line on its stdin). */
interface SkeletonStats {
  syncs: number;
  entries: number;
  syncMicros: number;
  cpuUs: number;
}

/**
 * An append-only file with one write + `fdatasync` in flight at a time: what is appended while
 * one runs goes into the next, as one `writev`.
 */
class SyncedFile {
  private pending: Uint8Array[] = [];
  private pendingLast = 0;
  private busy = false;
  syncs = 0;
  entries = 0;
  /** Time from each `writev` to its `fdatasync`'s callback, summed. */
  syncMicros = 0;
  private durable = 0;

  constructor(
    private readonly fd: number,
    private readonly onDurable: (last: number) => void,
  ) {}

  append(bytes: Uint8Array, first: number, last: number): void {
    this.pending.push(bytes);
    this.pendingLast = last;
    this.entries += last - first + 1;
    if (!this.busy) this.flush();
  }

  private flush(): void {
    const buffers = this.pending;
    const last = this.pendingLast;
    this.pending = [];
    this.busy = true;
    const started = performance.now();
    writev(this.fd, buffers, (error) => {
      if (error !== null) throw error;
      fdatasync(this.fd, (syncError) => {
        if (syncError !== null) throw syncError;
        this.busy = false;
        this.syncs++;
        this.syncMicros += Math.round((performance.now() - started) * 1000);
        this.durable = last;
        this.onDurable(this.durable);
        if (this.pending.length > 0) this.flush();
      });
    });
  }
}

/** Answers `stats` lines on stdin with one JSON line on stdout. */
function serveStats(file: () => SyncedFile | undefined): void {
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line !== 'stats') return;
    const cpu = process.cpuUsage();
    const f = file();
    const stats: SkeletonStats = {
      syncs: f?.syncs ?? 0,
      entries: f?.entries ?? 0,
      syncMicros: f?.syncMicros ?? 0,
      cpuUs: cpu.user + cpu.system,
    };
    process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
  });
}

/**
 * Corks `socket` until the end of this turn on its first call in a turn: every frame sent in a
 * turn leaves in one write (each is still a frame of its own).
 */
function corkPerTurn(socket: Socket): () => void {
  let corked = false;
  return () => {
    if (corked) return;
    corked = true;
    socket.cork();
    queueMicrotask(() => {
      corked = false;
      socket.uncork();
    });
  };
}

function listen(): Promise<WebSocketServer> {
  return new Promise((resolve, reject) => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

/** A client connection and the socket under it. */
interface Connection {
  ws: WebSocket;
  socket: Socket;
}

function connect(port: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    let socket: Socket | undefined;
    ws.once('upgrade', (response) => {
      socket = response.socket;
    });
    ws.once('open', () => (socket === undefined ? reject(new Error('no socket')) : resolve({ ws, socket })));
    ws.once('error', reject);
  });
}

function portOf(server: WebSocketServer): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error(`unexpected address ${address}`);
  return address.port;
}

/** A follower: writes each batch's bytes as received and acknowledges the durable index. */
async function runFollower(dir: string): Promise<void> {
  let file: SyncedFile | undefined;
  serveStats(() => file);
  const server = await listen();
  server.on('connection', (leader) => {
    file = new SyncedFile(openSync(join(dir, 'log'), 'a'), (last) => leader.send(encode(last)));
    leader.on('message', (data: Buffer) => {
      const [first, last, bytes] = decode(data) as [number, number, Uint8Array];
      file?.append(bytes, first, last);
    });
  });
  process.stdout.write(`port ${portOf(server)}\n`);
}

interface Client {
  ws: WebSocket;
  cork: () => void;
}

/** The leader: batches each turn's commands, replicates them, commits on a majority. */
async function runLeader(dir: string, followerPorts: number[]): Promise<void> {
  const followers = (await Promise.all(followerPorts.map(connect))).map((c) => c.ws);
  const state = new Map<string, string>();
  // The log not yet applied: entry `applied + 1 + k` is at `head + k`.
  const ids: number[] = [];
  const clients: Client[] = [];
  const commands: [string, string][] = [];
  let head = 0;
  let lastIndex = 0;
  let applied = 0;
  let batchFirst = 0;
  let flushQueued = false;
  const matched = [0, 0];
  let ownDurable = 0;

  const advance = (): void => {
    const sorted = [ownDurable, matched[0] as number, matched[1] as number].sort((a, b) => a - b);
    const commit = sorted[1] as number;
    while (applied < commit) {
      applied++;
      const [k, v] = commands[head] as [string, string];
      state.set(k, v);
      const client = clients[head] as Client;
      client.cork();
      client.ws.send(encode(ids[head]));
      head++;
    }
    if (head > 4096 && head * 2 > ids.length) {
      ids.splice(0, head);
      clients.splice(0, head);
      commands.splice(0, head);
      head = 0;
    }
  };
  const file = new SyncedFile(openSync(join(dir, 'log'), 'a'), (last) => {
    ownDurable = last;
    advance();
  });
  serveStats(() => file);
  followers.forEach((ws, f) => {
    ws.on('message', (data: Buffer) => {
      matched[f] = decode(data) as number;
      advance();
    });
  });
  const flush = (): void => {
    flushQueued = false;
    const first = batchFirst;
    const batch = commands.slice(head + (first - applied - 1));
    const bytes = encode(batch);
    const frame = encode([first, lastIndex, bytes]);
    for (const ws of followers) ws.send(frame);
    file.append(bytes, first, lastIndex);
  };
  const server = await listen();
  server.on('connection', (ws, request) => {
    const client: Client = { ws, cork: corkPerTurn(request.socket) };
    ws.on('message', (data: Buffer) => {
      const [id, k, v] = decode(data) as [number, string, string];
      lastIndex++;
      ids.push(id);
      clients.push(client);
      commands.push([k, v]);
      if (!flushQueued) {
        flushQueued = true;
        batchFirst = lastIndex;
        queueMicrotask(flush);
      }
    });
  });
  process.stdout.write(`port ${portOf(server)}\n`);
}

/** One node process, its stdout read line by line. */
class NodeProcess {
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;

  constructor(
    readonly role: 'leader' | 'follower',
    readonly child: ChildProcess,
  ) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.lines.push(line);
      this.waiter?.();
    });
  }

  static spawn(role: 'leader' | 'follower', args: string[]): NodeProcess {
    const file = fileURLToPath(import.meta.url);
    const child = spawn(process.execPath, [...benchV8Flags(), '--import', 'tsx', file, role, ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    return new NodeProcess(role, child);
  }

  /** The next line starting with `prefix`, without it; fails after STARTUP_MS. */
  async line(prefix: string): Promise<string> {
    const deadline = Date.now() + STARTUP_MS;
    for (;;) {
      const i = this.lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return (this.lines.splice(i, 1)[0] as string).slice(prefix.length);
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null) throw new Error(`${this.role}: no '${prefix}' line`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async stats(): Promise<SkeletonStats> {
    this.child.stdin!.write('stats\n');
    return JSON.parse(await this.line('stats ')) as SkeletonStats;
  }
}

async function withSkeleton<T>(
  fn: (leader: NodeProcess, nodes: NodeProcess[], client: Connection) => Promise<T>,
) {
  const dir = mkdtempSync(join(tmpdir(), 'otra-skeleton-'));
  const nodes: NodeProcess[] = [];
  const killAll = (): void => {
    for (const n of nodes)
      if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  let client: WebSocket | undefined;
  try {
    for (const name of ['n1', 'n2', 'n3']) mkdirSync(join(dir, name));
    const followers = ['n2', 'n3'].map((name) => NodeProcess.spawn('follower', [join(dir, name)]));
    nodes.push(...followers);
    const ports = await Promise.all(followers.map((f) => f.line('port ')));
    const leader = NodeProcess.spawn('leader', [join(dir, 'n1'), ...ports]);
    nodes.unshift(leader);
    const port = await leader.line('port ');
    const connected = await connect(Number(port));
    client = connected.ws;
    return await fn(leader, nodes, connected);
  } finally {
    client?.terminate();
    killAll();
    process.removeListener('exit', killAll);
    await Promise.all(
      nodes.map((n) =>
        n.child.exitCode !== null || n.child.signalCode !== null
          ? undefined
          : new Promise((resolve) => n.child.once('exit', resolve)),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  }
}

function key(): string {
  return `key-${String(Math.floor(Math.random() * 10_000)).padStart(12, '0')}`;
}

/** Sends commands on `client` and calls `onReply(id, ms since sent)` for each answer. */
function commandSender(
  { ws: client, socket }: Connection,
  onReply: (id: number, ms: number) => void,
): () => number {
  const cork = corkPerTurn(socket);
  const sentAt = new Map<number, number>();
  let next = 0;
  client.on('message', (data: Buffer) => {
    const id = decode(data) as number;
    const t = sentAt.get(id);
    sentAt.delete(id);
    if (t !== undefined) onReply(id, performance.now() - t);
  });
  return () => {
    const id = next++;
    sentAt.set(id, performance.now());
    cork();
    client.send(encode([id, key(), VALUE]));
    return id;
  };
}

async function latency(): Promise<void> {
  await withSkeleton(async (_leader, _nodes, client) => {
    let resolveReply: ((ms: number) => void) | undefined;
    const send = commandSender(client, (_id, ms) => resolveReply?.(ms));
    const one = () =>
      new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('skeleton: no reply in 5 s')), 5_000);
        resolveReply = (ms) => {
          clearTimeout(timer);
          resolve(ms);
        };
        send();
      });
    for (let i = 0; i < 100; i++) await one();
    const samples: number[] = [];
    for (let i = 0; i < 2000; i++) samples.push(await one());
    report('skeleton.latency', {
      p50: `${percentile(samples, 50).toFixed(2)}ms`,
      p99: `${percentile(samples, 99).toFixed(2)}ms`,
      commands: samples.length,
    });
  });
}

async function throughput(inFlight: number): Promise<void> {
  await withSkeleton(async (_leader, nodes, client) => {
    const samples: number[] = [];
    let committed = 0;
    let measuring = false;
    const send = commandSender(client, (_id, ms) => {
      if (measuring) {
        committed++;
        samples.push(ms);
      }
      send();
    });
    for (let i = 0; i < inFlight; i++) send();
    await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
    const before = await Promise.all(nodes.map((n) => n.stats()));
    measuring = true;
    const t0 = performance.now();
    const clientCpu0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, MEASURE_S * 1000));
    measuring = false;
    const clientCpu = process.cpuUsage(clientCpu0);
    const elapsed = performance.now() - t0;
    const after = await Promise.all(nodes.map((n) => n.stats()));
    if (committed === 0) throw new Error('skeleton: nothing committed');
    report('skeleton.throughput', {
      in_flight: inFlight,
      commits: `${Math.round((committed * 1000) / elapsed)}/s`,
      p50: `${percentile(samples, 50).toFixed(2)}ms`,
      p99: `${percentile(samples, 99).toFixed(2)}ms`,
      client_cpu_us_per_commit: ((clientCpu.user + clientCpu.system) / committed).toFixed(1),
    });
    nodes.forEach((n, i) => {
      const a = after[i] as SkeletonStats;
      const b = before[i] as SkeletonStats;
      const syncs = a.syncs - b.syncs;
      const cpuUs = a.cpuUs - b.cpuUs;
      report('skeleton.node', {
        in_flight: inFlight,
        node: `n${i + 1}`,
        role: n.role,
        fsyncs: `${Math.round((syncs * 1000) / elapsed)}/s`,
        entries_per_fsync: syncs === 0 ? 0 : ((a.entries - b.entries) / syncs).toFixed(1),
        sync_avg: syncs === 0 ? '-' : `${((a.syncMicros - b.syncMicros) / syncs / 1000).toFixed(2)}ms`,
        cpu: `${Math.round((cpuUs / 1000 / elapsed) * 100)}%`,
        cpu_us_per_commit: (cpuUs / committed).toFixed(1),
      });
    });
  });
}

const [role, ...rest] = process.argv.slice(2);
if (role === 'leader') {
  await runLeader(rest[0] as string, rest.slice(1).map(Number));
} else if (role === 'follower') {
  await runFollower(rest[0] as string);
} else {
  const wanted = new Set(process.argv.slice(2));
  const all = wanted.size === 0;
  if (all || wanted.has('latency')) await latency();
  if (all || wanted.has('throughput')) for (const n of IN_FLIGHT) await throughput(n);
}
