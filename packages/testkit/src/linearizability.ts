/**
 * A Wing & Gong / Lowe (WGL) linearizability checker for a single register per key. Operations
 * whose outcome is unknown (the client timed out) may have taken effect at any time after their
 * invocation, or never: they have `response = Infinity` and need not be linearized.
 */
export interface RegisterOp {
  readonly kind: 'write' | 'read';
  /** Written value, or the value read (null: absent). */
  readonly value: string | null;
  readonly invoke: number;
  readonly response: number;
}

export interface LinearizabilityResult {
  readonly ok: boolean;
  readonly key?: string;
  readonly explored: number;
}

export function checkRegister(
  ops: readonly RegisterOp[],
  initial: string | null = null,
  budget = 2_000_000,
): {
  ok: boolean;
  explored: number;
} {
  const sorted = ops.slice().sort((a, b) => a.invoke - b.invoke);
  const n = sorted.length;
  const done = new Uint8Array(n);
  const seen = new Set<string>();
  let explored = 0;
  const required = sorted.filter((o) => o.response !== Number.POSITIVE_INFINITY).length;

  const search = (state: string | null, linearized: number): boolean => {
    if (linearized === required) return true;
    if (++explored > budget) throw new Error('linearizability search budget exceeded');
    const key = `${state}|${done.join('')}`;
    if (seen.has(key)) return false;
    seen.add(key);
    let minResponse = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++)
      if (!done[i] && sorted[i]!.response < minResponse) minResponse = sorted[i]!.response;
    for (let i = 0; i < n; i++) {
      if (done[i]) continue;
      const op = sorted[i]!;
      if (op.invoke > minResponse) break;
      if (op.kind === 'read' && op.value !== state) continue;
      done[i] = 1;
      const next = op.kind === 'write' ? op.value : state;
      const ok = search(next, linearized + (op.response === Number.POSITIVE_INFINITY ? 0 : 1));
      done[i] = 0;
      if (ok) return true;
    }
    return false;
  };
  return { ok: search(initial, 0), explored };
}

/** Checks each key's history independently (linearizability is compositional). */
export function checkKv(history: ReadonlyMap<string, readonly RegisterOp[]>): LinearizabilityResult {
  let explored = 0;
  for (const [key, ops] of history) {
    const r = checkRegister(ops);
    explored += r.explored;
    if (!r.ok) return { ok: false, key, explored };
  }
  return { ok: true, explored };
}
