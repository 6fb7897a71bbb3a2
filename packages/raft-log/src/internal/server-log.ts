import { LogInputError } from '../errors.ts';
import type { IndexTerm, StoredEntry } from '../types.ts';
import type { EntryKeys } from './keys.ts';
import { RecordStarts } from './record-starts.ts';
import { TermRuns } from './term-runs.ts';

/** A pending write that removed entries from `truncateFrom` on; `seq` orders it among the writes. */
interface PendingTruncation {
  readonly seq: number;
  readonly truncateFrom: number;
}

/** What an accepted append changes, for the store to turn into key/value operations. */
export interface AppendPlan {
  /** Old entries `deleteFrom..deleteTo` are removed in the same batch (a truncated suffix longer than the new entries). */
  readonly deleteFrom: number;
  readonly deleteTo: number;
  readonly written: { readonly upTo: number; readonly term: number };
}

/** What `dropPrefix` changed. */
export interface DropPlan {
  /** Entries `from..to` are no longer part of the log and may be deleted in the background. */
  readonly backgroundFrom: number;
  readonly backgroundTo: number;
  /** A discarded suffix `from..to` (the log did not hold the snapshot point) that must go atomically with the new start. */
  readonly discardFrom: number;
  readonly discardTo: number;
}

/**
 * One server's log as the store sees it: where it starts, its last entry, its terms (as runs) and a
 * tail of recent entries in memory. Shared by the in-memory and the RocksDB stores so both enforce
 * the same rules; the RocksDB store trims the tail to entries already durable.
 */
export class ServerLog {
  /** The point the log starts after (a snapshot's index/term, or 0/0). */
  start: IndexTerm = { index: 0, term: 0 };
  lastIndex = 0;
  lastTerm = 0;
  durable = 0;
  readonly runs = new TermRuns();
  /** `tail[k]` is the entry at `tailStart + k`; the tail always reaches `lastIndex`. */
  tail: StoredEntry[] = [];
  tailStart = 1;
  corruption: Error | undefined;
  /** The RocksDB store's reused entry key for this server (made on its first append). */
  entryKeys: EntryKeys | undefined;
  /** The keys of the RocksDB store's records of this log (unused by the in-memory store). */
  readonly records = new RecordStarts();
  /** Bumped whenever entries already in the log are replaced or dropped, so a slow read can tell. */
  generation = 0;
  /** The last index of each write not yet known durable, oldest first from `pendingHead`. */
  private pendingLast: number[] = [];
  private pendingHead = 0;
  /** Sequence number of the next write; `pendingHead`'s write has `doneSeq`. */
  private nextSeq = 0;
  private doneSeq = 0;
  /** The pending writes that truncated (rare), oldest first. */
  private truncations: PendingTruncation[] = [];

  constructor(
    readonly uid: string,
    private readonly tailMax: number,
  ) {}

  get firstIndex(): number {
    return this.start.index + 1;
  }

  /** Sets the recovered state (RocksDB store at open). `tail` ends at `last`. */
  restore(start: IndexTerm, last: IndexTerm, tail: StoredEntry[]): void {
    this.start = start;
    this.lastIndex = last.index;
    this.lastTerm = last.term;
    this.durable = last.index;
    this.tail = tail;
    this.tailStart = last.index + 1 - tail.length;
  }

  checkUsable(): void {
    if (this.corruption !== undefined) throw this.corruption;
  }

  termAt(index: number): number | undefined {
    if (index === this.start.index) return this.start.term;
    if (index < this.start.index || index > this.lastIndex) return undefined;
    return this.runs.termAt(index);
  }

  /** Validates an append; throws `LogInputError` without changing anything. */
  plan(entries: readonly StoredEntry[], truncateFrom: number | undefined): AppendPlan {
    const deleteTo = this.check(entries, truncateFrom);
    const last = entries[entries.length - 1]!;
    return { deleteFrom: last.index + 1, deleteTo, written: { upTo: last.index, term: last.term } };
  }

  /**
   * `plan` without the plan object (the RocksDB store's append path): validates, throws
   * `LogInputError` without changing anything, and returns the last old index to delete in the
   * same batch (old entries `last new index + 1 ..` that value; none when it is below).
   */
  check(entries: readonly StoredEntry[], truncateFrom: number | undefined): number {
    if (this.corruption !== undefined) throw this.corruption;
    const uid = this.uid;
    const count = entries.length;
    if (count === 0) throw new LogInputError(uid, 'append needs at least one entry');
    const first = entries[0]!.index;
    if (truncateFrom !== undefined) {
      if (
        !Number.isSafeInteger(truncateFrom) ||
        truncateFrom <= this.start.index ||
        truncateFrom > this.lastIndex + 1
      ) {
        throw new LogInputError(
          uid,
          `truncateFrom ${truncateFrom} is outside the log ${this.firstIndex}..${this.lastIndex + 1}`,
        );
      }
      if (first !== truncateFrom) {
        throw new LogInputError(uid, `first entry ${first} must be at truncateFrom ${truncateFrom}`);
      }
    } else if (first !== this.lastIndex + 1) {
      throw new LogInputError(uid, `append at ${first} does not follow the last index ${this.lastIndex}`);
    }
    // lastTerm is the term at lastIndex (the start's term when the log is empty).
    let prevTerm = first - 1 === this.lastIndex ? this.lastTerm : (this.termAt(first - 1) ?? 0);
    for (let k = 0; k < count; k++) {
      const entry = entries[k]!;
      if (entry.index !== first + k)
        throw new LogInputError(uid, `entries are not consecutive at ${entry.index}`);
      const term = entry.term;
      if (!Number.isSafeInteger(term) || term < prevTerm || term < 1) {
        throw new LogInputError(uid, `term ${term} at ${entry.index} is below the previous term ${prevTerm}`);
      }
      if (!(entry.data instanceof Uint8Array))
        throw new LogInputError(uid, `entry ${entry.index} data is not bytes`);
      prevTerm = term;
    }
    return truncateFrom === undefined ? first + count - 1 : this.lastIndex;
  }

