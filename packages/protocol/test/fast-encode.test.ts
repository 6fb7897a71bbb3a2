import { Decoder, Encoder } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import { createCodec, FastEncoder } from '../src/index.ts';

const options = { useRecords: false, mapsAsObjects: true, tagUint8Array: false } as const;

function xorshift(seed: number): () => number {
  // spread small seeds over the state: their first outputs would all be near 0
  let s = Math.imul(seed, 0x9e3779b1) >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

/** Random values of every kind the fast path writes, and now and then one it hands to cbor-x. */
function randomValue(random: () => number, depth: number, foreign: boolean): unknown {
  const pick = (n: number) => Math.floor(random() * n);
  const numbers = [
    0,
    -0,
    1,
    23,
    24,
    255,
    256,
    65535,
    65536,
    2 ** 32 - 1,
    2 ** 32,
    -1,
    -24,
    -25,
    -256,
    -257,
    -65536,
    -65537,
    -(2 ** 31),
    -(2 ** 31) - 1,
    -(2 ** 32),
    -(2 ** 32) - 1,
    2 ** 53 - 1,
    -(2 ** 53),
    0.5,
    -1.25,
    Math.PI,
    1e300,
    -1e-300,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    Date.now(),
    1733120000000.5,
  ];
  const chars = [
    'a',
    'Z',
    '0',
    ' ',
    'é',
    'ß',
    '€',
    '中',
    '😀',
    '\ud800',
    '\udc00',
    '\u0000',
    '\u007f',
    '\u0080',
    '\u07ff',
    '\u0800',
    '\uffff',
  ];
  const kind = pick(depth > 3 ? 6 : 9);
  switch (kind) {
    case 0:
      return numbers[pick(numbers.length)]! * (random() < 0.2 ? random() : 1);
    case 1:
    case 2: {
      const lengths = [0, 1, 23, 24, 31, 32, 63, 64, 65, 200, 255, 256, 1000, 70_000];
      const length = lengths[pick(depth > 0 || random() < 0.9 ? 10 : lengths.length)]!;
      let s = '';
      const ascii = random() < 0.6;
      while (s.length < length) s += ascii ? String.fromCharCode(32 + pick(95)) : chars[pick(chars.length)];
      return s.slice(0, length);
    }
    case 3:
      return [true, false, null, undefined][pick(4)];
    case 4: {
      const length = [0, 1, 23, 24, 300, 70_000][pick(depth > 0 || random() < 0.95 ? 4 : 6)]!;
      const bytes = random() < 0.5 ? Buffer.alloc(length) : new Uint8Array(length);
      for (let i = 0; i < Math.min(length, 64); i++) bytes[i] = pick(256);
      return bytes;
    }
    case 5:
      if (foreign && random() < 0.3) {
        const others = [
          new Map([['a', 1]]),
          new Date(1_700_000_000_000),
          12n,
          new Set([1]),
          new Uint16Array([1, 2]),
        ];
        return others[pick(others.length)];
      }
      return pick(1000);
    case 6:
    case 7: {
      const length = [0, 1, 5, 23, 24, 30][pick(depth > 1 ? 3 : 6)]!;
      return Array.from({ length }, () => randomValue(random, depth + 1, foreign));
    }
    default: {
      const object: Record<string, unknown> = {};
      const keys = pick(depth > 0 || random() < 0.95 ? 6 : 40);
      for (let k = 0; k < keys; k++)
        object[randomValue(random, 9, false) as string] = randomValue(random, depth + 1, foreign);
      return object;
    }
  }
}

describe('FastEncoder', () => {
  it('writes exactly the bytes cbor-x writes, for seeded random values', () => {
    const reference = new Encoder(options);
    const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });
    let handedOn = 0;
    const fast = new FastEncoder((value) => {
      handedOn++;
      return new Encoder(options).encode(value);
    });
    for (let seed = 1; seed <= 3000; seed++) {
      const random = xorshift(seed);
      const foreign = seed % 3 === 0;
      const before = handedOn;
      const value = randomValue(random, 0, foreign);
      const ours = Buffer.from(fast.encode(value));
      const theirs = Buffer.from(reference.encode(value));
      if (!ours.equals(theirs)) {
        throw new Error(
          `seed ${seed}: ${ours.toString('hex').slice(0, 200)} != ${theirs.toString('hex').slice(0, 200)}`,
        );
      }
      expect(decoder.decode(ours)).toEqual(decoder.decode(theirs));
      // only a value holding a Map, a Date, a bigint, a Set or a Uint16Array is handed on
      if (!foreign) expect(handedOn).toBe(before);
    }
    expect(handedOn).toBeGreaterThan(50);
  });

  it('keeps earlier results intact across targets, large values and values it hands on', () => {
    const codec = createCodec();
    const kept: Array<{ value: unknown; bytes: Uint8Array }> = [];
    for (let k = 0; k < 3000; k++) {
      const value =
        k % 500 === 0
          ? { big: 'x'.repeat(20_000 + k), at: k }
          : k % 7 === 0
            ? { when: new Map([[k, 'v']]) }
            : { type: 'put', key: `key-${k}`, value: 'v'.repeat(k % 300), n: k };
      kept.push({ value, bytes: codec.encode(value) });
    }
    for (const { value, bytes } of kept) expect(codec.decode(bytes)).toEqual(value);
  });

  it('hands a too-deep value and a value with a function to cbor-x, which decides', () => {
    const fast = new FastEncoder((value) => new Encoder(options).encode(value));
    let deep: unknown = 1;
    for (let k = 0; k < 600; k++) deep = [deep];
    expect(Buffer.from(fast.encode(deep)).equals(Buffer.from(new Encoder(options).encode(deep)))).toBe(true);
    expect(() => fast.encode({ f: () => 1 })).toThrow(/Unknown type/);
    // and the encoder is usable afterwards
    expect(new Decoder({ mapsAsObjects: true }).decode(fast.encode({ a: [1, 'b'] }))).toEqual({
      a: [1, 'b'],
    });
  });
});
