/**
 * Linearizability of the KV service's HTTP API under network partitions, end to end: three
 * `otra node` processes whose six directed links each go through a `TcpProxy`, concurrent
 * clients doing puts and linearizable gets against random nodes, and a nemesis cutting and
 * healing links (isolating the leader, or cutting one pair). The history is then checked with
 * the WGL checker of `@otra/testkit`. Every process is killed and every proxy closed in
 * `afterEach`; every loop and wait has a deadline.
 */
import { checkKv, type RegisterOp } from '@otra/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import type { NodeStatus } from '../apps/node/src/http-api.ts';
import type { KvCluster } from '../apps/node/src/kv-cluster.ts';
import { nodeStatus, type ProxiedCluster, startProxiedCluster } from './support/proxied-cluster.ts';

const NAMES = ['n1', 'n2', 'n3'] as const;
const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4'] as const;
const CLIENTS = 5;
/** Per HTTP request (the server's own command timeout is 5 s, so a write may land after this). */
const REQUEST_TIMEOUT_MS = 2000;
/** Clients and nemesis run this long; then everything is healed... */
const FAULT_MS = 9000;
/** ...and the clients go on this long. */
const AFTER_HEAL_MS = 2000;

let proxied: ProxiedCluster | undefined;

afterEach(async () => {
  await proxied?.close();
  proxied = undefined;
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
const between = (min: number, max: number): number => min + Math.random() * (max - min);

/** One client operation as it happened (for the summary and failure reports). */
interface OpRecord {
  readonly client: number;
  readonly node: string;
  readonly key: string;
  readonly kind: 'write' | 'read';
  /** Written value, or the value read (null: 404). */
  value: string | null;
  readonly invoke: number;
  response: number;
  /** ok | unknown | failed: a completed op, an op of unknown outcome, a definite failure. */
  outcome: 'ok' | 'unknown' | 'failed';
  /** HTTP status and error code, or the client-side error. */
  detail: string;
}

async function allStatuses(c: KvCluster): Promise<(NodeStatus | undefined)[]> {
  return Promise.all(NAMES.map((n) => nodeStatus(c, n)));
}

/** The node claiming leadership in the highest term, if any. */
function currentLeader(statuses: readonly (NodeStatus | undefined)[]): string | undefined {
  let best: NodeStatus | undefined;
  for (const s of statuses)
    if (s?.role === 'leader' && (best === undefined || (s.term ?? 0) > (best.term ?? 0))) best = s;
  return best?.node;
}

/** Polls `check` every 100 ms until it returns a value; throws after `ms`. */
async function eventually<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + ms;
  let last: unknown;
  for (let i = 0; i < 10_000 && performance.now() < deadline; i++) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms} ms${last === undefined ? '' : ` (${String(last)})`}`);
}

/** The error code of a JSON error body (`{ error, message }`), or '?'. */
async function errorCode(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: unknown };
    return typeof body.error === 'string' ? body.error : '?';
  } catch {
    return '?';
  }
}

function clientError(err: unknown): string {
  const e = err as { name?: string; cause?: { code?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'client_timeout';
  return e?.cause?.code ?? e?.name ?? 'error';
}

/** PUT `value`; outcome per the register model: 200 ok; 503/4xx definitely failed; anything else unknown. */
async function put(c: KvCluster, op: OpRecord): Promise<void> {
  try {
    const res = await fetch(`${c.http(op.node)}/kv/${op.key}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: op.value }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (res.status === 200) {
      await res.json();
      op.response = performance.now();
      op.outcome = 'ok';
      op.detail = '200';
      return;
    }
    op.detail = `${res.status} ${await errorCode(res)}`;
    // 503 (no_leader/unavailable) is answered before anything is submitted; a 4xx is refused
    op.outcome = res.status === 503 || (res.status >= 400 && res.status < 500) ? 'failed' : 'unknown';
  } catch (err) {
    op.detail = clientError(err);
    op.outcome = 'unknown';
  }
}

