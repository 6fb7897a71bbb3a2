/**
 * HTTP KV figures: otra's KV HTTP API against etcd 3.4's v3 JSON gateway, same workload, same run.
 * Each system is 3 durable members on 127.0.0.1 in child processes (otra: `KvCluster`, RocksDB;
 * etcd: 3 `etcd` processes, each with its own temp data dir); this process is the load generator
 * (undici pools of keep-alive connections). Puts only: key `key-%012d` (16 B) uniform over 10,000
 * keys, a 100 B value, sent to the leader (otra: `GET /status`; etcd: `POST /v3/maintenance/status`).
 *
 *   pnpm exec tsx bench/http-kv.ts
 *
 * Figures, for otra then etcd:
 *   http_kv.latency     1 client, sequential: LATENCY_WARMUP puts, then LATENCY_N timed puts
 *   http_kv.throughput  IN_FLIGHT requests in flight (closed loop): WARMUP_S, then MEASURE_S timed
 *   http_kv.summary     throughput ratio otra/etcd and the p50s (targets: >= 3x, a lower p50)
 * Every request answered with a non-2xx status or failed is counted (`non_2xx`, `errors`), never
 * in the latency samples nor in puts/s.
 *
 * Knobs (env):
 *   HTTP_KV_SYSTEMS         otra,etcd   which systems, in this order
 *   HTTP_KV_MEASURE_S       10          timed seconds of the throughput figure
 *   HTTP_KV_WARMUP_S        2           warm-up seconds before it
 *   HTTP_KV_LATENCY_N       2000        timed sequential puts
 *   HTTP_KV_LATENCY_WARMUP  100         sequential warm-up puts
 *   HTTP_KV_IN_FLIGHT       64          requests in flight for the throughput figure
 *   HTTP_KV_ETCD_BIN        the etcd binary (default /usr/bin/etcd, else `etcd` on PATH)
 *   OTRA_CPU_PROFILE        a directory: each otra node writes a CPU profile there when it stops
 *   V8_DEFAULTS=1           run the otra nodes without `NODE_V8_FLAGS` (V8's default tiering)
 * A smoke run: HTTP_KV_MEASURE_S=1 HTTP_KV_WARMUP_S=1 HTTP_KV_LATENCY_N=200 pnpm exec tsx bench/http-kv.ts
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Agent, Pool, request } from 'undici';
import { freePorts, KvCluster } from '../apps/node/src/kv-cluster.ts';
import { benchV8Flags, percentile, report } from './support.ts';

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number >= 0, got ${raw}`);
  return value;
};

const SYSTEMS = (process.env.HTTP_KV_SYSTEMS ?? 'otra,etcd')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0);
const MEASURE_S = num('HTTP_KV_MEASURE_S', 10);
const WARMUP_S = num('HTTP_KV_WARMUP_S', 2);
const LATENCY_N = Math.floor(num('HTTP_KV_LATENCY_N', 2000));
const LATENCY_WARMUP = Math.floor(num('HTTP_KV_LATENCY_WARMUP', 100));
const IN_FLIGHT = Math.max(1, Math.floor(num('HTTP_KV_IN_FLIGHT', 64)));
const KEYS = 10_000;
const VALUE = 'v'.repeat(100);
const VALUE_B64 = Buffer.from(VALUE).toString('base64');
/** Per request: an answer later than this is an error (undici's headers/body timeouts). */
const REQUEST_TIMEOUT_MS = 10_000;
/** Hard cap on requests per figure, on top of the deadlines. */
const MAX_REQUESTS = 50_000_000;

for (const s of SYSTEMS)
  if (s !== 'otra' && s !== 'etcd') throw new Error(`HTTP_KV_SYSTEMS: unknown system ${s} (otra, etcd)`);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function key(): string {
  return `key-${String(Math.floor(Math.random() * KEYS)).padStart(12, '0')}`;
}

/** How one system takes a put over HTTP. */
interface Target {
  readonly system: 'otra' | 'etcd';
  /** The leader's base URL and its name in the system. */
  readonly origin: string;
  readonly leader: string;
  readonly method: 'PUT' | 'POST';
  path(key: string): string;
  body(key: string): string;
}

const otraTarget = (origin: string, leader: string): Target => ({
  system: 'otra',
  origin,
  leader,
  method: 'PUT',
  path: (k) => `/kv/${k}`,
  body: () => JSON.stringify({ value: VALUE }),
});

const etcdTarget = (origin: string, leader: string): Target => ({
  system: 'etcd',
  origin,
  leader,
  method: 'POST',
  path: () => '/v3/kv/put',
  body: (k) => JSON.stringify({ key: Buffer.from(k).toString('base64'), value: VALUE_B64 }),
});

