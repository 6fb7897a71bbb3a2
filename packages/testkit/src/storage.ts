import type { LogEntry, ServerId, SnapshotMeta } from '@otra/protocol';
import type { Recovered } from '@otra/raft-core';

/**
 * An in-memory fake of a server's durable storage (meta store, log and snapshot store): what
 * survives a simulated crash. The simulator applies writes here only when the simulated log writer
 * completes them; `recovered()` is what a restarted server reads.
 */
export class MemoryStorage {
  currentTerm = 0;
  votedFor: ServerId | null = null;
  /** Entries after the snapshot, contiguous. */
  entries: LogEntry[] = [];
  snapshot: { meta: SnapshotMeta; machineState: unknown } | null = null;

  persistMeta(currentTerm: number, votedFor: ServerId | null): void {
    this.currentTerm = currentTerm;
    this.votedFor = votedFor;
  }

  /** Appends (truncating from `truncateFrom` first, atomically); returns the last entry written. */
  append(entries: readonly LogEntry[], truncateFrom?: number): LogEntry | undefined {
    const first = entries[0];
    if (first === undefined) return undefined;
    const base = this.snapshot?.meta.index ?? 0;
    const cut = truncateFrom ?? first.index;
    // Keep entries before the cut; entries at or below the snapshot are already covered.
    this.entries = this.entries.filter((e) => e.index < cut);
    for (const e of entries) {
      if (e.index <= base) continue;
      const expected = (this.entries[this.entries.length - 1]?.index ?? base) + 1;
      if (e.index !== expected)
        throw new Error(`storage: append of ${e.index} does not follow ${expected - 1}`);
      this.entries.push(e);
    }
    return entries[entries.length - 1];
  }

  /** Drops entries up to `upTo` (after a snapshot covering them is durable). */
  truncatePrefix(upTo: number): void {
    this.entries = this.entries.filter((e) => e.index > upTo);
  }

  writeSnapshot(meta: SnapshotMeta, machineState: unknown): void {
    if (this.snapshot !== null && this.snapshot.meta.index >= meta.index) return;
    this.snapshot = { meta, machineState: structuredClone(machineState) };
  }

  /** Installs a snapshot received from the leader: keeps the log suffix only if it continues it. */
  installSnapshot(meta: SnapshotMeta, machineState: unknown): void {
    const at = this.entries.find((e) => e.index === meta.index);
    this.entries =
      at !== undefined && at.term === meta.term ? this.entries.filter((e) => e.index > meta.index) : [];
    this.snapshot = { meta, machineState: structuredClone(machineState) };
  }

  recovered(): Recovered {
    return {
      currentTerm: this.currentTerm,
      votedFor: this.votedFor,
      snapshot:
        this.snapshot === null
          ? null
          : { meta: this.snapshot.meta, machineState: structuredClone(this.snapshot.machineState) },
      entries: this.entries.slice(),
    };
  }
}
