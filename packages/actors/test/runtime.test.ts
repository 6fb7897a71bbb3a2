import { describe, expect, it } from 'vitest';
import {
  type BatchItem,
  CallTimeoutError,
  ExitError,
  type GenServer,
  ManualClock,
  Node,
  NoProcError,
} from '../src/index.ts';
import { recorder, settle } from './helpers.ts';

describe('messages', () => {
  it('delivers sends in FIFO order, one message at a time even with async handlers', async () => {
    const node = new Node({ name: 'n1' });
    const events: string[] = [];
    const pid = node.spawn<void>(
      {
        init: () => 0,
        handleInfo: async (msg, state: number) => {
          events.push(`begin ${String(msg)}`);
          await new Promise((r) => setTimeout(r, 2));
          events.push(`end ${String(msg)}`);
          return state + 1;
        },
      },
      undefined,
    );
    for (const m of ['a', 'b', 'c']) node.send(pid, m);
    for (let i = 0; i < 200 && events.length < 6; i++) await new Promise((r) => setTimeout(r, 2));
    expect(events).toEqual(['begin a', 'end a', 'begin b', 'end b', 'begin c', 'end c']);
  });

  it('casts go to handleCast and calls return the reply', async () => {
    const node = new Node({ name: 'n1' });
    const counter: GenServer<number, number, 'get', number, number> = {
      init: (start) => start,
      handleCast: (n, state) => state + n,
      handleCall: (_req, _from, state) => ({ reply: state, state }),
    };
    const pid = node.spawn(counter, 10);
    node.cast(pid, 5);
    node.cast(pid, 7);
    await expect(node.call(pid, 'get')).resolves.toBe(22);
  });

  it('answers later with ctx.reply after noreply', async () => {
    const node = new Node({ name: 'n1' });
    const pid = node.spawn<void>(
      {
        init: () => null,
        handleCall: (request, from, state, ctx) => {
          ctx.sendAfter(1, { type: 'answer', from, request });
          return { noreply: true, state };
        },
        handleInfo: (msg, state, ctx) => {
          const m = msg as { from: import('../src/index.ts').From; request: number };
          ctx.reply(m.from, m.request * 2);
          return state;
        },
      },
      undefined,
    );
    await expect(node.call(pid, 21)).resolves.toBe(42);
  });

  it('hands a batch behaviour every message queued so far', async () => {
    const node = new Node({ name: 'n1' });
    const batches: number[] = [];
    const pid = node.spawn<void>(
      {
        kind: 'batch',
        init: () => 0,
        handleBatch: (items: BatchItem[], state: number, ctx) => {
          batches.push(items.length);
          for (const item of items) if (item.kind === 'call') ctx.reply(item.from, state + items.length);
          return state + items.length;
        },
      },
      undefined,
    );
    for (let i = 0; i < 100; i++) node.send(pid, i);
    const reply = node.call(pid, 'total');
    await expect(reply).resolves.toBe(101);
    expect(batches).toEqual([101]);
  });
});

describe('calls', () => {
  it('rejects a call to a dead pid with NoProcError', async () => {
    const node = new Node({ name: 'n1' });
    const pid = node.spawn<void>({ init: () => null }, undefined);
    node.exit(pid, 'kill');
    await expect(node.call(pid, 'x')).rejects.toBeInstanceOf(NoProcError);
    await expect(node.call('nobody', 'x')).rejects.toBeInstanceOf(NoProcError);
  });

  it('rejects with ExitError carrying the reason when the callee exits before replying', async () => {
    const node = new Node({ name: 'n1' });
    const pid = node.spawn<void>(
      {
        init: () => null,
        handleCall: () => {
          throw new Error('boom');
        },
      },
      undefined,
    );
    const err = await node.call(pid, 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExitError);
    expect((err as ExitError).reason).toMatchObject({ error: 'Error', message: 'boom' });
  });

  it('times out on the injected clock and leaves no stray reply in the caller mailbox', async () => {
    const clock = new ManualClock();
    const node = new Node({ name: 'n1', clock });
    const slow = node.spawn<void>(
      {
        init: () => null,
        handleCall: (_req, from, state, ctx) => {
          ctx.sendAfter(500, { type: 'late', from });
          return { noreply: true, state };
        },
        handleInfo: (msg, state, ctx) => {
          ctx.reply((msg as { from: import('../src/index.ts').From }).from, 'too late');
          return state;
        },
      },
      undefined,
    );
    const seen: unknown[] = [];
    const outcome: unknown[] = [];
    const caller = node.spawn<void>(
      {
        init: () => null,
        handleCast: async (_msg, state, ctx) => {
          outcome.push(await ctx.call(slow, 'q', { timeoutMs: 100 }).catch((e: unknown) => e));
          return state;
        },
        handleInfo: (msg, state) => {
          seen.push(msg);
          return state;
        },
      },
      undefined,
    );
    node.cast(caller, 'go');
    await settle();
    await clock.advance(100);
    expect(outcome[0]).toBeInstanceOf(CallTimeoutError);
    await clock.advance(1000);
    await settle();
    expect(seen).toEqual([]);
    expect(node.isAlive(caller)).toBe(true);
  });
});

