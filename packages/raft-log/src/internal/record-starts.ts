/**
 * The keys of one server's records on disk, ascending: each record holds the entries of one append
 * and is keyed by its first index (see entry-codec.ts). A record holds the entries from its key up
 * to the next record's key (a later record shadows the rest of it: what a truncation left), the
 * last one up to the log's last index. One number per append, so the store can find the record
 * that holds an index, and delete exactly the records a truncation or a snapshot makes stale,
 * without reading the disk.
 */
export class RecordStarts {
  private starts: number[] = [];
  private head = 0;

  get size(): number {
    return this.starts.length - this.head;
  }

  /** Records a new last record at `start` (above every other). */
  push(start: number): void {
    this.starts.push(start);
  }

  /**
   * Forgets the records from `index` on, for an append there that truncates: returns the keys of
   * those above `index`, which the append deletes (a record at `index` itself is overwritten).
   */
  truncateFrom(index: number): number[] {
    const above: number[] = [];
    const starts = this.starts;
    while (starts.length > this.head && starts[starts.length - 1]! >= index) {
      const start = starts.pop()!;
      if (start > index) above.push(start);
    }
    return above;
  }

  /** The key of the record holding `index`: the greatest key at or below it. */
  containing(index: number): number | undefined {
    const starts = this.starts;
    let lo = this.head;
    let hi = starts.length - 1;
    if (hi < lo || starts[lo]! > index) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    return starts[lo];
  }

  /** Forgets the records keyed below `start`; returns the lowest and highest of them, if any. */
  dropBelow(start: number): { from: number; to: number } | undefined {
    const starts = this.starts;
    const from = this.head;
    let end = from;
    while (end < starts.length && starts[end]! < start) end++;
    if (end === from) return undefined;
    const dropped = { from: starts[from]!, to: starts[end - 1]! };
    this.head = end;
    if (this.head === starts.length) {
      this.starts = [];
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > starts.length) {
      this.starts = starts.slice(this.head);
      this.head = 0;
    }
    return dropped;
  }

  /** Forgets every record; returns their keys, ascending. */
  clear(): number[] {
    const all = this.starts.slice(this.head);
    this.starts = [];
    this.head = 0;
    return all;
  }
}
