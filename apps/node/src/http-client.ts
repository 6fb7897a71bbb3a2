/**
 * The CLI's side of the HTTP API: `otra status`, `otra inspect`, `otra members`, `otra kv`. Each
 * prints a human table or tree, or with `--json` the API's JSON as it came.
 */
import type { ActorInfo, NodeTree } from '@otra/actors';
import type { MemberStatus, NodeStatus } from './http-api.ts';

/** An HTTP API answer that is not 2xx (or no answer at all); `message` says what happened. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Calls the API at `base` and returns the JSON body; non-2xx answers throw `ApiError`. */
export async function apiCall<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 10_000,
): Promise<T> {
  let url: URL;
  try {
    url = new URL(path, base);
  } catch {
    throw new ApiError(0, 'bad_url', `--http must be a URL like http://127.0.0.1:8001, got ${base}`);
  }
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      signal: AbortSignal.timeout(timeoutMs),
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new ApiError(0, 'unreachable', `cannot reach ${url.origin}: ${cause}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text.length === 0 ? null : JSON.parse(text);
  } catch {
    throw new ApiError(
      res.status,
      'bad_response',
      `${url.origin} answered ${res.status} with a body that is not JSON`,
    );
  }
  if (!res.ok) {
    const e = (json ?? {}) as { error?: string; message?: string };
    throw new ApiError(
      res.status,
      e.error ?? 'error',
      `${res.status} ${e.error ?? ''}: ${e.message ?? text}`.trim(),
    );
  }
  return json as T;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows)
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A snapshot transfer in progress, as the status table and `otra members` print it. */
export const showTransfer = (t: { readonly index: number; readonly nextChunk: number }): string =>
  `(sending snapshot ${t.index}, at chunk ${t.nextChunk})`;

const show = (v: number | string | null | undefined): string =>
  v === null || v === undefined ? '-' : String(v);

/** The status table: one row per member, as `otra status` prints it. */
export function formatStatus(status: NodeStatus): string {
  if (!status.member)
    return `node ${status.node} hosts no member of cluster ${status.cluster} (started with --join?)`;
  const header = ['NODE', 'MEMBERSHIP', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'LAST', 'MATCH'];
  const rows = status.members.map((m: MemberStatus) => [
    m.node,
    m.membership,
    m.reachable ? show(m.role) : 'unreachable',
    show(m.term),
    show(m.leader),
    show(m.commitIndex),
    show(m.lastApplied),
    show(m.lastIndex),
    m.snapshotTransfer === null
      ? show(m.matchIndex)
      : `${show(m.matchIndex)} ${showTransfer(m.snapshotTransfer)}`,
  ]);
  const lines = [
    `cluster ${status.cluster} seen from ${status.node}: leader ${show(status.leader)}, term ${show(status.term)}, ${show(status.keys)} keys`,
    table([header, ...rows]),
  ];
  return lines.join('\n');
}

/** The actor tree, indented, with each actor's status, mailbox, restarts and statechart state. */
export function formatTree(tree: NodeTree): string {
  const lines = [`node ${tree.node} (${tree.actors} actors)`];
  const walk = (info: ActorInfo, depth: number): void => {
    const label = info.name ?? info.childId ?? `<${info.pid.id}>`;
    const parts = [
      `${label} [${info.kind}]`,
      info.status,
      `mailbox=${info.mailbox}`,
      `restarts=${info.restarts}`,
    ];
    if (info.stateValue !== undefined) parts.push(`state=${JSON.stringify(info.stateValue)}`);
    lines.push(`${'  '.repeat(depth + 1)}${parts.join(' ')}`);
    for (const child of info.children) walk(child, depth + 1);
  };
  for (const root of tree.roots) walk(root, 0);
  return lines.join('\n');
}

/** A command-line value: JSON when it parses (`42`, `true`, `{"a":1}`, `"quoted"`), else the text itself. */
export function cliValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
