/**
 * The terms of a log as runs `(startIndex, term)`: terms change only at elections, so a log of
 * millions of entries has a handful of runs, and `termAt` stays synchronous for any index without
 * keeping the entries in memory.
 */
export class TermRuns {
  private starts: number[] = [];
  private terms: number[] = [];

  /** Records `term` for `index`, which must follow the last recorded index. */
  push(index: number, term: number): void {
    const n = this.terms.length;
    if (n === 0 || this.terms[n - 1] !== term) {
      this.starts.push(index);
      this.terms.push(term);
    }
  }

  /** The term at `index`, assuming `index` lies within the recorded range. */
  termAt(index: number): number | undefined {
    let lo = 0;
    let hi = this.starts.length - 1;
    if (hi < 0 || index < this.starts[0]!) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.terms[lo];
  }

  /** Forgets indexes >= `index`. */
  truncateFrom(index: number): void {
    while (this.starts.length > 0 && this.starts[this.starts.length - 1]! >= index) {
      this.starts.pop();
      this.terms.pop();
    }
  }

  /** Forgets indexes < `index`. */
  dropBefore(index: number): void {
    let keepFrom = 0;
    while (keepFrom + 1 < this.starts.length && this.starts[keepFrom + 1]! <= index) keepFrom++;
    if (keepFrom > 0) {
      this.starts.splice(0, keepFrom);
      this.terms.splice(0, keepFrom);
    }
    if (this.starts.length > 0 && this.starts[0]! < index) this.starts[0] = index;
  }

  clear(): void {
    this.starts = [];
    this.terms = [];
  }

  get size(): number {
    return this.starts.length;
  }
}
