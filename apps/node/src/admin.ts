import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { GenServer, Node } from '@otra/actors';
import type { RaftSystem } from '@otra/raft';

/** The registered name of a node's admin actor. */
export const ADMIN = 'otra.admin';

export type AdminRequest =
  | { readonly type: 'admin.tree' }
  /** Where the node serves: its link URL and its HTTP API's URL (null without one). */
  | { readonly type: 'admin.info' }
  /** With `gc: true`, a full collection first, so `heapUsedBytes` is live memory. */
  | { readonly type: 'admin.stats'; readonly gc?: boolean }
  /** Sends an exit signal to a registered actor (fault injection for tests and operators). */
  | { readonly type: 'admin.exit'; readonly name: string; readonly reason: string };

/** The answer to `admin.info`. */
export interface NodeInfo {
  readonly node: string;
  readonly url: string;
  readonly http: string | null;
}

export interface NodeStats {
  readonly node: string;
  readonly pid: number;
  readonly actors: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Process CPU time since start, in microseconds (user + system). */
  readonly cpuMicros: number;
  readonly uptimeMs: number;
  readonly writer?: unknown;
}

/**
 * Answers inspection requests from other nodes (the `otra inspect` CLI, tests): the node's live
 * actor tree, process figures, and an exit signal to a named actor.
 */
export function adminBehaviour(
  node: Node,
  system: RaftSystem,
  info: () => NodeInfo,
): GenServer<null, void, AdminRequest, unknown> {
  return {
    init: () => null,
    async handleCall(request, _from, state) {
      switch (request?.type) {
        case 'admin.tree':
          return { reply: node.inspectTree(), state };
        case 'admin.info':
          return { reply: info(), state };
        case 'admin.stats': {
          if (request.gc === true) collectGarbage();
          const mem = process.memoryUsage();
          const cpu = process.cpuUsage();
          const writer = await system.writerStats();
          const stats: NodeStats = {
            node: node.name,
            pid: process.pid,
            actors: node.size,
            rssBytes: mem.rss,
            heapUsedBytes: mem.heapUsed,
            cpuMicros: cpu.user + cpu.system,
            uptimeMs: Math.round(process.uptime() * 1000),
            ...(writer === undefined ? {} : { writer }),
          };
          return { reply: stats, state };
        }
        case 'admin.exit': {
          const pid = node.whereis(request.name);
          if (pid === undefined)
            return { reply: { ok: false, error: `no actor named ${request.name}` }, state };
          node.exit(pid, request.reason);
          return { reply: { ok: true }, state };
        }
        default:
          return { reply: { ok: false, error: 'unknown admin request' }, state };
      }
    },
  };
}

/** A full garbage collection without starting node with --expose-gc. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
}
