import { createCodec } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import {
  jsonEqual,
  type KvCommand,
  type KvReply,
  type KvState,
  kvData,
  kvMachine,
  kvQueries,
} from '../src/kv.ts';

const CONFIG = { name: 'kv', serverId: { name: 'kv', node: 'n1' } };
const meta = (index: number) => ({ index, term: 1, systemTime: 0, machineVersion: 0 });

function run(commands: readonly KvCommand[]): { state: KvState; replies: KvReply[] } {
  let state = kvMachine.init(CONFIG);
  const replies: KvReply[] = [];
  commands.forEach((command, i) => {
    const [next, reply] = kvMachine.apply(meta(i + 1), command, state);
    state = next;
    replies.push(reply);
  });
  return { state, replies };
}

describe('the KV machine', () => {
  it('stores any JSON value and tells a stored null from an absent key', () => {
    const { state, replies } = run([
      { op: 'put', key: 'a', value: { nested: [1, 'two', null] } },
      { op: 'put', key: 'n', value: null },
      { op: 'put', key: 'a', value: 3 },
      { op: 'delete', key: 'n' },
      { op: 'delete', key: 'n' },
    ]);
    expect(replies).toEqual([
      { previous: null },
      { previous: null },
      { previous: { value: { nested: [1, 'two', null] } } },
      { previous: { value: null } },
      { previous: null },
    ]);
    expect(kvQueries.entry(state, 'a')).toEqual({ value: 3 });
    expect(kvQueries.entry(state, 'n')).toBeNull();
  });

  it('compare-and-set compares as JSON (key order does not matter); without expect it creates only', () => {
    const { replies } = run([
      { op: 'cas', key: 'k', value: 'first' },
      { op: 'cas', key: 'k', value: 'again' },
      { op: 'put', key: 'k', value: { a: 1, b: [true, null] } },
      { op: 'cas', key: 'k', expect: { b: [true, null], a: 1 }, value: 'swapped' },
      { op: 'cas', key: 'k', expect: 'stale', value: 'never' },
      { op: 'cas', key: 'gone', expect: null, value: 'x' },
    ]);
    expect(replies).toEqual([
      { ok: true, current: { value: 'first' } },
      { ok: false, current: { value: 'first' } },
      { previous: { value: 'first' } },
      { ok: true, current: { value: 'swapped' } },
      { ok: false, current: { value: 'swapped' } },
      // expect null means "holds null", not "absent"
      { ok: false, current: null },
    ]);
  });

  it('jsonEqual distinguishes types, lengths and missing keys', () => {
    expect(jsonEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBe(true);
    expect(jsonEqual(1, '1')).toBe(false);
    expect(jsonEqual([1], [1, 2])).toBe(false);
    expect(jsonEqual({ a: 1 }, { b: 1 })).toBe(false);
    expect(jsonEqual({ a: undefined }, { b: undefined })).toBe(false);
    expect(jsonEqual([], {})).toBe(false);
    expect(jsonEqual(null, {})).toBe(false);
  });

  it('rejects bad keys and commands by throwing (the core answers MachineError, the log is unaffected)', () => {
    const state = kvMachine.init(CONFIG);
    expect(() => kvMachine.apply(meta(1), { op: 'put', key: '', value: 1 }, state)).toThrow(
      /a key is a string/,
    );
    expect(() => kvMachine.apply(meta(1), { op: 'put', key: 'x'.repeat(1025), value: 1 }, state)).toThrow();
    expect(() => kvMachine.apply(meta(1), { op: 'nope', key: 'k' } as unknown as KvCommand, state)).toThrow(
      /unknown op nope/,
    );
  });

  it('snapshots as [key, value] pairs, so a key such as __proto__ survives a CBOR round trip', () => {
    let state = kvMachine.init(CONFIG);
    let snapshot: unknown;
    for (let i = 1; i <= 4096; i++) {
      const key = i === 1 ? '__proto__' : `k${i}`;
      const result = kvMachine.apply(meta(i), { op: 'put', key, value: { i } }, state);
      state = result[0];
      const release = result[2]?.find((e) => e.type === 'release_cursor');
      if (release !== undefined) snapshot = (release as { machineState: unknown }).machineState;
    }
    expect(snapshot).toBeDefined();
    const codec = createCodec();
    const restored = codec.decode(codec.encode(snapshot)) as KvState;
    const data = kvData(restored);
    expect(data.size).toBe(4096);
    expect(data.get('__proto__')).toEqual({ i: 1 });
    expect(kvQueries.keys(restored, 'k1', 3)).toEqual(['k10', 'k11', 'k12']);
  });
});
