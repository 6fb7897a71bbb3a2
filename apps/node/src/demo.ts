/**
 * `otra demo`: a local KV service of N node processes (free ports, data in a temp dir or
 * `--data`), started as an operator would start one, with a live status screen. In a terminal,
 * `k` SIGKILLs the leader, `r` restarts the nodes that are down, `q` or Ctrl-C stops them all.
 */
import type { NodeStatus } from './http-api.ts';
import { apiCall, formatStatus } from './http-client.ts';
import { KvCluster } from './kv-cluster.ts';

export interface DemoOptions {
  readonly dir?: string | undefined;
  readonly nodes?: number;
  /** Refresh period of the status screen. Default 1,000 ms. */
  readonly refreshMs?: number;
}

interface Row {
  readonly name: string;
  readonly pid: number | null;
  readonly http: string;
  readonly status: NodeStatus | null;
}

function renderScreen(cluster: KvCluster, rows: readonly Row[], note: string): string {
  const lines: string[] = [];
  lines.push(`otra demo: ${rows.length} nodes, one replicated KV cluster "kv", data in ${cluster.dir}`);
  lines.push('');
  const header = ['NODE', 'PID', 'HTTP', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'LAST', 'KEYS'];
  const cells = rows.map((r) => [
    r.name,
    r.pid === null ? '-' : String(r.pid),
    r.http,
    r.pid === null
      ? 'down'
      : `${r.status?.role ?? 'starting'}${r.status?.quiesced === true ? ' (asleep)' : ''}`,
    String(r.status?.term ?? '-'),
    r.status?.leader ?? '-',
    String(r.status?.commitIndex ?? '-'),
    String(r.status?.lastApplied ?? '-'),
    String(r.status?.lastIndex ?? '-'),
    String(r.status?.keys ?? '-'),
  ]);
  const all = [header, ...cells];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  for (const row of all)
    lines.push(
      row
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    );
  const first = rows[0]?.http ?? 'http://127.0.0.1:8001';
  const second = rows[1]?.http ?? first;
  lines.push('');
  lines.push('try, from another terminal:');
  lines.push(`  curl -s -X PUT ${first}/kv/greeting -d '{"value": "hello"}'`);
  lines.push(`  curl -s ${second}/kv/greeting`);
  lines.push(`  curl -s -X POST ${second}/kv/greeting/cas -d '{"expect": "hello", "value": "bye"}'`);
  lines.push(`  curl -s '${second}/kv?prefix=gr'                 # keys and values in key order`);
  lines.push(`  pnpm otra status --http ${first}     pnpm otra inspect --http ${first}`);
  lines.push(`  curl -s ${first}/metrics`);
  lines.push('');
  lines.push('keys: k = SIGKILL the leader, r = restart nodes that are down, q or Ctrl-C = stop');
  lines.push('(asleep: an idle group stops its heartbeats and election timers until the next request)');
  if (note.length > 0) lines.push(note);
  lines.push(`updated ${new Date().toLocaleTimeString()}`);
  return lines.join('\n');
}

async function readRows(cluster: KvCluster): Promise<Row[]> {
  return Promise.all(
    cluster.names.map(async (name) => {
      const proc = cluster.nodes.get(name);
      const http = cluster.http(name);
      const status =
        proc === undefined
          ? null
          : await apiCall<NodeStatus>(http, 'GET', '/status', undefined, 900).catch(() => null);
      return { name, pid: proc?.pid ?? null, http, status };
    }),
  );
}

/** Runs the demo until Ctrl-C (or `q`), then stops every node and removes a temp data dir. */
export async function runDemo(options: DemoOptions): Promise<void> {
  const count = options.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 9) throw new Error('--nodes is 1-9');
  process.stdout.write(`otra demo: starting ${count} node processes...\n`);
  const cluster = await KvCluster.start({
    nodes: count,
    ...(options.dir === undefined ? {} : { dir: options.dir }),
  });
  let stopping = false;
  let note = '';
  const tty = process.stdout.isTTY === true && process.stdin.isTTY === true;

  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (tty) process.stdin.setRawMode(false);
    process.stdout.write('\nstopping the nodes...\n');
    await cluster.stop();
    process.stdout.write(
      options.dir === undefined
        ? 'stopped; the temp data was removed\n'
        : `stopped; the data stays in ${cluster.dir}\n`,
    );
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());

  // wait for a leader, then write a first key so that a GET works at once
  const deadline = Date.now() + 30_000;
  let leader: string | null = null;
  while (leader === null && Date.now() < deadline && !stopping) {
    const rows = await readRows(cluster);
    leader = rows.find((r) => r.status?.role === 'leader')?.name ?? null;
    if (leader === null) await new Promise((r) => setTimeout(r, 100));
  }
  if (leader === null) {
    process.stderr.write('otra demo: no leader was elected within 30 s\n');
    await cluster.stop();
    process.exit(1);
  }
  await apiCall(cluster.http(leader), 'PUT', '/kv/greeting', { value: 'hello from otra' }).catch(
    () => undefined,
  );
  process.stdout.write(
    `leader elected: ${leader}; HTTP API on ${cluster.names.map((n) => cluster.http(n)).join(', ')}\n`,
  );

  const killLeader = async (): Promise<void> => {
    const rows = await readRows(cluster);
    const current = rows.find((r) => r.status?.role === 'leader');
    if (current === undefined) {
      note = 'no leader to kill right now';
      return;
    }
    const killedAt = performance.now();
    await cluster.kill(current.name);
    note = `SIGKILLed ${current.name} (the leader) at ${new Date().toLocaleTimeString()}`;
    // watch the survivors closely for a while, to tell how long the failover took
    for (let i = 0; i < 500 && !stopping; i++) {
      const fresh = (await readRows(cluster)).find(
        (r) => r.status?.role === 'leader' && r.name !== current.name,
      );
      if (fresh !== undefined) {
        note += `; ${fresh.name} leads ${Math.round(performance.now() - killedAt)} ms later`;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const restartDown = async (): Promise<void> => {
    const down = cluster.names.filter((n) => !cluster.nodes.has(n));
    await Promise.all(down.map((n) => cluster.startNode(n)));
    note =
      down.length === 0
        ? 'every node is up'
        : `restarted ${down.join(', ')} from ${down.length === 1 ? 'its' : 'their'} data`;
  };
  if (tty) {
    process.stdin.setRawMode(true);
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (key: string) => {
      if (key === 'q' || key === '\u0003') void shutdown();
      else if (key === 'k') void killLeader().catch((err: Error) => (note = err.message));
      else if (key === 'r') void restartDown().catch((err: Error) => (note = err.message));
    });
  }

  let last = '';
  for (let tick = 0; !stopping; tick++) {
    const rows = await readRows(cluster);
    if (stopping) break;
    const screen = renderScreen(cluster, rows, note);
    if (tty) process.stdout.write(`\x1b[H\x1b[2J${screen}\n`);
    else {
      // a log, not a screen: print the table when the cluster's shape changes
      const first = rows.find((r) => r.status !== null)?.status;
      const shape = JSON.stringify(
        rows.map((r) => [r.pid, r.status?.role, r.status?.term, r.status?.leader]),
      );
      if (shape !== last) process.stdout.write(`${tick === 0 || !first ? screen : formatStatus(first)}\n\n`);
      last = shape;
    }
    await new Promise((r) => setTimeout(r, options.refreshMs ?? 1000));
  }
}
