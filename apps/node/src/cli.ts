#!/usr/bin/env -S node --interrupt-budget=8000 --import tsx
/**
 * The `otra` command line. `otra help` prints the usage below; apps/node/README.md has the rest.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { NodeTree } from '@otra/actors';
import { startCluster } from '@otra/raft';
import { connectClient } from './client.ts';
import { ConfigError, parsePeers, readCookieFile, resolveNodeConfig } from './config.ts';
import { runDemo } from './demo.ts';
import type { NodeStatus } from './http-api.ts';
import { apiCall, cliValue, formatStatus, formatTree, showTransfer } from './http-client.ts';
import { KV_CLUSTER, startOtraNode } from './otra-node.ts';

const USAGE = `usage: otra <command> [options]

  otra node --name n1 --listen 127.0.0.1:7001 --peer n2=ws://127.0.0.1:7002 --peer n3=ws://127.0.0.1:7003
            --data ./data/n1 --http 127.0.0.1:8001 --cookie-file ./cookie
            [--join] [--election-timeout 150,300] [--tick 50] [--quiesce-after-ticks 10]
            [--trailing-entries 4096] [--config node.json]
      start one node of the replicated KV service (options also from OTRA_* env vars and --config)
  otra demo [--data DIR] [--nodes 3]
      a local cluster of child processes with a live status screen (Ctrl-C stops it)
  otra status --http URL [--json]        every member's role, term, leader, indexes
  otra inspect --http URL [--json]       the node's live actor tree
  otra members list --http URL [--json]
  otra members add NODE [--membership promotable|voter|non_voter] [--url ws://...] --http URL
  otra members remove NODE --http URL
  otra members transfer NODE --http URL  hand leadership to NODE
  otra kv put KEY VALUE | get KEY [--consistency linearizable|leader|local] | delete KEY
        | cas KEY EXPECT VALUE | list [PREFIX] [--after KEY] [--limit N] | delete-prefix PREFIX --http URL
        (VALUE is JSON when it parses, else a string)
  otra cluster start --connect n1=ws://...,n2=ws://... [--cookie-file FILE]
      start the kv cluster on nodes started with --join
`;

/** A usage mistake: printed with a hint, exit code 2. */
class UsageError extends Error {}

interface Args {
  readonly positional: string[];
  readonly flags: Map<string, string[]>;
}

/** Flags that take no value. */
const SWITCHES = new Set(['join', 'json', 'help', 'redirect']);

function parseArgs(argv: readonly string[]): Args {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '-h') {
      flags.set('help', ['true']);
      continue;
    }
    if (!arg.startsWith('--') || arg === '--') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const key = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (SWITCHES.has(key)) value = 'true';
    else {
      value = argv[++i];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`--${key} needs a value`);
    }
    flags.set(key, [...(flags.get(key) ?? []), value]);
  }
  return { positional, flags };
}

function flag(args: Args, name: string): string | undefined {
  return args.flags.get(name)?.at(-1);
}

function only(args: Args, allowed: readonly string[]): void {
  for (const key of args.flags.keys())
    if (!allowed.includes(key) && key !== 'help') throw new UsageError(`unknown option --${key}`);
}

/**
 * With `OTRA_CPU_PROFILE=<dir>`, profiles the node's CPU from start to SIGTERM/SIGINT and writes
 * `<dir>/<name>-<pid>.cpuprofile` (open it in Chrome DevTools). `OTRA_CPU_PROFILE_AFTER_MS=<ms>`
 * starts the profile that long after the node is ready instead, to leave a warm-up out of it.
 */
