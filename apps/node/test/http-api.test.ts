/**
 * The KV service's HTTP API against three otra nodes in this process (real WebSocket links on
 * 127.0.0.1, in-memory logs): every route, the redirect and forward paths, and every bad input
 * answered with its documented error without reaching the log.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemberStatus } from '../src/http-api.ts';
import { formatStatus } from '../src/http-client.ts';
import { freePorts } from '../src/kv-cluster.ts';
import { type OtraNode, startOtraNode } from '../src/otra-node.ts';

const cookie = 'http-api-test-cookie';
const nodes: OtraNode[] = [];
const logs: string[] = [];
let leader: OtraNode;
let follower: OtraNode;

async function startNodes(names: readonly string[], options: { join?: boolean } = {}): Promise<OtraNode[]> {
  const ports = await freePorts(names.length);
  const url = (i: number) => `ws://127.0.0.1:${ports[i]}`;
  return Promise.all(
    names.map((name, i) =>
      startOtraNode({
        name,
        cookie,
        listen: { host: '127.0.0.1', port: ports[i] as number },
        peers: Object.fromEntries(names.flatMap((other, j) => (j === i ? [] : [[other, url(j)]]))),
        http: { host: '127.0.0.1', port: 0 },
        electionTimeoutMs: [150, 300],
        tickMs: 50,
        ...(options.join === undefined ? {} : { join: options.join }),
        log: (level, message) => logs.push(`${name} ${level} ${message}`),
      }),
    ),
  );
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** Writes `text` on a fresh connection and resolves with everything read until the server closes it. */
function rawRequest(node: OtraNode, text: string): Promise<string> {
  const base = new URL(node.http!.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(base.port), base.hostname, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** One request with node:http (fetch would follow the redirects this test checks). */
function call(node: OtraNode, method: string, path: string, body?: string | Buffer): Promise<Answer> {
  const base = new URL(node.http!.url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: base.hostname, port: base.port, method, path, headers: { connection: 'close' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown> = {};
          try {
            parsed =
              text.length > 0 && !res.headers['content-type']?.startsWith('text/plain')
                ? JSON.parse(text)
                : { text };
          } catch {
            parsed = { text };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function lastIndex(node: OtraNode): Promise<number> {
  return (await call(node, 'GET', '/status')).body.lastIndex as number;
}

beforeAll(async () => {
  nodes.push(...(await startNodes(['a1', 'a2', 'a3'])));
  leader = await waitFor('a leader', async () => {
    for (const n of nodes) if ((await call(n, 'GET', '/status')).body.role === 'leader') return n;
    return undefined;
  });
  follower = nodes.find((n) => n !== leader) as OtraNode;
});

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
});

describe('the KV HTTP API', () => {
  it('writes, reads, compares-and-sets and deletes through every node', async () => {
    for (const [i, node] of nodes.entries()) {
      const put = await call(node, 'PUT', `/kv/k${i}`, JSON.stringify({ value: { n: i, tags: ['x'] } }));
      expect(put.status).toBe(200);
      expect(put.body.index).toBeGreaterThan(0);
      for (const reader of nodes) {
        const got = await call(reader, 'GET', `/kv/k${i}`);
        expect(got.status).toBe(200);
        expect(got.body.value).toEqual({ n: i, tags: ['x'] });
      }
    }
    const leaderRead = await call(follower, 'GET', '/kv/k0?consistency=leader');
    expect(leaderRead.body.value).toEqual({ n: 0, tags: ['x'] });
    // a local read on a follower may lag, but converges
    await waitFor('a local read of k2', async () => {
      const r = await call(follower, 'GET', '/kv/k2?consistency=local');
      return r.status === 200 ? r : undefined;
    });

    const cas = await call(
      follower,
      'POST',
      '/kv/k0/cas',
      JSON.stringify({ expect: { tags: ['x'], n: 0 }, value: 'swapped' }),
    );
    expect(cas.status).toBe(200);
    const stale = await call(
      follower,
      'POST',
      '/kv/k0/cas',
      JSON.stringify({ expect: 'nope', value: 'never' }),
    );
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ error: 'compare_failed', exists: true, current: 'swapped' });
    const create = await call(leader, 'POST', '/kv/fresh/cas', JSON.stringify({ value: 1 }));
    expect(create.status).toBe(200);
    const again = await call(leader, 'POST', '/kv/fresh/cas', JSON.stringify({ value: 2 }));
    expect(again.body).toMatchObject({ error: 'compare_failed', exists: true, current: 1 });

    const del = await call(follower, 'DELETE', '/kv/fresh');
    expect(del.body).toMatchObject({ deleted: true });
    expect((await call(follower, 'DELETE', '/kv/fresh')).body).toMatchObject({ deleted: false });
    const gone = await call(leader, 'GET', '/kv/fresh');
    expect(gone.status).toBe(404);
    expect(gone.body.error).toBe('not_found');
    // ?prev=1: the answer says what the key held before
    const firstPrev = await call(follower, 'PUT', '/kv/p?prev=1', JSON.stringify({ value: 'one' }));
    expect(firstPrev.body).toEqual({ index: expect.any(Number), existed: false });
    const secondPrev = await call(follower, 'PUT', '/kv/p?prev=1', JSON.stringify({ value: 'two' }));
    expect(secondPrev.body).toEqual({ index: expect.any(Number), existed: true, previous: 'one' });
    const deletedPrev = await call(leader, 'DELETE', '/kv/p?prev=1');
    expect(deletedPrev.body).toEqual({ index: expect.any(Number), deleted: true, previous: 'two' });
    // a stored null is a value, not an absent key
    await call(leader, 'PUT', '/kv/nothing', JSON.stringify({ value: null }));
    expect(await call(follower, 'GET', '/kv/nothing')).toMatchObject({ status: 200, body: { value: null } });
    // keys are one path segment: '/' and unicode travel percent-encoded
    const odd = encodeURIComponent('dir/naïve key');
    await call(follower, 'PUT', `/kv/${odd}`, JSON.stringify({ value: 'ok' }));
    expect((await call(leader, 'GET', `/kv/${odd}`)).body.value).toBe('ok');
  });

  it('lists keys and values in key order by prefix, a page at a time, at every consistency', async () => {
    for (const k of ['list/b', 'list/a', 'list/c/1', 'list/c/0', 'other'])
      expect(
        (await call(follower, 'PUT', `/kv/${encodeURIComponent(k)}`, JSON.stringify({ value: k }))).status,
      ).toBe(200);
    const all = await call(follower, 'GET', '/kv?prefix=list%2F');
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({
      items: ['list/a', 'list/b', 'list/c/0', 'list/c/1'].map((key) => ({ key, value: key })),
      more: false,
    });
    expect(all.body.next).toBeUndefined();
    expect(all.body.index).toBeGreaterThan(0);
    // pages of two: the next page starts after the last key of this one
    const first = await call(leader, 'GET', '/kv?prefix=list%2F&limit=2&consistency=leader');
    expect(first.body).toMatchObject({
      items: [{ key: 'list/a' }, { key: 'list/b' }],
      more: true,
      next: 'list/b',
    });
    const second = await call(follower, 'GET', '/kv?prefix=list%2F&limit=2&after=list%2Fb&consistency=local');
    expect(second.status).toBe(200);
    // a local read may lag; it never shows keys out of order or outside the page
    const keys = (second.body.items as { key: string }[]).map((i) => i.key);
    expect(['list/c/0', 'list/c/1'].slice(0, keys.length)).toEqual(keys);
    for (const bad of ['limit=0', 'limit=1001', 'limit=two', 'limit=-1', 'consistency=eventual'])
      expect((await call(follower, 'GET', `/kv?${bad}`)).status).toBe(400);
    const post = await call(follower, 'POST', '/kv', '{}');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, DELETE');
    // DELETE /kv?prefix= removes every key under it, and needs a prefix
    expect((await call(follower, 'DELETE', '/kv')).status).toBe(400);
    const removed = await call(follower, 'DELETE', '/kv?prefix=list%2Fc%2F');
    expect(removed.body).toEqual({ index: expect.any(Number), deleted: 2 });
    const left = await call(leader, 'GET', '/kv?prefix=list%2F');
    expect((left.body.items as { key: string }[]).map((i) => i.key)).toEqual(['list/a', 'list/b']);
  });

  it('redirects a write with 307 to the leader when asked, and the redirect works', async () => {
    const r = await call(follower, 'PUT', '/kv/redirected?redirect=1', JSON.stringify({ value: 1 }));
    expect(r.status).toBe(307);
    const location = r.headers.location as string;
    expect(location).toBe(`${leader.http!.url}/kv/redirected?redirect=1`);
    expect(r.body).toMatchObject({ leader: leader.node.name });
    const followed = await fetch(location, { method: 'PUT', body: JSON.stringify({ value: 1 }) });
    expect(followed.status).toBe(200);
    // on the leader itself, redirect=1 just writes
    expect(
      (await call(leader, 'PUT', '/kv/redirected?redirect=1', JSON.stringify({ value: 2 }))).status,
    ).toBe(200);
  });

  it('answers bad requests with 4xx and a JSON error, and none reaches the log', async () => {
    const before = await lastIndex(leader);
    const cases: [string, string, string | Buffer | undefined, number, string][] = [
      ['PUT', '/kv/a', '{not json', 400, 'invalid_json'],
      ['PUT', '/kv/a', '', 400, 'bad_request'],
      ['PUT', '/kv/a', '[1,2]', 400, 'bad_request'],
      ['PUT', '/kv/a', '{"val": 1}', 400, 'bad_request'],
      ['POST', '/kv/a/cas', '{"expect": 1}', 400, 'bad_request'],
      ['PUT', `/kv/${'k'.repeat(1025)}`, '{"value": 1}', 400, 'bad_request'],
      ['PUT', '/kv/%E0%A4%A', '{"value": 1}', 400, 'bad_request'],
      ['GET', '/kv/a?consistency=eventual', undefined, 400, 'bad_request'],
      ['PUT', '/kv/a', Buffer.alloc(1024 * 1024 + 10, 0x20), 413, 'body_too_large'],
      // nested 10,000 deep: encoding it overflowed the stack and crashed the server in a loop
      ['PUT', '/kv/a', `{"value":${'['.repeat(10_000)}${']'.repeat(10_000)}}`, 400, 'bad_request'],
      [
        'POST',
        '/kv/a/cas',
        `{"expect":null,"value":${'{"a":'.repeat(300)}1${'}'.repeat(300)}}`,
        400,
        'bad_request',
      ],
      ['GET', '/nowhere', undefined, 404, 'not_found'],
      ['GET', '/kv/', undefined, 404, 'not_found'],
      ['GET', '/kv/a/b/c', undefined, 404, 'not_found'],
      ['POST', '/kv/a', '{"value": 1}', 405, 'method_not_allowed'],
      ['GET', '/kv/a/cas', undefined, 405, 'method_not_allowed'],
      ['DELETE', '/status', undefined, 405, 'method_not_allowed'],
      ['POST', '/members', '{"node": "bad name!"}', 400, 'bad_request'],
      ['POST', '/members', '{"node": "a9", "membership": "boss"}', 400, 'bad_request'],
      ['POST', '/leadership', '{}', 400, 'bad_request'],
    ];
    for (const [method, path, body, status, error] of cases) {
      const answer = await call(follower, method, path, body);
      expect({ method, path, status: answer.status, error: answer.body.error }).toEqual({
        method,
        path,
        status,
        error,
      });
      expect(typeof answer.body.message).toBe('string');
    }
    // a content-length over the limit is refused before the body is read: answered, then closed
    const raw = await rawRequest(
      follower,
      `PUT /kv/a HTTP/1.1\r\nhost: x\r\ncontent-length: ${2 * 1024 * 1024}\r\n\r\n{"value": 1}`,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 413 /);
    expect(raw).toContain('"error":"body_too_large"');
    const notAllowed = await call(follower, 'POST', '/kv/a', '{"value": 1}');
    expect(notAllowed.headers.allow).toBe('GET, PUT, DELETE');
    expect(await lastIndex(leader)).toBe(before);
    // the node still serves
    expect((await call(follower, 'PUT', '/kv/after-bad-input', JSON.stringify({ value: true }))).status).toBe(
      200,
    );
  });

  it('prints a snapshot transfer in progress beside the match index', () => {
    const row = (node: string, snapshotTransfer: MemberStatus['snapshotTransfer']): MemberStatus => ({
      node,
      membership: 'voter',
      matchIndex: 12,
      snapshotTransfer,
      reachable: true,
    });
    const text = formatStatus({
      node: 'a1',
      cluster: 'kv',
      member: true,
      role: 'leader',
      term: 3,
      leader: 'a1',
      commitIndex: 90,
      lastApplied: 90,
      lastIndex: 90,
      snapshotIndex: 64,
      keys: 5,
      quiesced: false,
      members: [row('a1', null), row('a2', { index: 64, nextChunk: 7 })],
    });
    const lines = text.split('\n');
    expect(lines.find((l) => l.startsWith('a2'))).toMatch(/12 \(sending snapshot 64, at chunk 7\)$/);
    expect(lines.find((l) => l.startsWith('a1'))).toMatch(/ 12$/);
  });

  it('serves /status, /inspect and /metrics', async () => {
    const status = (await call(follower, 'GET', '/status')).body;
    expect(status).toMatchObject({
      node: follower.node.name,
      cluster: 'kv',
      member: true,
      role: 'follower',
      leader: leader.node.name,
    });
    const members = status.members as MemberStatus[];
    expect(members.map((m) => m.node)).toEqual(['a1', 'a2', 'a3']);
    // no member is being sent a snapshot
    for (const m of members) expect(m.snapshotTransfer).toBeNull();
    expect(members.find((m) => m.node === leader.node.name)?.role).toBe('leader');
    for (const m of members) expect(m.http).toBe(nodes.find((n) => n.node.name === m.node)!.http!.url);

    const tree = (await call(leader, 'GET', '/inspect')).body as { node: string; roots: { name?: string }[] };
    expect(tree.node).toBe(leader.node.name);
    const text = JSON.stringify(tree);
    for (const name of [
      'links',
      'raft.system.default',
      'raft.servers.default',
      'kv.sup',
      'kv.aux',
      'otra.admin',
    ])
      expect(text).toContain(`"name":"${name}"`);
    expect(text).toContain('"stateValue":"leader"');

    const metrics = await call(leader, 'GET', '/metrics');
    expect(metrics.status).toBe(200);
    const body = metrics.body.text as string;
    for (const line of [
      'otra_raft_is_leader{cluster="kv"} 1',
      'otra_link_up{peer=',
      'otra_kv_commit_latency_seconds_bucket{le="0.005",op="put"}',
      'otra_kv_commands_total{op="put",result="ok"}',
      'otra_http_requests_total{route="/kv/:key",method="PUT",code="200"}',
      'otra_raft_elections_total{cluster="kv"}',
    ])
      expect(body).toContain(line);
    // the leader sent entries and the follower received them
    const counter = (text: string, name: string): number =>
      Number(new RegExp(`^${name}\\{cluster="kv"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    expect(counter(body, 'otra_raft_entries_sent_total')).toBeGreaterThan(0);
    const followerBody = (await call(follower, 'GET', '/metrics')).body.text as string;
    expect(counter(followerBody, 'otra_raft_entries_received_total')).toBeGreaterThan(0);
    // in-memory storage has no WAL writer: its metrics are absent rather than made up
    expect(body).not.toMatch(/^otra_wal_batches_total/m);
  });

  it('answers 503 with Retry-After when no leader is known, and on a node that hosts no member', async () => {
    const [joiner] = await startNodes(['joiner'], { join: true });
    nodes.push(joiner!);
    // one node of a three-node cluster whose peers never start: it can never elect a leader
    const orphan = await startOtraNode({
      name: 'orphan',
      cookie,
      peers: { p2: 'ws://127.0.0.1:9', p3: 'ws://127.0.0.1:9' },
      http: { host: '127.0.0.1', port: 0 },
      electionTimeoutMs: [150, 300],
      log: () => undefined,
    });
    nodes.push(orphan);
    const write = await call(orphan, 'PUT', '/kv/a', JSON.stringify({ value: 1 }));
    expect(write.status).toBe(503);
    expect(write.headers['retry-after']).toBe('1');
    expect(write.body.error).toBe('no_leader');
    const read = await call(orphan, 'GET', '/kv/a');
    expect(read.status).toBe(503);
    expect((await call(orphan, 'GET', '/kv/a?consistency=local')).status).toBe(404);
    const notMember = await call(joiner!, 'PUT', '/kv/a', JSON.stringify({ value: 1 }));
    expect(notMember).toMatchObject({ status: 503, body: { error: 'not_a_member' } });
    expect((await call(joiner!, 'GET', '/status')).body).toMatchObject({ member: false, role: null });
  });
});
