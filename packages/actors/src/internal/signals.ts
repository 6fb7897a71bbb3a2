import type { NodeName, Pid } from '@otra/protocol';
import type { ExitReason, From, MonitorRef, RegName, SendStatus } from '../types.ts';

/**
 * Everything one node says to another about actors. A transport serialises these (they are plain
 * data) and hands the ones it receives to `Node.deliver`. Signals between one pair of actors must be
 * delivered in the order they were routed.
 */
export type Signal =
  | { readonly t: 'send'; readonly to: Pid | RegName; readonly msg: unknown }
  | { readonly t: 'cast'; readonly to: Pid | RegName; readonly msg: unknown }
  | { readonly t: 'call'; readonly to: Pid | RegName; readonly request: unknown; readonly from: From }
  | { readonly t: 'reply'; readonly to: From; readonly value: unknown }
  | { readonly t: 'link'; readonly from: Pid; readonly to: Pid }
  | { readonly t: 'unlink'; readonly from: Pid; readonly to: Pid }
  /** `link: true` when it comes from a linked actor's death (`normal` is then ignored unless trapped). */
  | {
      readonly t: 'exit';
      readonly from: Pid;
      readonly to: Pid;
      readonly reason: ExitReason;
      readonly link: boolean;
    }
  | { readonly t: 'monitor'; readonly from: Pid; readonly to: Pid | RegName; readonly ref: MonitorRef }
  | { readonly t: 'demonitor'; readonly from: Pid; readonly to: Pid | RegName; readonly ref: MonitorRef }
  | {
      readonly t: 'down';
      readonly to: Pid;
      readonly ref: MonitorRef;
      readonly pid: Pid | RegName;
      readonly reason: ExitReason;
    };

/** The node a signal must be routed to. */
export function signalNode(signal: Signal): NodeName {
  return signal.to.node;
}

/**
 * A node's way to other nodes, installed by a transport with `Node.setDistribution`. The node calls
 * `route` for every signal whose destination is on another node.
 */
export interface Distribution {
  /**
   * Queues `signal` for `node`. Returns `dropped` when there is no link to `node` (the node then
   * treats the peer as unreachable) and `busy` when the link's buffer is full.
   */
  route(node: NodeName, signal: Signal): SendStatus;
  /** Is there an authenticated link to `node` now? */
  isConnected(node: NodeName): boolean;
  /** Asks the transport to connect to `node` if it knows its address (used by `monitorNode`). */
  connect?(node: NodeName): void;
}
