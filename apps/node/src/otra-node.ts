import { Node } from '@otra/actors';
import type { ServerId } from '@otra/protocol';
import { type RaftSystem, startServer, startSystem } from '@otra/raft';
import { startTransport, type Transport } from '@otra/transport-ws';
import { ADMIN, adminBehaviour, type NodeInfo } from './admin.ts';
import { ConfigError, type HostPort, type NodeConfig, prepareDataDir } from './config.ts';
import { type HttpApi, startHttpApi } from './http-api.ts';
import { kvMachine, kvQueries } from './kv.ts';
import { KvMetrics } from './metrics.ts';

/** The name of the KV cluster every otra node serves (and of its servers). */
export const KV_CLUSTER = 'kv';

export interface OtraNodeOptions extends Omit<NodeConfig, 'listen' | 'join'> {
  /** Default 127.0.0.1:0 (a free port). */
  readonly listen?: HostPort;
  /** Default false: bootstrap the KV cluster from this node and its peers (see `NodeConfig.join`). */
  readonly join?: boolean;
  /** Link liveness (net_ticktime). Default 4,000 ms. */
  readonly linkTickMs?: number;
  readonly log?: (level: string, message: string) => void;
}

export interface OtraNode {
  readonly node: Node;
  readonly transport: Transport;
  readonly system: RaftSystem;
  /** The link URL (`ws://host:port`). */
  readonly url: string;
  readonly port: number;
  /** The HTTP API, when configured. */
  readonly http: HttpApi | undefined;
  stop(): Promise<void>;
}

function inUse(err: unknown, what: string, at: HostPort): Error {
  const code = (err as { code?: string } | null)?.code;
  if (code === 'EADDRINUSE') return new ConfigError(`${what} ${at.host}:${at.port} is already in use`);
  if (code === 'EADDRNOTAVAIL' || code === 'EACCES')
    return new ConfigError(`${what} ${at.host}:${at.port} cannot be bound (${code})`);
  return err instanceof Error ? err : new Error(String(err));
}

/** How long another node's HTTP address is trusted before it is asked again. */
const HTTP_URL_TTL_MS = 5000;

/**
 * One otra node: the actor runtime, a WebSocket transport, a raft system with the KV machine
 * registered as module `kv`, the admin actor that answers inspection, and (with `http`) the KV
 * service's HTTP API. Unless `join`, a node with no KV server on disk starts one whose initial
 * cluster is itself and its peers. Refuses bad configuration with a `ConfigError`.
 */
export async function startOtraNode(options: OtraNodeOptions): Promise<OtraNode> {
  const log =
    options.log ?? ((level, message) => process.stderr.write(`[${options.name}] ${level}: ${message}\n`));
  const listen = options.listen ?? { host: '127.0.0.1', port: 0 };
  if (options.dataDir !== undefined) prepareDataDir(options.dataDir);
  const node = new Node({ name: options.name, log: (level, message) => log(level, message) });
  let transport: Transport;
  try {
    transport = await startTransport(node, {
      cookie: options.cookie,
      host: listen.host,
      port: listen.port,
      peers: options.peers,
      tickMs: options.linkTickMs ?? 4000,
      reconnect: { initialMs: 50, maxMs: 1000 },
      log: (level, message) => {
        log(level, message);
      },
    });
  } catch (err) {
    await node.shutdown(1000);
    throw inUse(err, '--listen', listen);
  }
  let system: RaftSystem;
  try {
    system = await startSystem(node, {
      ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
      machines: { kv: { machine: kvMachine, queries: kvQueries } },
      ...(options.electionTimeoutMs === undefined ? {} : { electionTimeoutMs: options.electionTimeoutMs }),
      ...(options.tickMs === undefined ? {} : { tickMs: options.tickMs }),
      ...(options.quiesceAfterTicks === undefined ? {} : { quiesceAfterTicks: options.quiesceAfterTicks }),
      ...(options.trailingEntries === undefined ? {} : { trailingEntries: options.trailingEntries }),
      log: (level, message) => {
        if (level !== 'info') log(level, message);
      },
    });
  } catch (err) {
    await transport.close();
    await node.shutdown(1000);
    throw err;
  }

  const httpUrls = new Map<string, { url: string | undefined; at: number }>();
  const httpUrlOf = async (peer: string): Promise<string | undefined> => {
    const cached = httpUrls.get(peer);
    if (cached !== undefined && Date.now() - cached.at < HTTP_URL_TTL_MS) return cached.url;
    const info = await node
      .call<NodeInfo>({ name: ADMIN, node: peer }, { type: 'admin.info' }, { timeoutMs: 1000 })
      .catch(() => undefined);
    // an unanswered call is not remembered: the node may just be starting
    if (info === undefined) return undefined;
    const url = info.http ?? undefined;
    httpUrls.set(peer, { url, at: Date.now() });
    return url;
  };

  let http: HttpApi | undefined;
  const stopAll = async (): Promise<void> => {
    await http?.close();
    await system.stop();
    await transport.close();
    await node.shutdown(1000);
  };
  if (options.http !== undefined) {
    try {
      http = await startHttpApi({
        host: options.http.host,
        port: options.http.port,
        system,
        transport,
        cluster: KV_CLUSTER,
        metrics: new KvMetrics({ system, transport, cluster: KV_CLUSTER }),
        httpUrlOf,
        log: (level, message) => log(level, message),
      });
    } catch (err) {
      await stopAll();
      throw inUse(err, '--http', options.http);
    }
  }
  node.spawn(
    adminBehaviour(node, system, () => ({ node: node.name, url: transport.url, http: http?.url ?? null })),
    undefined,
    { name: ADMIN },
  );

  if (system.recordedServers().includes(KV_CLUSTER) && node.whereis(KV_CLUSTER) === undefined) {
    // never paper over a member that cannot come back: a fresh one would have forgotten its
    // vote and its log, and could help elect a leader that lacks committed entries
    await stopAll();
    throw new Error(
      `the ${KV_CLUSTER} member recorded under ${options.dataDir ?? '(memory)'} could not be restarted (see the error above); refusing to start a fresh one in its place`,
    );
  }
  if (options.join !== true && !system.recordedServers().includes(KV_CLUSTER)) {
    // a static bootstrap, as etcd's initial cluster: every node starts with the same member list
    // and the members elect a leader on their own timers
    const self: ServerId = { name: KV_CLUSTER, node: node.name };
    const members = [node.name, ...Object.keys(options.peers)]
      .sort()
      .map((n) => ({ name: KV_CLUSTER, node: n }));
    try {
      await startServer(system, { cluster: KV_CLUSTER, id: self, machine: { module: 'kv' }, members });
    } catch (err) {
      await stopAll();
      throw err;
    }
  }
  return {
    node,
    transport,
    system,
    url: transport.url,
    port: transport.port,
    http,
    stop: stopAll,
  };
}
