import type { CommandEntry, LogEntry } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import {
  defineMachine,
  entryAt,
  type Machine,
  type MachineEffect,
  swapAppliedEntries,
} from '../src/index.ts';
import { A, ack, B, C, electedLeader, feed, from } from './helpers.ts';

/** A command entry whose fields are getters, as a host's cheaper form of an applied command is. */
function getterForm(e: CommandEntry): LogEntry {
  const proto = {
    get command() {
      return e.command;
    },
    get reply() {
      return e.reply;
    },
    get systemTime() {
      return e.systemTime;
    },
  };
  return Object.assign(Object.create(proto), { type: 'command', index: e.index, term: e.term });
}

/** Commits `n` commands of value 1 on leader `a`: appended, written, acknowledged by B. */
function commitOnes(a: ReturnType<typeof electedLeader>, n: number, ref0: number): void {
  for (let i = 0; i < n; i++)
    feed(a, { type: 'command', command: 1, reply: { mode: 'await_consensus', from: from(ref0 + i) } });
  const last = a.state.log.snapshotIndex + a.state.log.length;
  feed(a, { type: 'log.written', upTo: last, term: 1 });
  feed(a, ack(B, last, a.state.leader?.round ?? 0));
}

describe('swapAppliedEntries', () => {
  it('swaps applied entries only, and refuses an entry that is not the same one', () => {
    const a = electedLeader([A, B, C]);
    commitOnes(a, 3, 1);
    expect(a.state.lastApplied).toBe(4);
    // two more appended, not committed
    for (let i = 0; i < 2; i++) feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } });
    const seen: number[] = [];
    swapAppliedEntries(a.state, 1, (e) => {
      seen.push(e.index);
      return e.type === 'command' ? getterForm(e) : e;
    });
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(Object.getPrototypeOf(entryAt(a.state.log, 2))).not.toBe(Object.prototype);
    expect(Object.getPrototypeOf(entryAt(a.state.log, 5))).toBe(Object.prototype);
    expect(() => swapAppliedEntries(a.state, 2, (e) => ({ ...e, term: e.term + 1 }) as LogEntry)).toThrow(
      /entry 2 was swapped for a different entry/,
    );
    // the log still replicates and applies past the swapped entries
    commitOnes(a, 1, 10);
    expect(a.state.lastApplied).toBe(7);
    expect(a.state.machineState).toBe(6);
  });

  it("gives a machine's log effect plain copies of swapped command entries", () => {
    let read: LogEntry[] = [];
    // the sixth command asks for the entries of the first five (indexes 2-6 after the noop)
    const machine = defineMachine<number, number, number>({
      init: () => 0,
      apply: (meta, cmd, state) => {
        const effects: MachineEffect[] =
          meta.index === 7
            ? [
                {
                  type: 'log',
                  indexes: [2, 3, 4, 5, 6],
                  fn: (entries) => {
                    read = entries.map((e) => ({ ...e }));
                    return [];
                  },
                },
              ]
            : [];
        return [state + cmd, state + cmd, effects];
      },
    });
    const a = electedLeader([A, B, C], { machine: machine as Machine<unknown, unknown, unknown> });
    commitOnes(a, 5, 1);
    swapAppliedEntries(a.state, 1, (e) => (e.type === 'command' ? getterForm(e) : e));
    commitOnes(a, 1, 6);
    expect(read.map((e) => e.index)).toEqual([2, 3, 4, 5, 6]);
    for (const e of read) {
      expect(e.type).toBe('command');
      // spread kept every field: the copies are plain objects
      expect((e as CommandEntry).command).toBe(1);
      expect((e as CommandEntry).reply).toEqual({ mode: 'await_consensus', from: from(e.index - 1) });
    }
  });
});