async function startCpuProfile(
  dir: string | undefined,
  name: string,
  afterMs: number,
): Promise<(() => Promise<void>) | undefined> {
  if (dir === undefined || dir.length === 0) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  let started: Promise<unknown> = Promise.resolve();
  if (afterMs > 0)
    started = new Promise((resolve) => setTimeout(resolve, afterMs)).then(() =>
      session.post('Profiler.start'),
    );
  else await session.post('Profiler.start');
  return async () => {
    await started;
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/${name}-${process.pid}.cpuprofile`, JSON.stringify(profile));
  };
}

/** How long `otra node` may take to stop in order before it exits anyway. */
const STOP_DEADLINE_MS = 10_000;

async function runNode(args: Args): Promise<void> {
  if (args.positional.length > 1)
    throw new UsageError(`otra node takes no arguments, got ${args.positional.slice(1).join(' ')}`);
  const config = resolveNodeConfig(args.flags, process.env);
  const otra = await startOtraNode(config);
  const profile = await startCpuProfile(
    process.env.OTRA_CPU_PROFILE,
    config.name,
    Number(process.env.OTRA_CPU_PROFILE_AFTER_MS ?? 0) || 0,
  );
  process.stdout.write(
    `${JSON.stringify({ ready: { name: config.name, url: otra.url, port: otra.port, http: otra.http?.url ?? null, pid: process.pid } })}\n`,
  );
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    // an orderly stop that hangs must not keep the process alive
    setTimeout(() => process.exit(1), STOP_DEADLINE_MS).unref();
    await profile?.();
    await otra.stop().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  if (process.env.OTRA_STOP_ON_STDIN_END === '1') {
    // a parent that dies (even by SIGKILL) closes our stdin: stop rather than outlive it
    process.stdout.on('error', () => undefined);
    process.stdin.on('end', () => void stop());
    process.stdin.on('error', () => void stop());
    process.stdin.resume();
  }
}

function httpBase(args: Args): string {
  const base = flag(args, 'http') ?? process.env.OTRA_HTTP_URL;
  if (base === undefined)
    throw new UsageError("give the node's HTTP API with --http http://127.0.0.1:8001 (or OTRA_HTTP_URL)");
  return base;
}

const print = (value: unknown): void => {
  process.stdout.write(`${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}\n`);
};

async function runStatus(args: Args): Promise<void> {
  only(args, ['http', 'json']);
  const status = await apiCall<NodeStatus>(httpBase(args), 'GET', '/status');
  print(flag(args, 'json') === 'true' ? status : formatStatus(status));
}

async function runInspect(args: Args): Promise<void> {
  only(args, ['http', 'json']);
  const tree = await apiCall<NodeTree>(httpBase(args), 'GET', '/inspect');
  print(flag(args, 'json') === 'true' ? tree : formatTree(tree));
}

async function runMembers(args: Args): Promise<void> {
  const [, sub, target, ...extra] = args.positional;
  const base = httpBase(args);
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')}`);
  const need = (): string => {
    if (target === undefined) throw new UsageError(`otra members ${sub} needs a node name`);
    return target;
  };
  switch (sub) {
    case 'list':
    case undefined: {
      only(args, ['http', 'json']);
      const r = await apiCall<{
        leader: string | null;
        members: {
          node: string;
          membership: string;
          matchIndex: number | null;
          snapshotTransfer: { index: number; nextChunk: number } | null;
        }[];
      }>(base, 'GET', '/members');
      if (flag(args, 'json') === 'true') return print(r);
      return print(
        [
          `leader: ${r.leader ?? '-'}`,
          ...r.members.map(
            (m) =>
              `${m.node}  ${m.membership}  match=${m.matchIndex ?? '-'}${m.snapshotTransfer === null ? '' : `  ${showTransfer(m.snapshotTransfer)}`}`,
          ),
        ].join('\n'),
      );
    }
    case 'add': {
      only(args, ['http', 'json', 'membership', 'url']);
      const membership = flag(args, 'membership') ?? 'promotable';
      const url = flag(args, 'url');
      return print(
        await apiCall(
          base,
          'POST',
          '/members',
          { node: need(), membership, ...(url === undefined ? {} : { url }) },
          30_000,
        ),
      );
    }
    case 'remove':
      only(args, ['http', 'json']);
      return print(
        await apiCall(base, 'DELETE', `/members/${encodeURIComponent(need())}`, undefined, 30_000),
      );
    case 'transfer':
      only(args, ['http', 'json']);
      return print(await apiCall(base, 'POST', '/leadership', { to: need() }, 30_000));
    default:
      throw new UsageError(`unknown members command ${sub} (list, add, remove, transfer)`);
  }
}

