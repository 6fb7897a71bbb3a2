import { LoopbackNetwork, Node } from '@otra/actors';
import { afterEach, describe, expect, it } from 'vitest';
import {
  auxCommand,
  defineMachine,
  InvalidRequestError,
  processCommand,
  type RaftSystem,
  startCluster,
  startSystem,
} from '../src/index.ts';
import { eventually, kvMachine } from './support.ts';

const systems: RaftSystem[] = [];
afterEach(async () => {
  for (const s of systems.splice(0)) await s.stop();
});

/** Counts applied puts in the log and, off the log, how many `aux` effects each member handled. */
const counted = defineMachine<{ key: string }, number, number>({
  init: () => 0,
  apply: (_meta, _cmd, state) => [state + 1, state + 1, [{ type: 'aux', command: 'applied' }]],
  initAux: () => 0,
  handleAux: (role, command, aux, machineState) => {
    const seen = (aux as number) + (command === 'applied' ? 1 : 0);
    return [seen, { role, seen, machineState }];
  },
});

describe('aux', () => {
  it('runs the machine aux handler on every member, off the log, and answers auxCommand', async () => {
    const net = new LoopbackNetwork();
    const nodes = ['n1', 'n2', 'n3'].map((name) => new Node({ name }));
    for (const n of nodes) net.join(n);
    for (const n of nodes) {
      systems.push(await startSystem(n, { machines: { counted, kv: kvMachine }, tickMs: 30 }));
    }
    const s1 = systems[0]!;
    const ids = nodes.map((n) => ({ name: 'c', node: n.name }));
    await startCluster(s1, 'c', { module: 'counted' }, ids);
    for (let i = 0; i < 3; i++) await processCommand(s1, ids[0]!, { key: `k${i}` });
    for (const id of ids) {
      const r = await eventually(async () => {
        const v = await auxCommand<{ role: string; seen: number; machineState: number }>(s1, id, 'peek');
        return v.seen === 3 ? v : undefined;
      });
      expect(r.machineState).toBe(3);
      expect(['leader', 'follower']).toContain(r.role);
    }
    // a machine without handleAux refuses aux commands with a typed error
    const kvIds = nodes.map((n) => ({ name: 'k', node: n.name }));
    await startCluster(s1, 'k', { module: 'kv' }, kvIds);
    await expect(auxCommand(s1, kvIds[0]!, 'peek')).rejects.toBeInstanceOf(InvalidRequestError);
  });
});
