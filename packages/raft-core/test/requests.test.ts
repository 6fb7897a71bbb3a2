import type { CommandEntry, LogEntry, SnapshotMeta } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_REQUEST_WINDOW,
  defineMachine,
  type Effect,
  initServer,
  type Machine,
  type Recovered,
  startServer,
  unwrapSnapshotState,
} from '../src/index.ts';
import { emptyRequests, findRequest, recordRequest, requestsAt } from '../src/internal/requests.ts';
import { A, ackAll, ae, B, C, config, electedLeader, empty, feed, from, type Srv } from './helpers.ts';

/** Appends numbers to a list; 'boom' throws; releases its cursor when asked to with 'release'. */
const list = (window?: number) =>
  defineMachine<number | 'boom' | 'release', number, number[]>({
    init: () => [],
    apply: (meta, cmd, state) => {
      if (cmd === 'boom') throw new Error('boom');
      if (cmd === 'release')
        return [state, state.length, [{ type: 'release_cursor', index: meta.index, machineState: state }]];
      const next = [...state, cmd];
      return [next, next.length];
    },
    ...(window === undefined ? {} : { requestWindow: window }),
  }) as Machine<unknown, unknown, unknown>;

function leader(window?: number): Srv {
  const a = electedLeader([A, B, C], { machine: list(window) });
  ackAll(a);
  return a;
}

function replies(effects: readonly Effect[]) {
  return effects.filter((e) => e.type === 'reply').map((e) => (e as { reply: unknown }).reply);
}

function submit(a: Srv, command: unknown, ref: number, requestId?: string): void {
  feed(a, {
    type: 'command',
    command,
    reply: { mode: 'await_consensus', from: from(ref) },
    ...(requestId === undefined ? {} : { requestId }),
  });
}

const cmd = (index: number, command: unknown, requestId?: string): CommandEntry => ({
  type: 'command',
  index,
  term: 1,
  command,
  reply: { mode: 'noreply' },
  systemTime: 0,
  ...(requestId === undefined ? {} : { requestId }),
});

