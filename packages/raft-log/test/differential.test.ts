import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryStorage, LogInputError, openRocksStorage, type RaftStorage } from '../src/index.ts';
import { payload, text } from './storage-contract.ts';

/** The reference: a log as a plain array of terms after a start point. */
interface Model {
  start: { index: number; term: number };
  terms: number[];
}

const last = (m: Model) => m.start.index + m.terms.length;
const termAt = (m: Model, i: number): number | undefined =>
  i === m.start.index
    ? m.start.term
    : i > m.start.index && i <= last(m)
      ? m.terms[i - m.start.index - 1]
      : undefined;

function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Random appends, overwrites, prefix deletes and reads, applied to both stores and a reference
 * model in lockstep (the RocksDB one with a 3-entry tail, so most reads go to disk, and reopened now
 * and then); every read, term and bound must agree with the model.
 */
describe('both stores against a reference model', () => {
  for (const seed of [1, 2, 3]) {
    it(`agrees on a random history (seed ${seed})`, async () => {
      const random = xorshift(seed * 7919);
      const pick = (n: number) => Math.floor(random() * n);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'otra-'));
      dirs.push(dir);
      const memory = createMemoryStorage();
      let rocks: RaftStorage = await openRocksStorage(dir, { tailEntries: 3 });
      const uids = ['x', 'y'];
      const models = new Map<string, Model>(
        uids.map((u) => [u, { start: { index: 0, term: 0 }, terms: [] }]),
      );
      let term = 1;
      let pending: Promise<unknown>[] = [];
      for (let step = 0; step < 400; step++) {
        const uid = uids[pick(uids.length)]!;
        const m = models.get(uid)!;
        const roll = random();
        if (roll < 0.5) {
          const truncating = random() < 0.25 && last(m) > m.start.index;
          const from = truncating ? m.start.index + 1 + pick(last(m) - m.start.index) : last(m) + 1;
          if (truncating) term++;
          const count = 1 + pick(5);
          const entries = Array.from({ length: count }, (_, k) => ({
            index: from + k,
            term,
            data: payload(from + k, term, uid),
          }));
          const options = truncating ? { truncateFrom: from } : undefined;
          for (const s of [memory, rocks]) pending.push(s.log.append(uid, entries, options));
          m.terms.length = from - m.start.index - 1;
          for (const e of entries) m.terms.push(e.term);
        } else if (roll < 0.6) {
          // A snapshot point: usually inside the log (suffix kept), sometimes past or conflicting.
          const inside = random() < 0.7 && last(m) > m.start.index;
          const index = inside ? m.start.index + 1 + pick(last(m) - m.start.index) : last(m) + pick(4);
          const at = inside ? termAt(m, index)! : term + 1;
          if (!inside) term = at;
          if (index <= m.start.index) continue;
          for (const s of [memory, rocks]) pending.push(s.log.deletePrefix(uid, { index, term: at }));
          if (termAt(m, index) === at) m.terms = m.terms.slice(index - m.start.index);
          else m.terms = [];
          m.start = { index, term: at };
        } else if (roll < 0.62) {
          await Promise.all(pending);
          pending = [];
          await rocks.close();
          rocks = await openRocksStorage(dir, { tailEntries: 3 });
        } else {
          if (random() < 0.5) {
            await Promise.all(pending);
            pending = [];
          }
          const from = m.start.index + 1 + pick(Math.max(1, last(m) - m.start.index + 1));
          const to = from + pick(8);
          const expected: string[] = [];
          for (let i = from; i <= Math.min(to, last(m)); i++) {
            const t = termAt(m, i)!;
            expected.push(text({ index: i, term: t, data: payload(i, t, uid) }));
          }
          for (const s of [memory, rocks]) {
            expect(s.log.last(uid)).toEqual({ index: last(m), term: termAt(m, last(m)) });
            expect(s.log.firstIndex(uid)).toBe(m.start.index + 1);
            expect(s.log.termAt(uid, m.start.index)).toBe(m.start.term);
            expect(s.log.termAt(uid, from)).toBe(termAt(m, from));
            expect((await s.log.read(uid, from, to)).map(text)).toEqual(expected);
            const cached = s.log.tryRead(uid, from, to);
            if (cached !== undefined) expect(cached.map(text)).toEqual(expected);
            if (m.start.index > 0)
              await expect(s.log.read(uid, m.start.index, to)).rejects.toThrow(LogInputError);
          }
        }
      }
      await Promise.all(pending);
      for (const uid of uids) {
        const m = models.get(uid)!;
        for (const s of [memory, rocks]) {
          expect(s.log.durableIndex(uid)).toBe(last(m));
          const all = await s.log.read(uid, m.start.index + 1, last(m));
          expect(all.map((e) => e.term)).toEqual(m.terms);
        }
      }
      await rocks.close();
      await memory.close();
    });
  }
});
