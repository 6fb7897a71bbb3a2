import type { Pid } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import {
  type ChildSpec,
  fromStatechart,
  type InspectionEvent,
  ManualClock,
  Node,
  startChild,
  startSupervisor,
  supervisorSpec,
  terminateChild,
  whichChildren,
} from '../src/index.ts';
import { settle, worker } from './helpers.ts';

function spec(id: string, log: string[], extra: Partial<ChildSpec> = {}): ChildSpec {
  return { id, start: (ctx) => ctx.spawn(worker(id, log), undefined, { trapExit: true }), ...extra };
}

async function pids(node: Node, sup: Pid): Promise<Record<string, number | undefined>> {
  const out: Record<string, number | undefined> = {};
  for (const c of await whichChildren(node, sup)) out[c.id] = c.pid?.id;
  return out;
}

async function kill(node: Node, sup: Pid, id: string, reason = 'boom'): Promise<void> {
  const child = (await whichChildren(node, sup)).find((c) => c.id === id);
  if (child?.pid === undefined) throw new Error(`no child ${id}`);
  // workers trap exits, so they are told to stop themselves with the reason (terminate runs)
  node.cast(child.pid, { exit: reason });
  await settle(10);
}

describe('supervisor strategies', () => {
  it('starts children in order and stops them in reverse order', async () => {
    const node = new Node({ name: 'n1' });
    const log: string[] = [];
    const sup = await startSupervisor(
      node,
      { strategy: 'one_for_one' },
      ['a', 'b', 'c'].map((id) => spec(id, log)),
    );
    expect(log).toEqual(['start a', 'start b', 'start c']);
    await node.stop(sup, 'shutdown');
    expect(log.slice(3)).toEqual(['stop c', 'stop b', 'stop a']);
    expect(node.size).toBe(0);
  });

  it('one_for_one restarts only the child that died', async () => {
    const node = new Node({ name: 'n1' });
    const log: string[] = [];
    const sup = await startSupervisor(
      node,
      { strategy: 'one_for_one', intensity: 5 },
      ['a', 'b'].map((id) => spec(id, log)),
    );
    const before = await pids(node, sup);
    await kill(node, sup, 'a');
    const after = await pids(node, sup);
    expect(after.a).not.toBe(before.a);
    expect(after.b).toBe(before.b);
    expect(log).toEqual(['start a', 'start b', 'stop a', 'start a']);
  });

  it('one_for_all restarts every child, stopping the others in reverse first', async () => {
    const node = new Node({ name: 'n1' });
    const log: string[] = [];
    const sup = await startSupervisor(
      node,
      { strategy: 'one_for_all', intensity: 5 },
      ['a', 'b', 'c'].map((id) => spec(id, log)),
    );
    log.length = 0;
    await kill(node, sup, 'b');
    expect(log).toEqual(['stop b', 'stop c', 'stop a', 'start a', 'start b', 'start c']);
  });

  it('rest_for_one restarts exactly the later siblings, in order', async () => {
    const node = new Node({ name: 'n1' });
    const log: string[] = [];
    const sup = await startSupervisor(
      node,
      { strategy: 'rest_for_one', intensity: 5 },
      ['a', 'b', 'c', 'd'].map((id) => spec(id, log)),
    );
    const before = await pids(node, sup);
    log.length = 0;
    await kill(node, sup, 'b');
    const after = await pids(node, sup);
    expect(log).toEqual(['stop b', 'stop d', 'stop c', 'start b', 'start c', 'start d']);
    expect(after.a).toBe(before.a);
    for (const id of ['b', 'c', 'd']) expect(after[id]).not.toBe(before[id]);
  });

  it('honours restart types: transient normal exit and temporary children are not restarted', async () => {
    const node = new Node({ name: 'n1' });
    const log: string[] = [];
    const sup = await startSupervisor(node, { strategy: 'one_for_one', intensity: 10 }, [
      spec('perm', log),
      spec('trans', log, { restart: 'transient' }),
      spec('temp', log, { restart: 'temporary' }),
    ]);
    await kill(node, sup, 'trans', 'normal');
    expect(node.isAlive((await whichChildren(node, sup))[0]?.pid as Pid)).toBe(true);
    expect((await whichChildren(node, sup)).find((c) => c.id === 'trans')?.pid).toBeUndefined();
    await kill(node, sup, 'perm', 'normal');
    expect((await whichChildren(node, sup)).find((c) => c.id === 'perm')?.pid).toBeDefined();
    await kill(node, sup, 'temp', 'crash');
    expect((await whichChildren(node, sup)).map((c) => c.id)).toEqual(['perm', 'trans']);
    expect(log.filter((l) => l === 'start perm')).toHaveLength(2);
  });

  it('escalates when restarts exceed the intensity within the period', async () => {
    const clock = new ManualClock();
    const node = new Node({ name: 'n1', clock });
    const log: string[] = [];
    const events: InspectionEvent[] = [];
    node.inspect((e) => events.push(e));
    const top = await startSupervisor(node, { strategy: 'one_for_one', intensity: 1, periodMs: 10_000 }, [
      supervisorSpec('inner', { strategy: 'one_for_one', intensity: 2, periodMs: 1000 }, [spec('w', log)]),
    ]);
    const inner = (await whichChildren(node, top))[0]?.pid as Pid;
    for (let i = 0; i < 2; i++) {
      await kill(node, inner, 'w');
      await clock.advance(100);
    }
    expect(node.isAlive(inner)).toBe(true);
    // two restarts in the period are allowed; a third exceeds intensity 2 and the inner supervisor exits
    await kill(node, inner, 'w');
    await settle(10);
    expect(node.isAlive(inner)).toBe(false);
    expect(events.some((e) => e.type === '@actors.escalated' && e.supervisor.id === inner.id)).toBe(true);
    // the top supervisor restarts the inner one: escalation goes one level up
    const restartedInner = (await whichChildren(node, top))[0]?.pid as Pid;
    expect(restartedInner.id).not.toBe(inner.id);
    expect(node.isAlive(restartedInner)).toBe(true);
    await clock.advance(5000);
    // after the period the history is forgotten
    await kill(node, restartedInner, 'w');
    expect(node.isAlive(restartedInner)).toBe(true);
  });

  it('simple_one_for_one starts dynamic children with args and restarts them', async () => {
    const node = new Node({ name: 'n1' });
    const started: string[] = [];
    const sup = await startSupervisor(node, { strategy: 'simple_one_for_one', intensity: 5 }, [
      {
        id: 'server',
        restart: 'transient',
        start: (ctx, args) =>
          ctx.spawn<string>(
            {
              init: (name) => {
                started.push(name);
                return name;
              },
            },
            args as string,
          ),
      },
    ]);
    const a = await startChild(node, sup, { args: 'a' });
    const b = await startChild(node, sup, { args: 'b' });
    expect(started).toEqual(['a', 'b']);
    node.exit(a, 'crash');
    await settle(10);
    expect(started).toEqual(['a', 'b', 'a']);
    await terminateChild(node, sup, b);
    expect(node.isAlive(b)).toBe(false);
    expect((await whichChildren(node, sup)).length).toBe(1);
  });

  it('kills a child that outlives its shutdown time; brutal_kill kills at once', async () => {
    const clock = new ManualClock();
    const node = new Node({ name: 'n1', clock });
    const log: string[] = [];
    const stubborn: ChildSpec = {
      id: 'stubborn',
      shutdown: 200,
      start: (ctx) =>
        ctx.spawn<void>(
          {
            init: () => null,
            terminate: () => new Promise<void>(() => log.push('terminate forever')),
          },
          undefined,
          { trapExit: true },
        ),
    };
    const sup = await startSupervisor(node, { strategy: 'one_for_one' }, [
      spec('brutal', log, { shutdown: 'brutal_kill' }),
      stubborn,
    ]);
    const children = await whichChildren(node, sup);
    const exited = Promise.all(children.map((c) => node.awaitExit(c.pid as Pid)));
    const stopped = node.stop(sup, 'shutdown', Number.POSITIVE_INFINITY);
    await settle();
    expect(log).toEqual(['start brutal', 'terminate forever']);
    await clock.advance(200);
    await expect(exited).resolves.toEqual(['killed', 'killed']);
    await expect(stopped).resolves.toBe('shutdown');
  });

  it('a statechart actor under a supervisor restarts with a fresh state', async () => {
    const node = new Node({ name: 'n1' });
    const chart = setup({
      types: { context: {} as { count: number }, events: {} as { type: 'inc' } | { type: 'fail' } },
      actions: {
        fail: () => {
          throw new Error('chart failed');
        },
      },
    }).createMachine({
      id: 'counter',
      context: { count: 0 },
      initial: 'counting',
      states: {
        counting: {
          on: {
            inc: [
              {
                guard: ({ context }) => context.count >= 1,
                target: 'busy',
                actions: assign({ count: ({ context }) => context.count + 1 }),
              },
              { actions: assign({ count: ({ context }) => context.count + 1 }) },
            ],
            fail: { actions: 'fail' },
          },
        },
        busy: { on: { fail: { actions: 'fail' } } },
      },
    });
    const sup = await startSupervisor(node, { strategy: 'one_for_one', intensity: 3 }, [
      { id: 'chart', start: (ctx) => ctx.spawn(fromStatechart(chart), undefined) },
    ]);
    const first = (await whichChildren(node, sup))[0]?.pid as Pid;
    node.send(first, { type: 'inc' });
    node.send(first, { type: 'inc' });
    await settle();
    const tree1 = node.inspectTree();
    expect(tree1.roots[0]?.children[0]).toMatchObject({
      kind: 'statechart',
      stateValue: 'busy',
      restarts: 0,
    });
    node.send(first, { type: 'fail' });
    await settle(10);
    const second = (await whichChildren(node, sup))[0]?.pid as Pid;
    expect(second.id).not.toBe(first.id);
    expect(node.inspectTree().roots[0]?.children[0]).toMatchObject({
      kind: 'statechart',
      stateValue: 'counting',
      restarts: 1,
      childId: 'chart',
    });
  });
});