describe('failures', () => {
  it('an exception or a rejected promise kills only that actor, with the error as reason', async () => {
    const node = new Node({ name: 'n1' });
    const reasons: unknown[] = [];
    node.inspect((e) => {
      if (e.type === '@actors.exited') reasons.push(e.reason);
    });
    const sync = node.spawn<void>(
      {
        init: () => null,
        handleInfo: () => {
          throw new TypeError('sync boom');
        },
      },
      undefined,
    );
    const async = node.spawn<void>(
      {
        init: () => null,
        handleInfo: async () => {
          throw new RangeError('async boom');
        },
      },
      undefined,
    );
    const bystander = node.spawn<void>({ init: () => null }, undefined);
    node.send(sync, 'x');
    node.send(async, 'x');
    await settle();
    expect(node.isAlive(sync)).toBe(false);
    expect(node.isAlive(async)).toBe(false);
    expect(node.isAlive(bystander)).toBe(true);
    expect(reasons).toEqual([
      expect.objectContaining({ error: 'TypeError', message: 'sync boom' }),
      expect.objectContaining({ error: 'RangeError', message: 'async boom' }),
    ]);
  });

  it('a failing init rejects spawnAndWait with StartError', async () => {
    const node = new Node({ name: 'n1' });
    await expect(
      node.spawnAndWait<void>(
        {
          init: async () => {
            throw new Error('no init');
          },
        },
        undefined,
      ),
    ).rejects.toMatchObject({ name: 'StartError' });
    expect(node.size).toBe(0);
  });

  it('runs terminate when an actor stops itself or crashes, not when it is killed', async () => {
    const node = new Node({ name: 'n1' });
    const log: string[] = [];
    const b: GenServer<null, string, never, unknown, string> = {
      init: () => null,
      handleCast: (msg, state, ctx) => {
        if (msg === 'crash') throw new Error('x');
        ctx.stop('done');
        return state;
      },
      terminate: (reason) => {
        log.push(typeof reason === 'string' ? reason : 'error');
      },
    };
    const a1 = node.spawn(b, 'a');
    const a2 = node.spawn(b, 'b');
    const a3 = node.spawn(b, 'c');
    node.cast(a1, 'stop');
    node.cast(a2, 'crash');
    node.exit(a3, 'kill');
    await settle();
    expect(log).toEqual(['done', 'error']);
  });
});

