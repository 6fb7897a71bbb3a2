import type { NodeName, Pid } from '@otra/protocol';

/** An exit reason raised by an exception or a rejected promise inside a handler. */
export interface ErrorExit {
  readonly error: string;
  readonly message: string;
  readonly stack?: string;
}

/** `{ shutdown: detail }`: a shutdown with a reason attached; treated like `'shutdown'` by supervisors. */
export interface ShutdownExit {
  readonly shutdown: unknown;
}

/**
 * Why an actor exited. `normal` and `shutdown` are clean exits; `kill` cannot be trapped and arrives
 * at links as `killed`; `noproc` means the pid was already dead; `noconnection` means the link to
 * its node went down. Any other string is an application reason. Exit reasons are plain data so
 * they cross links.
 */
export type ExitReason =
  | 'normal'
  | 'shutdown'
  | 'kill'
  | 'killed'
  | 'noproc'
  | 'noconnection'
  | (string & {})
  | ErrorExit
  | ShutdownExit;

/** A registered name on a (possibly remote) node: `{ name: 'kv', node: 'n2' }`. */
export interface RegName {
  readonly name: string;
  readonly node: NodeName;
}

/** Where a message can go: a pid, a name registered on this node, or a name on a given node. */
export type Dest = Pid | string | RegName;

/** Who is waiting for a call's reply. Plain data: replies to a remote caller travel back over its link. */
export interface From {
  readonly node: NodeName;
  readonly creation: number;
  readonly ref: number;
}

/** The status of a send: `busy` when a link's bounded buffer refused it, `dropped` when it was discarded. */
export type SendStatus = 'ok' | 'busy' | 'dropped';

/** A monitor reference, unique per node. */
export type MonitorRef = number;

/** Delivered to a monitoring actor's `handleInfo` when the monitored actor exits. */
export interface DownMessage {
  readonly type: '@actors.down';
  readonly ref: MonitorRef;
  readonly pid: Pid;
  readonly reason: ExitReason;
}

/** Delivered to an actor that traps exits when a linked actor exits (or someone calls `exit` on it). */
export interface ExitMessage {
  readonly type: '@actors.exit';
  readonly from: Pid;
  readonly reason: ExitReason;
}

/** Delivered to actors that called `monitorNode(node)`. */
export interface NodeMessage {
  readonly type: '@actors.nodeup' | '@actors.nodedown';
  readonly node: NodeName;
}

/** Runtime messages an actor may see in `handleInfo`. */
export type SystemMessage = DownMessage | ExitMessage | NodeMessage;

/** True for `normal`, `shutdown` and `{ shutdown: _ }`: the reasons supervisors treat as clean. */
export function isCleanExit(reason: ExitReason): boolean {
  return reason === 'normal' || reason === 'shutdown' || (typeof reason === 'object' && 'shutdown' in reason);
}

/** Turns a thrown value into a serialisable exit reason. */
export function errorReason(err: unknown): ExitReason {
  if (err instanceof Error) {
    const reason: { error: string; message: string; stack?: string } = {
      error: err.name,
      message: err.message,
    };
    if (err.stack !== undefined) reason.stack = err.stack;
    return reason;
  }
  if (typeof err === 'string') return { error: 'Error', message: err };
  return { error: 'Error', message: safeString(err) };
}

/** A short human form of an exit reason, for logs and errors. */
export function formatReason(reason: ExitReason): string {
  if (typeof reason === 'string') return reason;
  if ('error' in reason) return `${reason.error}: ${reason.message}`;
  return `shutdown(${safeString(reason.shutdown)})`;
}

function safeString(value: unknown): string {
  try {
    return typeof value === 'string' ? value : JSON.stringify(value);
  } catch {
    return String(value);
  }
}
