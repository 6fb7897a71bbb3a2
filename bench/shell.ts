/**
 * The server shell's own ceiling: a 3-member cluster in one process over the in-process loopback
 * network with in-memory storage (no sockets, no disk), pipelined commands through the full
 * RaftServer actor path. Run: `pnpm exec tsx bench/shell.ts`.
 */
import { LoopbackNetwork, Node } from '@otra/actors';
import {
  overview,
  pipelineCommand,
  type RaftNotification,
  startCluster,
  startPipelineClient,
  startSystem,
} from '@otra/raft';
import { kvMachine, kvQueries } from '../apps/node/src/kv.ts';
import { report } from './support.ts';

const net = new LoopbackNetwork({ clone: false });
const nodes = ['n1', 'n2', 'n3'].map((name) => new Node({ name }));
for (const n of nodes) net.join(n);
const systems = await Promise.all(
  nodes.map((node) =>
    startSystem(node, { machines: { kv: { machine: kvMachine, queries: kvQueries } }, tickMs: 50 }),
  ),
);
const ids = nodes.map((n) => ({ name: 'kv', node: n.name }));
const raft = systems[0]!;
await startCluster(raft, 'kv', { module: 'kv' }, ids);
let leader = ids[0]!;
for (let i = 0; i < 100; i++) {
  const v = await overview(raft, ids[0]!);
  if (v.leader !== null) {
    leader = v.leader;
    break;
  }
  await new Promise((r) => setTimeout(r, 20));
}
for (const inFlight of [64, 1024]) {
  let committed = 0;
  let next = 0;
  const value = 'v'.repeat(100);
  let client = nodes[0]!.sink;
  const send = (): void => {
    pipelineCommand(raft, leader, { op: 'put', key: `key-${next % 10_000}`, value }, next++, client);
  };
  client = startPipelineClient(raft, (n: RaftNotification) => {
    if (n.type !== 'raft.applied') return;
    committed += n.applied.length;
    for (let i = 0; i < n.applied.length; i++) send();
  });
  for (let i = 0; i < inFlight; i++) send();
  await new Promise((r) => setTimeout(r, 1000));
  const c0 = committed;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, Number(process.env.MEASURE_S ?? 5) * 1000));
  const ms = performance.now() - t0;
  report('shell.pipeline', {
    in_flight: inFlight,
    commits: `${Math.round(((committed - c0) * 1000) / ms)}/s`,
    storage: 'memory',
    network: 'loopback',
  });
  await nodes[0]!.stop(client);
  await new Promise((r) => setTimeout(r, 300));
}
for (const s of systems) await s.stop();
process.exit(0);
