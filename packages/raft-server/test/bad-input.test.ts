import { Node } from '@otra/actors';
import { createCodec } from '@otra/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  addMember,
  InvalidRequestError,
  localQuery,
  overview,
  processCommand,
  RaftError,
  type RaftNotification,
  ServerNotFoundError,
  startCluster,
  startPipelineClient,
  startSystem,
} from '../src/index.ts';
import { type LocalCluster, localCluster } from './support.ts';

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('bad input', () => {
  it('malformed RPCs, casts and calls are dropped or refused; the server lives on', async () => {
    const logs: string[] = [];
    cluster = await localCluster(3, { log: (_level, message) => logs.push(message) });
    const s1 = cluster.systems[0]!;
    const node = cluster.nodes[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, cluster.ids);
    const first = await processCommand(s1, cluster.ids[0]!, { op: 'put', key: 'a', value: '1' });
    const pid = node.whereis('kv')!;
    const n2 = { name: 'kv', node: 'n2' };
    const appendEntries = (fields: Record<string, unknown>) => ({
      type: 'append_entries.request',
      from: n2,
      term: 1,
      prevLogIndex: 0,
      prevLogTerm: 0,
      leaderCommit: 0,
      round: 0,
      ...fields,
    });
    const installSnapshot = (fields: Record<string, unknown>) => ({
      type: 'install_snapshot.request',
      from: n2,
      term: 1,
      chunk: 0,
      last: true,
      ...fields,
    });
    const garbage: unknown[] = [
      null,
      42,
      'append_entries.request',
      { type: 'append_entries.request', term: 1 },
      appendEntries({ entries: [{ nope: 1 }] }),
      appendEntries({ packed: [new Uint8Array([0xff, 0x00])] }),
      // a map-form entry without its reply: would crash whoever applies it as leader
      appendEntries({
        packed: [createCodec().encode({ type: 'command', index: 1, term: 1, command: 1, systemTime: 0 })],
      }),
      // no round and no lastTerm
      { type: 'append_entries.reply', from: n2, term: 1, success: true, matchIndex: 1, lastIndex: 1 },
      installSnapshot({
        meta: { index: 5, term: 1, cluster: 'all', machineVersion: 0 },
        data: { bytes: new Uint8Array(4), checksum: 0 },
      }),
      installSnapshot({ meta: { index: 5, term: 1, cluster: [], machineVersion: 0 }, data: 'not bytes' }),
      { type: 'vote.request', from: 'n2', term: -1 },
      { type: 'install_snapshot.request', from: n2, term: 1 },
      { type: 'no.such.message' },
      // the server's own messages, forged (from the network they could not carry its mark)
      { type: 'log.written', upTo: 1_000_000, term: 99 },
      { type: 'raft.fatal', error: new Error('forged') },
      {
        type: 'snapshot.installed',
        meta: { index: 1_000_000, term: 99, cluster: [], machineVersion: 0 },
        machineState: {},
      },
      { type: 'raft.tick' },
      { type: 'raft.election_timeout' },
    ];
    for (const msg of garbage) node.send(pid, msg);
    node.cast(pid, {
      type: 'raft.pipeline',
      command: { op: 'put', key: 'b', value: '2' },
      correlation: {},
      notify: 'nobody',
    });
    // a request id that is not a string of 1-256 characters: a pipelined one is dropped, a call refused
    node.cast(pid, {
      type: 'raft.pipeline',
      command: { op: 'put', key: 'c', value: '3' },
      correlation: 1,
      notify: node.spawn({ init: () => null }, undefined),
      priority: 'normal',
      requestId: { not: 'a string' },
    });
    await expect(
      node.call(pid, {
        type: 'raft.command',
        command: { op: 'put', key: 'c', value: '3' },
        replyFrom: 'await_consensus',
        requestId: 'r'.repeat(300),
      }),
    ).resolves.toMatchObject({ type: 'error', error: 'invalid_request' });
    // a command nested deeper than MAX_COMMAND_DEPTH: refused at the API, dropped or refused on arrival
    let deep: unknown = 'x';
    for (let i = 0; i < 5000; i++) deep = [deep];
    await expect(
      processCommand(s1, cluster.ids[0]!, { op: 'put', key: 'd', value: deep as string }),
    ).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(
      node.call(pid, {
        type: 'raft.command',
        command: { op: 'put', key: 'd', value: deep },
        replyFrom: 'await_consensus',
      }),
    ).resolves.toMatchObject({ type: 'error', error: 'invalid_request' });
    node.cast(pid, {
      type: 'raft.pipeline',
      command: { op: 'put', key: 'd', value: deep },
      correlation: 2,
      notify: node.spawn({ init: () => null }, undefined),
      priority: 'normal',
    });
    await expect(node.call(pid, { type: 'raft.unknown' })).resolves.toMatchObject({
      type: 'error',
      error: 'invalid_request',
    });
    await expect(
      addMember(s1, cluster.ids[0]!, { name: 'kv', node: 'n9' }, { membership: 'king' as never }),
    ).rejects.toBeInstanceOf(InvalidRequestError);
    expect(node.whereis('kv')).toEqual(pid);
    const second = await processCommand(s1, cluster.ids[0]!, { op: 'put', key: 'a', value: '2' });
    expect(second.reply).toBe('1');
    expect(second.index).toBeGreaterThan(first.index);
    const view = await overview(s1, cluster.ids[0]!);
    expect(view.term).toBe(first.term);
    // the forged write completion and snapshot changed nothing
    expect(view.lastWritten).toBeLessThan(1_000_000);
    expect(view.snapshot?.index ?? 0).toBeLessThan(1_000_000);
    expect(logs.some((l) => /ignored a log\.written it did not send itself/.test(l))).toBe(true);
    expect(
      logs.some((l) =>
        /dropped a pipelined command without a valid notify pid, correlation or request id/.test(l),
      ),
    ).toBe(true);
    expect(
      (await localQuery(s1, cluster.ids[0]!, (st: Record<string, string>) => st.c ?? null)).result,
    ).toBeNull();
    expect(
      (await localQuery(s1, cluster.ids[0]!, (st: Record<string, string>) => st.d ?? null)).result,
    ).toBeNull();
    expect(logs.some((l) => /or nested too deep/.test(l))).toBe(true);
  });

  it('pipelined casts: the tuple form and the object form of earlier versions commit; malformed tuples are dropped', async () => {
    const logs: string[] = [];
    cluster = await localCluster(3, { log: (_level, message) => logs.push(message) });
    const s1 = cluster.systems[0]!;
    const node = cluster.nodes[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, cluster.ids);
    await processCommand(s1, cluster.ids[0]!, { op: 'put', key: 'a', value: '1' });
    const pid = node.whereis('kv')!;
    const applied: unknown[] = [];
    const client = startPipelineClient(s1, (n: RaftNotification) => {
      if (n.type === 'raft.applied') for (const [correlation] of n.applied) applied.push(correlation);
    });
    const put = (key: string) => ({ op: 'put', key, value: key });
    const malformed: unknown[] = [
      ['raft.pipeline', put('t1'), 1, client.node, client.id],
      ['raft.pipeline', put('t2'), 2, client.node, client.id, 1.5, 0],
      ['raft.pipeline', put('t3'), 3, 42, client.id, client.creation, 0],
      ['raft.pipeline', put('t4'), {}, client.node, client.id, client.creation, 0],
      ['raft.pipeline', put('t5'), 5, client.node, client.id, client.creation, 0, { not: 'a string' }],
      ['raft.pipeline', put('t6'), 6, client.node, client.id, client.creation, 0, 'r', 'extra'],
    ];
    for (const msg of malformed) node.cast(pid, msg);
    // the form earlier versions sent
    node.cast(pid, {
      type: 'raft.pipeline',
      command: put('old'),
      correlation: 'old',
      notify: client,
      priority: 'low',
    });
    // the current form, with and without a request id, low priority
    node.cast(pid, ['raft.pipeline', put('new'), 'new', client.node, client.id, client.creation, 1]);
    node.cast(pid, ['raft.pipeline', put('rid'), 'rid', client.node, client.id, client.creation, 0, 'req-1']);
    for (let i = 0; i < 200 && applied.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(applied.sort()).toEqual(['new', 'old', 'rid']);
    const read = async (key: string) =>
      (await localQuery(s1, cluster!.ids[0]!, (st: Record<string, string>) => st[key] ?? null)).result;
    for (const key of ['old', 'new', 'rid']) expect(await read(key)).toBe(key);
    for (const key of ['t1', 't2', 't3', 't4', 't5', 't6']) expect(await read(key)).toBeNull();
    const dropped = logs.filter((l) => /dropped a pipelined command without a valid notify pid/.test(l));
    expect(dropped).toHaveLength(malformed.length);
    expect((await overview(s1, cluster.ids[0]!)).role).toBe('leader');
  });

  it('a cluster of an unregistered machine module is refused with the reason', async () => {
    cluster = await localCluster(3);
    const s1 = cluster.systems[0]!;
    const ids = cluster.nodes.map((n) => ({ name: 'ghost', node: n.name }));
    await expect(startCluster(s1, 'ghost', { module: 'no_such_module' }, ids)).rejects.toThrow(
      /machine module no_such_module is not registered/,
    );
    await expect(processCommand(s1, ids[0]!, { op: 'put', key: 'a', value: '1' })).rejects.toBeInstanceOf(
      ServerNotFoundError,
    );
    await expect(startCluster(s1, '', { module: 'kv' }, ids)).rejects.toBeInstanceOf(RaftError);
  });

  it('a system option out of range is refused when the system starts', async () => {
    const node = new Node({ name: 'solo' });
    for (const trailingEntries of [-1, 1.5, Number.NaN]) {
      await expect(startSystem(node, { machines: {}, trailingEntries })).rejects.toThrow(
        /trailingEntries is a whole number/,
      );
    }
    // nothing was started under that name: a valid start still works
    const sys = await startSystem(node, { machines: {}, trailingEntries: 0 });
    await sys.stop();
  });
});
