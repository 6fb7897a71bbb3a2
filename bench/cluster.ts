/**
 * Cluster figures: three `otra node` processes on loopback with durable RocksDB logs, and this
 * process as a separate client node. KV machine, `{ op: 'put', key: 'key-%012d', value: 100 B }`
 * over 10,000 keys.
 *
 *   pnpm exec tsx bench/cluster.ts [latency] [throughput] [failover] [scale]
 *
 * Knobs (env): MEASURE_S (10), WARMUP_S (2), TRIALS (30), CLUSTERS (1000), SCALE_COMMANDS (20 per
 * cluster before the scale figures' idle phase), SCALE_TICK_MS (250; election timeouts are 4-8
 * ticks), V8_DEFAULTS=1 (run the nodes without `NODE_V8_FLAGS`).
 */
import type { ServerId } from '@otra/protocol';
import {
  awaitLeader,
  overview,
  pipelineCommand,
  processCommand,
  type RaftNotification,
  startCluster,
  startPipelineClient,
} from '@otra/raft';
import { ADMIN, type NodeStats } from '../apps/node/src/admin.ts';
import { ProcessCluster } from '../apps/node/src/process-cluster.ts';
import { benchV8Flags, percentile, report } from './support.ts';

const MEASURE_S = Number(process.env.MEASURE_S ?? 10);
const WARMUP_S = Number(process.env.WARMUP_S ?? 2);
const TRIALS = Number(process.env.TRIALS ?? 30);
const CLUSTERS = Number(process.env.CLUSTERS ?? 1000);
const SCALE_COMMANDS = Number(process.env.SCALE_COMMANDS ?? 20);
const VALUE = 'v'.repeat(100);

function key(): string {
  return `key-${String(Math.floor(Math.random() * 10_000)).padStart(12, '0')}`;
}

async function nodeStats(cluster: ProcessCluster, gc = false): Promise<Map<string, NodeStats>> {
  const out = new Map<string, NodeStats>();
  for (const name of cluster.nodes.keys()) {
    const request = { type: 'admin.stats', gc };
    out.set(
      name,
      await cluster.client.node.call<NodeStats>({ name: ADMIN, node: name }, request, { timeoutMs: 30_000 }),
    );
  }
  return out;
}

async function withCluster<T>(
  fn: (cluster: ProcessCluster, ids: ServerId[]) => Promise<T>,
  electionTimeoutMs: [number, number] = [150, 300],
) {
  const cluster = await ProcessCluster.start({
    nodes: 3,
    electionTimeoutMs,
    tickMs: 50,
    v8Flags: benchV8Flags(),
  });
  try {
    const ids = cluster.ids('kv');
    await startCluster(cluster.client.raft, 'kv', { module: 'kv' }, ids);
    return await fn(cluster, ids);
  } finally {
    await cluster.stop();
  }
}

async function latency(): Promise<void> {
  await withCluster(async (cluster, ids) => {
    const leader = await awaitLeader(
      cluster.client.raft,
      ids.filter((id) => cluster.nodes.has(id.node)),
      { timeoutMs: 10_000 },
    );
    const raft = cluster.client.raft;
    for (let i = 0; i < 100; i++) await processCommand(raft, leader, { op: 'put', key: key(), value: VALUE });
    const samples: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const t = performance.now();
      await processCommand(raft, leader, { op: 'put', key: key(), value: VALUE });
      samples.push(performance.now() - t);
    }
    report('cluster.latency', {
      p50: `${percentile(samples, 50).toFixed(2)}ms`,
      p99: `${percentile(samples, 99).toFixed(2)}ms`,
      commands: samples.length,
    });
  });
}

