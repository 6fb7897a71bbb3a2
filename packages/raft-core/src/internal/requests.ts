/**
 * Client request ids (rafted_value's command de-duplication, for any machine): a command appended
 * with a `requestId` is applied once; a copy of it committed later (a client resending after a
 * timeout or a leader change) is not applied again and is answered with the first copy's reply.
 *
 * Every member must make the same decision for every entry, so the table is a function of the log
 * alone: a copy at index k is a duplicate when the same id was applied at an index in
 * `(k - window, k)`. The window is counted in log entries, not in requests, and a snapshot at
 * index i carries the ids applied in `(i - window, i]`, so a member that installs it decides as
 * the others do.
 *
 * Persistent like `LogView`: versions share one append-only `records` array, each owning the
 * prefix `[0, length)`; the map from id to position is shared too and checked against the prefix.
 */

/** One applied request: its id, where it was applied, and what it answered. */
export interface RequestRecord {
  readonly id: string;
  readonly index: number;
  readonly term: number;
  readonly reply: unknown;
  /** Set when `apply` threw: the copy is answered with the same error. */
  readonly error?: string;
}

export interface RequestTable {
  readonly records: RequestRecord[];
  readonly length: number;
  /** Records before this position are older than any snapshot still to be taken needs. */
  readonly start: number;
  readonly positions: Map<string, number>;
}

export function emptyRequests(): RequestTable {
  return { records: [], length: 0, start: 0, positions: new Map() };
}

export function requestsFrom(records: readonly RequestRecord[]): RequestTable {
  const copy = [...records];
  return { records: copy, length: copy.length, start: 0, positions: positionsOf(copy) };
}

function positionsOf(records: readonly RequestRecord[]): Map<string, number> {
  const positions = new Map<string, number>();
  for (let i = 0; i < records.length; i++) positions.set(records[i]!.id, i);
  return positions;
}

/** The record of `id` if it was applied within `window` entries before `index`. */
export function findRequest(
  table: RequestTable,
  id: string,
  index: number,
  window: number,
): RequestRecord | undefined {
  const at = table.positions.get(id);
  if (at === undefined || at < table.start || at >= table.length) return undefined;
  const r = table.records[at]!;
  if (r.id !== id || r.index <= index - window || r.index >= index) return undefined;
  return r;
}

/**
 * The table with `record` added. `keepAfter`: records at or below this index are no longer needed
 * (older than the last snapshot's window) and may be dropped.
 */
export function recordRequest(table: RequestTable, record: RequestRecord, keepAfter: number): RequestTable {
  let { records, length, start, positions } = table;
  while (start < length && records[start]!.index <= keepAfter) start++;
  // a branch (an older version being extended) copies its live records; so does a table whose
  // dropped records outnumber the live ones
  if (length !== records.length || (start > 1024 && start * 2 > length)) {
    records = records.slice(start, length);
    length = records.length;
    start = 0;
    positions = positionsOf(records);
  }
  records.push(record);
  positions.set(record.id, length);
  return { records, length: length + 1, start, positions };
}

/** The records a snapshot at `index` carries: those applied in `(index - window, index]`. */
export function requestsAt(table: RequestTable, index: number, window: number): RequestRecord[] {
  const out: RequestRecord[] = [];
  for (let i = table.start; i < table.length; i++) {
    const r = table.records[i]!;
    if (r.index > index - window && r.index <= index) out.push(r);
  }
  return out;
}

/**
 * Snapshots hold the machine's state; when requests were recorded they hold both, under this
 * marker (a state from before request ids, or with none recorded, is stored as it is).
 */
const SNAPSHOT_MARK = '@otra.snapshot';

export function wrapSnapshotState(machineState: unknown, requests: readonly RequestRecord[]): unknown {
  if (requests.length === 0) return machineState;
  return { [SNAPSHOT_MARK]: 1, machine: machineState, requests };
}

/** Splits a stored snapshot state into the machine's state and the request records it carries. */
export function unwrapSnapshotState(stored: unknown): { machineState: unknown; requests: RequestRecord[] } {
  if (
    typeof stored === 'object' &&
    stored !== null &&
    (stored as Record<string, unknown>)[SNAPSHOT_MARK] === 1
  ) {
    const s = stored as { machine?: unknown; requests?: unknown };
    const requests = Array.isArray(s.requests) ? s.requests.filter(isRequestRecord) : [];
    return { machineState: s.machine, requests };
  }
  return { machineState: stored, requests: [] };
}

function isRequestRecord(r: unknown): r is RequestRecord {
  if (typeof r !== 'object' || r === null) return false;
  const x = r as Record<string, unknown>;
  return (
    typeof x.id === 'string' &&
    Number.isSafeInteger(x.index) &&
    Number.isSafeInteger(x.term) &&
    (x.error === undefined || typeof x.error === 'string')
  );
}
