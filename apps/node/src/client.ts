import { Node } from '@otra/actors';
import { type RaftRef, raftClient } from '@otra/raft';
import { startTransport, type Transport } from '@otra/transport-ws';

export interface ClientNode {
  readonly node: Node;
  readonly transport: Transport;
  readonly raft: RaftRef;
  close(): Promise<void>;
}

/**
 * A node that hosts no servers and accepts no links: it connects to the given peers and calls
 * their clusters (the CLI, benchmarks' load generators, tests).
 */
export async function connectClient(
  peers: Readonly<Record<string, string>>,
  options: {
    cookie: string;
    name?: string;
    timeoutMs?: number;
    log?: (level: string, message: string) => void;
  },
): Promise<ClientNode> {
  const node = new Node({ name: options.name ?? `client-${process.pid}-${Math.floor(Math.random() * 1e6)}` });
  const transport = await startTransport(node, {
    cookie: options.cookie,
    listen: false,
    peers,
    reconnect: { initialMs: 50, maxMs: 1000 },
    tickMs: 4000,
    log:
      options.log ??
      ((level, message) => {
        if (level === 'error') process.stderr.write(`client: ${message}\n`);
      }),
  });
  await Promise.all(
    Object.keys(peers).map((name) => transport.connect(name, { timeoutMs: options.timeoutMs ?? 5000 })),
  );
  return {
    node,
    transport,
    raft: raftClient(node),
    close: async () => {
      await transport.close();
      await node.shutdown(1000);
    },
  };
}
