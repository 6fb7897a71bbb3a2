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
  RANGE_MAX,
  RECENT_REQUESTS,
  RELEASE_MAX,
  RELEASE_MIN,
  RELEASE_PER_ENTRY,
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
      { op: 'put', key: 'a', value: { nested: [1, 'two', null] }, prev: true },
      { op: 'put', key: 'n', value: null, prev: true },
      { op: 'put', key: 'a', value: 3, prev: true },
      { op: 'delete', key: 'n', prev: true },
      { op: 'delete', key: 'n', prev: true },
      // without prev, only whether the key existed
      { op: 'put', key: 'a', value: 4 },
      { op: 'put', key: 'b', value: 4 },
      { op: 'delete', key: 'b' },
      { op: 'delete', key: 'b' },
    ]);
    expect(replies).toEqual([
      { existed: false, previous: null },
      { existed: false, previous: null },
      { existed: true, previous: { value: { nested: [1, 'two', null] } } },
      { existed: true, previous: { value: null } },
      { existed: false, previous: null },
      { existed: true },
      { existed: false },
      { existed: true },
      { existed: false },
    ]);
    expect(kvQueries.entry(state, 'a')).toEqual({ value: 4 });
    expect(kvQueries.entry(state, 'n')).toBeNull();
  });

  it('compare-and-set compares as JSON (key order does not matter); without expect it creates only', () => {
    const { replies } = run([
      { op: 'cas', key: 'k', value: 'first' },
      { op: 'cas', key: 'k', value: 'again' },
      { op: 'put', key: 'k', value: { a: 1, b: [true, null] }, prev: true },
      { op: 'cas', key: 'k', expect: { b: [true, null], a: 1 }, value: 'swapped' },
      { op: 'cas', key: 'k', expect: 'stale', value: 'never' },
      { op: 'cas', key: 'gone', expect: null, value: 'x' },
    ]);
    expect(replies).toEqual([
      { ok: true, current: { value: 'first' } },
      { ok: false, current: { value: 'first' } },
      { existed: true, previous: { value: 'first' } },
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

  it('applies a resent request (same rid) once and answers it with the first reply', () => {
    const { state, replies } = run([
      { op: 'cas', key: 'k', value: 'mine', rid: 'n1.7.1' },
      { op: 'put', key: 'k', value: 'theirs', rid: 'n2.3.1', prev: true },
      // the first request again, after a leader change: not applied, the first answer
      { op: 'cas', key: 'k', value: 'mine', rid: 'n1.7.1' },
      { op: 'cas', key: 'k', value: 'other', rid: 'n1.7.2' },
    ]);
    expect(replies).toEqual([
      { ok: true, current: { value: 'mine' } },
      { existed: true, previous: { value: 'mine' } },
      { ok: true, current: { value: 'mine' } },
      { ok: false, current: { value: 'theirs' } },
    ]);
    expect(kvQueries.entry(state, 'k')).toEqual({ value: 'theirs' });
    expect(() =>
      kvMachine.apply(meta(9), { op: 'put', key: 'k', value: 1, rid: 7 as unknown as string }, state),
    ).toThrow(/a rid is a string/);
    expect(kvQueries.entry(state, 'k')).toEqual({ value: 'theirs' });
  });

  it('remembers the last RECENT_REQUESTS request ids, forgetting the oldest first', () => {
    let state = kvMachine.init(CONFIG);
    for (let i = 0; i <= RECENT_REQUESTS; i++)
      state = kvMachine.apply(
        meta(i + 1),
        { op: 'put', key: 'k', value: i, rid: `r${i}`, prev: true },
        state,
      )[0];
    // r0 was forgotten: applied again (which in turn pushes r1 out); r2 is remembered: not applied
    state = kvMachine.apply(
      meta(RECENT_REQUESTS + 2),
      { op: 'put', key: 'k', value: 'r0 again', rid: 'r0' },
      state,
    )[0];
    expect(kvQueries.entry(state, 'k')).toEqual({ value: 'r0 again' });
    const [after, reply] = kvMachine.apply(
      meta(RECENT_REQUESTS + 3),
      { op: 'put', key: 'k', value: 'r2 again', rid: 'r2' },
      state,
    );
    expect(reply).toEqual({ existed: true, previous: { value: 1 } });
    expect(kvQueries.entry(after, 'k')).toEqual({ value: 'r0 again' });
  });

  it('delete_prefix deletes every key under a prefix, and only those', () => {
    const { state, replies } = run([
      { op: 'put', key: 'a/1', value: 1 },
      { op: 'put', key: 'a/2', value: 2 },
      { op: 'put', key: 'ab', value: 3 },
      { op: 'put', key: 'b/1', value: 4 },
      { op: 'delete_prefix', prefix: 'a/' },
      { op: 'delete_prefix', prefix: 'a/' },
    ]);
    expect(replies.slice(4)).toEqual([{ deleted: 2 }, { deleted: 0 }]);
    expect(kvQueries.keys(state)).toEqual(['ab', 'b/1']);
    expect(() => kvMachine.apply(meta(9), { op: 'delete_prefix', prefix: '' }, state)).toThrow(/a prefix/);
  });

  it('answers range: keys with a prefix after a key, in order, a page at a time', () => {
    const keys = ['b/2', 'a', 'b/10', 'b/1', 'c', 'b/3'];
    const { state } = run(keys.map((key, i) => ({ op: 'put', key, value: i })));
    expect(kvQueries.range(state, 'b/', null, 2)).toEqual({
      items: [
        { key: 'b/1', value: 3 },
        { key: 'b/10', value: 2 },
      ],
      more: true,
    });
    expect(kvQueries.range(state, 'b/', 'b/10', 2)).toEqual({
      items: [
        { key: 'b/2', value: 0 },
        { key: 'b/3', value: 5 },
      ],
      more: false,
    });
    expect(kvQueries.range(state, '', 'c', 10)).toEqual({ items: [], more: false });
    expect(kvQueries.range(state, 'zz', null, 10)).toEqual({ items: [], more: false });
    // the page size is clamped to 1..RANGE_MAX
    expect(kvQueries.range(state, '', null, 0).items).toHaveLength(1);
    const big = run(Array.from({ length: RANGE_MAX + 5 }, (_, i) => ({ op: 'put', key: `k${i}`, value: i })));
    const page = kvQueries.range(big.state, 'k', null, 10 * RANGE_MAX);
    expect(page.items).toHaveLength(RANGE_MAX);
    expect(page.more).toBe(true);
  });

  it('releases its cursor every RELEASE_PER_ENTRY commands per state entry, between RELEASE_MIN and RELEASE_MAX', () => {
    const releases = (commands: (i: number) => KvCommand, count: number): number[] => {
      let state = kvMachine.init(CONFIG);
      const at: number[] = [];
      for (let i = 1; i <= count; i++) {
        const result = kvMachine.apply(meta(i), commands(i), state);
        state = result[0];
        if (result[2]?.some((e) => e.type === 'release_cursor')) at.push(i);
      }
      return at;
    };
    // a small state: every RELEASE_MIN commands
    expect(releases((i) => ({ op: 'put', key: `k${i % 10}`, value: i }), 3 * RELEASE_MIN)).toEqual([
      RELEASE_MIN,
      2 * RELEASE_MIN,
      3 * RELEASE_MIN,
    ]);
    // 10,000 keys written round-robin: every 40,000 commands (the first once all 10,000 are stored)
    expect(RELEASE_PER_ENTRY * 10_000).toBe(40_000);
    expect(releases((i) => ({ op: 'put', key: `k${i % 10_000}`, value: i }), 125_000)).toEqual([
      40_000, 80_000, 120_000,
    ]);
    // 2,000 keys: every 8,000
    expect(releases((i) => ({ op: 'put', key: `k${i % 2_000}`, value: i }), 24_100)).toEqual([
      8_000, 16_000, 24_000,
    ]);
    // request ids count as state too (here it grows as fast as the log), and the interval is capped
    expect(releases((i) => ({ op: 'put', key: `k${i % 10}`, value: i, rid: `r${i}` }), 200_000)).toEqual([
      RELEASE_MAX,
      2 * RELEASE_MAX,
      3 * RELEASE_MAX,
    ]);
  });

  it('snapshots as [key, value] pairs, so a key such as __proto__ survives a CBOR round trip', () => {
    let state = kvMachine.init(CONFIG);
    let snapshot: unknown;
    for (let i = 1; snapshot === undefined && i <= RELEASE_MAX; i++) {
      const key = i === 1 ? '__proto__' : `k${i}`;
      const result = kvMachine.apply(meta(i), { op: 'put', key, value: { i }, rid: `rid-${i}` }, state);
      state = result[0];
      const release = result[2]?.find((e) => e.type === 'release_cursor');
      if (release !== undefined) snapshot = (release as { machineState: unknown }).machineState;
    }
    expect(snapshot).toBeDefined();
    const codec = createCodec();
    const restored = codec.decode(codec.encode(snapshot)) as KvState;
    const data = kvData(restored);
    expect(data.size).toBe(RELEASE_MAX);
    expect(data.get('__proto__')).toEqual({ i: 1 });
    expect(kvQueries.keys(restored, 'k1', 3)).toEqual(['k10', 'k11', 'k12']);
    // the request ids travel with the snapshot: a resend after an install is still recognised
    const [, again] = kvMachine.apply(
      meta(5000),
      { op: 'put', key: 'k5', value: 'no', rid: 'rid-5' },
      restored,
    );
    expect(again).toEqual({ existed: false });
    expect(kvQueries.entry(restored, 'k5')).toEqual({ value: { i: 5 } });
  });
});
