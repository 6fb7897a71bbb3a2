import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ServerId } from '@otra/protocol';
import { type ClientNode, connectClient } from './client.ts';
import { NODE_V8_FLAGS } from './v8-flags.ts';

const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url));

export interface NodeProcessOptions {
  readonly name: string;
  /** The shared cookie, passed as OTRA_COOKIE; or give `cookieFile`. */
  readonly cookie?: string;
  /** Passed as `--cookie-file`. */
  readonly cookieFile?: string;
  readonly dataDir: string;
  /** Link port; default 0 (a free one). */
  readonly port?: number;
  /** Serve the HTTP API on 127.0.0.1 at this port (0: a free one). */
  readonly httpPort?: number;
  /** Start no KV server (`--join`); default true: the cluster is started with `startCluster`. */
  readonly join?: boolean;
  readonly peers?: Readonly<Record<string, string>>;
  readonly electionTimeoutMs?: readonly [number, number];
  readonly tickMs?: number;
  readonly quiesceAfterTicks?: number;
  readonly trailingEntries?: number;
  /** Extra environment (e.g. `UV_THREADPOOL_SIZE`). */
  readonly env?: Readonly<Record<string, string>>;
  /** V8 flags for the node process; default `NODE_V8_FLAGS` (`[]` runs with V8's defaults). */
  readonly v8Flags?: readonly string[];
}

/** One `otra node` in its own OS process. */
export interface NodeProcess {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /** The HTTP API's URL, when it serves one. */
  readonly http: string | undefined;
  readonly pid: number;
  readonly child: ChildProcess;
  /** The last lines the process wrote to stderr (for failure reports). */
  readonly stderr: string[];
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `otra node` in a child process and resolves once it reported its port. The child stops
 * when this process exits, however it exits (its stdin is a pipe from us; see
 * `OTRA_STOP_ON_STDIN_END`), so a crashed test or benchmark leaves no node running.
 */
export async function spawnNodeProcess(
  options: NodeProcessOptions,
  timeoutMs = 30_000,
): Promise<NodeProcess> {
  const args = [
    ...(options.v8Flags ?? NODE_V8_FLAGS),
    '--import',
    'tsx',
    CLI,
    'node',
    '--name',
    options.name,
    '--data',
    options.dataDir,
  ];
  args.push('--listen', `127.0.0.1:${options.port ?? 0}`);
  if (options.httpPort !== undefined) args.push('--http', `127.0.0.1:${options.httpPort}`);
  if (options.join !== false) args.push('--join');
  if (options.cookieFile !== undefined) args.push('--cookie-file', options.cookieFile);
  for (const [name, url] of Object.entries(options.peers ?? {})) args.push('--peer', `${name}=${url}`);
  if (options.electionTimeoutMs !== undefined)
    args.push('--election-timeout', options.electionTimeoutMs.join(','));
  if (options.tickMs !== undefined) args.push('--tick', String(options.tickMs));
  if (options.quiesceAfterTicks !== undefined)
    args.push('--quiesce-after-ticks', String(options.quiesceAfterTicks));
  if (options.trailingEntries !== undefined) args.push('--trailing-entries', String(options.trailingEntries));
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      ...options.env,
      ...(options.cookie === undefined ? {} : { OTRA_COOKIE: options.cookie }),
      // the node stops when our end of its stdin closes: if this process dies, so do its nodes
      OTRA_STOP_ON_STDIN_END: '1',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr.push(line);
    if (stderr.length > 200) stderr.shift();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<{ url: string; port: number; http?: string | null }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`${options.name} did not start within ${timeoutMs} ms: ${stderr.slice(-5).join(' | ')}`),
      );
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { ready?: { url: string; port: number; http?: string | null } };
        if (msg.ready !== undefined) {
          clearTimeout(timer);
          resolve(msg.ready);
        }
      } catch {
        // not a control line
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(
        new Error(`${options.name} exited with ${code} before it was ready: ${stderr.slice(-5).join(' | ')}`),
      );
    });
  });
  return {
    name: options.name,
    url: ready.url,
    port: ready.port,
    http: ready.http ?? undefined,
    pid: child.pid as number,
    child,
    stderr,
    exited,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

export interface ProcessClusterOptions {
  readonly nodes: number;
  readonly cookie?: string;
  readonly electionTimeoutMs?: readonly [number, number];
  readonly tickMs?: number;
  readonly quiesceAfterTicks?: number;
  readonly trailingEntries?: number;
  readonly env?: Readonly<Record<string, string>>;
  /** V8 flags of every node; default `NODE_V8_FLAGS`. */
  readonly v8Flags?: readonly string[];
}

/**
 * N `otra node` processes on 127.0.0.1 (each with its own data dir under one temp dir) and a
 * client node in this process connected to all of them. `stop()` kills every process by pid and
 * removes the data.
 */
export class ProcessCluster {
  readonly dir: string;
  readonly nodes = new Map<string, NodeProcess>();
  client!: ClientNode;

  private constructor(
    readonly options: Required<Pick<ProcessClusterOptions, 'nodes' | 'cookie'>> & ProcessClusterOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'otra-cluster-'));
  }

  static async start(options: ProcessClusterOptions): Promise<ProcessCluster> {
    const cluster = new ProcessCluster({
      cookie: `cookie-${Math.random().toString(36).slice(2)}`,
      ...options,
    });
    try {
      for (let i = 1; i <= options.nodes; i++) await cluster.startNode(`n${i}`);
      cluster.client = await connectClient(cluster.peers(), { cookie: cluster.options.cookie });
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** name -> url of every running node. */
  peers(): Record<string, string> {
    return Object.fromEntries([...this.nodes.values()].map((n) => [n.name, n.url]));
  }

  /** Starts (or restarts) node `name`, connecting it to every other running node. */
  async startNode(name: string): Promise<NodeProcess> {
    const others = Object.fromEntries(Object.entries(this.peers()).filter(([n]) => n !== name));
    const proc = await spawnNodeProcess({
      name,
      cookie: this.options.cookie,
      dataDir: join(this.dir, name),
      peers: others,
      ...(this.options.electionTimeoutMs === undefined
        ? {}
        : { electionTimeoutMs: this.options.electionTimeoutMs }),
      ...(this.options.tickMs === undefined ? {} : { tickMs: this.options.tickMs }),
      ...(this.options.quiesceAfterTicks === undefined
        ? {}
        : { quiesceAfterTicks: this.options.quiesceAfterTicks }),
      ...(this.options.trailingEntries === undefined
        ? {}
        : { trailingEntries: this.options.trailingEntries }),
      ...(this.options.env === undefined ? {} : { env: this.options.env }),
      ...(this.options.v8Flags === undefined ? {} : { v8Flags: this.options.v8Flags }),
    });
    this.nodes.set(name, proc);
    if (this.client !== undefined) {
      this.client.transport.setPeer(name, proc.url);
      await this.client.transport.connect(name, { timeoutMs: 10_000 });
    }
    return proc;
  }

  /** SIGKILLs node `name` (its data stays for a restart). */
  async kill(name: string): Promise<void> {
    const proc = this.nodes.get(name);
    if (proc === undefined) return;
    this.nodes.delete(name);
    await proc.kill('SIGKILL');
  }

  ids(cluster: string): ServerId[] {
    return [...this.nodes.keys()].map((node) => ({ name: cluster, node }));
  }

  async stop(): Promise<void> {
    await this.client?.close().catch(() => undefined);
    await Promise.all([...this.nodes.values()].map((n) => n.kill('SIGKILL')));
    this.nodes.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
