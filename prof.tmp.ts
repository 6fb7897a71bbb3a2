import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import {
  awaitLeader,
  overview,
  pipelineCommand,
  type RaftNotification,
  startCluster,
  startPipelineClient,
} from '@otra/raft';
import { ProcessCluster } from './apps/node/src/process-cluster.ts';

const INFLIGHT = Number(process.env.INFLIGHT ?? 1024);
const PROF = process.env.PROF === '1';
const cluster = await ProcessCluster.start({
  nodes: 3,
  electionTimeoutMs: [150, 300],
  tickMs: 50,
  env: PROF ? { OTRA_CPU_PROFILE: '/tmp/prof2' } : {},
});
const VALUE = 'v'.repeat(100);
const key = () => `key-${String(Math.floor(Math.random() * 10_000)).padStart(12, '0')}`;
try {
  const ids = cluster.ids('kv');
  await startCluster(cluster.client.raft, 'kv', { module: 'kv' }, ids);
  const leader = await awaitLeader(cluster.client.raft, ids, { timeoutMs: 10_000 });
  const raft = cluster.client.raft;
  let committed = 0;
  let corr = 0;
  let client = startPipelineClient(raft, () => undefined);
  const send = () => pipelineCommand(raft, leader, { op: 'put', key: key(), value: VALUE }, corr++, client);
  client = startPipelineClient(raft, (n: RaftNotification) => {
    if (n.type !== 'raft.applied') return;
    for (const _ of n.applied) {
      committed++;
      send();
    }
  });
  for (let i = 0; i < INFLIGHT; i++) send();
  await new Promise((r) => setTimeout(r, 2000));
  let session: Session | undefined;
  if (PROF) {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const cpuOf = () =>
    [...cluster.nodes.values()].map((n) => {
      const f = readFileSync(`/proc/${n.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(f[11]) + Number(f[12])) * 10_000;
    });
  const ctr = async () => Promise.all(ids.map(async (id) => (await overview(raft, id)).counters));
  const k0 = await ctr();
  const p0 = cpuOf();
  const c0 = committed;
  const t0 = performance.now();
  const u0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, Number(process.env.SECS ?? 6) * 1000));
  const el = performance.now() - t0;
  const u = process.cpuUsage(u0);
  const p1 = cpuOf();
  const n = committed - c0;
  const k1 = await ctr();
  console.log(
    `entries per commit sent=${k1.map((k, i) => ((k.entriesSent - k0[i]!.entriesSent) / n).toFixed(2)).join('/')} received=${k1.map((k, i) => ((k.entriesReceived - k0[i]!.entriesReceived) / n).toFixed(2)).join('/')}`,
  );
  const us = p1.map((v, i) => ((v - p0[i]!) / n).toFixed(1));
  console.log(`cpu_us_per_commit nodes=${us.join('/')} client=${((u.user + u.system) / n).toFixed(1)}`);
  console.log(
    `leader=${leader.node} commits/s=${Math.round(((committed - c0) * 1000) / el)} client_cpu=${Math.round((u.user + u.system) / 10 / el)}%`,
  );
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync('/tmp/prof2/client.cpuprofile', JSON.stringify(profile));
  }
} finally {
  if (PROF) {
    await Promise.all([...cluster.nodes.values()].map((n) => n.kill('SIGTERM')));
  }
  await cluster.stop();
}