async function throughput(inFlight: number): Promise<void> {
  await withCluster(async (cluster, ids) => {
    const leader = await awaitLeader(
      cluster.client.raft,
      ids.filter((id) => cluster.nodes.has(id.node)),
      { timeoutMs: 10_000 },
    );
    const raft = cluster.client.raft;
    const sentAt = new Map<number, number>();
    const samples: number[] = [];
    let next = 0;
    let committed = 0;
    let rejected = 0;
    let measuring = false;
    let client = startPipelineClient(raft, () => undefined);
    const send = (): void => {
      const corr = next++;
      sentAt.set(corr, performance.now());
      pipelineCommand(raft, leader, { op: 'put', key: key(), value: VALUE }, corr, client);
    };
    client = startPipelineClient(raft, (n: RaftNotification) => {
      if (n.type === 'raft.rejected') {
        rejected += n.correlations.length;
        return;
      }
      const now = performance.now();
      for (const [corr] of n.applied) {
        const t = sentAt.get(corr as number);
        sentAt.delete(corr as number);
        if (measuring) {
          committed++;
          if (t !== undefined) samples.push(now - t);
        }
        send();
      }
    });
    for (let i = 0; i < inFlight; i++) send();
    await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
    const counters = () => Promise.all(ids.map(async (id) => (await overview(raft, id)).counters));
    const before = await nodeStats(cluster);
    const countersBefore = await counters();
    measuring = true;
    const t0 = performance.now();
    const clientCpu0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, MEASURE_S * 1000));
    measuring = false;
    const clientCpu = process.cpuUsage(clientCpu0);
    const elapsed = performance.now() - t0;
    const after = await nodeStats(cluster);
    const countersAfter = await counters();
    report('cluster.throughput', {
      in_flight: inFlight,
      commits: `${Math.round((committed * 1000) / elapsed)}/s`,
      p50: `${percentile(samples, 50).toFixed(2)}ms`,
      p99: `${percentile(samples, 99).toFixed(2)}ms`,
      rejected,
      client_cpu_us_per_commit:
        committed > 0 ? ((clientCpu.user + clientCpu.system) / committed).toFixed(1) : '-',
    });
    const perCommit = (name: string): Record<string, string> => {
      const i = ids.findIndex((id) => id.node === name);
      const x = countersAfter[i];
      const y = countersBefore[i];
      if (x === undefined || y === undefined || committed === 0) return {};
      const perAppend = (entries: number, appends: number): string =>
        appends > 0 ? (entries / appends).toFixed(1) : '-';
      return name === leader.node
        ? {
            entries_sent_per_commit: ((x.entriesSent - y.entriesSent) / committed).toFixed(2),
            entries_per_append: perAppend(x.entriesSent - y.entriesSent, x.appendsSent - y.appendsSent),
          }
        : {
            entries_received_per_commit: ((x.entriesReceived - y.entriesReceived) / committed).toFixed(2),
            entries_per_append: perAppend(
              x.entriesReceived - y.entriesReceived,
              x.appendsReceived - y.appendsReceived,
            ),
          };
    };
    for (const [name, a] of after) {
      const b = before.get(name)!;
      const wa = a.writer as { batches: number; entries: number; syncMicros: number } | undefined;
      const wb = b.writer as { batches: number; entries: number; syncMicros: number } | undefined;
      const syncs = (wa?.batches ?? 0) - (wb?.batches ?? 0);
      const entries = (wa?.entries ?? 0) - (wb?.entries ?? 0);
      const syncMs = ((wa?.syncMicros ?? 0) - (wb?.syncMicros ?? 0)) / 1000;
      report('cluster.node', {
        in_flight: inFlight,
        node: name,
        role: name === leader.node ? 'leader' : 'follower',
        fsyncs: `${Math.round((syncs * 1000) / elapsed)}/s`,
        entries_per_fsync: syncs > 0 ? (entries / syncs).toFixed(1) : '0',
        sync_avg: syncs > 0 ? `${(syncMs / syncs).toFixed(2)}ms` : '-',
        cpu: `${(((a.cpuMicros - b.cpuMicros) / 1000 / elapsed) * 100).toFixed(0)}%`,
        cpu_us_per_commit: committed > 0 ? ((a.cpuMicros - b.cpuMicros) / committed).toFixed(1) : '-',
        // entries sent (leader) or received (followers) per commit: above 2 / 1, something was resent
        ...perCommit(name),
      });
    }
    await new Promise((r) => setTimeout(r, 200));
  });
}

