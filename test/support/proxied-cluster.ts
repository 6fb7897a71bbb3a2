/**
 * A KV service of `otra node` processes whose every node-to-node link goes through its own
 * `TcpProxy` (one per direction, since either side of a pair may dial the one link), so that
 * tests can cut and heal links between real processes.
 */
import type { NodeStatus } from '../../apps/node/src/http-api.ts';
import { KvCluster, type KvClusterOptions } from '../../apps/node/src/kv-cluster.ts';
import { TcpProxy } from './tcp-proxy.ts';

export interface ProxiedCluster {
  readonly cluster: KvCluster;
  /** By directed link: `proxies.get('n1->n2')` is the proxy n1 dials n2 through. */
  readonly proxies: ReadonlyMap<string, TcpProxy>;
  /** Cuts the link between `a` and `b`, both ways. */
  cutPair(a: string, b: string): void;
  /** Cuts `node` off from every other node. */
  isolate(node: string): void;
  healAll(): void;
  /** Stops every node process (by pid) and closes every proxy. */
  close(): Promise<void>;
}

/** Starts the proxies, then the nodes with their peer URLs pointing at them. */
export async function startProxiedCluster(
  options: Omit<KvClusterOptions, 'peerUrl'> & { readonly nodes: number },
): Promise<ProxiedCluster> {
  const names = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
  const proxies = new Map<string, TcpProxy>();
  for (const from of names)
    for (const to of names) if (from !== to) proxies.set(`${from}->${to}`, await TcpProxy.start(0));
  const closeProxies = () => Promise.all([...proxies.values()].map((p) => p.close()));
  let cluster: KvCluster;
  try {
    cluster = await KvCluster.start({
      ...options,
      peerUrl: (from, to, port) => {
        const proxy = proxies.get(`${from}->${to}`);
        if (proxy === undefined) throw new Error(`no proxy for ${from}->${to}`);
        // the nodes' ports are known only now (KvCluster picks them), so the proxies learn them late
        proxy.targetPort = port;
        return proxy.wsUrl;
      },
    });
  } catch (err) {
    await closeProxies();
    throw err;
  }
  const cutPair = (a: string, b: string): void => {
    proxies.get(`${a}->${b}`)?.cut();
    proxies.get(`${b}->${a}`)?.cut();
  };
  return {
    cluster,
    proxies,
    cutPair,
    isolate: (node) => {
      for (const other of names) if (other !== node) cutPair(node, other);
    },
    healAll: () => {
      for (const p of proxies.values()) p.heal();
    },
    close: async () => {
      try {
        await cluster.stop({ graceMs: 3000 });
      } finally {
        await closeProxies();
      }
    },
  };
}

/** `GET /status` of node `name`, or undefined when it does not answer in time. */
export async function nodeStatus(
  c: KvCluster,
  name: string,
  timeoutMs = 1500,
): Promise<NodeStatus | undefined> {
  try {
    const res = await fetch(`${c.http(name)}/status`, { signal: AbortSignal.timeout(timeoutMs) });
    return res.status === 200 ? ((await res.json()) as NodeStatus) : undefined;
  } catch {
    return undefined;
  }
}
