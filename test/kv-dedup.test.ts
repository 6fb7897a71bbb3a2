/**
 * Writes forwarded by a follower while the leader is cut off are applied once. Each HTTP write
 * carries a request id; when the leader it was forwarded to goes away before answering, the
 * follower resends it to the next leader and the KV machine recognises the copy. Before that, a
 * create-only compare-and-set caught in a leader change could be applied twice and answer
 * `compare_failed` with the client's own value (found with this very set-up: 28-52 such answers
 * in six rounds).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { KvCluster } from '../apps/node/src/kv-cluster.ts';
import { nodeStatus, type ProxiedCluster, startProxiedCluster } from './support/proxied-cluster.ts';

const NAMES = ['n1', 'n2', 'n3'] as const;
const WORKERS = 16;
const ROUNDS = 3;

let proxied: ProxiedCluster | undefined;
afterEach(async () => {
  await proxied?.close();
  proxied = undefined;
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function leaderOf(c: KvCluster, deadlineMs = 15_000): Promise<string> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const all = await Promise.all(NAMES.map((n) => nodeStatus(c, n, 1000)));
    const leaders = new Set(all.map((s) => s?.leader ?? null));
    const [leader] = leaders;
    if (leaders.size === 1 && typeof leader === 'string') return leader;
    await sleep(100);
  }
  throw new Error('no leader agreed on');
}

describe('resent writes across a leader change', () => {
  it('a create-only compare-and-set forwarded by a follower is applied once, whatever happens to the leader', async () => {
    proxied = await startProxiedCluster({ nodes: 3, electionTimeoutMs: [300, 600], tickMs: 50 });
    const p = proxied;
    const c = p.cluster;
    const outcomes = { created: 0, ownValue409: 0, other409: 0, unknown: 0, unavailable: 0, errors: 0 };
    const created: [string, string][] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const leader = await leaderOf(c);
      const via = NAMES.find((n) => n !== leader) as string;
      let stop = false;
      const workers = Array.from({ length: WORKERS }, async (_, w) => {
        for (let i = 0; i < 100_000 && !stop; i++) {
          const key = `r${round}-w${w}-${i}`;
          const value = `v-${key}`;
          try {
            const res = await fetch(`${c.http(via)}/kv/${key}/cas`, {
              method: 'POST',
              body: JSON.stringify({ value }),
              signal: AbortSignal.timeout(8000),
            });
            const body = (await res.json()) as { error?: string; current?: unknown };
            if (res.status === 200) {
              outcomes.created++;
              created.push([key, value]);
            } else if (res.status === 409 && body.current === value) outcomes.ownValue409++;
            else if (res.status === 409) outcomes.other409++;
            else if (res.status === 504) outcomes.unknown++;
            else if (res.status === 503) {
              outcomes.unavailable++;
              await sleep(50);
            } else outcomes.errors++;
          } catch {
            outcomes.errors++;
          }
        }
      });
      // let writes flow, then cut the leader off from both followers for a while, then heal
      await sleep(700);
      p.isolate(leader);
      await sleep(2500);
      p.healAll();
      await sleep(1500);
      stop = true;
      await Promise.all(workers);
    }
    console.log(`kv-dedup outcomes: ${JSON.stringify(outcomes)}`);
    expect(outcomes.ownValue409).toBe(0);
    expect(outcomes.other409).toBe(0);
    expect(outcomes.created).toBeGreaterThan(100);
    // every created key holds its creator's value, read linearizably through another node
    const leader = await leaderOf(c);
    for (const [key, value] of created.filter((_, i) => i % 10 === 0)) {
      const res = await fetch(`${c.http(leader)}/kv/${key}`);
      expect(((await res.json()) as { value: unknown }).value).toBe(value);
    }
  }, 60_000);
});
