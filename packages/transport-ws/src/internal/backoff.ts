/** Reconnect timing: exponential backoff with jitter, so restarted clusters do not dial in lockstep. */
export interface ReconnectOptions {
  /** Delay before the first retry. Default 100 ms. */
  readonly initialMs?: number;
  /** Ceiling of the delay. Default 5,000 ms. */
  readonly maxMs?: number;
}

/**
 * The delay before retry number `attempt` (0-based): `min(max, initial * 2^attempt)`, scaled by a
 * factor in [0.5, 1) from `random` (a value in [0, 1), passed in so the function stays pure).
 */
export function backoffDelay(attempt: number, options: ReconnectOptions, random: number): number {
  const initial = options.initialMs ?? 100;
  const max = options.maxMs ?? 5000;
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.max(1, Math.round(ceiling * (0.5 + random / 2)));
}