describe('inspection', () => {
  it('inspectTree shows the live supervision tree as JSON and inspect streams lifecycle events', async () => {
    const node = new Node({ name: 'n1' });
    const events: string[] = [];
    node.inspect((e) => events.push(e.type));
    const log: string[] = [];
    const sup = await startSupervisor(
      node,
      { strategy: 'one_for_one', intensity: 2 },
      [spec('a', log), supervisorSpec('nested', { strategy: 'one_for_one' }, [spec('b', log)])],
      { name: 'root' },
    );
    const tree = node.inspectTree();
    expect(JSON.parse(JSON.stringify(tree))).toEqual(tree);
    expect(tree.roots).toHaveLength(1);
    const root = tree.roots[0];
    expect(root).toMatchObject({
      name: 'root',
      kind: 'supervisor',
      stateValue: 'one_for_one',
      trapExit: true,
      status: 'running',
    });
    expect(root?.children.map((c) => [c.childId, c.kind])).toEqual([
      ['a', 'gen_server'],
      ['nested', 'supervisor'],
    ]);
    expect(root?.children[1]?.children[0]).toMatchObject({
      childId: 'b',
      kind: 'gen_server',
      mailbox: 0,
      restarts: 0,
    });
    await kill(node, sup, 'a');
    expect(events).toContain('@actors.restarted');
    expect(node.inspectTree().roots[0]?.children.find((c) => c.childId === 'a')).toMatchObject({
      restarts: 1,
    });
    await node.shutdown();
    expect(node.size).toBe(0);
    expect(events.filter((e) => e === '@actors.spawned')).toHaveLength(5);
  });

  it('streams message deliveries only to listeners that ask for them', async () => {
    const node = new Node({ name: 'n1' });
    const plain: string[] = [];
    const traced: unknown[] = [];
    node.inspect((e) => plain.push(e.type));
    const stop = node.inspect((e) => e.type === '@actors.message' && traced.push(e.msg), { messages: true });
    const pid = node.spawn<void>({ init: () => null }, undefined);
    node.send(pid, 'hello');
    stop();
    node.send(pid, 'unseen');
    expect(traced).toEqual(['hello']);
    expect(plain).toEqual(['@actors.spawned']);
  });
});