const JSON_HEADERS = { 'content-type': 'application/json' };

/** Counts of one figure: latencies of the 2xx answers, the rest by status or error. */
class Tally {
  readonly samples: number[] = [];
  readonly statuses = new Map<number, number>();
  errors = 0;
  firstProblem: string | undefined;

  get non2xx(): number {
    let n = 0;
    for (const count of this.statuses.values()) n += count;
    return n;
  }

  problem(text: string): void {
    this.firstProblem ??= text.replace(/\s+/g, ' ').slice(0, 200);
  }

  /** The figures every line carries about failures (and the first failure seen, if any). */
  failures(): Record<string, string | number> {
    const out: Record<string, string | number> = { non_2xx: this.non2xx, errors: this.errors };
    if (this.statuses.size > 0)
      out.statuses = [...this.statuses].map(([status, count]) => `${status}:${count}`).join(',');
    if (this.firstProblem !== undefined) out.first_problem = JSON.stringify(this.firstProblem);
    return out;
  }
}

/** One put; true on a 2xx answer, else counted in `tally` as a non-2xx status or an error. */
async function put(pool: Pool, target: Target, tally: Tally, count: boolean): Promise<boolean> {
  const k = key();
  try {
    const res = await pool.request({
      path: target.path(k),
      method: target.method,
      headers: JSON_HEADERS,
      body: target.body(k),
    });
    const text = await res.body.text();
    if (res.statusCode >= 200 && res.statusCode < 300) return true;
    if (count) {
      tally.statuses.set(res.statusCode, (tally.statuses.get(res.statusCode) ?? 0) + 1);
      tally.problem(`${res.statusCode} ${text}`);
    }
    return false;
  } catch (err) {
    if (count) {
      tally.errors++;
      tally.problem(String((err as Error)?.message ?? err));
    }
    return false;
  }
}

function newPool(origin: string, connections: number): Pool {
  return new Pool(origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
    connect: { timeout: 5_000 },
  });
}

interface Result {
  readonly latencyP50?: number;
  readonly throughput?: number;
  readonly loadedP50?: number;
}

async function latency(target: Target): Promise<number> {
  const pool = newPool(target.origin, 1);
  try {
    const warm = new Tally();
    for (let i = 0; i < LATENCY_WARMUP; i++) if (!(await put(pool, target, warm, true))) await sleep(10);
    const tally = new Tally();
    const deadline = Date.now() + Math.max(60_000, LATENCY_N * 50);
    for (let i = 0; i < LATENCY_N && Date.now() < deadline; i++) {
      const t = performance.now();
      if (await put(pool, target, tally, true)) tally.samples.push(performance.now() - t);
      else await sleep(10);
    }
    const p50 = percentile(tally.samples, 50);
    report('http_kv.latency', {
      system: target.system,
      clients: 1,
      p50_ms: p50.toFixed(2),
      p99_ms: percentile(tally.samples, 99).toFixed(2),
      n: tally.samples.length,
      ...tally.failures(),
      warmup_failures: warm.non2xx + warm.errors,
    });
    return p50;
  } finally {
    await pool.close();
  }
}

async function throughput(target: Target): Promise<{ rate: number; p50: number }> {
  const pool = newPool(target.origin, IN_FLIGHT);
  try {
    const tally = new Tally();
    const measureFrom = performance.now() + WARMUP_S * 1000;
    const measureTo = measureFrom + MEASURE_S * 1000;
    let sent = 0;
    // closed loop: each worker sends its next put when the last one is answered; a put counts
    // (puts/s and latency) when its answer arrives inside the timed window
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        for (let i = 0; i < MAX_REQUESTS && sent < MAX_REQUESTS; i++) {
          const t = performance.now();
          if (t >= measureTo) break;
          sent++;
          const ok = await put(pool, target, tally, t >= measureFrom);
          const done = performance.now();
          if (ok && done >= measureFrom && done <= measureTo) tally.samples.push(done - t);
          if (!ok) await sleep(10);
        }
      }),
    );
    const rate = (tally.samples.length * 1000) / (measureTo - measureFrom);
    const p50 = percentile(tally.samples, 50);
    report('http_kv.throughput', {
      system: target.system,
      in_flight: IN_FLIGHT,
      puts_per_s: Math.round(rate),
      p50_ms: p50.toFixed(2),
      p99_ms: percentile(tally.samples, 99).toFixed(2),
      n: tally.samples.length,
      seconds: MEASURE_S,
      ...tally.failures(),
    });
    return { rate, p50 };
  } finally {
    await pool.close();
  }
}

/** Control requests (status, health): their own dispatcher, closed at the end. */
const control = new Agent({ headersTimeout: 3_000, bodyTimeout: 3_000, connect: { timeout: 2_000 } });

