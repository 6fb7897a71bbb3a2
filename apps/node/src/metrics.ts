/**
 * `GET /metrics`: Prometheus text format through prom-client. Request and command figures are
 * counted as they happen; the Raft and WAL figures are read from the server, the log writer and
 * the transport when scraped, so an idle node does no metrics work.
 */
import type { ServerId } from '@otra/protocol';
import { type Overview, overview, type RaftSystem } from '@otra/raft';
import { WAL_BATCH_BUCKETS, type WriterStats } from '@otra/raft-log';
import type { Transport } from '@otra/transport-ws';
import { Counter, Gauge, Histogram, type Metric, Registry } from 'prom-client';

export interface KvMetricsOptions {
  readonly system: RaftSystem;
  readonly transport: Transport;
  readonly cluster: string;
}

/** The metrics of one node's KV service. */
export class KvMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'code'>;
  private readonly commands: Counter<'op' | 'result'>;
  private readonly commitLatency: Histogram<'op'>;
  private readonly self: ServerId;
  /** The overview and writer figures, read once per scrape and shared by every metric that needs them. */
  private scrape: Promise<Overview | undefined> | undefined;
  private wal: Promise<WriterStats | undefined> | undefined;

  constructor(private readonly options: KvMetricsOptions) {
    this.self = { name: options.cluster, node: options.system.node.name };
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'otra_http_requests_total',
      help: 'HTTP requests answered, by route, method and status code',
      labelNames: ['route', 'method', 'code'],
      registers,
    });
    this.commands = new Counter({
      name: 'otra_kv_commands_total',
      help: 'KV commands submitted through this node, by operation and result',
      labelNames: ['op', 'result'],
      registers,
    });
    this.commitLatency = new Histogram({
      name: 'otra_kv_commit_latency_seconds',
      help: 'Time from a write request to its commit and apply on the leader, seen from this node',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    const gauge = (name: string, help: string, label: string, series: Series): void => {
      labelledGauge(this.registry, name, help, label, series);
    };
    const raft =
      (read: (v: Overview) => number): Series =>
      async () => {
        const view = await this.overview();
        return view === undefined ? [] : [[options.cluster, read(view)]];
      };
    // labelled by system, so that a node without a WAL (in-memory storage) shows no series, not a 0
    const wal =
      (read: (s: WriterStats) => number): Series =>
      async () => {
        const stats = await this.walStats();
        return stats === undefined ? [] : [[options.system.name, read(stats)]];
      };
    gauge(
      'otra_raft_term',
      "Current term of this node's member",
      'cluster',
      raft((v) => v.term),
    );
    gauge(
      'otra_raft_is_leader',
      "1 when this node's member leads the cluster",
      'cluster',
      raft((v) => (v.role === 'leader' ? 1 : 0)),
    );
    gauge(
      'otra_raft_commit_index',
      'Highest log index known to be committed',
      'cluster',
      raft((v) => v.commitIndex),
    );
    gauge(
      'otra_raft_last_applied',
      'Highest log index applied to the machine',
      'cluster',
      raft((v) => v.lastApplied),
    );
    gauge(
      'otra_raft_last_index',
      'Last index in the log',
      'cluster',
      raft((v) => v.lastIndex),
    );
    gauge(
      'otra_raft_last_written',
      'Last index durable in the log',
      'cluster',
      raft((v) => v.lastWritten),
    );
    gauge(
      'otra_raft_snapshot_index',
      'Index of the last snapshot (0: none)',
      'cluster',
      raft((v) => v.snapshot?.index ?? 0),
    );
    gauge(
      'otra_raft_elections_total',
      'Elections this member started',
      'cluster',
      raft((v) => v.counters.elections),
    );
    gauge(
      'otra_raft_pre_votes_total',
      'Pre-vote rounds this member started',
      'cluster',
      raft((v) => v.counters.preVotes),
    );
    gauge(
      'otra_raft_server_commands_total',
      'Commands this member accepted as leader',
      'cluster',
      raft((v) => v.counters.commands),
    );
    gauge(
      'otra_raft_dropped_sends_total',
      'RPCs dropped because a link was down or full',
      'cluster',
      raft((v) => v.counters.droppedSends),
    );
    gauge(
      'otra_raft_entries_sent_total',
      'Log entries this member sent in AppendEntries as leader (a resent entry counts again)',
      'cluster',
      raft((v) => v.counters.entriesSent),
    );
    gauge(
      'otra_raft_entries_received_total',
      'Log entries this member received in AppendEntries (a duplicate counts again)',
      'cluster',
      raft((v) => v.counters.entriesReceived),
    );
    gauge(
      'otra_raft_appends_sent_total',
      'AppendEntries requests this member sent (heartbeats included); entries per request show batching',
      'cluster',
      raft((v) => v.counters.appendsSent),
    );
    gauge(
      'otra_raft_appends_received_total',
      'AppendEntries requests this member received (heartbeats included)',
      'cluster',
      raft((v) => v.counters.appendsReceived),
    );
    gauge(
      'otra_raft_snapshots_written_total',
      'Snapshots this member wrote',
      'cluster',
      raft((v) => v.counters.snapshotsWritten),
    );
    gauge(
      'otra_raft_snapshots_installed_total',
      'Snapshots this member installed from a leader',
      'cluster',
      raft((v) => v.counters.snapshotsInstalled),
    );
    const transport = options.transport;
    gauge('otra_link_up', '1 when the link to the peer node is up', 'peer', () =>
      transport.peers().map((p) => [p.node, p.connected ? 1 : 0] as const),
    );
    gauge('otra_link_bytes_out', 'Bytes sent on the current link to the peer node', 'peer', () =>
      transport.stats().links.map((l) => [l.node, l.bytesOut] as const),
    );
    gauge('otra_link_frames_out', 'WebSocket frames sent on the current link to the peer node', 'peer', () =>
      transport.stats().links.map((l) => [l.node, l.framesOut] as const),
    );
    gauge(
      'otra_link_signals_out',
      'Signals (messages, calls, replies) sent on the current link; per frame, how well sends coalesce',
      'peer',
      () => transport.stats().links.map((l) => [l.node, l.signalsOut] as const),
    );
    gauge(
      'otra_wal_batches_total',
      'Synced write batches of the shared WAL',
      'system',
      wal((s) => s.batches),
    );
    gauge(
      'otra_wal_requests_total',
      'Append and meta requests written (from every server on the node)',
      'system',
      wal((s) => s.requests),
    );
    gauge(
      'otra_wal_entries_total',
      'Log entries written (an append is one record of all its entries)',
      'system',
      wal((s) => s.entries),
    );
    gauge(
      'otra_wal_sync_seconds_total',
      'Time spent in synced WAL batches',
      'system',
      wal((s) => s.syncMicros / 1e6),
    );
    this.registry.registerMetric(walBatchHistogram(options.system.name, () => this.walStats()) as Metric);
  }

  /** Counts one answered HTTP request. */
  requestDone(route: string, method: string, code: number): void {
    this.requests.inc({ route, method, code: String(code) });
  }

  /** Counts one KV command and, when it succeeded, its commit latency. */
  commandDone(op: string, result: 'ok' | 'error', seconds: number): void {
    this.commands.inc({ op, result });
    if (result === 'ok') this.commitLatency.observe({ op }, seconds);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text. */
  async render(): Promise<string> {
    this.scrape = undefined;
    this.wal = undefined;
    try {
      return await this.registry.metrics();
    } finally {
      this.scrape = undefined;
      this.wal = undefined;
    }
  }

  private walStats(): Promise<WriterStats | undefined> {
    this.wal ??= this.options.system.writerStats();
    return this.wal;
  }

  private overview(): Promise<Overview | undefined> {
    if (this.scrape === undefined) {
      const node = this.options.system.node;
      this.scrape =
        node.whereis(this.self.name) === undefined
          ? Promise.resolve(undefined)
          : overview(this.options.system, this.self, { timeoutMs: 1000 }).catch(() => undefined);
    }
    return this.scrape;
  }
}

/** A gauge's series, read when scraped: one value per label value (none: no series at all). */
type Series = () => Iterable<readonly [string, number]> | Promise<Iterable<readonly [string, number]>>;

/** A gauge with one label whose values are all read from `series` at each scrape. */
function labelledGauge(registry: Registry, name: string, help: string, label: string, series: Series): void {
  new Gauge({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    async collect() {
      const values = await series();
      this.reset();
      for (const [key, value] of values) this.set({ [label]: key }, value);
    },
  });
}

/**
 * The shared WAL's batch sizes as a Prometheus histogram built from the writer's own bucket
 * counts (prom-client's Histogram only counts what it observes itself).
 */
function walBatchHistogram(system: string, read: () => Promise<WriterStats | undefined>): unknown {
  const name = 'otra_wal_batch_ops';
  const help = 'Operations (log records, meta writes, deletes) per synced WAL batch';
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    collect: () => undefined,
    reset: () => undefined,
    async get() {
      const stats = await read();
      const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
      if (stats !== undefined) {
        let cumulative = 0;
        WAL_BATCH_BUCKETS.forEach((bound, i) => {
          cumulative += stats.opsPerBatch[i] ?? 0;
          values.push({ metricName: `${name}_bucket`, labels: { system, le: bound }, value: cumulative });
        });
        values.push({ metricName: `${name}_bucket`, labels: { system, le: '+Inf' }, value: stats.batches });
        values.push({ metricName: `${name}_sum`, labels: { system }, value: stats.ops });
        values.push({ metricName: `${name}_count`, labels: { system }, value: stats.batches });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
}
