import type { Prng } from './prng.ts';

export interface NetworkFaults {
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a message is delivered twice. */
  duplicate: number;
  /** Delivery delay range in ms; random delays reorder messages. */
  minDelayMs: number;
  maxDelayMs: number;
}

/**
 * A simulated network between named endpoints: per-message loss, duplication and delay, and
 * directed link cuts (so one-way and partial partitions are just sets of cut links).
 */
export class SimNetwork {
  private readonly cut = new Set<string>();
  constructor(
    private readonly rng: Prng,
    public faults: NetworkFaults,
  ) {}

  /** Cuts `from -> to` (one way). */
  cutLink(from: string, to: string): void {
    this.cut.add(`${from}>${to}`);
  }
  cutBoth(a: string, b: string): void {
    this.cutLink(a, b);
    this.cutLink(b, a);
  }
  /** Splits the endpoints into groups that cannot talk to each other. */
  partition(groups: readonly (readonly string[])[]): void {
    for (const g of groups)
      for (const h of groups) if (g !== h) for (const a of g) for (const b of h) this.cutLink(a, b);
  }
  healLink(from: string, to: string): void {
    this.cut.delete(`${from}>${to}`);
  }
  healAll(): void {
    this.cut.clear();
  }
  isCut(from: string, to: string): boolean {
    return this.cut.has(`${from}>${to}`);
  }
  get cutLinks(): string[] {
    return [...this.cut].sort();
  }

  /** The delays after which copies of a message arrive (empty: lost). */
  deliveries(from: string, to: string): number[] {
    if (this.cut.has(`${from}>${to}`)) return [];
    const f = this.faults;
    if (f.drop > 0 && this.rng.chance(f.drop)) return [];
    const d = [this.rng.int(f.minDelayMs, f.maxDelayMs)];
    if (f.duplicate > 0 && this.rng.chance(f.duplicate)) d.push(this.rng.int(f.minDelayMs, f.maxDelayMs));
    return d;
  }
}
