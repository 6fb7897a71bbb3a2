/**
 * Seeded random requests against a node's HTTP API: methods, paths (percent-encoded garbage,
 * long keys, odd query strings), JSON bodies of any shape (deep, huge numbers, wrong types) and
 * bytes that are not JSON. Every request gets a JSON answer with a 2xx, 3xx or 4xx status (a 500
 * would be an exception nobody expected), and the node keeps serving. `HTTP_FUZZ_SEED` and
 * `HTTP_FUZZ_COUNT` run other seeds.
 */
import { request } from 'node:http';
import { Prng } from '@otra/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { soloDir, startSolo, stopSolos } from './solo.ts';

afterEach(stopSolos);

function send(
  base: URL,
  method: string,
  path: string,
  body: string | Buffer | undefined,
): Promise<{ status: number; text: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: base.hostname, port: Number(base.port), method, path, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8'),
            type: String(res.headers['content-type'] ?? ''),
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path}`)));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Uniform in [0, 1) from the project's seeded PRNG. */
function seeded(seed: number): () => number {
  const prng = new Prng(seed);
  return () => prng.next();
}

describe('HTTP API fuzzing', () => {
  it('answers 800 random requests with JSON and no 5xx, and keeps serving', async () => {
    const node = await startSolo(soloDir('otra-http-fuzz-'));
    const base = new URL(node.http!.url);
    for (let i = 0; i < 200; i++) {
      const r = await send(base, 'PUT', '/kv/ready', '{"value": 1}');
      if (r.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const rnd = seeded(Number(process.env.HTTP_FUZZ_SEED ?? 1201));
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
    const junk = (n: number): string =>
      Array.from({ length: n }, () =>
        pick([
          'a',
          'Z',
          '9',
          '%',
          '%2F',
          '%00',
          '%E0%A4',
          '/',
          '?',
          '&',
          '=',
          '#',
          '%20',
          '~',
          '..',
          '%C3%A9',
        ]),
      ).join('');
    const value = (depth: number): unknown => {
      const roll = rnd();
      if (depth > 0 && roll < 0.2)
        return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth - 1));
      if (depth > 0 && roll < 0.35) return { [junk(3)]: value(depth - 1), n: value(depth - 1) };
      return pick<unknown>([null, true, 0, -1, 1e308, 2 ** 60, 'x', '', junk(5), 'v'.repeat(2000)]);
    };
    const deep = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
    const bodies = (): string | Buffer | undefined =>
      pick<() => string | Buffer | undefined>([
        () => undefined,
        () => JSON.stringify({ value: value(4) }),
        () => JSON.stringify({ expect: value(2), value: value(2) }),
        () => JSON.stringify(value(3)),
        () => `{"value":${deep(Math.floor(rnd() * 600))}}`,
        () => JSON.stringify({ node: junk(4), membership: pick(['voter', 'promotable', 'boss', 1]) }),
        () => JSON.stringify({ to: junk(3) }),
        () => Buffer.from(Array.from({ length: Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256))),
        () => '{"value": 1',
      ])();
    const paths = (): string =>
      pick<() => string>([
        () => `/kv/${junk(1 + Math.floor(rnd() * 8))}`,
        () => `/kv/${'k'.repeat(pick([1, 1024, 1025, 5000]))}`,
        () => `/kv/${junk(3)}/cas`,
        () => `/kv/${junk(3)}?consistency=${pick(['local', 'leader', 'linearizable', 'eventual', junk(2)])}`,
        () => `/kv/${junk(3)}?prev=${pick(['1', '0', junk(1)])}&redirect=${pick(['1', '0'])}`,
        () =>
          `/kv?prefix=${junk(2)}&after=${junk(2)}&limit=${pick(['1', '0', '-5', '1001', 'abc', '1e3', ''])}`,
        () => `/kv?${junk(4)}`,
        () => pick(['/status', '/inspect', '/metrics', '/members', '/leadership', '/', '/kv/', '/nowhere']),
        () => `/members/${junk(3)}`,
      ])();
    const methods = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];
    const count = Number(process.env.HTTP_FUZZ_COUNT ?? 800);
    const seen = new Map<number, number>();
    const failures: string[] = [];
    for (let i = 0; i < count; i++) {
      const method = pick(methods);
      const path = paths();
      const body = method === 'GET' || method === 'HEAD' ? undefined : bodies();
      let r: { status: number; text: string; type: string };
      try {
        r = await send(base, method, path, body);
      } catch (err) {
        failures.push(`${method} ${path}: ${(err as Error).message}`);
        continue;
      }
      seen.set(r.status, (seen.get(r.status) ?? 0) + 1);
      if (r.status >= 500 && r.status !== 503 && r.status !== 504)
        failures.push(`${method} ${path} -> ${r.status} ${r.text.slice(0, 200)}`);
      if (method !== 'HEAD' && r.status >= 400 && !/json/.test(r.type))
        failures.push(`${method} ${path} -> ${r.status} not JSON`);
    }
    expect(failures).toEqual([]);
    expect(seen.get(200) ?? 0).toBeGreaterThan(20);
    expect([...seen.keys()].some((s) => s >= 400 && s < 500)).toBe(true);
    // still serving, with what it stored
    const put = await send(base, 'PUT', '/kv/after', '{"value": {"ok": true}}');
    expect(put.status).toBe(200);
    const got = await send(base, 'GET', '/kv/after', undefined);
    expect(JSON.parse(got.text)).toMatchObject({ value: { ok: true } });
  }, 120_000);
});
