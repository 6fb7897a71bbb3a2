import { runSimulation } from '../src/index.ts';
const seeds = Number(process.argv[2] ?? 5);
const snap = Number(process.argv[3] ?? 0);
const t0 = performance.now();
let inst = 0, ok = 0, unk = 0, steps = 0, commit = 0, fails = 0;
for (let seed = 1; seed <= seeds; seed++) {
  try {
    const r = runSimulation({ seed, servers: seed % 2 ? 3 : 5, snapshotEvery: snap, clients: 5, faultMs: 5000 });
    ok += r.ops.ok; inst += r.effects['snapshot.install'] ?? 0; unk += r.ops.unknown; steps += r.steps; commit += r.committed;
  } catch (e) { fails++; console.log(String((e as Error).message).slice(0, 800)); }
}
console.log({ inst, fails, ok, unk, steps, commit, ms: performance.now() - t0 });
