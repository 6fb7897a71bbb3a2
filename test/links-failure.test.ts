import { afterEach, describe, expect, it } from 'vitest';
import { freshCookie, killAll, NodeProc } from './support/links/harness.ts';

const procs: NodeProc[] = [];
afterEach(() => killAll(procs));

type Pid = { node: string; id: number; creation: number };

describe('link failures between processes', () => {
  it('SIGKILL of the peer process fires DOWN noconnection and nodedown promptly', async () => {
    const cookie = freshCookie();
    const n2 = await NodeProc.start({ name: 'n2', cookie }, procs);
    const n1 = await NodeProc.start({ name: 'n1', cookie, peers: { n2: n2.ready.url } }, procs);
    await n1.request('connect', { node: 'n2' });
    const target = await n2.request<Pid>('spawnEcho', { name: 'target' });
    await n1.request('watch', { pid: target });
    // the monitor is in place once a call after it has made the round trip (same link, FIFO)
    await n1.request('call', { dest: target, request: 'sync' });
    expect(n1.events.filter((e) => e.event === '@actors.down')).toEqual([]);

    const killedAt = Date.now();
    n2.kill('SIGKILL');
    const down = await n1.waitEvent((e) => e.event === '@actors.down', 5000);
    expect(down.msg).toEqual({
      type: '@actors.down',
      ref: expect.any(Number),
      pid: target,
      reason: 'noconnection',
    });
    expect((down.at as number) - killedAt).toBeLessThan(2000);
    await n1.waitEvent((e) => e.event === '@actors.nodedown', 2000);
    await n1.waitLog(/link down: n1 <-> n2/);
    // calls to the dead node now fail at once with noconnection
    await expect(n1.request('call', { dest: target, request: 'x', timeoutMs: 3000 })).rejects.toThrow(
      /noconnection/,
    );
  });

  it('a silent peer (SIGSTOP) is declared down by ticks', async () => {
    const cookie = freshCookie();
    const n2 = await NodeProc.start({ name: 'n2', cookie, tickMs: 400 }, procs);
    const n1 = await NodeProc.start({ name: 'n1', cookie, tickMs: 400, peers: { n2: n2.ready.url } }, procs);
    await n1.request('connect', { node: 'n2' });
    const target = await n2.request<Pid>('spawnEcho', { name: 'target' });
    await n1.request('watch', { pid: target });
    await n1.request('call', { dest: target, request: 'sync' });
    const stoppedAt = Date.now();
    n2.kill('SIGSTOP');
    try {
      const down = await n1.waitEvent((e) => e.event === '@actors.down', 5000);
      expect((down.msg as { reason: string }).reason).toBe('noconnection');
      // 4 tick intervals of 100 ms, plus scheduling slack
      expect((down.at as number) - stoppedAt).toBeGreaterThanOrEqual(250);
      expect((down.at as number) - stoppedAt).toBeLessThan(2500);
      await n1.waitLog(/4006 no frame from n2/);
    } finally {
      n2.kill('SIGCONT');
    }
  });

  it('reconnects to a restarted peer as a new incarnation: old pids are dead, new ones work', async () => {
    const cookie = freshCookie();
    const n1 = await NodeProc.start({ name: 'n1', cookie }, procs);
    const first = await NodeProc.start({ name: 'n2', cookie, peers: { n1: n1.ready.url } }, procs);
    await first.request('connect', { node: 'n1' });
    const oldPid = await first.request<Pid>('spawnEcho', { name: 'echo' });
    await n1.request('watch', { pid: oldPid });
    expect(await n1.request('call', { dest: oldPid, request: 1 })).toEqual({ echo: 1, node: 'n2' });

    first.kill('SIGKILL');
    await n1.waitEvent((e) => e.event === '@actors.down', 5000);

    const second = await NodeProc.start({ name: 'n2', cookie, peers: { n1: n1.ready.url } }, procs);
    expect(second.ready.creation).not.toBe(first.ready.creation);
    await second.request('connect', { node: 'n1' });
    await n1.waitEvent((e) => e.event === '@actors.nodeup', 5000);
    const newPid = await second.request<Pid>('spawnEcho', { name: 'echo' });
    // same id on the new incarnation, but the old pid stays dead: never silently rebound
    expect(newPid.id).toBe(oldPid.id);
    await expect(n1.request('call', { dest: oldPid, request: 2, timeoutMs: 3000 })).rejects.toThrow(
      /no process/,
    );
    expect(await n1.request('call', { dest: newPid, request: 3 })).toEqual({ echo: 3, node: 'n2' });
    expect(await n1.request('call', { dest: { name: 'echo', node: 'n2' }, request: 4 })).toEqual({
      echo: 4,
      node: 'n2',
    });
    const peers = await n1.request<Array<{ node: string; creation: number; connected: boolean }>>('peers');
    expect(peers).toEqual([
      expect.objectContaining({ node: 'n2', connected: true, creation: second.ready.creation }),
    ]);
  });
});
