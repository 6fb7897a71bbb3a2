import type { LogEntry } from '@otra/protocol';

/**
 * The in-memory view of the log after the last snapshot. Immutable to its holders but cheap to
 * extend: many versions share one `entries` array, each owning the prefix `[0, length)`. Appending
 * onto the tip pushes in place (older versions keep their shorter `length` and never see the new
 * slots); appending onto a branch (a version whose `length` is shorter than the array, e.g. after
 * a truncation) copies first.
 *
 * Index arithmetic: the entry at log index `i` lives at `entries[i - snapshotIndex - 1]`.
 */
export interface LogView {
  readonly snapshotIndex: number;
  readonly snapshotTerm: number;
  readonly entries: LogEntry[];
  readonly length: number;
}

export function emptyLog(snapshotIndex = 0, snapshotTerm = 0): LogView {
  return { snapshotIndex, snapshotTerm, entries: [], length: 0 };
}

export function logFromEntries(
  snapshotIndex: number,
  snapshotTerm: number,
  entries: readonly LogEntry[],
): LogView {
  const kept = entries.filter((e) => e.index > snapshotIndex);
  kept.forEach((e, i) => {
    if (e.index !== snapshotIndex + 1 + i) throw new Error(`log gap at ${snapshotIndex + 1 + i}`);
  });
  return { snapshotIndex, snapshotTerm, entries: kept, length: kept.length };
}

export function lastIndex(log: LogView): number {
  return log.snapshotIndex + log.length;
}

export function lastTerm(log: LogView): number {
  return log.length === 0 ? log.snapshotTerm : log.entries[log.length - 1]!.term;
}

/** The term at `index`, or undefined when the index is beyond the log or inside the snapshot. */
export function termAt(log: LogView, index: number): number | undefined {
  if (index === log.snapshotIndex) return log.snapshotTerm;
  if (index < log.snapshotIndex || index > log.snapshotIndex + log.length) return undefined;
  return log.entries[index - log.snapshotIndex - 1]!.term;
}

export function entryAt(log: LogView, index: number): LogEntry | undefined {
  if (index <= log.snapshotIndex || index > log.snapshotIndex + log.length) return undefined;
  return log.entries[index - log.snapshotIndex - 1];
}

/** Entries in `[from, to]` (inclusive, clamped to what is in memory). */
export function slice(log: LogView, from: number, to: number): LogEntry[] {
  const lo = Math.max(from, log.snapshotIndex + 1) - log.snapshotIndex - 1;
  const hi = Math.min(to, log.snapshotIndex + log.length) - log.snapshotIndex;
  return lo >= hi ? [] : log.entries.slice(lo, hi);
}

/** Appends entries that must continue the log exactly (`entries[0].index === lastIndex + 1`). */
export function append(log: LogView, entries: readonly LogEntry[]): LogView {
  if (entries.length === 0) return log;
  if (entries[0]!.index !== lastIndex(log) + 1) {
    throw new Error(`append at ${entries[0]!.index} does not follow ${lastIndex(log)}`);
  }
  const target = log.entries.length === log.length ? log.entries : log.entries.slice(0, log.length);
  for (const e of entries) target.push(e);
  return {
    snapshotIndex: log.snapshotIndex,
    snapshotTerm: log.snapshotTerm,
    entries: target,
    length: log.length + entries.length,
  };
}

/** Appends one entry (the leader's hot path). */
export function appendOne(log: LogView, entry: LogEntry): LogView {
  const target = log.entries.length === log.length ? log.entries : log.entries.slice(0, log.length);
  target.push(entry);
  return {
    snapshotIndex: log.snapshotIndex,
    snapshotTerm: log.snapshotTerm,
    entries: target,
    length: log.length + 1,
  };
}

/**
 * Replaces each entry in `[from, to]` (clamped to what is in memory) by `swap(entry)`, in place:
 * for a holder that keeps a cheaper form of entries it no longer reads often (the shell keeps an
 * applied command as its encoded bytes). The replacement must be the same entry: same type, index
 * and term, every field reading the same; a different type, index or term throws. Every version
 * sharing the array sees the swap, which is why it must be the same entry.
 */
export function swapEntries(
  log: LogView,
  from: number,
  to: number,
  swap: (entry: LogEntry) => LogEntry,
): void {
  const lo = Math.max(from, log.snapshotIndex + 1) - log.snapshotIndex - 1;
  const hi = Math.min(to, log.snapshotIndex + log.length) - log.snapshotIndex;
  const entries = log.entries;
  for (let k = lo; k < hi; k++) {
    const entry = entries[k] as LogEntry;
    const next = swap(entry);
    if (next === entry) continue;
    if (next.type !== entry.type || next.index !== entry.index || next.term !== entry.term)
      throw new Error(`entry ${entry.index} was swapped for a different entry`);
    entries[k] = next;
  }
}

/** Drops entries from `index` on. Shares the array: the next append onto this branch copies. */
export function truncateFrom(log: LogView, index: number): LogView {
  const length = Math.max(0, Math.min(log.length, index - log.snapshotIndex - 1));
  return length === log.length ? log : { ...log, length };
}

/**
 * Moves the snapshot point to `{index, term}`, dropping entries up to it. If the log does not hold
 * a matching entry at `index` the whole log is discarded (a snapshot from the leader replaces it).
 */
export function compact(log: LogView, index: number, term: number): LogView {
  if (index <= log.snapshotIndex) return log;
  if (termAt(log, index) === term) {
    const kept = log.entries.slice(index - log.snapshotIndex, log.length);
    return { snapshotIndex: index, snapshotTerm: term, entries: kept, length: kept.length };
  }
  return emptyLog(index, term);
}

/** True when a log ending at `{index, term}` is at least as up to date as this one (§5.4.1). */
export function isUpToDate(log: LogView, index: number, term: number): boolean {
  const myTerm = lastTerm(log);
  return term > myTerm || (term === myTerm && index >= lastIndex(log));
}