async function failover(): Promise<void> {
  const cluster = await ProcessCluster.start({
    nodes: 3,
    electionTimeoutMs: [150, 300],
    tickMs: 50,
    v8Flags: benchV8Flags(),
  });
  const times: number[] = [];
  try {
    const ids = cluster.ids('kv');
    const raft = cluster.client.raft;
    await startCluster(raft, 'kv', { module: 'kv' }, ids);
    for (let trial = 0; trial < TRIALS; trial++) {
      const leader = await awaitLeader(
        cluster.client.raft,
        ids.filter((id) => cluster.nodes.has(id.node)),
        { timeoutMs: 10_000 },
      );
      // steady load from the client while the leader dies
      let running = true;
      const load = (async () => {
        while (running) {
          // a dead leader fails calls at once: pause so this loop cannot starve the event loop
          await processCommand(
            raft,
            leader,
            { op: 'put', key: key(), value: VALUE },
            { timeoutMs: 2000 },
          ).catch(() => new Promise((r) => setTimeout(r, 5)));
        }
      })();
      await new Promise((r) => setTimeout(r, 200));
      const survivor = ids.find((id) => id.node !== leader.node)!;
      const killedAt = performance.now();
      await cluster.kill(leader.node);
      await processCommand(raft, survivor, { op: 'put', key: key(), value: VALUE }, { timeoutMs: 10_000 });
      times.push(performance.now() - killedAt);
      running = false;
      await load;
      await cluster.startNode(leader.node);
      // let the restarted node catch up before the next trial
      const target = (await overview(raft, survivor)).commitIndex;
      for (let i = 0; i < 500; i++) {
        const v = await overview(raft, leader, { timeoutMs: 1000 }).catch(() => undefined);
        if (v !== undefined && v.lastApplied >= target) break;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  } finally {
    await cluster.stop();
  }
  report('cluster.failover', {
    trials: times.length,
    median: `${percentile(times, 50).toFixed(0)}ms`,
    p95: `${percentile(times, 95).toFixed(0)}ms`,
    max: `${Math.max(...times).toFixed(0)}ms`,
  });
}

async function scale(): Promise<void> {
  // idle groups should cost little: slower heartbeats, as ra's defaults for many queues
  const tickMs = Number(process.env.SCALE_TICK_MS ?? 250);
  const electionTimeoutMs: [number, number] = [tickMs * 4, tickMs * 8];
  const cluster = await ProcessCluster.start({
    nodes: 3,
    electionTimeoutMs,
    tickMs,
    v8Flags: benchV8Flags(),
  });
  try {
    const raft = cluster.client.raft;
    const before = await nodeStats(cluster, true);
    const names = Array.from({ length: CLUSTERS }, (_, i) => `c${i}`);
    const idsOf = (name: string): ServerId[] => [...cluster.nodes.keys()].map((node) => ({ name, node }));
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(
        names
          .slice(i, i + 50)
          .map((name) => startCluster(raft, name, { module: 'kv' }, idsOf(name), { timeoutMs: 30_000 })),
      );
    }
    // a fixed amount of data per group, so that the memory per idle server compares across runs
    // (with a time-bound load it grew with the box's speed: each command stays in a member's log)
    const t0 = performance.now();
    let commits = 0;
    const total = SCALE_COMMANDS * names.length;
    await Promise.all(
      Array.from({ length: 64 }, async (_, w) => {
        for (let i = w; i < total; i += 64) {
          const name = names[i % names.length] as string;
          await processCommand(
            raft,
            idsOf(name)[i % 3]!,
            { op: 'put', key: key(), value: VALUE },
            { timeoutMs: 10_000 },
          );
          commits++;
        }
      }),
    );
    const loadMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 3000));
    const idle0 = await nodeStats(cluster);
    const i0 = performance.now();
    await new Promise((r) => setTimeout(r, MEASURE_S * 1000));
    const idle1 = await nodeStats(cluster);
    const idleMs = performance.now() - i0;
    const live = await nodeStats(cluster, true);
    for (const [name, a] of idle1) {
      const b = idle0.get(name)!;
      const base = before.get(name)!;
      const heap = live.get(name)!;
      report('cluster.scale', {
        node: name,
        clusters: CLUSTERS,
        heap_per_server: `${((heap.heapUsedBytes - base.heapUsedBytes) / CLUSTERS / 1024).toFixed(1)}KiB`,
        rss_per_server: `${Math.round((heap.rssBytes - base.rssBytes) / CLUSTERS / 1024)}KiB`,
        idle_cpu: `${(((a.cpuMicros - b.cpuMicros) / 1000 / idleMs) * 100).toFixed(1)}%`,
        tick_ms: tickMs,
      });
    }
    report('cluster.scale', {
      clusters: CLUSTERS,
      commits: `${Math.round((commits * 1000) / loadMs)}/s`,
      in_flight: 64,
      commands_per_cluster: SCALE_COMMANDS,
    });
  } finally {
    await cluster.stop();
  }
}

const wanted = new Set(process.argv.slice(2));
const all = wanted.size === 0;
if (all || wanted.has('latency')) await latency();
if (all || wanted.has('throughput')) {
  await throughput(64);
  await throughput(1024);
}
if (all || wanted.has('failover')) await failover();
if (all || wanted.has('scale')) await scale();
process.exit(0);
