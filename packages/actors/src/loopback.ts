import type { NodeName } from '@otra/protocol';
import type { Distribution, Signal } from './internal/signals.ts';
import type { Node } from './node.ts';
import type { SendStatus } from './types.ts';

/** Options for an in-process network. */
export interface LoopbackOptions {
  /**
   * Copy every signal with `structuredClone` on the way, as a real link's encoding would, so that
   * code relying on sharing objects (or sending functions) fails in tests too. Default true.
   */
  readonly clone?: boolean;
}

/**
 * An in-process distribution: several `Node`s in one process connected as if by links. Signals are
 * delivered asynchronously (one microtask per batch), in order per pair of nodes. Links can be cut
 * and healed to test `noconnection` handling without sockets. The real transport is
 * `@otra/transport-ws`; this is its fake.
 */
export class LoopbackNetwork {
  private readonly nodes = new Map<NodeName, Node>();
  private readonly cut = new Set<string>();
  private readonly queues = new Map<string, Signal[]>();
  private readonly clone: boolean;
  private routed = 0;

  constructor(options?: LoopbackOptions) {
    this.clone = options?.clone ?? true;
  }

  /** Joins `node` to the network; every other joined node sees it come up. */
  join(node: Node): void {
    this.nodes.set(node.name, node);
    node.setDistribution(this.distributionFor(node.name));
    for (const other of this.nodes.values()) {
      if (other === node || this.isCut(node.name, other.name)) continue;
      other.nodeUp(node.name);
      node.nodeUp(other.name);
    }
  }

  /** Removes `node` as if its process died: the others see `nodedown`. */
  leave(name: NodeName): void {
    const node = this.nodes.get(name);
    if (node === undefined) return;
    this.nodes.delete(name);
    node.setDistribution(undefined);
    for (const other of this.nodes.values()) {
      if (!this.isCut(name, other.name)) other.nodeDown(name);
    }
  }

  /** Cuts the link between `a` and `b` (both ways): both see the other go down. */
  partition(a: NodeName, b: NodeName): void {
    if (this.isCut(a, b)) return;
    this.cut.add(pairKey(a, b));
    this.queues.delete(`${a}>${b}`);
    this.queues.delete(`${b}>${a}`);
    this.nodes.get(a)?.nodeDown(b);
    this.nodes.get(b)?.nodeDown(a);
  }

  /** Restores the link between `a` and `b`. */
  heal(a: NodeName, b: NodeName): void {
    if (!this.cut.delete(pairKey(a, b))) return;
    const na = this.nodes.get(a);
    const nb = this.nodes.get(b);
    if (na !== undefined && nb !== undefined) {
      na.nodeUp(b);
      nb.nodeUp(a);
    }
  }

  /** Signals routed between nodes since the network was made (tests count traffic with it). */
  stats(): { readonly routed: number } {
    return { routed: this.routed };
  }

  private isCut(a: NodeName, b: NodeName): boolean {
    return this.cut.has(pairKey(a, b));
  }

  private distributionFor(self: NodeName): Distribution {
    return {
      route: (node, signal) => this.route(self, node, signal),
      isConnected: (node) => this.nodes.has(node) && this.nodes.has(self) && !this.isCut(self, node),
    };
  }

  private route(from: NodeName, to: NodeName, signal: Signal): SendStatus {
    if (!this.nodes.has(to) || !this.nodes.has(from) || this.isCut(from, to)) return 'dropped';
    const key = `${from}>${to}`;
    let queue = this.queues.get(key);
    if (queue === undefined) {
      queue = [];
      this.queues.set(key, queue);
      queueMicrotask(() => this.flush(key, from, to));
    }
    queue.push(this.clone ? structuredClone(signal) : signal);
    this.routed++;
    return 'ok';
  }

  private flush(key: string, from: NodeName, to: NodeName): void {
    const queue = this.queues.get(key);
    this.queues.delete(key);
    const target = this.nodes.get(to);
    if (queue === undefined || target === undefined || this.isCut(from, to) || !this.nodes.has(from)) return;
    for (const signal of queue) target.deliver(signal);
  }
}

function pairKey(a: NodeName, b: NodeName): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
