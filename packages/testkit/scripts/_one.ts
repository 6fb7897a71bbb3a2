import { runSimulation } from '../src/index.ts';
const [a, b] = [Number(process.argv[2]), Number(process.argv[3])];
for (let seed = a; seed <= b; seed++) {
  const t0 = performance.now();
  try { runSimulation({ seed, servers: seed % 2 ? 3 : 5, snapshotEvery: 0, clients: 5, faultMs: 5000 }); } catch (e) { console.log(seed, String((e as Error).message).slice(0, 300)); }
  const dt = performance.now() - t0; if (dt > 200) console.log('slow', seed, dt);
}
