import { runSimulation } from '../src/index.ts';
const lines: string[] = [];
try { console.log(JSON.stringify(runSimulation({ seed: Number(process.argv[2]), servers: Number(process.argv[3] ?? 3), transcript: (l) => lines.push(l) }))); } catch (e) { console.log((e as Error).message); }
console.log(lines.filter(l => !l.includes('client') ).join('\n'));
