/**
 * The link manager and its link actors: the transport as it appears in the node's actor tree
 * (`links` with one child per connected node, as the architecture's supervision tree shows). They
 * are handles for inspection and control, not on the data path: signals never pass through them.
 *
 * - the manager, registered as `links`, answers `call(links, 'peers' | 'stats')` (from any node)
 *   and its exit (e.g. `node.shutdown()`) closes the transport;
 * - a link actor describes its link in `inspectTree()`, and stopping or killing it closes that link.
 */
import type { ExitReason, GenServer } from '@otra/actors';
import { formatReason } from '@otra/actors';
import type { Connection } from './connection.ts';
import { CLOSE } from './handshake.ts';

export interface LinkManagerView {
  describe(): unknown;
  query(request: unknown): unknown;
  close(): Promise<void>;
}

export function linkManagerBehaviour(view: LinkManagerView): GenServer<null, void> {
  return {
    init: () => null,
    handleCall: (request, _from, state) => ({ reply: view.query(request), state }),
    terminate: () => view.close(),
    describe: () => view.describe(),
  };
}

export const linkActorBehaviour: GenServer<Connection, Connection> = {
  init: (conn) => conn,
  handleCall: (_request, _from, conn) => ({ reply: describeLink(conn), state: conn }),
  describe: (conn) => describeLink(conn),
};

function describeLink(conn: Connection): unknown {
  return {
    peer: conn.peer?.name,
    creation: conn.peer?.creation,
    role: conn.role,
    state: conn.state,
    buffered: conn.buffered,
    ...conn.counters,
  };
}

/** A link actor exited (stopped, crashed or killed): its link goes with it. */
export function linkActorExited(conn: Connection, reason: ExitReason): void {
  if (conn.state !== 'closed') conn.close(CLOSE.disconnect, `link actor exited: ${formatReason(reason)}`);
}
