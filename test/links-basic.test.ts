import { afterEach, describe, expect, it } from 'vitest';
import { freshCookie, killAll, NodeProc } from './support/links/harness.ts';

const procs: NodeProc[] = [];
afterEach(() => killAll(procs));

type Pid = { node: string; id: number; creation: number };

describe('links between two processes', () => {
  it('remote call and cast work both ways, by pid and by registered name', async () => {
    const cookie = freshCookie();
    const n2 = await NodeProc.start({ name: 'n2', cookie }, procs);
    const n1 = await NodeProc.start({ name: 'n1', cookie, peers: { n2: n2.ready.url } }, procs);
    await n1.request('connect', { node: 'n2' });
    const echo2 = await n2.request<Pid>('spawnEcho', { name: 'echo' });
    const echo1 = await n1.request<Pid>('spawnEcho', { name: 'echo' });
    expect(echo2).toEqual({ node: 'n2', id: expect.any(Number), creation: n2.ready.creation });

    expect(await n1.request('call', { dest: echo2, request: { q: 1 } })).toEqual({
      echo: { q: 1 },
      node: 'n2',
    });
    expect(await n1.request('call', { dest: { name: 'echo', node: 'n2' }, request: 'by name' })).toEqual({
      echo: 'by name',
      node: 'n2',
    });
    expect(await n2.request('call', { dest: echo1, request: [1, 'two', null] })).toEqual({
      echo: [1, 'two', null],
      node: 'n1',
    });
    expect(await n1.request('cast', { dest: echo2, msg: { hello: 'n2' } })).toBe('ok');
    expect(await n2.waitEvent((e) => e.event === 'cast')).toEqual({ event: 'cast', msg: { hello: 'n2' } });
    // a call to a name nobody registered fails with noproc, not a timeout
    await expect(
      n1.request('call', { dest: { name: 'nobody', node: 'n2' }, request: 1, timeoutMs: 3000 }),
    ).rejects.toThrow(/no process/);
  });

  it('keeps FIFO order of 10,000 messages between one pair of actors', async () => {
    const cookie = freshCookie();
    const n2 = await NodeProc.start({ name: 'n2', cookie }, procs);
    const n1 = await NodeProc.start(
      { name: 'n1', cookie, peers: { n2: n2.ready.url }, sendBufferBytes: 64 * 1024 },
      procs,
    );
    await n1.request('connect', { node: 'n2' });
    await n2.request('collector', { name: 'fifo' });
    const sent = await n1.request<{ sent: number; busy: number }>('sendSeq', {
      dest: { name: 'fifo', node: 'n2' },
      count: 10_000,
    });
    expect(sent.sent).toBe(10_000);
    let got: { count: number; outOfOrder: number } | null = null;
    for (let i = 0; i < 500; i++) {
      got = await n2.request<{ count: number; outOfOrder: number }>('collected', { name: 'fifo' });
      if (got.count >= 10_000) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(got).toEqual({ count: 10_000, next: 10_000, outOfOrder: 0 });
    const stats = await n1.request<{ links: Array<{ framesOut: number; signalsOut: number }> }>('stats');
    // coalescing: far fewer frames than messages
    expect(stats.links[0]?.signalsOut).toBeGreaterThanOrEqual(10_000);
    expect(stats.links[0]?.framesOut).toBeLessThan(5_000);
  });
});
