import { describe, expect, it } from 'vitest';
import {
  commandProblem,
  createCodec,
  isClusterConfig,
  isLogEntry,
  isReplyMode,
  isSnapshotMeta,
  MAX_COMMAND_DEPTH,
  MAX_REQUEST_ID_LENGTH,
  nestsDeeperThan,
} from '../src/index.ts';

const pid = { node: 'n1', id: 3, creation: 7 };
const cluster = [
  { id: { name: 'kv', node: 'n1' }, membership: 'voter' },
  { id: { name: 'kv', node: 'n2' }, membership: 'promotable', targetIndex: 12 },
];

describe('nesting depth', () => {
  it('counts arrays and objects, not bytes, and stops on cycles', () => {
    const nest = (n: number): unknown => (n === 0 ? 1 : [nest(n - 1)]);
    expect(nestsDeeperThan(1, 0)).toBe(false);
    expect(nestsDeeperThan({ a: 1, b: 'x' }, 1)).toBe(false);
    expect(nestsDeeperThan({ a: { b: 1 } }, 1)).toBe(true);
    expect(nestsDeeperThan(nest(MAX_COMMAND_DEPTH), MAX_COMMAND_DEPTH)).toBe(false);
    expect(nestsDeeperThan(nest(MAX_COMMAND_DEPTH + 1), MAX_COMMAND_DEPTH)).toBe(true);
    expect(nestsDeeperThan([new Uint8Array(4)], 1)).toBe(false);
    let deep: unknown = 0;
    for (let i = 0; i < 100_000; i++) deep = { v: deep };
    expect(nestsDeeperThan(deep, MAX_COMMAND_DEPTH)).toBe(true);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(nestsDeeperThan(cycle, MAX_COMMAND_DEPTH)).toBe(true);
  });
});

describe('commandProblem', () => {
  it('says why a command or its request id cannot be appended, and nothing when both can', () => {
    const nest = (n: number): unknown => (n === 0 ? 1 : [nest(n - 1)]);
    expect(commandProblem({ op: 'put' }, undefined)).toBeUndefined();
    expect(commandProblem({ op: 'put' }, 'r'.repeat(MAX_REQUEST_ID_LENGTH))).toBeUndefined();
    expect(commandProblem({ op: 'put' }, '')).toBe(
      'a request id is a string of 1-256 characters, got 0 characters',
    );
    expect(commandProblem({ op: 'put' }, 7)).toBe('a request id is a string of 1-256 characters, got number');
    expect(commandProblem(nest(MAX_COMMAND_DEPTH + 1), 'ok')).toBe(
      `a command nests arrays and objects at most ${MAX_COMMAND_DEPTH} deep`,
    );
  });
});

describe('validators for values from the network or the disk', () => {
  it('accept well-formed values, also after a CBOR round trip', () => {
    const codec = createCodec();
    const good: unknown[] = [
      {
        type: 'command',
        index: 1,
        term: 1,
        command: { any: 'thing' },
        systemTime: 5,
        reply: { mode: 'noreply' },
      },
      {
        type: 'command',
        index: 2,
        term: 1,
        command: null,
        systemTime: 5,
        reply: { mode: 'notify', to: pid, correlation: 'c' },
      },
      {
        type: 'command',
        index: 3,
        term: 1,
        command: 1,
        systemTime: 5,
        reply: { mode: 'await_consensus', from: { pid, ref: 9 } },
      },
      {
        type: 'command',
        index: 3,
        term: 1,
        command: 1,
        systemTime: 5,
        reply: { mode: 'noreply' },
        requestId: 'r'.repeat(256),
      },
      { type: 'noop', index: 4, term: 2, machineVersion: 0 },
      { type: 'config', index: 5, term: 2, cluster, from: { pid, ref: 1 } },
      { type: 'system', index: 6, term: 2, systemTime: 5, event: { type: 'nodeup', node: 'n3' } },
    ];
    for (const e of good) expect(isLogEntry(codec.decode(codec.encode(e)))).toBe(true);
    expect(
      isSnapshotMeta(codec.decode(codec.encode({ index: 9, term: 2, cluster, machineVersion: 1 }))),
    ).toBe(true);
    expect(isClusterConfig([])).toBe(true);
  });

  it('refuse what lacks a field its kind needs, or has one of the wrong type', () => {
    expect(isReplyMode({ mode: 'notify', to: pid })).toBe(false);
    expect(isReplyMode({ mode: 'after_log_append', from: { pid, ref: 'r' } })).toBe(false);
    expect(isReplyMode({ mode: 'shout' })).toBe(false);
    expect(isClusterConfig([{ id: { name: 'kv', node: 'n1' }, membership: 'king' }])).toBe(false);
    expect(
      isClusterConfig([{ id: { name: 'kv', node: 'n1' }, membership: 'promotable', targetIndex: -1 }]),
    ).toBe(false);
    expect(isClusterConfig({ length: 0 })).toBe(false);
    for (const meta of [
      null,
      { index: 1, term: 1, cluster },
      { index: 1.5, term: 1, cluster, machineVersion: 0 },
      { index: 1, term: 1, cluster: 'all', machineVersion: 0 },
    ])
      expect(isSnapshotMeta(meta)).toBe(false);
    // integers beyond 2^53 cannot be stored or compared exactly
    expect(isSnapshotMeta({ index: 2 ** 60, term: 1, cluster, machineVersion: 0 })).toBe(false);
    for (const entry of [
      { type: 'noop', index: 1, term: 2 ** 60, machineVersion: 0 },
      { type: 'command', index: 1, term: 1, systemTime: 5 },
      { type: 'command', index: 1, term: 1, systemTime: '5', reply: { mode: 'noreply' } },
      { type: 'command', index: 1, term: 1, systemTime: 5, reply: { mode: 'noreply' }, requestId: 7 },
      { type: 'command', index: 1, term: 1, systemTime: 5, reply: { mode: 'noreply' }, requestId: '' },
      {
        type: 'command',
        index: 1,
        term: 1,
        systemTime: 5,
        reply: { mode: 'noreply' },
        requestId: 'r'.repeat(257),
      },
      { type: 'config', index: 1, term: 1, cluster, from: { pid: 'me', ref: 1 } },
      { type: 'system', index: 1, term: 1, systemTime: 5, event: null },
      { type: 'noop', index: 1, term: -2, machineVersion: 0 },
      { type: 'other', index: 1, term: 1 },
    ])
      expect(isLogEntry(entry)).toBe(false);
  });
});
