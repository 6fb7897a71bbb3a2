import type { Signal } from '@otra/actors';
import { describe, expect, it } from 'vitest';
import {
  buildDataFrame,
  createFrameCodec,
  decodeFrame,
  encodeSignal,
  FrameError,
  wireToSignal,
} from '../src/index.ts';

const codec = createFrameCodec();
const a1 = { node: 'a', id: 1, creation: 7 };
const b2 = { node: 'b', id: 2, creation: 9 };

/** One of every signal, as node `a` would send them to node `b`. */
const signals: Signal[] = [
  { t: 'send', to: b2, msg: { hello: 'world', n: [1, 2, 3] } },
  { t: 'send', to: { node: 'b', name: 'kv' }, msg: 'by name' },
  { t: 'cast', to: b2, msg: 42 },
  { t: 'call', to: b2, request: { op: 'get' }, from: { node: 'a', creation: 7, ref: 5 } },
  { t: 'reply', to: { node: 'b', creation: 9, ref: 3 }, value: null },
  { t: 'link', from: a1, to: b2 },
  { t: 'unlink', from: a1, to: b2 },
  { t: 'exit', from: a1, to: b2, reason: { error: 'TypeError', message: 'boom' }, link: true },
  { t: 'exit', from: a1, to: b2, reason: { shutdown: 'stop' }, link: false },
  { t: 'monitor', from: a1, to: { node: 'b', name: 'kv' }, ref: 11 },
  { t: 'demonitor', from: a1, to: b2, ref: 11 },
  { t: 'demonitor', from: a1, to: { node: 'b', name: 'kv' }, ref: 12 },
  { t: 'down', to: b2, ref: 4, pid: a1, reason: 'noproc' },
];

function frameOf(seq: number, items: Signal[]): Uint8Array {
  const encoded = items.map((s) => encodeSignal(codec, s));
  const bytes = encoded.reduce((n, e) => n + e.length, 0);
  return buildDataFrame(seq, encoded, 0, encoded.length, bytes);
}

describe('frame codec', () => {
  it('round-trips every signal type through one coalesced data frame', () => {
    const frame = decodeFrame(codec, frameOf(3, signals));
    expect(frame.kind).toBe('data');
    if (frame.kind !== 'data') return;
    expect(frame.seq).toBe(3);
    expect(frame.signals.map((raw) => wireToSignal(raw, 'b', 'a'))).toEqual(signals);
  });

  it('writes sequence numbers and counts of every CBOR width', () => {
    for (const seq of [1, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3]) {
      const frame = decodeFrame(codec, frameOf(seq, [signals[2] as Signal]));
      expect(frame).toMatchObject({ kind: 'data', seq });
    }
    const many = Array.from({ length: 300 }, (_, i): Signal => ({ t: 'cast', to: b2, msg: i }));
    const frame = decodeFrame(codec, frameOf(1, many));
    expect(frame.kind === 'data' ? frame.signals.length : 0).toBe(300);
  });

  it('reads tick and handshake frames', () => {
    expect(decodeFrame(codec, codec.encode([2]))).toEqual({ kind: 'tick' });
    expect(decodeFrame(codec, codec.encode([0, { k: 'ok' }]))).toEqual({
      kind: 'handshake',
      msg: { k: 'ok' },
    });
  });

  it('rejects garbage, unknown frame types and malformed envelopes with FrameError', () => {
    const bad: Uint8Array[] = [
      new Uint8Array([0xff, 0x00, 0x13]),
      new Uint8Array([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      codec.encode({ not: 'an array' }),
      codec.encode([]),
      codec.encode([9, 1]),
      codec.encode([1]),
      codec.encode([1, -1]),
      codec.encode([1, 'x']),
      codec.encode([2, 'extra']),
      codec.encode([0]),
    ];
    for (const bytes of bad) expect(() => decodeFrame(codec, bytes)).toThrow(FrameError);
  });

  it('rejects signals that are malformed, for another node, or speak for a third node', () => {
    const bad: unknown[] = [
      'nope',
      [],
      [99, ['b', 1, 1], 'x'],
      [0, ['b', 1], 'x', 'extra'],
      [0, ['c', 1, 1], 'to another node'],
      [0, ['b', 'one', 1], 'bad id'],
      [2, ['b', 1, 1], 'req', 'c', 1, 1],
      [3, 'c', 1, 1, 'reply for another node'],
      [4, ['c', 1, 1], ['b', 1, 1]],
      [6, ['a', 1, 1], ['b', 1, 1], 42, true],
      [6, ['a', 1, 1], ['b', 1, 1], 'normal', 'yes'],
      [7, ['a', 1, 1], ['b', 1, 1], 1.5],
      [9, ['b', 1, 1], 1, ['c', 2, 2], 'normal'],
    ];
    for (const raw of bad) expect(() => wireToSignal(raw, 'b', 'a'), JSON.stringify(raw)).toThrow(FrameError);
  });

  it('copies the message at encoding time', () => {
    const msg = { n: 1 };
    const encoded = encodeSignal(codec, { t: 'send', to: b2, msg });
    msg.n = 2;
    const frame = decodeFrame(codec, buildDataFrame(1, [encoded], 0, 1, encoded.length));
    expect(frame.kind === 'data' && wireToSignal(frame.signals[0], 'b', 'a')).toEqual({
      t: 'send',
      to: b2,
      msg: { n: 1 },
    });
  });

  it('does not let a __proto__ key reach an object prototype', () => {
    // {"__proto__": {"polluted": true}} as a CBOR map, as a hostile peer would write it
    const map = Buffer.from('a1695f5f70726f746f5f5fa168706f6c6c75746564f5', 'hex');
    const head = Buffer.from([0x83, 0x00]);
    const raw = codec.decode(Buffer.concat([head, codec.encode(['b', 1, 1]), map]));
    const signal = wireToSignal(raw, 'b', 'a');
    expect(signal.t === 'send' && Object.getPrototypeOf(signal.msg)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
