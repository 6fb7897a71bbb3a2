import { runSimulation } from '../src/index.ts';
const lines: string[] = [];
const seed = Number(process.argv[2]);
try { console.log(JSON.stringify(runSimulation({ seed, servers: seed % 2 ? 3 : 5, snapshotEvery: Number(process.argv[3] ?? 0), clients: 5, faultMs: 5000, transcript: (l) => lines.push(l) }))); } catch (e) { console.log((e as Error).message); }
console.log(lines.join('\n'));