  /** Applies a planned append to the view. */
  apply(entries: readonly StoredEntry[], truncateFrom: number | undefined): void {
    if (truncateFrom !== undefined) this.truncate(truncateFrom);
    for (const entry of entries) this.push(entry);
    const last = entries[entries.length - 1]!;
    this.endAppend(last.index, last.term, truncateFrom);
  }

  /** `apply` in steps, for a caller that makes the entries as it goes: `truncate` (if any), `push` each, `endAppend`. */
  truncate(truncateFrom: number): void {
    this.generation++;
    this.runs.truncateFrom(truncateFrom);
    if (truncateFrom <= this.tailStart) {
      this.tail = [];
      this.tailStart = truncateFrom;
    } else {
      this.tail.length = truncateFrom - this.tailStart;
    }
    if (this.durable >= truncateFrom) this.durable = truncateFrom - 1;
  }

  push(entry: StoredEntry): void {
    this.runs.push(entry.index, entry.term);
    this.tail.push(entry);
  }

  endAppend(lastIndex: number, lastTerm: number, truncateFrom: number | undefined): void {
    this.lastIndex = lastIndex;
    this.lastTerm = lastTerm;
    this.pushPending(lastIndex, truncateFrom);
  }

  private pushPending(last: number, truncateFrom: number | undefined): void {
    if (truncateFrom !== undefined) this.truncations.push({ seq: this.nextSeq, truncateFrom });
    this.pendingLast.push(last);
    this.nextSeq++;
  }

  /** The oldest pending write is durable (writes of one server complete in order). */
  written(): void {
    if (this.pendingHead >= this.pendingLast.length) return;
    let upTo = this.pendingLast[this.pendingHead++]!;
    const seq = this.doneSeq++;
    if (this.pendingHead === this.pendingLast.length) {
      this.pendingLast = [];
      this.pendingHead = 0;
    } else if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pendingLast.length) {
      this.pendingLast = this.pendingLast.slice(this.pendingHead);
      this.pendingHead = 0;
    }
    // A later write that truncated below this one's end makes those entries superseded, not durable.
    while (this.truncations.length > 0 && this.truncations[0]!.seq <= seq) this.truncations.shift();
    for (const later of this.truncations) upTo = Math.min(upTo, later.truncateFrom - 1);
    this.durable = Math.min(Math.max(this.durable, upTo), this.lastIndex);
    this.trim();
  }

  /** Keeps at most `tailMax` durable entries in memory (entries not yet durable always stay). */
  private trim(): void {
    if (this.tail.length <= this.tailMax * 1.5) return;
    const droppable = Math.min(this.durable - this.tailStart + 1, this.tail.length - this.tailMax);
    if (droppable <= 0) return;
    this.tail.splice(0, droppable);
    this.tailStart += droppable;
  }

  tryRead(from: number, to: number): StoredEntry[] | undefined {
    if (from < this.tailStart || from < this.firstIndex) return undefined;
    const end = Math.min(to, this.lastIndex);
    if (end < from) return [];
    return this.tail.slice(from - this.tailStart, end - this.tailStart + 1);
  }

  /**
   * Moves the start to `upTo` (a snapshot point). Keeps the suffix if the log holds `upTo` with
   * that term, else discards the whole log (Raft §7). Like an append, it is a pending write: the
   * store calls `written()` once the new start is durable.
   */
  dropPrefix(upTo: IndexTerm): DropPlan | undefined {
    this.checkUsable();
    if (
      !Number.isSafeInteger(upTo.index) ||
      !Number.isSafeInteger(upTo.term) ||
      upTo.index < 0 ||
      upTo.term < 0
    ) {
      throw new LogInputError(this.uid, `bad snapshot point ${upTo.index}/${upTo.term}`);
    }
    if (upTo.index <= this.start.index) return undefined;
    this.generation++;
    const oldFirst = this.firstIndex;
    const keepsSuffix = upTo.index <= this.lastIndex && this.termAt(upTo.index) === upTo.term;
    const oldLast = this.lastIndex;
    this.start = { index: upTo.index, term: upTo.term };
    if (keepsSuffix) {
      this.runs.dropBefore(upTo.index + 1);
      if (this.lastIndex === upTo.index) this.runs.clear();
      if (upTo.index >= this.tailStart) {
        this.tail.splice(0, Math.min(this.tail.length, upTo.index - this.tailStart + 1));
        this.tailStart = upTo.index + 1;
      }
      this.durable = Math.max(this.durable, upTo.index);
      this.pushPending(upTo.index, undefined);
      return { backgroundFrom: oldFirst, backgroundTo: upTo.index, discardFrom: 1, discardTo: 0 };
    }
    this.runs.clear();
    this.tail = [];
    this.tailStart = upTo.index + 1;
    this.lastIndex = upTo.index;
    this.lastTerm = upTo.term;
    this.durable = upTo.index;
    this.pushPending(upTo.index, upTo.index + 1);
    return {
      backgroundFrom: oldFirst,
      backgroundTo: Math.min(upTo.index, oldLast),
      discardFrom: Math.max(upTo.index + 1, oldFirst),
      discardTo: oldLast,
    };
  }
}
