import { Cluster } from '../src/cluster.ts';
const orig = (Cluster.prototype as any).enqueueWrite;
(Cluster.prototype as any).enqueueWrite = function (s: any, w: any) {
  if (s.name === 'n4' && this.now > 4900) console.log(this.now, 'enqueue', w.op, w.effect?.entries.map((e: any) => e.index), 'free', s.writerFreeAt);
  return orig.call(this, s, w);
};
const oc = (Cluster.prototype as any).completeWrite;
(Cluster.prototype as any).completeWrite = function (s: any, w: any) {
  if (s.name === 'n4' && this.now > 4900) console.log(this.now, 'complete', w.op, w.effect?.entries.map((e: any) => e.index), 'storage last', s.storage.entries.at(-1)?.index);
  return oc.call(this, s, w);
};
const { runSimulation } = await import('../src/index.ts');
try { runSimulation({ seed: 202, servers: 5, clients: 5, faultMs: 5000 }); } catch (e) { console.log((e as Error).message.slice(0, 200)); }
