/**
 * The otra demo: three node processes on 127.0.0.1 with durable RocksDB logs, a replicated KV
 * cluster across them, writes and linearizable reads, the live actor tree, a SIGKILLed leader and
 * the failover, then the killed node restarting and catching up. Run: `pnpm demo`.
 */
import type { NodeTree } from '@otra/actors';
import type { ServerId } from '@otra/protocol';
import {
  awaitLeader,
  consistentQuery,
  overview,
  pipelineCommand,
  processCommand,
  type RaftNotification,
  startCluster,
  startPipelineClient,
} from '@otra/raft';
import { ADMIN } from './admin.ts';
import { ProcessCluster } from './process-cluster.ts';

function say(line: string): void {
  console.log(line);
}

function printTree(tree: NodeTree): void {
  const walk = (info: NodeTree['roots'][number], depth: number): void => {
    const label = info.name ?? info.childId ?? `<${info.pid.id}>`;
    const state = info.stateValue === undefined ? '' : ` ${JSON.stringify(info.stateValue)}`;
    say(`${'   '.repeat(depth + 1)}${label} [${info.kind}]${state}`);
    for (const child of info.children) walk(child, depth + 1);
  };
  say(`   node ${tree.node}: ${tree.actors} actors`);
  for (const root of tree.roots) walk(root, 0);
}

const started = Date.now();
say('otra demo: 3 nodes, one replicated KV cluster, durable logs (RocksDB), links over WebSocket + CBOR\n');
const cluster = await ProcessCluster.start({ nodes: 3, electionTimeoutMs: [150, 300], tickMs: 50 });
try {
  for (const n of cluster.nodes.values()) say(`started node ${n.name} pid=${n.pid} at ${n.url}`);
  const raft = cluster.client.raft;
  const ids = cluster.ids('kv');
  const result = await startCluster(raft, 'kv', { module: 'kv' }, ids);
  say(`cluster "kv" started on ${result.started.map((id) => id.node).join(', ')}`);
  const leader = await awaitLeader(raft, ids);
  say(`leader: ${leader.name}@${leader.node}\n`);

  const latencies: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await processCommand(raft, ids[i % 3]!, { op: 'put', key: `seq-${i}`, value: `value-${i}` });
    latencies.push(performance.now() - t);
  }
  latencies.sort((a, b) => a - b);
  say(
    `200 sequential puts (redirected to the leader when sent to a follower): p50 ${latencies[100]!.toFixed(2)} ms`,
  );

  const total = 5000;
  let applied = 0;
  let rejected = 0;
  let done: () => void = () => {};
  const allApplied = new Promise<void>((resolve) => {
    done = resolve;
  });
  const client = startPipelineClient(cluster.client.raft, (n: RaftNotification) => {
    if (n.type === 'raft.applied') applied += n.applied.length;
    else rejected += n.correlations.length;
    if (applied + rejected >= total) done();
  });
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    pipelineCommand(raft, leader, { op: 'put', key: `pipe-${i}`, value: 'x'.repeat(100) }, i, client);
  }
  await allApplied;
  const ms = performance.now() - t0;
  say(
    `${total} pipelined puts: ${applied} applied, ${rejected} rejected, ${Math.round((total * 1000) / ms)} commits/s`,
  );

  const size = await consistentQuery(raft, ids[1]!, { name: 'size' });
  say(
    `consistent read of the key count through ${ids[1]!.node}: ${String(size.result)} (read index ${size.index})\n`,
  );

  say('the live supervision tree of the leader node:');
  printTree(
    await cluster.client.node.call<NodeTree>({ name: ADMIN, node: leader.node }, { type: 'admin.tree' }),
  );

  say(`\nSIGKILL the leader's process (${leader.node}, pid ${cluster.nodes.get(leader.node)!.pid})`);
  const killedAt = performance.now();
  await cluster.kill(leader.node);
  const survivors = ids.filter((id) => id.node !== leader.node);
  const r = await processCommand(
    raft,
    survivors[0]!,
    { op: 'put', key: 'after-failover', value: 'ok' },
    { timeoutMs: 10_000 },
  );
  say(
    `new leader ${r.leader.node} acknowledged a write ${(performance.now() - killedAt).toFixed(0)} ms after the kill`,
  );
  const count = await consistentQuery(raft, survivors[0]!, { name: 'size' });
  say(`every acknowledged write survived: ${String(count.result)} keys (expected ${200 + total + 1})`);

  say(`\nrestart ${leader.node} from its RocksDB data`);
  await cluster.startNode(leader.node);
  const restartedId = { name: 'kv', node: leader.node };
  for (let i = 0; i < 500; i++) {
    const v = await overview(raft, restartedId, { timeoutMs: 1000 }).catch(() => undefined);
    if (v !== undefined && v.lastApplied >= r.index) {
      say(`${leader.node} is back as ${v.role}, term ${v.term}, applied up to ${v.lastApplied}`);
      break;
    }
    await new Promise((res) => setTimeout(res, 20));
  }
  say(`\ndone in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} finally {
  await cluster.stop();
}
