import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { NODE_V8_FLAGS } from '../apps/node/src/v8-flags.ts';

/**
 * The V8 flags for the processes a benchmark starts (nodes, and benchmark processes in `all.ts`):
 * `NODE_V8_FLAGS`, or V8's defaults with `V8_DEFAULTS=1`.
 */
export function benchV8Flags(): readonly string[] {
  const base = process.env.V8_DEFAULTS === '1' ? [] : NODE_V8_FLAGS;
  const extra = (process.env.EXTRA_V8_FLAGS ?? '').split(' ').filter((f) => f !== '');
  return [...base, ...extra];
}

/** Prints one figure line: `name key=value ...`, so runs can be compared line by line. */
export function report(name: string, figures: Record<string, string | number>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${v}`);
  console.log(`${name} ${parts.join(' ')}`);
}

/** Rounds a rate to a whole number per second. */
export function perSecond(count: number, ms: number): string {
  return `${Math.round((count * 1000) / ms)}/s`;
}

/** Percentile of a sorted-in-place array of numbers. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  values.sort((a, b) => a - b);
  const i = Math.min(values.length - 1, Math.max(0, Math.ceil((p / 100) * values.length) - 1));
  return values[i] as number;
}

/** A full garbage collection, for memory figures (works without --expose-gc). */
export function gc(): void {
  setFlagsFromString('--expose-gc');
  const collect = runInNewContext('gc') as () => void;
  collect();
  collect();
}

/** Formats microseconds with one decimal. */
export function us(ms: number): string {
  return `${(ms * 1000).toFixed(1)}us`;
}