async function runKv(args: Args): Promise<void> {
  const [, sub, key, ...rest] = args.positional;
  const base = httpBase(args);
  if (sub === 'list') {
    only(args, ['http', 'consistency', 'after', 'limit']);
    if (rest.length > 0) throw new UsageError('usage: otra kv list [PREFIX] [--after KEY] [--limit N]');
    const query = new URLSearchParams();
    if (key !== undefined) query.set('prefix', key);
    for (const name of ['after', 'limit', 'consistency']) {
      const value = flag(args, name);
      if (value !== undefined) query.set(name, value);
    }
    const q = query.toString();
    return print(await apiCall(base, 'GET', q.length > 0 ? `/kv?${q}` : '/kv'));
  }
  if (sub === 'delete-prefix') {
    only(args, ['http']);
    if (key === undefined || rest.length > 0) throw new UsageError('usage: otra kv delete-prefix PREFIX');
    return print(await apiCall(base, 'DELETE', `/kv?prefix=${encodeURIComponent(key)}`));
  }
  if (key === undefined) throw new UsageError('otra kv put|get|delete|cas needs a key');
  const path = `/kv/${encodeURIComponent(key)}`;
  switch (sub) {
    case 'put':
      only(args, ['http', 'redirect']);
      if (rest.length !== 1) throw new UsageError('usage: otra kv put KEY VALUE');
      return print(await apiCall(base, 'PUT', path, { value: cliValue(rest[0] as string) }));
    case 'get': {
      only(args, ['http', 'consistency']);
      const consistency = flag(args, 'consistency');
      return print(
        await apiCall(
          base,
          'GET',
          consistency === undefined ? path : `${path}?consistency=${encodeURIComponent(consistency)}`,
        ),
      );
    }
    case 'delete':
      only(args, ['http']);
      return print(await apiCall(base, 'DELETE', path));
    case 'cas':
      only(args, ['http']);
      if (rest.length !== 2) throw new UsageError('usage: otra kv cas KEY EXPECT VALUE');
      return print(
        await apiCall(base, 'POST', `${path}/cas`, {
          expect: cliValue(rest[0] as string),
          value: cliValue(rest[1] as string),
        }),
      );
    default:
      throw new UsageError(`unknown kv command ${sub} (put, get, delete, cas, list, delete-prefix)`);
  }
}

function clientCookie(args: Args): string {
  const file = flag(args, 'cookie-file') ?? process.env.OTRA_COOKIE_FILE;
  if (file !== undefined) return readCookieFile(file);
  const cookie = flag(args, 'cookie') ?? process.env.OTRA_COOKIE;
  if (cookie === undefined || cookie.length === 0)
    throw new ConfigError('no cookie: give --cookie-file FILE (or OTRA_COOKIE)');
  return cookie;
}

async function runClusterStart(args: Args): Promise<void> {
  only(args, ['connect', 'cookie', 'cookie-file', 'cluster']);
  if (args.positional[1] !== 'start')
    throw new UsageError('usage: otra cluster start --connect n1=ws://...,...');
  const peers = parsePeers(args.flags.get('connect') ?? []);
  if (Object.keys(peers).length === 0)
    throw new UsageError('give the nodes with --connect n1=ws://host:port,...');
  const cluster = flag(args, 'cluster') ?? KV_CLUSTER;
  const client = await connectClient(peers, { cookie: clientCookie(args) });
  try {
    const ids = Object.keys(peers).map((node) => ({ name: cluster, node }));
    print(await startCluster(client.raft, cluster, { module: 'kv' }, ids));
  } finally {
    await client.close();
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv);
  const command = args.positional[0];
  if (command === undefined || command === 'help' || (flag(args, 'help') === 'true' && command !== 'node')) {
    process.stdout.write(USAGE);
    if (command === undefined) process.exitCode = 2;
    return;
  }
  switch (command) {
    case 'node':
      if (flag(args, 'help') === 'true') return void process.stdout.write(USAGE);
      return runNode(args);
    case 'demo':
      only(args, ['data', 'nodes']);
      return runDemo({ dir: flag(args, 'data'), nodes: Number(flag(args, 'nodes') ?? 3) });
    case 'status':
      return runStatus(args);
    case 'inspect':
      return runInspect(args);
    case 'members':
      return runMembers(args);
    case 'kv':
      return runKv(args);
    case 'cluster':
      return runClusterStart(args);
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`otra: ${message}\n`);
  if (err instanceof UsageError) process.stderr.write('run otra help for the usage\n');
  process.exit(err instanceof UsageError || err instanceof ConfigError ? 2 : 1);
});
