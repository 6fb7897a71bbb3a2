import { type CommandEntry, createCodec, type LogEntry } from '@otra/protocol';
import { describe, expect, it } from 'vitest';
import {
  concatBytes,
  decodeEntry,
  decodePacked,
  decodeState,
  encodeStateChunks,
  STATE_CHUNK_BYTES,
  StoredCommand,
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

  it('keeps an applied command as its bytes: every field reads as the entry, decoded when read', () => {
    const entries = [
      command({ mode: 'notify', to: pid, correlation: 'c-1' }),
      { ...command({ mode: 'await_consensus', from: { pid, ref: 8 } }), requestId: 'req-1' },
    ];
    const kept = entries.map((e) => {
      const s = storedEntry(e);
      return new StoredCommand(s.index, s.term, s.data).asEntry();
    });
    // read alternately, so the one-entry cache of decoded fields is replaced each time
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        const k = kept[i]!;
        expect([k.type, k.index, k.term, k.systemTime]).toEqual([e.type, e.index, e.term, e.systemTime]);
        expect(k.command).toEqual(e.command);
        expect(k.reply).toEqual(e.reply);
        expect(k.requestId).toBe(e.requestId);
      }
    }
    // bytes of another entry are refused when read, not taken for this one
    const other = storedEntry(command({ mode: 'noreply' }));
    expect(() => new StoredCommand(other.index + 1, other.term, other.data).asEntry().command).toThrow(
      /the bytes of command entry 123457 hold another entry/,
    );
  });
});

/** Runs `work`, counting the event-loop turns (setImmediate callbacks) it lets through. */
async function countingTurns<T>(work: () => Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let ticking = true;
  const tick = (): void => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { value: await work(), turns };
  } finally {
    ticking = false;
  }
}

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
    for (const state of states) {
      const chunked = wholeDecode(concatBytes(await chunksOf(state)));
      // both decoded from a plain Uint8Array: byte strings decode as views of the input's type
      expect(chunked).toEqual(wholeDecode(Uint8Array.from(whole.encode({ state }))));
    }
  });

  it('gives the event loop turns while it encodes a large state, in bounded chunks', async () => {
    // about 25 MB: many times STATE_SLICE_MS of encoding on any machine
    const state = {
      data: Array.from({ length: 200_000 }, (_, i) => [`key-${i}`, 'v'.repeat(100)]),
    };
    const { value: chunks, turns } = await countingTurns(async () => {
      const out: Uint8Array[] = [];
      for await (const chunk of encodeStateChunks(state)) out.push(Uint8Array.from(chunk));
      return out;
    });
    expect(turns).toBeGreaterThanOrEqual(2);
    for (const chunk of chunks) expect(chunk.length).toBeLessThan(STATE_CHUNK_BYTES + 64 * 1024);
    expect(chunks.length).toBeGreaterThan(10);
    expect(wholeDecode(concatBytes(chunks))).toEqual(state);
  });
});

/** cbor-x's decoding of a whole snapshot, as the reference for the sliced decoder. */
const whole = createCodec();
function wholeDecode(bytes: Uint8Array): unknown {
  return (whole.decode(bytes) as { state: unknown }).state;
}

/** A small seeded generator of odd states (a fixed LCG, so a failure replays). */
function randomState(seed: number): unknown {
  let x = seed >>> 0;
  const next = (n: number): number => {
    x = (Math.imul(x, 1_664_525) + 1_013_904_223) >>> 0;
    return x % n;
  };
  const leaf = (): unknown => {
    switch (next(12)) {
      case 0:
        return next(1000) - 500;
      case 1:
        return (next(1000) - 500) / 7;
      case 2:
        return `s${next(100_000)}`;
      case 3:
        return 'ü€'.repeat(next(40));
      case 4:
        return null;
      case 5:
        return undefined;
      case 6:
        return next(2) === 0;
      case 7:
        return new Uint8Array(next(300)).fill(next(256));
      case 8:
        return 2 ** 40 + next(1000);
      case 9:
        return BigInt(2) ** 70n + BigInt(next(1000));
      case 10:
        return new Date(1_764_583_000_000 + next(1000));
      default:
        return new Set([next(5), `x${next(5)}`]);
    }
  };
  let budget = 3_000; // values in all, so the tree stays small
  const value = (depth: number): unknown => {
    budget--;
    const pick = depth > 5 || budget <= 0 ? 0 : next(5);
    // big containers (past the walk threshold) are rarer deeper down
    const size = (): number => (next(depth + 2) === 0 ? 64 + next(200) : next(8));
    if (pick === 0 || pick === 1) return leaf();
    if (pick === 2) return Array.from({ length: size() }, () => value(depth + 1));
    if (pick === 3) {
      const n = size();
      const object: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) object[next(10) === 0 ? String(i) : `k${i}-${next(9)}`] = value(depth + 1);
      return object;
    }
    const n = size();
    const keys = [(): unknown => `m${next(1000)}`, (): unknown => next(1000), (): unknown => [next(3), 'k']];
    return new Map(Array.from({ length: n }, () => [keys[next(3)]!(), value(depth + 1)] as const));
  };
  return { top: value(0), list: Array.from({ length: next(100) }, () => value(1)), n: next(10) };
}

