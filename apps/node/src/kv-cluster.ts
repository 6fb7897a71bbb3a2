import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NodeProcess, spawnNodeProcess } from './process-cluster.ts';

/** Free TCP ports on 127.0.0.1, all held open at once so that they differ, then released. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

export interface KvClusterOptions {
  readonly nodes?: number;
  /** Where the nodes keep their data (`<dir>/<name>`) and the cookie; a temp dir (removed on stop) when absent. */
  readonly dir?: string;
  readonly electionTimeoutMs?: readonly [number, number];
  readonly tickMs?: number;
  /** Peer URL of `to` as configured on `from` (default: `to`'s own link URL); e.g. through a proxy. */
  readonly peerUrl?: (from: string, to: string, port: number) => string;
  readonly env?: Readonly<Record<string, string>>;
  /** V8 flags of every node; default `NODE_V8_FLAGS`. */
  readonly v8Flags?: readonly string[];
}

interface Slot {
  readonly name: string;
  readonly port: number;
  readonly httpPort: number;
}

/**
 * A KV service of N `otra node` processes on 127.0.0.1, started the way an operator deploys one:
 * every node gets the full peer list and a cookie file, bootstraps the `kv` cluster itself and
 * serves the HTTP API. Used by `otra demo` and the end-to-end tests; every process is killed by
 * pid in `stop()`.
 */
export class KvCluster {
  readonly nodes = new Map<string, NodeProcess>();
  readonly cookieFile: string;

  private constructor(
    readonly dir: string,
    private readonly ownsDir: boolean,
    private readonly slots: readonly Slot[],
    private readonly options: KvClusterOptions,
  ) {
    this.cookieFile = join(dir, 'cookie');
  }

  /** Starts every node (retrying with new ports if one was taken meanwhile). */
  static async start(options: KvClusterOptions = {}): Promise<KvCluster> {
    const count = options.nodes ?? 3;
    const ownsDir = options.dir === undefined;
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'otra-kv-'));
    mkdirSync(dir, { recursive: true });
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const ports = await freePorts(count * 2);
      const slots = Array.from({ length: count }, (_, i) => ({
        name: `n${i + 1}`,
        port: ports[i * 2] as number,
        httpPort: ports[i * 2 + 1] as number,
      }));
      const cluster = new KvCluster(dir, ownsDir, slots, options);
      writeFileSync(cluster.cookieFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
      try {
        await Promise.all(slots.map((slot) => cluster.startNode(slot.name)));
        return cluster;
      } catch (err) {
        lastError = err;
        await cluster.stop({ keepData: true });
        if (!String((err as Error)?.message).includes('already in use')) break;
      }
    }
    if (ownsDir) rmSync(dir, { recursive: true, force: true });
    throw lastError;
  }

  get names(): string[] {
    return this.slots.map((s) => s.name);
  }

  /** The link port of `name` (fixed for the cluster's life, so a restarted node keeps its address). */
  port(name: string): number {
    return this.slot(name).port;
  }

  /** The HTTP API of `name`. */
  http(name: string): string {
    return `http://127.0.0.1:${this.slot(name).httpPort}`;
  }

  private slot(name: string): Slot {
    const slot = this.slots.find((s) => s.name === name);
    if (slot === undefined) throw new Error(`no node ${name} in this cluster`);
    return slot;
  }

  /** Starts (or restarts, from its data) node `name` with its fixed ports and the full peer list. */
  async startNode(name: string): Promise<NodeProcess> {
    const slot = this.slot(name);
    const peers: Record<string, string> = {};
    for (const other of this.slots) {
      if (other.name === name) continue;
      peers[other.name] =
        this.options.peerUrl?.(name, other.name, other.port) ?? `ws://127.0.0.1:${other.port}`;
    }
    const proc = await spawnNodeProcess({
      name,
      cookieFile: this.cookieFile,
      dataDir: join(this.dir, name),
      port: slot.port,
      httpPort: slot.httpPort,
      join: false,
      peers,
      ...(this.options.electionTimeoutMs === undefined
        ? {}
        : { electionTimeoutMs: this.options.electionTimeoutMs }),
      ...(this.options.tickMs === undefined ? {} : { tickMs: this.options.tickMs }),
      ...(this.options.env === undefined ? {} : { env: this.options.env }),
      ...(this.options.v8Flags === undefined ? {} : { v8Flags: this.options.v8Flags }),
    });
    this.nodes.set(name, proc);
    return proc;
  }

  /** Sends `signal` (default SIGKILL) to node `name` and waits for it to exit; its data stays. */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.nodes.get(name);
    if (proc === undefined) return;
    this.nodes.delete(name);
    await proc.kill(signal);
  }

  /**
   * Stops every node: SIGTERM (an orderly stop), then SIGKILL for any still running after
   * `graceMs`. Removes the data unless the caller gave the dir or `keepData`.
   */
  async stop(options: { readonly graceMs?: number; readonly keepData?: boolean } = {}): Promise<void> {
    const procs = [...this.nodes.values()];
    this.nodes.clear();
    await Promise.all(
      procs.map(async (proc) => {
        const timer = setTimeout(() => void proc.kill('SIGKILL'), options.graceMs ?? 5000);
        await proc.kill('SIGTERM');
        clearTimeout(timer);
      }),
    );
    if (this.ownsDir && options.keepData !== true) rmSync(this.dir, { recursive: true, force: true });
  }
}
