import type { Pid } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import { ExitError, type GenServer, LoopbackNetwork, Node, NoProcError } from '../src/index.ts';
import { recorder, settle } from './helpers.ts';

const echo: GenServer<null, void, unknown, unknown> = {
  init: () => null,
  handleCall: (req, _from, state) => ({ reply: { echo: req }, state }),
};

function cluster(...names: string[]): { net: LoopbackNetwork; nodes: Node[] } {
  const net = new LoopbackNetwork();
  const nodes = names.map((name) => new Node({ name }));
  for (const n of nodes) net.join(n);
  return { net, nodes };
}

describe('location transparency over the loopback network', () => {
  it('calls, casts and sends reach remote pids and registered names, in order', async () => {
    const { nodes } = cluster('a', 'b');
    const [a, b] = nodes as [Node, Node];
    const seen: unknown[] = [];
    const rec = b.spawn(recorder(seen), undefined, { name: 'rec' });
    const e = b.spawn(echo, undefined, { name: 'echo' });
    await expect(a.call(e, 1)).resolves.toEqual({ echo: 1 });
    await expect(a.call({ name: 'echo', node: 'b' }, 2)).resolves.toEqual({ echo: 2 });
    for (let i = 0; i < 100; i++) a.send(i % 2 === 0 ? rec : { name: 'rec', node: 'b' }, i);
    await settle();
    expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => i));
    await expect(a.call({ name: 'nobody', node: 'b' }, 3)).rejects.toBeInstanceOf(NoProcError);
  });

  it('drops runtime messages (@actors.*) sent from another node: a peer cannot fake a monitor firing', async () => {
    const net = new LoopbackNetwork();
    const warnings: string[] = [];
    const a = new Node({ name: 'a' });
    const b = new Node({ name: 'b', log: (_level, message) => warnings.push(message) });
    net.join(a);
    net.join(b);
    const seen: unknown[] = [];
    const rec = b.spawn(recorder(seen), undefined, { name: 'rec' });
    const fake = { type: '@actors.down', ref: 1, pid: rec, reason: 'forged' };
    a.send(rec, fake);
    a.cast({ name: 'rec', node: 'b' }, { type: '@actors.exit', from: rec, reason: 'forged' });
    a.send(rec, { type: 'ordinary', n: 1 });
    await settle();
    expect(seen).toEqual([{ type: 'ordinary', n: 1 }]);
    expect(warnings.filter((w) => w.includes('sent from another node'))).toHaveLength(2);
    // the local runtime's own messages still arrive
    b.send(rec, fake);
    await settle();
    expect(seen).toHaveLength(2);
  });

  it('remote monitors and links fire on exit, and with noconnection when the link is cut', async () => {
    const { net, nodes } = cluster('a', 'b');
    const [a, b] = nodes as [Node, Node];
    const seen: unknown[] = [];
    const targets = [b.spawn(echo, undefined), b.spawn(echo, undefined)] as [Pid, Pid];
    const watcher = a.spawn<void>(
      {
        init: (_args, ctx) => {
          ctx.trapExit(true);
          ctx.monitor(targets[0]);
          ctx.monitor(targets[1]);
          ctx.link(targets[1]);
          ctx.monitorNode('b');
          return null;
        },
        handleInfo: (msg, state) => {
          seen.push(msg);
          return state;
        },
      },
      undefined,
    );
    await settle();
    b.exit(targets[0], 'bye');
    await settle();
    expect(seen).toEqual([{ type: '@actors.down', ref: expect.any(Number), pid: targets[0], reason: 'bye' }]);
    const pendingCall = a.call(targets[1], 'x', { timeoutMs: 60_000 });
    net.partition('a', 'b');
    await expect(pendingCall).rejects.toSatisfy((e) => e instanceof ExitError && e.reason === 'noconnection');
    await settle();
    expect(seen.slice(1)).toEqual([
      { type: '@actors.down', ref: expect.any(Number), pid: targets[1], reason: 'noconnection' },
      { type: '@actors.exit', from: targets[1], reason: 'noconnection' },
      { type: '@actors.nodedown', node: 'b' },
    ]);
    expect(a.isAlive(watcher)).toBe(true);
    net.heal('a', 'b');
    await settle();
    expect(seen.at(-1)).toEqual({ type: '@actors.nodeup', node: 'b' });
  });

  it('demonitoring a remote registered name leaves no watcher behind on the target', async () => {
    const { nodes } = cluster('a', 'b');
    const [a, b] = nodes as [Node, Node];
    const target = b.spawn(echo, undefined, { name: 'watched' });
    const seen: unknown[] = [];
    const watcher = a.spawn<void>(
      {
        init: () => null,
        handleInfo: (msg, state, ctx) => {
          if (msg === 'watch') ctx.demonitor(ctx.monitor({ name: 'watched', node: 'b' }));
          else seen.push(msg);
          return state;
        },
      },
      undefined,
    );
    // what a quiescing Raft follower does each time its group falls asleep and wakes up
    for (let i = 0; i < 50; i++) a.send(watcher, 'watch');
    await settle();
    const watchers = (b as unknown as { resolve(p: Pid): { watchers?: Map<string, unknown> } }).resolve(
      target,
    ).watchers;
    expect(watchers?.size ?? 0).toBe(0);
    b.exit(target, 'bye');
    await settle();
    expect(seen).toEqual([]);
  });

  it('an exit across a link kills a remote linked actor that does not trap exits', async () => {
    const { nodes } = cluster('a', 'b');
    const [a, b] = nodes as [Node, Node];
    const remote = b.spawn(echo, undefined);
    const local = a.spawn<void>(
      {
        init: (_args, ctx) => {
          ctx.link(remote);
          return null;
        },
      },
      undefined,
    );
    await settle();
    a.exit(local, 'crash');
    await settle();
    expect(b.isAlive(remote)).toBe(false);
  });

  it('a pid of an old incarnation is dead on the restarted node', async () => {
    const net = new LoopbackNetwork();
    const a = new Node({ name: 'a' });
    const b1 = new Node({ name: 'b', creation: 1 });
    net.join(a);
    net.join(b1);
    const old = b1.spawn(echo, undefined);
    net.leave('b');
    const b2 = new Node({ name: 'b', creation: 2 });
    net.join(b2);
    const fresh = b2.spawn(echo, undefined);
    expect(fresh.id).toBe(old.id);
    await expect(a.call(old, 'x')).rejects.toBeInstanceOf(NoProcError);
    await expect(a.call(fresh, 'x')).resolves.toEqual({ echo: 'x' });
  });
});
