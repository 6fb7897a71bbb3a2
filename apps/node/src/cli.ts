#!/usr/bin/env -S node --import tsx
/**
 * The `otra` command line.
 *
 *   otra node --name n1 [--port 0] [--host 127.0.0.1] [--data DIR] [--peer n2=ws://127.0.0.1:7002 ...]
 *   otra cluster start --connect n1=ws://...,n2=ws://...,n3=ws://... [--cluster kv]
 *   otra kv put KEY VALUE | get KEY | delete KEY | keys [PREFIX]   --connect ...
 *   otra status --connect ...        every member's role, term, indexes
 *   otra inspect --connect ...       every connected node's live actor tree
 *
 * The shared cookie comes from --cookie or OTRA_COOKIE.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { NodeTree } from '@otra/actors';
import type { ServerId } from '@otra/protocol';
import { consistentQuery, overview, processCommand, startCluster } from '@otra/raft';
import { ADMIN } from './admin.ts';
import { connectClient } from './client.ts';
import { startOtraNode } from './otra-node.ts';

interface Args {
  readonly positional: string[];
  readonly flags: Map<string, string[]>;
}

function parseArgs(argv: readonly string[]): Args {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const key = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined) throw new Error(`--${key} needs a value`);
      flags.set(key, [...(flags.get(key) ?? []), value]);
    } else positional.push(arg);
  }
  return { positional, flags };
}

function flag(args: Args, name: string): string | undefined {
  return args.flags.get(name)?.at(-1);
}

function cookieOf(args: Args): string {
  const cookie = flag(args, 'cookie') ?? process.env.OTRA_COOKIE;
  if (cookie === undefined || cookie.length === 0)
    throw new Error('set the shared cookie with --cookie or OTRA_COOKIE');
  return cookie;
}

/** `n1=ws://h:p,n2=ws://h:p` (also repeated flags) -> { n1: url, n2: url } */
function peersOf(values: readonly string[] | undefined): Record<string, string> {
  const peers: Record<string, string> = {};
  for (const value of values ?? []) {
    for (const part of value.split(',')) {
      const at = part.indexOf('=');
      if (at <= 0) throw new Error(`a peer is name=ws://host:port, got ${part}`);
      peers[part.slice(0, at)] = part.slice(at + 1);
    }
  }
  return peers;
}

function range(value: string | undefined): readonly [number, number] | undefined {
  if (value === undefined) return undefined;
  const [min, max] = value.split(',').map(Number);
  if (!Number.isFinite(min) || !Number.isFinite(max))
    throw new Error(`a range is min,max in ms, got ${value}`);
  return [min as number, max as number];
}

/**
 * With `OTRA_CPU_PROFILE=<dir>`, profiles the node's CPU from start to SIGTERM/SIGINT and writes
 * `<dir>/<name>-<pid>.cpuprofile` (open it in Chrome DevTools).
 */
