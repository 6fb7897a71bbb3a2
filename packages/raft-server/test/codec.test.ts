import { type CommandEntry, createCodec, type LogEntry } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import {
  concatBytes,
  decodeEntry,
  decodePacked,
  decodeState,
  encodeStateChunks,
  STATE_CHUNK_BYTES,
  storedEntry,
} from '../src/internal/codec.ts';

const pid = { node: 'client', id: 12, creation: 1_764_583_000_123 };
const command = (reply: CommandEntry['reply']): CommandEntry => ({
  type: 'command',
  index: 123_456,
  term: 3,
  command: { op: 'put', key: 'key-000000001234', value: 'v'.repeat(100) },
  reply,
  systemTime: 1_764_583_000_456,
});

describe('the log entry codec', () => {
  it('round-trips command entries of every reply mode in the array form, and other entries as maps', () => {
    const entries: LogEntry[] = [
      command({ mode: 'noreply' }),
      command({ mode: 'notify', to: pid, correlation: 99 }),
      command({ mode: 'notify', to: pid, correlation: 'c-1' }),
      command({ mode: 'after_log_append', from: { pid, ref: 7 } }),
      command({ mode: 'await_consensus', from: { pid, ref: 8 } }),
      { ...command({ mode: 'await_consensus', from: { pid, ref: 9 } }), requestId: 'client-3.41' },
      { type: 'noop', index: 5, term: 2, machineVersion: 1 },
      { type: 'system', index: 6, term: 2, event: { type: 'nodeup', node: 'n2' }, systemTime: 1 },
      {
        type: 'config',
        index: 7,
        term: 2,
        cluster: [{ id: { name: 'kv', node: 'n1' }, membership: 'voter' }],
        from: { pid, ref: 1 },
      },
    ];
    const codec = createCodec();
    for (const entry of entries) {
      const stored = storedEntry(entry);
      // the array form has no key names
      if (entry.type === 'command') expect(Array.isArray(codec.decode(stored.data))).toBe(true);
      // fresh copies of the bytes, so the encode cache cannot answer
      expect(decodeEntry({ ...stored, data: Uint8Array.from(stored.data) })).toEqual(entry);
      expect(decodePacked(Uint8Array.from(stored.data))).toEqual(entry);
    }
    const map = codec.encode(entries[1]);
    const array = storedEntry(entries[1]!).data;
    expect(array.length).toBeLessThan(map.length * 0.7);
  });

  it('still reads command entries stored as maps', () => {
    const entry = command({ mode: 'notify', to: pid, correlation: 1 });
    const data = createCodec().encode(entry);
    expect(decodeEntry({ index: entry.index, term: entry.term, data })).toEqual(entry);
  });

  it('refuses bytes that are not an entry, and an entry stored under another index', () => {
    const codec = createCodec();
    const bad = [
      [0, 1, 1, 0, {}, [1, 'n', 1]],
      [0, 'x', 1, 0, {}, [0]],
      [0, 1, 1, 0, {}, [9]],
      [0, 1, 1, 0, {}, [1, 5, 1, 1, 'c']],
      [0, 1, 1, 0, {}, [1, 'n', 1, 1, {}]],
      [0, 1, 1, 0, {}, [2, 'n', 1, 1, 'not-a-ref']],
      [0, 1, 1, 0, {}],
      [7, 1, 1, 0, {}, [0]],
      // a seventh element is a request id: a non-empty string of at most 256 characters
      [0, 1, 1, 0, {}, [0], 42],
      [0, 1, 1, 0, {}, [0], ''],
      [0, 1, 1, 0, {}, [0], 'r'.repeat(257)],
      [0, 1, 1, 0, {}, [0], 'id', 'extra'],
      [],
      { index: 1, term: 1 },
      // map-form entries missing what their kind needs
      { type: 'command', index: 1, term: 1, command: 1, systemTime: 0 },
      { type: 'command', index: 1, term: 1, command: 1, systemTime: 0, reply: { mode: 'notify' } },
      { type: 'config', index: 1, term: 1, cluster: 'everyone' },
      { type: 'config', index: 1, term: 1, cluster: [{ id: { name: 'kv' }, membership: 'voter' }] },
      { type: 'noop', index: 1, term: 1 },
      { type: 'system', index: 1, term: 1, systemTime: 0, event: 'down' },
      { type: 'mystery', index: 1, term: 1 },
      { type: 'noop', index: -1, term: 1, machineVersion: 0 },
      null,
      'command',
    ];
    for (const value of bad) {
      expect(() => decodePacked(codec.encode(value))).toThrow(/does not decode to an entry/);
      expect(() => decodeEntry({ index: 1, term: 1, data: codec.encode(value) })).toThrow(
        /stored entry 1 does not decode to itself/,
      );
    }
    expect(() => decodePacked(new Uint8Array([0xff, 0x00]))).toThrow(/does not decode/);
    const good = storedEntry(command({ mode: 'noreply' }));
    expect(() => decodeEntry({ ...good, index: 1 })).toThrow(/does not decode to itself/);
  });
});

async function chunksOf(state: unknown): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of encodeStateChunks(state)) chunks.push(Uint8Array.from(chunk));
  return chunks;
}

describe('the snapshot state encoder', () => {
  it('gives bytes that decode to what one whole encoding decodes to, for any kind of state', async () => {
    const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
    const states: unknown[] = [
      null,
      42,
      'small',
      [1, 'two', { three: 3 }],
      // the KV machine's form: [key, value] pairs, request replies, a counter
      {
        data: many(5_000, (i) => [`key-${String(i).padStart(12, '0')}`, { nested: [i, 'v'.repeat(100)] }]),
        recent: many(300, (i) => [`rid-${i}`, { existed: i % 2 === 0 }]),
        sinceRelease: 0,
      },
      // a large plain object and a large Map, nested in a large array, with odd members
      many(80, (i) =>
        i === 0
          ? Object.fromEntries(
              many(200, (k): [string, unknown] => [`k${k}`, k % 3 === 0 ? undefined : [k, null, true]]),
            )
          : i === 1
            ? new Map(many(100, (k): [string, unknown] => [`m${k}`, new Uint8Array([k, k + 1])]))
            : i === 2
              ? many(70, (k) => ({ deep: many(65, (d) => d * k) }))
              : -i * 1.5,
      ),
    ];
    const whole = createCodec();
    for (const state of states) {
      const chunked = decodeState(concatBytes(await chunksOf(state)));
      // both decoded from a plain Uint8Array: byte strings decode as views of the input's type
      expect(chunked).toEqual(decodeState(Uint8Array.from(whole.encode({ state }))));
    }
  });

  it('gives the event loop turns while it encodes a large state, in bounded chunks', async () => {
    // about 25 MB: many times STATE_SLICE_MS of encoding on any machine
    const state = {
      data: Array.from({ length: 200_000 }, (_, i) => [`key-${i}`, 'v'.repeat(100)]),
    };
    let turns = 0;
    let ticking = true;
    const tick = (): void => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const chunks: Uint8Array[] = [];
    try {
      for await (const chunk of encodeStateChunks(state)) chunks.push(Uint8Array.from(chunk));
    } finally {
      ticking = false;
    }
    expect(turns).toBeGreaterThanOrEqual(2);
    for (const chunk of chunks) expect(chunk.length).toBeLessThan(STATE_CHUNK_BYTES + 64 * 1024);
    expect(chunks.length).toBeGreaterThan(10);
    expect(decodeState(concatBytes(chunks))).toEqual(state);
  });
});
