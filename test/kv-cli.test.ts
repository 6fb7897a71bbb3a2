/**
 * The KV service end to end through the `otra` CLI and the HTTP API only: three `otra node`
 * processes started as an operator would (full peer list, cookie file, durable data), writes and
 * reads through every node, a SIGKILLed leader, its restart and catch-up, membership and
 * leadership transfer through `otra members`, `status` and `inspect` output, and the CLI's
 * refusals of bad configuration.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { KvCluster } from '../apps/node/src/kv-cluster.ts';
import { type NodeProcess, spawnNodeProcess } from '../apps/node/src/process-cluster.ts';

const CLI = fileURLToPath(new URL('../apps/node/src/cli.ts', import.meta.url));

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `otra ...args` in a child process (killed after `timeoutMs`). */
function otra(
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', CLI, ...args],
      { env: { ...process.env, ...env }, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end();
  });
}

/** A decoded JSON answer, read loosely: the assertions check its shape. */
// biome-ignore lint/suspicious/noExplicitAny: test answers are checked by assertions, not types
type Json = any;

async function http(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Json }> {
  const res = await fetch(new URL(path, base), {
    method,
    signal: AbortSignal.timeout(5000),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text.length > 0 ? JSON.parse(text) : null };
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function leaderOf(cluster: KvCluster, among = [...cluster.nodes.keys()]): Promise<string> {
  return waitFor('a leader', async () => {
    for (const name of among) {
      const s = await http(cluster.http(name), 'GET', '/status');
      if (s.json.role === 'leader') return name;
    }
    return undefined;
  });
}

let cluster: KvCluster | undefined;
const extra: NodeProcess[] = [];
const dirs: string[] = [];
const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(extra.splice(0).map((p) => p.kill('SIGKILL')));
  await cluster?.stop({ graceMs: 2000 });
  cluster = undefined;
  for (const s of servers.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the otra KV service through the CLI and HTTP', () => {
  it('serves writes and reads on every node, survives a SIGKILLed leader, and the restarted node catches up', async () => {
    cluster = await KvCluster.start({ nodes: 3, electionTimeoutMs: [200, 400], tickMs: 50 });
    const c = cluster;
    const first = await leaderOf(c);

    // writes through every node (followers forward), CLI and plain HTTP, read back through every node
    for (const name of c.names) {
      const put = await otra(['kv', 'put', `from-${name}`, `{"by":"${name}"}`, '--http', c.http(name)]);
      expect(put.code, put.stderr).toBe(0);
      expect(JSON.parse(put.stdout).index).toBeGreaterThan(0);
    }
    for (const reader of c.names) {
      for (const writer of c.names) {
        const got = await http(c.http(reader), 'GET', `/kv/from-${writer}`);
        expect(got).toEqual({ status: 200, json: { value: { by: writer }, index: expect.any(Number) } });
      }
    }
    const listed = await otra(['kv', 'list', 'from-', '--limit', '2', '--http', c.http('n3')]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toMatchObject({
      items: [
        { key: 'from-n1', value: { by: 'n1' } },
        { key: 'from-n2', value: { by: 'n2' } },
      ],
      more: true,
      next: 'from-n2',
    });
    const cliGet = await otra(['kv', 'get', 'from-n1', '--http', c.http('n2')]);
    expect(JSON.parse(cliGet.stdout).value).toEqual({ by: 'n1' });
    const cas = await otra(['kv', 'cas', 'from-n1', '{"by":"n1"}', 'swapped', '--http', c.http('n3')]);
    expect(cas.code, cas.stderr).toBe(0);
    const casAgain = await otra(['kv', 'cas', 'from-n1', '{"by":"n1"}', 'again', '--http', c.http('n2')]);
    expect(casAgain.code).toBe(1);
    expect(casAgain.stderr).toContain('409 compare_failed');

    // bad requests to the real processes: each gets its documented 4xx and a JSON error
    const before = (await http(c.http(first), 'GET', '/status')).json.lastIndex as number;
    const raw = async (method: string, path: string, body?: string | Buffer) => {
      const res = await fetch(new URL(path, c.http('n2')), {
        method,
        signal: AbortSignal.timeout(5000),
        ...(body === undefined ? {} : { body }),
      });
      return { status: res.status, json: (await res.json()) as { error: string; message: string } };
    };
    for (const [method, path, body, status, error] of [
      ['PUT', '/kv/x', '{nope', 400, 'invalid_json'],
      ['PUT', '/kv/x', '{"val": 1}', 400, 'bad_request'],
      ['PUT', '/kv/x', Buffer.alloc(1024 * 1024 + 1, 0x20), 413, 'body_too_large'],
      ['GET', '/kv/x?consistency=sometimes', undefined, 400, 'bad_request'],
      ['GET', '/no/such/route', undefined, 404, 'not_found'],
      ['PATCH', '/kv/x', '{}', 405, 'method_not_allowed'],
    ] as const) {
      const r = await raw(method, path, body);
      expect({ path, status: r.status, error: r.json.error }).toEqual({ path, status, error });
      expect(r.json.message.length).toBeGreaterThan(0);
    }
    expect((await http(c.http(first), 'GET', '/status')).json.lastIndex).toBe(before);

    // status and inspect, human and JSON
    const status = await otra(['status', '--http', c.http('n2')]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`leader ${first}`);
    expect(status.stdout).toMatch(
      /NODE\s+MEMBERSHIP\s+ROLE\s+TERM\s+LEADER\s+COMMIT\s+APPLIED\s+LAST\s+MATCH/,
    );
    for (const name of c.names)
      expect(status.stdout).toMatch(
        new RegExp(`^${name}\\s+voter\\s+(leader|follower)\\s+\\d+\\s+${first}`, 'm'),
      );
    const statusJson = JSON.parse((await otra(['status', '--json', '--http', c.http(first)])).stdout);
    expect(statusJson.members.map((m: { node: string }) => m.node)).toEqual(['n1', 'n2', 'n3']);
    const inspect = await otra(['inspect', '--http', c.http(first)]);
    expect(inspect.code, inspect.stderr).toBe(0);
    for (const needle of [
      `node ${first}`,
      'links [gen_server] running',
      'raft.system.default [supervisor] running',
      'raft.log_writer.default [batch] running mailbox=',
      'kv.sup [supervisor] running',
      'kv [batch] running mailbox=0 restarts=0 state="leader"',
      'kv.aux [gen_server]',
    ])
      expect(inspect.stdout).toContain(needle);
    const tree = JSON.parse((await otra(['inspect', '--json', '--http', c.http(first)])).stdout);
    expect(tree.node).toBe(first);

    // SIGKILL the leader: the survivors elect a new one and keep serving, with every write kept
    await c.kill(first, 'SIGKILL');
    const survivors = c.names.filter((n) => n !== first);
    const writeAfter = await waitFor('a write after the kill', async () => {
      const r = await http(c.http(survivors[0] as string), 'PUT', '/kv/after-kill', { value: 'still here' });
      return r.status === 200 ? (r.json.index as number) : undefined;
    });
    const second = await leaderOf(c, survivors);
    expect(second).not.toBe(first);
    for (const name of survivors)
      for (const key of ['from-n1', 'from-n2', 'from-n3', 'after-kill'])
        expect((await http(c.http(name), 'GET', `/kv/${key}`)).status).toBe(200);

    // restart the killed node from its data: it catches up, and a local read there sees the new write
    await c.startNode(first);
    await waitFor(`${first} catching up`, async () => {
      const s = await http(c.http(first), 'GET', '/status');
      return s.json.lastApplied >= writeAfter && s.json.leader === second ? s : undefined;
    });
    const local = await http(c.http(first), 'GET', '/kv/after-kill?consistency=local');
    expect(local).toMatchObject({ status: 200, json: { value: 'still here' } });
  });

  it('adds a member with otra members add, transfers leadership to it and removes another', async () => {
    cluster = await KvCluster.start({ nodes: 3, electionTimeoutMs: [200, 400], tickMs: 50 });
    const c = cluster;
    await leaderOf(c);
    await http(c.http('n1'), 'PUT', '/kv/before-join', { value: 1 });
    const n4 = await spawnNodeProcess({
      name: 'n4',
      cookieFile: c.cookieFile,
      dataDir: join(c.dir, 'n4'),
      httpPort: 0,
      join: true,
      peers: Object.fromEntries(c.names.map((n) => [n, `ws://127.0.0.1:${c.port(n)}`])),
      electionTimeoutMs: [200, 400],
      tickMs: 50,
    });
    extra.push(n4);
    const n4http = n4.http as string;
    expect((await http(n4http, 'GET', '/status')).json).toMatchObject({ member: false });

    const add = await otra(['members', 'add', 'n4', '--http', c.http('n2')]);
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ added: 'n4', membership: 'promotable' });
    // promotable: it becomes a voter once it has caught up
    await waitFor('n4 promoted', async () => {
      const m = await http(c.http('n1'), 'GET', '/members');
      return m.json.members.find(
        (x: { node: string; membership: string }) => x.node === 'n4' && x.membership === 'voter',
      );
    });
    expect((await http(n4http, 'GET', '/kv/before-join?consistency=local')).json.value).toBe(1);

    const transfer = await otra(['members', 'transfer', 'n4', '--http', c.http('n3')]);
    expect(transfer.code, transfer.stderr).toBe(0);
    await waitFor('n4 leading', async () =>
      (await http(n4http, 'GET', '/status')).json.role === 'leader' ? true : undefined,
    );

    const remove = await otra(['members', 'remove', 'n3', '--http', c.http('n1')]);
    expect(remove.code, remove.stderr).toBe(0);
    expect(JSON.parse(remove.stdout)).toMatchObject({ removed: 'n3', deleted: true });
    const list = await otra(['members', 'list', '--json', '--http', n4http]);
    expect(
      JSON.parse(list.stdout)
        .members.map((m: { node: string }) => m.node)
        .sort(),
    ).toEqual(['n1', 'n2', 'n4']);
    // the cluster still commits with its new members
    expect((await http(c.http('n1'), 'PUT', '/kv/after-change', { value: 2 })).status).toBe(200);
    const dup = await otra(['members', 'add', 'n4', '--http', c.http('n1')]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('already_member');
  });

  it('refuses bad configuration and bad commands with a clear message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otra-cli-'));
    dirs.push(dir);
    const cookieFile = join(dir, 'cookie');
    writeFileSync(cookieFile, 'a-cookie\n');
    const aFile = join(dir, 'a-file');
    writeFileSync(aFile, 'not a dir');
    const held = createServer();
    servers.push(held);
    await new Promise<void>((r) => held.listen(0, '127.0.0.1', () => r()));
    const heldPort = (held.address() as { port: number }).port;
    const noCookie = { OTRA_COOKIE: '', OTRA_COOKIE_FILE: '' };

    const cases: [readonly string[], Record<string, string>, number, RegExp][] = [
      [['node', '--name', 'n1'], noCookie, 2, /no cookie/],
      [['node', '--name', 'n1', '--cookie-file', join(dir, 'missing')], {}, 2, /cannot read the cookie file/],
      [
        ['node', '--name', 'n1', '--cookie-file', cookieFile, '--peer', 'n2'],
        {},
        2,
        /a peer is name=ws:\/\/host:port/,
      ],
      [
        ['node', '--name', 'n1', '--cookie-file', cookieFile, '--peer', 'n2=http://x:1'],
        {},
        2,
        /ws:\/\/ or wss:\/\//,
      ],
      [['node', '--name', 'n1', '--cookie-file', cookieFile, '--data', aFile], {}, 2, /is not a directory/],
      [
        ['node', '--name', 'n1', '--cookie-file', cookieFile, '--listen', `127.0.0.1:${heldPort}`],
        {},
        2,
        /--listen 127\.0\.0\.1:\d+ is already in use/,
      ],
      [
        ['node', '--name', 'n1', '--cookie-file', cookieFile, '--http', `127.0.0.1:${heldPort}`],
        {},
        2,
        /--http 127\.0\.0\.1:\d+ is already in use/,
      ],
      [
        ['node', '--name', 'n1', '--cookie-file', cookieFile, '--config', join(dir, 'none.json')],
        {},
        2,
        /cannot read config file/,
      ],
      [
        ['node', '--name', 'n1', '--cookie-file', cookieFile, '--bogus', '1'],
        {},
        2,
        /unknown option --bogus/,
      ],
      [['status'], {}, 2, /give the node's HTTP API with --http/],
      [['status', '--http', 'http://127.0.0.1:1'], {}, 1, /cannot reach http:\/\/127\.0\.0\.1:1/],
      [['kv', 'put', 'k', '--http', 'http://127.0.0.1:1'], {}, 2, /usage: otra kv put KEY VALUE/],
      [['kv', 'list', 'a', 'b', '--http', 'http://127.0.0.1:1'], {}, 2, /usage: otra kv list \[PREFIX\]/],
      [['kv', 'delete-prefix', '--http', 'http://127.0.0.1:1'], {}, 2, /usage: otra kv delete-prefix PREFIX/],
      [['frobnicate'], {}, 2, /unknown command frobnicate/],
    ];
    const results = await Promise.all(cases.map(([args, env]) => otra(args, env)));
    for (const [i, [args, , code, message]] of cases.entries()) {
      const r = results[i] as CliResult;
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toMatch(message);
    }
    const help = await otra(['help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('otra node --name n1 --listen');
  });
});