async function startCpuProfile(
  dir: string | undefined,
  name: string,
): Promise<(() => Promise<void>) | undefined> {
  if (dir === undefined || dir.length === 0) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/${name}-${process.pid}.cpuprofile`, JSON.stringify(profile));
  };
}

async function runNode(args: Args): Promise<void> {
  const name = flag(args, 'name');
  if (name === undefined) throw new Error('otra node needs --name');
  const dataDir = flag(args, 'data');
  const electionTimeoutMs = range(flag(args, 'election-timeout'));
  const tick = flag(args, 'tick');
  const otra = await startOtraNode({
    name,
    cookie: cookieOf(args),
    host: flag(args, 'host') ?? '127.0.0.1',
    port: Number(flag(args, 'port') ?? 0),
    peers: peersOf(args.flags.get('peer')),
    ...(dataDir === undefined ? {} : { dataDir }),
    ...(electionTimeoutMs === undefined ? {} : { electionTimeoutMs }),
    ...(tick === undefined ? {} : { tickMs: Number(tick) }),
  });
  const profile = await startCpuProfile(process.env.OTRA_CPU_PROFILE, name);
  process.stdout.write(
    `${JSON.stringify({ ready: { name, url: otra.url, port: otra.port, pid: process.pid } })}\n`,
  );
  const stop = async (): Promise<void> => {
    await profile?.();
    await otra.stop().catch(() => undefined);
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

async function withClient<T>(
  args: Args,
  fn: (client: Awaited<ReturnType<typeof connectClient>>, peers: Record<string, string>) => Promise<T>,
) {
  const peers = peersOf(args.flags.get('connect'));
  if (Object.keys(peers).length === 0) throw new Error('give the nodes with --connect n1=ws://host:port,...');
  const client = await connectClient(peers, { cookie: cookieOf(args) });
  try {
    return await fn(client, peers);
  } finally {
    await client.close();
  }
}

function printTree(tree: NodeTree): void {
  console.log(`node ${tree.node} (${tree.actors} actors)`);
  const walk = (info: NodeTree['roots'][number], depth: number): void => {
    const label = info.name ?? info.childId ?? `<${info.pid.id}>`;
    const state = info.stateValue === undefined ? '' : ` ${JSON.stringify(info.stateValue)}`;
    const extra = `${info.mailbox > 0 ? ` mailbox=${info.mailbox}` : ''}${info.restarts > 0 ? ` restarts=${info.restarts}` : ''}`;
    console.log(`${'  '.repeat(depth + 1)}${label} [${info.kind}]${state}${extra}`);
    for (const child of info.children) walk(child, depth + 1);
  };
  for (const root of tree.roots) walk(root, 0);
}

async function main(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv);
  const [command, sub, ...rest] = args.positional;
  const cluster = flag(args, 'cluster') ?? 'kv';
  const idOn = (node: string): ServerId => ({ name: cluster, node });
  switch (command) {
    case 'node':
      return runNode(args);
    case 'cluster':
      if (sub !== 'start') throw new Error('usage: otra cluster start --connect ...');
      return withClient(args, async (client, peers) => {
        const ids = Object.keys(peers).map(idOn);
        const result = await startCluster(client.raft, cluster, { module: 'kv' }, ids);
        console.log(JSON.stringify(result));
      });
    case 'kv':
      return withClient(args, async (client, peers) => {
        const first = idOn(Object.keys(peers)[0] as string);
        const [key, value] = rest;
        if (key === undefined && sub !== 'keys')
          throw new Error('usage: otra kv put KEY VALUE | get KEY | delete KEY | keys [PREFIX]');
        switch (sub) {
          case 'put': {
            if (value === undefined) throw new Error('usage: otra kv put KEY VALUE');
            const r = await processCommand(client.raft, first, { op: 'put', key: key as string, value });
            console.log(JSON.stringify({ previous: r.reply, index: r.index, leader: r.leader }));
            return;
          }
          case 'delete': {
            const r = await processCommand(client.raft, first, { op: 'delete', key: key as string });
            console.log(JSON.stringify({ previous: r.reply, index: r.index }));
            return;
          }
          case 'get': {
            const r = await consistentQuery(client.raft, first, { name: 'get', args: [key] });
            console.log(JSON.stringify({ value: r.result, index: r.index }));
            return;
          }
          case 'keys': {
            const r = await consistentQuery(client.raft, first, { name: 'keys', args: [key ?? ''] });
            console.log(JSON.stringify(r.result));
            return;
          }
          default:
            throw new Error(`unknown kv command ${sub}`);
        }
      });
    case 'status':
      return withClient(args, async (client, peers) => {
        for (const name of Object.keys(peers)) {
          const v = await overview(client.raft, idOn(name)).catch((err: Error) => ({ error: err.message }));
          console.log(JSON.stringify(v));
        }
      });
    case 'inspect':
      return withClient(args, async (client, peers) => {
        for (const name of Object.keys(peers)) {
          printTree(await client.node.call<NodeTree>({ name: ADMIN, node: name }, { type: 'admin.tree' }));
        }
      });
    default:
      console.log('usage: otra node | cluster start | kv | status | inspect  (see apps/node/README.md)');
      if (command !== undefined && command !== 'help') process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`otra: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