describe('links and monitors', () => {
  const idle: GenServer<null, void> = { init: () => null };

  it('propagates exits over links both ways, but not normal exits', async () => {
    const node = new Node({ name: 'n1' });
    const a = node.spawn(idle, undefined);
    const b = node.spawn(idle, undefined, { link: a });
    const c = node.spawn(idle, undefined, { link: b });
    node.exit(c, 'boom');
    await settle();
    expect([node.isAlive(a), node.isAlive(b), node.isAlive(c)]).toEqual([false, false, false]);

    const d = node.spawn(idle, undefined);
    const e = node.spawn<void>(
      {
        init: () => null,
        handleCast: (_m, s, ctx) => {
          ctx.stop('normal');
          return s;
        },
      },
      undefined,
      { link: d },
    );
    node.cast(e, 'stop');
    await settle();
    expect(node.isAlive(e)).toBe(false);
    expect(node.isAlive(d)).toBe(true);
  });

  it('trapExit turns exit signals into messages; kill cannot be trapped', async () => {
    const node = new Node({ name: 'n1' });
    const seen: unknown[] = [];
    const trapper = node.spawn(recorder(seen), undefined, { trapExit: true });
    const linked = node.spawn(idle, undefined, { link: trapper });
    node.exit(linked, 'boom');
    node.exit(trapper, 'please');
    await settle();
    expect(node.isAlive(trapper)).toBe(true);
    expect(seen).toEqual([
      { type: '@actors.exit', from: linked, reason: 'boom' },
      { type: '@actors.exit', from: node.sink, reason: 'please' },
    ]);
    node.exit(trapper, 'kill');
    await settle();
    expect(node.isAlive(trapper)).toBe(false);
  });

  it('a killed actor exits its links with killed', async () => {
    const node = new Node({ name: 'n1' });
    const seen: unknown[] = [];
    const trapper = node.spawn(recorder(seen), undefined, { trapExit: true });
    const victim = node.spawn(idle, undefined, { link: trapper });
    node.exit(victim, 'kill');
    await settle();
    expect(seen).toEqual([{ type: '@actors.exit', from: victim, reason: 'killed' }]);
  });

  it('monitors deliver DOWN with the reason; a dead pid gives noproc at once; demonitor stops it', async () => {
    const node = new Node({ name: 'n1' });
    const seen: unknown[] = [];
    const refs: number[] = [];
    const target = node.spawn(idle, undefined);
    const other = node.spawn(idle, undefined);
    const dead = node.spawn(idle, undefined);
    node.exit(dead, 'kill');
    const watcher = node.spawn<void>(
      {
        init: (_a, ctx) => {
          refs.push(ctx.monitor(target), ctx.monitor(dead));
          ctx.demonitor(ctx.monitor(other));
          return null;
        },
        handleInfo: (msg, s) => {
          seen.push(msg);
          return s;
        },
      },
      undefined,
    );
    node.exit(target, 'gone');
    node.exit(other, 'gone');
    await settle();
    expect(node.isAlive(watcher)).toBe(true);
    expect(seen).toEqual([
      { type: '@actors.down', ref: refs[1], pid: dead, reason: 'noproc' },
      { type: '@actors.down', ref: refs[0], pid: target, reason: 'gone' },
    ]);
  });

  it('linking to a dead pid delivers noproc', async () => {
    const node = new Node({ name: 'n1' });
    const seen: unknown[] = [];
    const dead = node.spawn(idle, undefined);
    node.exit(dead, 'kill');
    node.spawn(recorder(seen), undefined, { trapExit: true, link: dead });
    await settle();
    expect(seen).toEqual([{ type: '@actors.exit', from: dead, reason: 'noproc' }]);
  });
});

describe('registry and timers', () => {
  it('registers names that die with their actor', async () => {
    const node = new Node({ name: 'n1' });
    const seen: unknown[] = [];
    const pid = node.spawn(recorder(seen), undefined, { name: 'rec' });
    expect(node.whereis('rec')).toEqual(pid);
    node.send('rec', 1);
    node.send({ name: 'rec', node: 'n1' }, 2);
    await settle();
    expect(seen).toEqual([1, 2]);
    expect(() => node.spawn(recorder([]), undefined, { name: 'rec' })).toThrow(/already registered/);
    node.exit(pid, 'kill');
    expect(node.whereis('rec')).toBeUndefined();
    const again = node.spawn(recorder([]), undefined);
    node.register('rec', again);
    node.unregister('rec');
    expect(node.whereis('rec')).toBeUndefined();
  });

  it('sendAfter fires on the simulated clock and can be cancelled', async () => {
    const clock = new ManualClock();
    const node = new Node({ name: 'n1', clock });
    const seen: unknown[] = [];
    const pid = node.spawn(recorder(seen), undefined);
    node.sendAfter(100, pid, 'first');
    const t = node.sendAfter(50, pid, 'cancelled');
    node.sendAfter(200, pid, 'second');
    expect(node.cancelTimer(t)).toBe(true);
    expect(node.cancelTimer(t)).toBe(false);
    await clock.advance(99);
    expect(seen).toEqual([]);
    await clock.advance(1);
    expect(seen).toEqual(['first']);
    await clock.advance(100);
    expect(seen).toEqual(['first', 'second']);
  });
});

describe('fairness', () => {
  it('two actors in a closed message loop do not starve timers', async () => {
    const node = new Node({ name: 'n1' });
    let bounces = 0;
    const ping: GenServer<null, void> = {
      init: () => null,
      handleInfo: (msg, state, ctx) => {
        bounces++;
        ctx.send((msg as { peer: import('@otra/protocol').Pid }).peer, { peer: ctx.self });
        return state;
      },
    };
    const a = node.spawn(ping, undefined);
    const b = node.spawn(ping, undefined);
    node.send(a, { peer: b });
    await new Promise((r) => setTimeout(r, 20));
    expect(bounces).toBeGreaterThan(100);
    node.exit(a, 'kill');
    node.exit(b, 'kill');
  });
});
