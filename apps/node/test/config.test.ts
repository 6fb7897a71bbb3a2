import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseHostPort, parsePeers, prepareDataDir, resolveNodeConfig } from '../src/config.ts';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'otra-config-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const flags = (entries: Record<string, string | string[]>): Map<string, string[]> =>
  new Map(Object.entries(entries).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]));

describe('otra node configuration', () => {
  it('resolves flags over env vars over the config file', () => {
    const dir = tempDir();
    const cookieFile = join(dir, 'cookie');
    writeFileSync(cookieFile, '  s3cret-cookie \n');
    const configFile = join(dir, 'node.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        name: 'from-file',
        listen: '127.0.0.1:7001',
        peers: { n2: 'ws://127.0.0.1:7002' },
        http: '127.0.0.1:8001',
        cookieFile,
        tickMs: 40,
      }),
    );
    const config = resolveNodeConfig(
      flags({ config: configFile, name: 'n1', peer: ['n3=ws://10.0.0.3:7003'] }),
      {
        OTRA_HTTP: '0.0.0.0:9001',
        OTRA_ELECTION_TIMEOUT: '200,400',
      },
    );
    expect(config).toEqual({
      name: 'n1',
      listen: { host: '127.0.0.1', port: 7001 },
      // flags replace the file's peers rather than merging with them
      peers: { n3: 'ws://10.0.0.3:7003' },
      http: { host: '0.0.0.0', port: 9001 },
      cookie: 's3cret-cookie',
      join: false,
      electionTimeoutMs: [200, 400],
      tickMs: 40,
    });
  });

  it('defaults to a free port on 127.0.0.1, no peers, no HTTP API, bootstrap on', () => {
    const config = resolveNodeConfig(flags({ name: 'solo' }), { OTRA_COOKIE: 'c' });
    expect(config).toEqual({
      name: 'solo',
      listen: { host: '127.0.0.1', port: 0 },
      peers: {},
      cookie: 'c',
      join: false,
    });
    expect(resolveNodeConfig(flags({ name: 'j', join: 'true' }), { OTRA_COOKIE: 'c' }).join).toBe(true);
    expect(resolveNodeConfig(flags({ name: 'j' }), { OTRA_COOKIE: 'c', OTRA_JOIN: '1' }).join).toBe(true);
    expect(
      resolveNodeConfig(flags({ name: 'q', 'quiesce-after-ticks': '0' }), { OTRA_COOKIE: 'c' })
        .quiesceAfterTicks,
    ).toBe(0);
    expect(
      resolveNodeConfig(flags({ name: 't', 'trailing-entries': '0' }), { OTRA_COOKIE: 'c' }).trailingEntries,
    ).toBe(0);
    expect(
      resolveNodeConfig(flags({ name: 't' }), { OTRA_COOKIE: 'c', OTRA_TRAILING_ENTRIES: '10000' })
        .trailingEntries,
    ).toBe(10_000);
  });

  it('refuses a missing cookie, an empty or unreadable cookie file, a missing name', () => {
    const dir = tempDir();
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    expect(() => resolveNodeConfig(flags({ name: 'n1' }), {})).toThrow(/no cookie/);
    expect(() => resolveNodeConfig(flags({ name: 'n1', 'cookie-file': empty }), {})).toThrow(
      /cookie file .* is empty/,
    );
    expect(() => resolveNodeConfig(flags({ name: 'n1', 'cookie-file': join(dir, 'nope') }), {})).toThrow(
      /cannot read the cookie file/,
    );
    expect(() => resolveNodeConfig(flags({}), { OTRA_COOKIE: 'c' })).toThrow(/give the node a name/);
    expect(() => resolveNodeConfig(flags({ name: 'bad name' }), { OTRA_COOKIE: 'c' })).toThrow(ConfigError);
  });

  it('refuses malformed peers, addresses, ranges and unknown options', () => {
    const env = { OTRA_COOKIE: 'c' };
    const bad =
      (f: Record<string, string | string[]>): (() => unknown) =>
      () =>
        resolveNodeConfig(flags({ name: 'n1', ...f }), env);
    expect(bad({ peer: 'n2' })).toThrow(/a peer is name=ws:\/\/host:port/);
    expect(bad({ peer: 'n2=http://127.0.0.1:7002' })).toThrow(/needs a ws:\/\/ or wss:\/\/ URL/);
    expect(bad({ peer: 'n2=not a url' })).toThrow(/malformed URL/);
    expect(bad({ peer: ['n2=ws://a:1', 'n2=ws://b:2'] })).toThrow(/given twice/);
    expect(bad({ peer: 'n1=ws://a:1' })).toThrow(/own name/);
    expect(bad({ listen: '127.0.0.1' })).toThrow(/--listen is host:port/);
    expect(bad({ listen: '127.0.0.1:99999' })).toThrow(/port 0-65535/);
    expect(bad({ http: 'localhost:http' })).toThrow(/--http needs a port/);
    expect(bad({ 'election-timeout': '300' })).toThrow(/min,max/);
    expect(bad({ 'election-timeout': '300,100' })).toThrow(/min,max/);
    expect(bad({ tick: '0' })).toThrow(/--tick/);
    expect(bad({ 'quiesce-after-ticks': '-1' })).toThrow(/--quiesce-after-ticks is a whole number/);
    expect(bad({ 'trailing-entries': 'many' })).toThrow(/--trailing-entries is a whole number/);
    expect(bad({ prot: '1' })).toThrow(/unknown option --prot/);
  });

  it('refuses a config file that is missing, not JSON or has unknown keys', () => {
    const dir = tempDir();
    const notJson = join(dir, 'bad.json');
    writeFileSync(notJson, '{ name: n1 }');
    const typo = join(dir, 'typo.json');
    writeFileSync(typo, JSON.stringify({ name: 'n1', peer: {} }));
    const env = { OTRA_COOKIE: 'c' };
    expect(() => resolveNodeConfig(flags({ config: join(dir, 'none.json') }), env)).toThrow(
      /cannot read config file/,
    );
    expect(() => resolveNodeConfig(flags({ config: notJson }), env)).toThrow(/not valid JSON/);
    expect(() => resolveNodeConfig(flags({ config: typo }), env)).toThrow(/unknown option "peer"/);
    expect(() => resolveNodeConfig(new Map(), { ...env, OTRA_CONFIG: typo })).toThrow(
      /unknown option "peer"/,
    );
  });

  it('parses host:port forms and peer lists', () => {
    expect(parseHostPort(':8001', '--http')).toEqual({ host: '127.0.0.1', port: 8001 });
    expect(parseHostPort('[::1]:8001', '--http')).toEqual({ host: '::1', port: 8001 });
    expect(parsePeers('n2=ws://127.0.0.1:7002, n3=wss://h3:7003')).toEqual({
      n2: 'ws://127.0.0.1:7002',
      n3: 'wss://h3:7003',
    });
  });

  it('checks the data dir: created when missing, refused when it is a file or cannot be created', () => {
    const dir = tempDir();
    prepareDataDir(join(dir, 'a', 'b'));
    const file = join(dir, 'file');
    writeFileSync(file, 'x');
    expect(() => prepareDataDir(file)).toThrow(/is not a directory/);
    expect(() => prepareDataDir(join(file, 'below'))).toThrow(/cannot create the data dir/);
    if (process.getuid?.() !== 0) {
      // root reads and writes anything, so this case only runs as another user
      const locked = join(dir, 'locked');
      prepareDataDir(locked);
      chmodSync(locked, 0o000);
      expect(() => prepareDataDir(locked)).toThrow(/not readable and writable/);
      chmodSync(locked, 0o700);
    }
  });
});
