import { describe, expect, it } from 'vitest';
import { checkKv, checkRegister, type RegisterOp } from '../src/index.ts';

const w = (value: string, invoke: number, response: number): RegisterOp => ({
  kind: 'write',
  value,
  invoke,
  response,
});
const r = (value: string | null, invoke: number, response: number): RegisterOp => ({
  kind: 'read',
  value,
  invoke,
  response,
});

describe('WGL register checker', () => {
  it('accepts sequential and overlapping histories that have a linearization', () => {
    expect(checkRegister([w('a', 1, 2), r('a', 3, 4)]).ok).toBe(true);
    // Overlapping writes: a read may see either order.
    expect(checkRegister([w('a', 1, 5), w('b', 2, 6), r('a', 7, 8)]).ok).toBe(true);
    expect(checkRegister([r(null, 1, 2), w('a', 3, 4)]).ok).toBe(true);
  });

  it('rejects a stale read after a completed write', () => {
    expect(checkRegister([w('a', 1, 2), w('b', 3, 4), r('a', 5, 6)]).ok).toBe(false);
    expect(checkRegister([w('a', 1, 2), r(null, 3, 4)]).ok).toBe(false);
  });

  it('rejects a value that reappears', () => {
    expect(checkRegister([w('a', 1, 2), w('b', 3, 4), r('b', 5, 6), r('a', 7, 8)]).ok).toBe(false);
  });

  it('an unknown-outcome write may take effect late or never', () => {
    const inf = Number.POSITIVE_INFINITY;
    expect(checkRegister([w('a', 1, inf), r(null, 2, 3), r('a', 4, 5)]).ok).toBe(true);
    expect(checkRegister([w('a', 1, inf), r(null, 2, 3), r(null, 4, 5)]).ok).toBe(true);
    // ...but not before it was invoked.
    expect(checkRegister([r('a', 1, 2), w('a', 3, inf)]).ok).toBe(false);
  });

  it('checks keys independently and names the failing one', () => {
    const res = checkKv(
      new Map([
        ['x', [w('1', 1, 2), r('1', 3, 4)]],
        ['y', [w('1', 1, 2), r(null, 3, 4)]],
      ]),
    );
    expect(res).toMatchObject({ ok: false, key: 'y' });
  });
});
