import { describe, expectTypeOf, it } from 'vitest';
import {
  type CommandOf,
  defineMachine,
  type ReplyOf,
  type SimpleMachine,
  type StateOf,
} from '../src/index.ts';

describe('machine type helpers', () => {
  it('extract command, reply and state types from both forms', () => {
    const kv = defineMachine<{ k: string }, number, { n: number }>({
      init: () => ({ n: 0 }),
      apply: (_m, _c, s) => [s, s.n],
    });
    expectTypeOf<CommandOf<typeof kv>>().toEqualTypeOf<{ k: string }>();
    expectTypeOf<ReplyOf<typeof kv>>().toEqualTypeOf<number>();
    expectTypeOf<StateOf<typeof kv>>().toEqualTypeOf<{ n: number }>();
    type Simple = SimpleMachine<'inc', number>;
    expectTypeOf<CommandOf<Simple>>().toEqualTypeOf<'inc'>();
    expectTypeOf<StateOf<Simple>>().toEqualTypeOf<number>();
  });
});