/** Bytes from hex parts (spaces ignored). */
function hex(...parts: string[]): Uint8Array {
  return Uint8Array.from(Buffer.from(parts.join('').replaceAll(' ', ''), 'hex'));
}

/** A snapshot's bytes as both encoders write them: chunked by the shell, and whole by cbor-x. */
async function bothEncodings(state: unknown): Promise<Uint8Array[]> {
  return [concatBytes(await chunksOf(state)), Uint8Array.from(whole.encode({ state }))];
}

describe('the snapshot state decoder', () => {
  it('decodes to what cbor-x decodes the whole to, for seeded random states and both encodings', async () => {
    // compared by their encodings (deterministic: Maps, Sets and objects keep their order, and
    // Maps, Sets, Dates and typed arrays have tags of their own), as deep equality of Maps with
    // array keys is quadratic
    for (let seed = 1; seed <= 150; seed++) {
      const state = randomState(seed);
      for (const bytes of await bothEncodings(state)) {
        const sliced = Buffer.from(whole.encode(await decodeState(bytes)));
        expect(sliced.equals(Buffer.from(whole.encode(wholeDecode(bytes)))), `seed ${seed}`).toBe(true);
      }
    }
  });

  it("keeps cbor-x's rules for keys that are not plain strings, and reads indefinite lengths", async () => {
    const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
    // large Maps with number, array and string keys; an object with a __proto__ key
    const odd = {
      numbers: new Map(
        many(100, (i): [unknown, unknown] => [i % 3 === 0 ? i : i % 3 === 1 ? [i] : `k${i}`, i]),
      ),
      proto: JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown,
    };
    for (const bytes of await bothEncodings(odd)) {
      const decoded = await decodeState(bytes);
      expect(decoded).toStrictEqual(wholeDecode(bytes));
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    }
    // {state: ["ab", [_ 1, 2], {_ "k": 3}]}: an indefinite-length array and map (cbor-x reads no
    // indefinite-length strings)
    const indefinite = hex('a1 65 7374617465', '83', '626162', '9f 01 02 ff', 'bf 616b 03 ff');
    expect(await decodeState(indefinite)).toStrictEqual(['ab', [1, 2], { k: 3 }]);
    expect(await decodeState(indefinite)).toStrictEqual(wholeDecode(indefinite));
  });

  it('rejects damaged bytes with an error, without long loops', async () => {
    const good = concatBytes(await chunksOf({ data: [['k', 'v'.repeat(50)]], n: 1 }));
    await expect(decodeState(good.subarray(0, good.length - 3))).rejects.toThrow(/ends inside|end/);
    await expect(decodeState(concatBytes([good, Uint8Array.of(0x01)]))).rejects.toThrow(/after its state/);
    await expect(decodeState(Uint8Array.from(whole.encode({ other: 1 })))).rejects.toThrow(
      /no.*machine state/,
    );
    // {state: [4,294,967,295 members]} in 12 bytes: refused from its count, not after a long loop
    const huge = hex('a1 65 7374617465', '9a ffffffff', '00');
    await expect(decodeState(huge)).rejects.toThrow(/ends inside/);
    await expect(decodeState(hex('a1 65 7374617465', 'fc'))).rejects.toThrow(/malformed CBOR head/);
  });

  it('gives the event loop turns while it decodes a large state', async () => {
    // about 25 MB, the KV machine's form
    const state = { data: Array.from({ length: 200_000 }, (_, i) => [`key-${i}`, 'v'.repeat(100)]), n: 3 };
    const bytes = concatBytes(await chunksOf(state));
    const { value: decoded, turns } = await countingTurns(() => decodeState(bytes));
    expect(turns).toBeGreaterThanOrEqual(2);
    expect(decoded).toEqual(state);
  });
});