describe('request ids (command de-duplication)', () => {
  it('applies a resent request once and answers the copy with the first reply, index and term', () => {
    const a = leader();
    submit(a, 7, 1, 'req-1');
    submit(a, 7, 2, 'req-1');
    submit(a, 8, 3, 'req-2');
    const fx = ackAll(a);
    expect(a.state.machineState).toEqual([7, 8]);
    expect(replies(fx)).toEqual([
      { type: 'applied', index: 2, term: 1, reply: 1, leader: A },
      { type: 'applied', index: 2, term: 1, reply: 1, leader: A },
      { type: 'applied', index: 4, term: 1, reply: 2, leader: A },
    ]);
    // the copy is still in the log (every member sees and skips it)
    expect((a.state.log.entries[2] as CommandEntry).requestId).toBe('req-1');
  });

  it('commands without an id are applied every time', () => {
    const a = leader();
    submit(a, 7, 1);
    submit(a, 7, 2);
    ackAll(a);
    expect(a.state.machineState).toEqual([7, 7]);
  });

  it('a pipelined copy is notified with the first reply', () => {
    const a = leader();
    const to = { node: 'client', id: 9, creation: 1 };
    feed(a, {
      type: 'command',
      command: 5,
      reply: { mode: 'notify', to, correlation: 'c1' },
      requestId: 'p',
    });
    feed(a, {
      type: 'command',
      command: 5,
      reply: { mode: 'notify', to, correlation: 'c2' },
      requestId: 'p',
    });
    const fx = ackAll(a);
    expect(a.state.machineState).toEqual([5]);
    expect(fx.filter((e) => e.type === 'notify')).toEqual([
      {
        type: 'notify',
        to,
        applied: [
          ['c1', 1],
          ['c2', 1],
        ],
      },
    ]);
  });

  it('a copy of a request whose apply threw gets the same error and is not applied', () => {
    const a = leader();
    submit(a, 'boom', 1, 'b');
    submit(a, 'boom', 2, 'b');
    const fx = ackAll(a);
    expect(replies(fx)).toEqual([
      { type: 'error', error: 'machine_error', leader: A, message: 'boom' },
      { type: 'error', error: 'machine_error', leader: A, message: 'boom' },
    ]);
    expect(a.state.requests.length).toBe(1);
  });

  it('forgets an id once the request window (in log entries) has passed', () => {
    const a = leader(3);
    submit(a, 1, 1, 'w'); // index 2
    submit(a, 2, 2); // 3
    submit(a, 1, 3, 'w'); // 4: within (4 - 3, 4): a copy
    submit(a, 3, 4); // 5
    submit(a, 1, 5, 'w'); // 6: the first copy at 2 is outside (3, 6): applied again
    ackAll(a);
    expect(a.state.machineState).toEqual([1, 2, 3, 1]);
  });

  it('a follower decides as the leader does from the log alone', () => {
    const r = startServer(initServer(config(B, [A, B, C], { machine: list() }), empty));
    const b: Srv = { role: r.role, state: r.state, effects: r.effects };
    const entries: LogEntry[] = [cmd(1, 4, 'x'), cmd(2, 5), cmd(3, 4, 'x'), cmd(4, 6, 'y')];
    feed(b, ae({ entries, leaderCommit: 4 }));
    feed(b, { type: 'log.written', upTo: 4, term: 1 });
    expect(b.state.lastApplied).toBe(4);
    expect(b.state.machineState).toEqual([4, 5, 6]);
  });

  it('a snapshot carries the recent ids, so a member restarted from it skips the same copies', () => {
    const a = leader();
    submit(a, 4, 1, 'x'); // 2
    submit(a, 'release', 2); // 3: snapshot at 3
    const fx = ackAll(a);
    const write = fx.find((e) => e.type === 'snapshot.write') as Extract<Effect, { type: 'snapshot.write' }>;
    expect(write.meta.index).toBe(3);
    const stored = unwrapSnapshotState(structuredClone(write.machineState));
    expect(stored.machineState).toEqual([4]);
    expect(stored.requests).toEqual([{ id: 'x', index: 2, term: 1, reply: 1 }]);

    // a member recovering from that snapshot, then applying a copy of 'x' at 4
    const recovered: Recovered = {
      currentTerm: 1,
      votedFor: null,
      snapshot: { meta: write.meta as SnapshotMeta, machineState: structuredClone(write.machineState) },
      entries: [cmd(4, 4, 'x'), cmd(5, 9)],
    };
    const r = startServer(initServer(config(B, [A, B, C], { machine: list() }), recovered));
    const b: Srv = { role: r.role, state: r.state, effects: r.effects };
    feed(b, ae({ prevLogIndex: 5, prevLogTerm: 1, leaderCommit: 5 }));
    expect(b.state.lastApplied).toBe(5);
    expect(b.state.machineState).toEqual([4, 9]);
  });

  it('a snapshot without recorded ids stores the machine state as it is', () => {
    const a = leader();
    submit(a, 4, 1);
    submit(a, 'release', 2);
    const fx = ackAll(a);
    const write = fx.find((e) => e.type === 'snapshot.write') as Extract<Effect, { type: 'snapshot.write' }>;
    expect(write.machineState).toEqual([4]);
    expect(unwrapSnapshotState([4])).toEqual({ machineState: [4], requests: [] });
  });

  it('the table is persistent: an older version does not see ids recorded after it', () => {
    const t0 = emptyRequests();
    const t1 = recordRequest(t0, { id: 'a', index: 1, term: 1, reply: 1 }, 0);
    const t2 = recordRequest(t1, { id: 'b', index: 2, term: 1, reply: 2 }, 0);
    expect(findRequest(t2, 'b', 3, 10)?.reply).toBe(2);
    expect(findRequest(t1, 'b', 3, 10)).toBeUndefined();
    // extending the older version branches: it copies, and the newer one keeps its own records
    const t1b = recordRequest(t1, { id: 'c', index: 2, term: 2, reply: 3 }, 0);
    expect(findRequest(t1b, 'c', 3, 10)?.reply).toBe(3);
    expect(findRequest(t1b, 'b', 3, 10)).toBeUndefined();
    expect(findRequest(t2, 'b', 3, 10)?.reply).toBe(2);
    expect(findRequest(t2, 'c', 3, 10)).toBeUndefined();
    expect(requestsAt(t2, 1, 10).map((r) => r.id)).toEqual(['a']);
  });

  it('drops records no future snapshot needs and keeps its memory bounded', () => {
    let t = emptyRequests();
    for (let i = 1; i <= 10_000; i++)
      t = recordRequest(t, { id: `r${i}`, index: i, term: 1, reply: i }, i - 101);
    expect(t.length - t.start).toBeLessThanOrEqual(101);
    expect(t.records.length).toBeLessThan(2 * 1024 + 202);
    expect(findRequest(t, 'r9950', 10_001, 100)?.reply).toBe(9950);
    expect(findRequest(t, 'r5', 10_001, 100)).toBeUndefined();
  });

  it('defaults to a window of 100,000 entries', () => {
    expect(DEFAULT_REQUEST_WINDOW).toBe(100_000);
  });
});