async function json(url: string, method: 'GET' | 'POST' = 'GET', body?: unknown): Promise<unknown> {
  const res = await request(url, {
    method,
    dispatcher: control,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: JSON_HEADERS }),
  });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${text}`);
  return JSON.parse(text) as unknown;
}

/**
 * Runs both figures against whatever `target()` finds, one leader lookup per figure;
 * `explain` runs when the leader changed (to print what the members logged).
 */
async function figures(findTarget: () => Promise<Target>, explain?: () => Promise<void>): Promise<Result> {
  const first = await findTarget();
  const latencyP50 = await latency(first);
  const second = await findTarget();
  if (second.leader !== first.leader)
    report('http_kv.leader_changed', { system: first.system, from: first.leader, to: second.leader });
  const { rate, p50 } = await throughput(second);
  const after = await findTarget().catch(() => undefined);
  report('http_kv.leader', {
    system: first.system,
    leader: second.leader,
    after: after?.leader ?? 'unknown',
  });
  if (second.leader !== first.leader || after?.leader !== second.leader) await explain?.();
  return { latencyP50, throughput: rate, loadedP50: p50 };
}

// ---- every child process we start is killed by pid on exit, even on an error or a signal

const livePids = new Set<number>();
const liveDirs = new Set<string>();
process.on('exit', () => {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

// ---- otra

async function otraLeader(cluster: KvCluster): Promise<Target> {
  const deadline = Date.now() + 30_000;
  let last = 'no answer';
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    for (const name of cluster.names) {
      try {
        const s = (await json(`${cluster.http(name)}/status`)) as { role?: string; leader?: string };
        if (s.role === 'leader' && s.leader === name) return otraTarget(cluster.http(name), name);
        last = `${name}: role=${s.role} leader=${s.leader}`;
      } catch (err) {
        last = `${name}: ${(err as Error).message}`;
      }
    }
    await sleep(100);
  }
  throw new Error(`no otra leader within 30 s (${last})`);
}

async function otra(): Promise<Result> {
  const profile = process.env.OTRA_CPU_PROFILE;
  const cluster = await KvCluster.start({
    nodes: 3,
    ...(profile === undefined || profile === '' ? {} : { env: { OTRA_CPU_PROFILE: profile } }),
    v8Flags: benchV8Flags(),
  });
  liveDirs.add(cluster.dir);
  const pids = [...cluster.nodes.values()].map((n) => n.pid);
  for (const pid of pids) livePids.add(pid);
  try {
    // a leader change under load is worth knowing about: what the members logged goes to stderr
    const explain = async (): Promise<void> => {
      for (const node of cluster.nodes.values()) {
        const status = (await json(`${cluster.http(node.name)}/status`).catch(() => ({}))) as {
          role?: string;
          term?: number;
        };
        process.stderr.write(`${node.name}: now ${status.role} in term ${status.term}\n`);
        for (const line of node.stderr)
          if (!/handshake|link up|superseded|simultaneous/.test(line))
            process.stderr.write(`${node.name}: ${line}\n`);
      }
    };
    return await figures(() => otraLeader(cluster), explain);
  } finally {
    await cluster.stop();
    for (const pid of pids) livePids.delete(pid);
    liveDirs.delete(cluster.dir);
  }
}

// ---- etcd

function etcdBinary(): string | undefined {
  // an explicit binary is the only one tried (so HTTP_KV_ETCD_BIN=/nonexistent tests the skip)
  const explicit = process.env.HTTP_KV_ETCD_BIN;
  const candidates =
    explicit !== undefined && explicit !== ''
      ? [explicit]
      : ['/usr/bin/etcd', ...(process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'etcd'))];
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // next
    }
  }
  return undefined;
}

interface EtcdMember {
  readonly name: string;
  readonly client: string;
  readonly child: ChildProcess;
  readonly stderr: string[];
  readonly exited: Promise<void>;
}

/** 3 etcd members on free ports; resolves once every member answers `/health` with true. */
async function startEtcd(bin: string, dir: string): Promise<EtcdMember[]> {
  const ports = await freePorts(6);
  const names = ['e1', 'e2', 'e3'];
  const peerUrl = (i: number) => `http://127.0.0.1:${ports[i * 2 + 1]}`;
  const clientUrl = (i: number) => `http://127.0.0.1:${ports[i * 2]}`;
  const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  // etcd reads ETCD_* variables as flags: pass none of ours
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
  const members = names.map((name, i): EtcdMember => {
    const child = spawn(
      bin,
      [
        '--name',
        name,
        '--data-dir',
        join(dir, name),
        '--listen-client-urls',
        clientUrl(i),
        '--advertise-client-urls',
        clientUrl(i),
        '--listen-peer-urls',
        peerUrl(i),
        '--initial-advertise-peer-urls',
        peerUrl(i),
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        `http-kv-${process.pid}`,
        '--logger',
        'zap',
        '--log-level',
        'warn',
      ],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    if (child.pid !== undefined) livePids.add(child.pid);
    const stderr: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr.push(line);
      if (stderr.length > 50) stderr.shift();
    });
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (err) => {
        stderr.push(String(err));
        resolve();
      });
    });
    return { name, client: clientUrl(i), child, stderr, exited };
  });
  const deadline = Date.now() + 30_000;
  for (let i = 0; i < 600 && Date.now() < deadline; i++) {
    const dead = members.find((m) => m.child.exitCode !== null || m.child.signalCode !== null);
    if (dead !== undefined) {
      await stopEtcd(members);
      throw new Error(`etcd ${dead.name} exited: ${dead.stderr.slice(-3).join(' | ')}`);
    }
    const healthy = await Promise.all(
      members.map((m) =>
        json(`${m.client}/health`)
          .then((h) => (h as { health?: unknown }).health === 'true')
          .catch(() => false),
      ),
    );
    if (healthy.every(Boolean)) return members;
    await sleep(100);
  }
  await stopEtcd(members);
  throw new Error('etcd was not healthy within 30 s');
}

