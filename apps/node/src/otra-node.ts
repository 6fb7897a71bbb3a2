import { Node } from '@otra/actors';
import { type RaftSystem, startSystem } from '@otra/raft';
import { startTransport, type Transport } from '@otra/transport-ws';
import { ADMIN, adminBehaviour } from './admin.ts';
import { kvMachine, kvQueries } from './kv.ts';

export interface OtraNodeOptions {
  readonly name: string;
  readonly cookie: string;
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** RocksDB and snapshots; in memory when absent. */
  readonly dataDir?: string;
  readonly peers?: Readonly<Record<string, string>>;
  readonly electionTimeoutMs?: readonly [number, number];
  readonly tickMs?: number;
  /** Link liveness (net_ticktime). Default 4,000 ms. */
  readonly linkTickMs?: number;
  readonly log?: (level: string, message: string) => void;
}

export interface OtraNode {
  readonly node: Node;
  readonly transport: Transport;
  readonly system: RaftSystem;
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * One otra node: the actor runtime, a WebSocket transport and a raft system with the KV machine
 * registered as module `kv`, plus the admin actor that answers inspection.
 */
export async function startOtraNode(options: OtraNodeOptions): Promise<OtraNode> {
  const log =
    options.log ?? ((level, message) => process.stderr.write(`[${options.name}] ${level}: ${message}\n`));
  const node = new Node({ name: options.name, log: (level, message) => log(level, message) });
  const transport = await startTransport(node, {
    cookie: options.cookie,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    peers: options.peers ?? {},
    tickMs: options.linkTickMs ?? 4000,
    reconnect: { initialMs: 50, maxMs: 1000 },
    log: (level, message) => {
      log(level, message);
    },
  });
  const system = await startSystem(node, {
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    machines: { kv: { machine: kvMachine, queries: kvQueries } },
    ...(options.electionTimeoutMs === undefined ? {} : { electionTimeoutMs: options.electionTimeoutMs }),
    ...(options.tickMs === undefined ? {} : { tickMs: options.tickMs }),
    log: (level, message) => {
      if (level !== 'info') log(level, message);
    },
  });
  node.spawn(adminBehaviour(node, system), undefined, { name: ADMIN });
  return {
    node,
    transport,
    system,
    url: transport.url,
    port: transport.port,
    stop: async () => {
      await system.stop();
      await transport.close();
      await node.shutdown(1000);
    },
  };
}