/** Linearizable GET: 200 reads the value, 404 reads null; any failure leaves no trace in the model. */
async function get(c: KvCluster, op: OpRecord): Promise<void> {
  try {
    const res = await fetch(`${c.http(op.node)}/kv/${op.key}`, {
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (res.status === 200) {
      const body = (await res.json()) as { value: unknown };
      op.response = performance.now();
      op.value = body.value as string;
      op.outcome = 'ok';
      op.detail = '200';
      return;
    }
    const code = await errorCode(res);
    if (res.status === 404 && code === 'not_found') {
      op.response = performance.now();
      op.value = null;
      op.outcome = 'ok';
      op.detail = '404';
      return;
    }
    op.detail = `${res.status} ${code}`;
    op.outcome = 'failed';
  } catch (err) {
    op.detail = clientError(err);
    op.outcome = 'failed';
  }
}

describe('the KV service under network partitions', () => {
  it('stays linearizable while links between nodes are cut and healed', async () => {
    const t0 = performance.now();
    proxied = await startProxiedCluster({ nodes: 3, electionTimeoutMs: [300, 600], tickMs: 50 });
    const { cluster: c, proxies, cutPair, healAll } = proxied;
    for (const from of NAMES)
      for (const to of NAMES)
        if (from !== to) expect(proxies.get(`${from}->${to}`)?.targetPort).toBe(c.port(to));

    const firstLeader = await eventually('a leader known to every node', 20_000, async () => {
      const statuses = await allStatuses(c);
      const leaders = new Set(statuses.map((s) => s?.leader ?? null));
      const [leader] = leaders;
      return leaders.size === 1 && leader !== null && leader !== undefined ? leader : undefined;
    });
    const tLeader = performance.now();

    // ---- clients
    const start = performance.now();
    const faultsEnd = start + FAULT_MS;
    const end = faultsEnd + AFTER_HEAL_MS;
    let healedAt = Number.POSITIVE_INFINITY;
    const ops: OpRecord[] = [];
    const client = async (id: number): Promise<void> => {
      let n = 0;
      for (let i = 0; i < 100_000 && performance.now() < end; i++) {
        const write = Math.random() < 0.5;
        const op: OpRecord = {
          client: id,
          node: pick(NAMES),
          key: pick(KEYS),
          kind: write ? 'write' : 'read',
          value: write ? `c${id}-${n++}` : null,
          invoke: performance.now(),
          response: Number.POSITIVE_INFINITY,
          outcome: 'unknown',
          detail: '',
        };
        ops.push(op);
        await (write ? put(c, op) : get(c, op));
        // keeps the per-key histories within the checker's budget; backs off a little on errors
        await sleep(op.outcome === 'ok' ? between(10, 40) : between(50, 150));
      }
    };

    // ---- nemesis
    const faults: { at: number; fault: string }[] = [];
    const nemesis = async (): Promise<void> => {
      await sleep(between(500, 1000));
      for (let i = 0; i < 1000 && performance.now() < faultsEnd - 1000; i++) {
        healAll();
        const r = Math.random();
        let fault = 'heal all';
        if (r < 0.45) {
          const leader = currentLeader(await allStatuses(c));
          if (leader !== undefined) {
            for (const other of NAMES) if (other !== leader) cutPair(leader, other);
            fault = `isolate leader ${leader}`;
          }
        } else if (r < 0.8) {
          const [a, b] = [...NAMES].sort(() => Math.random() - 0.5);
          cutPair(a as string, b as string);
          fault = `cut ${a} <-> ${b}`;
        }
        faults.push({ at: performance.now() - start, fault });
        await sleep(between(1000, 1500));
      }
      healAll();
      healedAt = performance.now();
      faults.push({ at: healedAt - start, fault: 'final heal' });
    };

    await Promise.all([nemesis(), ...Array.from({ length: CLIENTS }, (_, id) => client(id))]);
    const tClients = performance.now();

    // ---- after the heal the cluster converges: one leader, same term, every log applied equally
    const converged = await eventually('convergence after the final heal', 15_000, async () => {
      const statuses = await allStatuses(c);
      if (statuses.some((s) => s === undefined)) return undefined;
      const ss = statuses as NodeStatus[];
      const leader = ss[0]?.leader ?? null;
      const ok =
        leader !== null &&
        ss.every(
          (s) =>
            s.leader === leader &&
            s.term === ss[0]?.term &&
            s.commitIndex === ss[0]?.commitIndex &&
            s.lastApplied === ss[0]?.lastApplied &&
            s.lastApplied === s.commitIndex,
        );
      return ok
        ? ss.map((s) => ({ node: s.node, role: s.role, term: s.term, commit: s.commitIndex }))
        : undefined;
    });
    const tConverged = performance.now();

    // ---- the history in the register model
    const history = new Map<string, RegisterOp[]>(KEYS.map((k) => [k, []]));
    for (const op of ops) {
      if (op.outcome === 'failed') continue;
      if (op.outcome === 'unknown' && op.kind === 'read') continue;
      history.get(op.key)?.push({
        kind: op.kind,
        value: op.value,
        invoke: op.invoke,
        response: op.outcome === 'ok' ? op.response : Number.POSITIVE_INFINITY,
      });
    }
    const tCheck = performance.now();
    let result: ReturnType<typeof checkKv>;
    try {
      result = checkKv(history);
    } catch (err) {
      throw new Error(`the checker gave up: ${(err as Error).message}; per key: ${perKey(history)}`);
    }
    const tChecked = performance.now();

    const count = (p: (op: OpRecord) => boolean): number => ops.filter(p).length;
    const failures: Record<string, number> = {};
    for (const op of ops)
      if (op.outcome !== 'ok') {
        const k = `${op.kind} ${op.outcome} ${op.detail}`;
        failures[k] = (failures[k] ?? 0) + 1;
      }
    const summary = {
      firstLeader,
      ops: ops.length,
      completedWrites: count((o) => o.kind === 'write' && o.outcome === 'ok'),
      completedReads: count((o) => o.kind === 'read' && o.outcome === 'ok'),
      nullReads: count((o) => o.kind === 'read' && o.outcome === 'ok' && o.value === null),
      unknownWrites: count((o) => o.kind === 'write' && o.outcome === 'unknown'),
      writesAfterHeal: count((o) => o.kind === 'write' && o.outcome === 'ok' && o.invoke >= healedAt),
      readsAfterHeal: count((o) => o.kind === 'read' && o.outcome === 'ok' && o.invoke >= healedAt),
      completedDuringFaults: count((o) => o.outcome === 'ok' && o.invoke < healedAt),
      latencyMs: latency(ops),
      failures,
      perKey: perKey(history),
      explored: result.explored,
      faults: faults.map((f) => `${(f.at / 1000).toFixed(1)}s ${f.fault}`),
      proxies: Object.fromEntries([...proxies].map(([k, p]) => [k, p.stats()])),
      converged,
      durationsMs: {
        startAndLeader: Math.round(tLeader - t0),
        clients: Math.round(tClients - start),
        convergence: Math.round(tConverged - tClients),
        check: Math.round(tChecked - tCheck),
      },
    };
    console.log(`kv-partition summary: ${JSON.stringify(summary, null, 2)}`);

    if (!result.ok) {
      const key = result.key as string;
      const lines = ops
        .filter((o) => o.key === key)
        .sort((a, b) => a.invoke - b.invoke)
        .map(
          (o) =>
            `${o.invoke.toFixed(1).padStart(9)} .. ${(Number.isFinite(o.response) ? o.response.toFixed(1) : '?').padStart(9)}  c${o.client}@${o.node} ${o.kind} ${JSON.stringify(o.value)} ${o.outcome} ${o.detail}`,
        );
      const faultLines = faults.map((f) => `${(f.at + start).toFixed(1)} ${f.fault}`);
      const logs = [...c.nodes.values()].map(
        (p) => `--- ${p.name} stderr\n${p.stderr.slice(-40).join('\n')}`,
      );
      console.error(
        `not linearizable: key ${key}\n${lines.join('\n')}\nfaults:\n${faultLines.join('\n')}\n${logs.join('\n')}`,
      );
    }
    expect(result.ok, `history of key ${result.key} is not linearizable (see the log)`).toBe(true);
    expect(summary.completedWrites).toBeGreaterThan(50);
    expect(summary.completedReads).toBeGreaterThan(50);
    expect(summary.writesAfterHeal).toBeGreaterThan(0);
    expect(summary.readsAfterHeal).toBeGreaterThan(0);
    expect(faults.filter((f) => f.fault !== 'heal all' && f.fault !== 'final heal').length).toBeGreaterThan(
      0,
    );
  }, 60_000);
});

/** p50 / p90 / max latency of the completed operations. */
function latency(ops: readonly OpRecord[]): { p50: number; p90: number; max: number } {
  const ms = ops
    .filter((o) => o.outcome === 'ok')
    .map((o) => o.response - o.invoke)
    .sort((a, b) => a - b);
  const at = (q: number): number => Math.round(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? 0);
  return { p50: at(0.5), p90: at(0.9), max: Math.round(ms[ms.length - 1] ?? 0) };
}

function perKey(history: ReadonlyMap<string, readonly RegisterOp[]>): string {
  return [...history].map(([k, h]) => `${k}=${h.length}`).join(' ');
}