async function stopEtcd(members: readonly EtcdMember[]): Promise<void> {
  await Promise.all(
    members.map(async (m) => {
      const pid = m.child.pid;
      if (pid !== undefined && m.child.exitCode === null && m.child.signalCode === null) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await Promise.race([m.exited, sleep(5_000)]);
      if (pid !== undefined) livePids.delete(pid);
    }),
  );
}

async function etcdLeader(members: readonly EtcdMember[]): Promise<Target> {
  const deadline = Date.now() + 30_000;
  let last = 'no answer';
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    for (const m of members) {
      try {
        const s = (await json(`${m.client}/v3/maintenance/status`, 'POST', {})) as {
          leader?: string;
          header?: { member_id?: string };
        };
        if (s.leader !== undefined && s.leader !== '0' && s.leader === s.header?.member_id)
          return etcdTarget(m.client, m.name);
        last = `${m.name}: member_id=${s.header?.member_id} leader=${s.leader}`;
      } catch (err) {
        last = `${m.name}: ${(err as Error).message}`;
      }
    }
    await sleep(100);
  }
  throw new Error(`no etcd leader within 30 s (${last})`);
}

async function etcd(): Promise<Result | undefined> {
  const bin = etcdBinary();
  if (bin === undefined) {
    console.log('http_kv.etcd skipped reason="etcd not installed (apt-get install etcd-server)"');
    return undefined;
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'otra-bench-etcd-'));
    liveDirs.add(dir);
    let members: EtcdMember[] | undefined;
    try {
      try {
        members = await startEtcd(bin, dir);
      } catch (err) {
        // a free port may have been taken meanwhile: new ports, new dirs
        lastError = err;
        continue;
      }
      return await figures(() => etcdLeader(members!));
    } finally {
      if (members !== undefined) await stopEtcd(members);
      rmSync(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    }
  }
  throw lastError;
}

// ---- main

const results = new Map<string, Result | undefined>();
for (const system of SYSTEMS) {
  try {
    results.set(system, system === 'otra' ? await otra() : await etcd());
  } catch (err) {
    const reason = String((err as Error)?.message ?? err)
      .replace(/\s+/g, ' ')
      .slice(0, 300);
    console.log(`http_kv.${system} failed reason=${JSON.stringify(reason)}`);
    process.exitCode = 1;
  }
}

const o = results.get('otra');
const e = results.get('etcd');
const fixed = (v: number | undefined, digits = 2): string =>
  v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits);
if (o !== undefined && e !== undefined) {
  const ratio = o.throughput! / e.throughput!;
  report('http_kv.summary', {
    throughput_ratio: fixed(ratio),
    otra_puts_per_s: Math.round(o.throughput!),
    etcd_puts_per_s: Math.round(e.throughput!),
    otra_p50_ms: fixed(o.latencyP50),
    etcd_p50_ms: fixed(e.latencyP50),
    otra_loaded_p50_ms: fixed(o.loadedP50),
    etcd_loaded_p50_ms: fixed(e.loadedP50),
    throughput_target: ratio >= 3 ? 'met' : 'missed',
    p50_target: o.latencyP50! < e.latencyP50! ? 'met' : 'missed',
  });
} else {
  console.log('http_kv.summary skipped reason="needs both the otra and the etcd figures"');
}

await control.close();
process.exit();
