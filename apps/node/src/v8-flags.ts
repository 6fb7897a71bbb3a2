/**
 * V8 flags every `otra node` runs with (the `otra` script's shebang carries the same).
 *
 * `--interrupt-budget=8000`: V8 optimizes a function after it has run about 200 KB of bytecode
 * (3 ticks of a 66 KB budget), a default tuned for short-lived pages. A freshly started node
 * sees a few hundred commands a second, so its hot path stays in the interpreter and baseline
 * code for thousands of commands, and the optimizing compiler keeps a core busy meanwhile: one
 * sequential client measured p50 2.3-3.5 ms over commands 100-2,100 with the default, 1.6 ms
 * with this budget, the same as the default reaches only after about 15,000 commands.
 */
export const NODE_V8_FLAGS: readonly string[] = ['--interrupt-budget=8000'];
