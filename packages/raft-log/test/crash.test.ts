import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openRocksStorage } from '../src/index.ts';
import {
  applyOp,
  CRASH_UIDS,
  type CrashOp,
  cloneState,
  crashPayload,
  emptyState,
  type ServerState,
  sameState,
} from './fixtures/crash-model.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const CHILD = path.join(import.meta.dirname, 'fixtures', 'crash-child.ts');
// a soak runs more: OTRA_CRASH_ROUNDS=300 (the time limit grows with it, 2 s a round)
const ROUNDS = Number(process.env.OTRA_CRASH_ROUNDS ?? 50);

let children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined)
      child.kill('SIGKILL');
  }
  children = [];
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

interface RoundOutput {
  ops: CrashOp[];
  acked: Set<number>;
}

/** Runs the child until it is SIGKILLed `killAfterMs` after it reports ready (or, if negative, after spawning). */
async function runAndKill(dir: string, seed: number, killAfterMs: number): Promise<RoundOutput> {
  const journal = path.join(dir, `journal-${seed}.jsonl`);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CHILD, path.join(dir, 'storage'), String(seed), journal],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let stderr = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    onReady = resolve;
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    if (chunk.toString().includes('ready')) onReady();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  if (killAfterMs >= 0) {
    const early = await Promise.race([
      ready.then(() => 'ready'),
      exited.then(() => 'exited'),
      new Promise((resolve) => setTimeout(() => resolve('timeout'), 20_000)),
    ]);
    if (early !== 'ready') throw new Error(`child did not get ready (${String(early)}): ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, killAfterMs));
  } else {
    await new Promise((resolve) => setTimeout(resolve, -killAfterMs));
  }
  if (child.exitCode !== null || child.signalCode !== null)
    throw new Error(`child exited on its own (${child.exitCode}): ${stderr}`);
  process.kill(child.pid!, 'SIGKILL');
  const code = await exited;
  expect(code).toBeNull();
  const out: RoundOutput = { ops: [], acked: new Set() };
  const text = fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8') : '';
  const lines = text.split('\n');
  lines.pop(); // empty, or a line cut by the kill
  for (const line of lines) {
    const msg = JSON.parse(line) as CrashOp | { ack: number };
    if ('ack' in msg) out.acked.add(msg.ack);
    else out.ops.push(msg);
  }
  fs.rmSync(journal, { force: true });
  return out;
}

/** What a fresh open of `dir` recovers for each server, checking every entry's bytes. */
async function recoveredStates(dir: string): Promise<Map<string, ServerState>> {
  const storage = await openRocksStorage(dir, { tailEntries: 16 });
  try {
    const states = new Map<string, ServerState>();
    for (const uid of CRASH_UIDS) {
      const r = storage.recover(uid);
      const start = { index: r.firstIndex - 1, term: storage.log.termAt(uid, r.firstIndex - 1) ?? -1 };
      const entries = await storage.log.read(uid, r.firstIndex, r.last.index);
      expect(entries.length).toBe(r.last.index - r.firstIndex + 1);
      for (const e of entries)
        expect(Buffer.from(e.data)).toEqual(Buffer.from(crashPayload(uid, e.index, e.term)));
      states.set(uid, {
        start,
        terms: entries.map((e) => e.term),
        meta: { currentTerm: r.meta.currentTerm, votedFor: r.meta.votedFor },
      });
    }
    return states;
  } finally {
    await storage.close();
  }
}

/**
 * The recovered state of a server must be its state after some prefix of its announced operations
 * that includes every acknowledged one: nothing acknowledged lost, nothing out of order, no holes.
 */
function checkPrefixConsistent(
  uid: string,
  base: ServerState,
  ops: CrashOp[],
  acked: Set<number>,
  got: ServerState,
) {
  const mine = ops.filter((op) => op.uid === uid);
  let mustReach = -1;
  mine.forEach((op, k) => {
    if (acked.has(op.op)) mustReach = k;
  });
  const state = cloneState(base);
  const seen: string[] = [];
  const summary = (s: ServerState) =>
    `start ${s.start.index}/${s.start.term} last ${s.start.index + s.terms.length}/${s.terms.at(-1)} meta ${s.meta.currentTerm}`;
  for (let k = -1; k < mine.length; k++) {
    if (k >= 0) applyOp(state, mine[k]!);
    if (k >= mustReach && sameState(state, got)) return k + 1;
    if (k >= mustReach - 3)
      seen.push(`${k}: ${k >= 0 ? JSON.stringify(mine[k]) : 'base'} -> ${summary(state)}`);
  }
  if (process.env.OTRA_CRASH_DEBUG) {
    fs.writeFileSync(
      process.env.OTRA_CRASH_DEBUG,
      `got ${summary(got)} terms ${JSON.stringify(got.terms)}\nbase ${summary(base)}\n${seen.join('\n')}\n`,
    );
  }
  throw new Error(
    `${uid}: recovered state (start ${got.start.index}, last ${got.start.index + got.terms.length}, term ${got.meta.currentTerm}) ` +
      `is no prefix of the ${mine.length} announced operations covering the ${mustReach + 1} acknowledged ones`,
  );
}

interface ChainResult {
  kills: number;
  ops: number;
  acked: number;
  lostUnacked: number;
}

/** One storage directory through `rounds` kill/recover/verify cycles. */
async function killChain(chain: number, rounds: number): Promise<ChainResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'otra-'));
  dirs.push(dir);
  const storageDir = path.join(dir, 'storage');
  let base = new Map<string, ServerState>(CRASH_UIDS.map((uid) => [uid, emptyState()]));
  const result: ChainResult = { kills: 0, ops: 0, acked: 0, lostUnacked: 0 };
  for (let round = 0; round < rounds; round++) {
    const seed = 1000 * (chain + 1) + round;
    // Mostly mid-stream; every 8th kill lands during start-up and recovery instead.
    const killAfter = round % 8 === 7 ? -(150 + ((seed * 37) % 200)) : 10 + ((seed * 53) % 160);
    const t0 = performance.now();
    const out = await runAndKill(dir, seed, killAfter);
    const t1 = performance.now();
    result.kills++;
    result.acked += out.acked.size;
    result.ops += out.ops.length;
    const got = await recoveredStates(storageDir);
    for (const uid of CRASH_UIDS) {
      const applied = checkPrefixConsistent(uid, base.get(uid)!, out.ops, out.acked, got.get(uid)!);
      result.lostUnacked += out.ops.filter((op) => op.uid === uid).length - applied;
    }
    base = got;
    if (process.env.OTRA_CRASH_TIMING) {
      console.log(
        `chain ${chain} round ${round}: run ${(t1 - t0).toFixed(0)}ms verify ${(performance.now() - t1).toFixed(0)}ms`,
      );
    }
  }
  return result;
}

describe('crash safety', () => {
  it(
    `keeps every acknowledged write through ${ROUNDS} SIGKILLs at random points`,
    async () => {
      // Two independent storage directories side by side, to fit the kills in the time budget.
      const half = Math.ceil(ROUNDS / 2);
      const chains = await Promise.all([killChain(0, half), killChain(1, ROUNDS - half)]);
      const total = chains.reduce((a, c) => ({
        kills: a.kills + c.kills,
        ops: a.ops + c.ops,
        acked: a.acked + c.acked,
        lostUnacked: a.lostUnacked + c.lostUnacked,
      }));
      expect(total.kills).toBe(ROUNDS);
      // The child was really writing when killed, and kills did land with writes in flight.
      expect(total.acked).toBeGreaterThan(ROUNDS * 20);
      expect(total.ops).toBeGreaterThan(total.acked);
      console.log(
        `crash: ${total.kills} kills, ${total.ops} ops announced, ${total.acked} acknowledged, ${total.lostUnacked} unacknowledged lost`,
      );
    },
    Math.max(120_000, ROUNDS * 2_000),
  );
});
