import { describe, expect, it } from 'vitest';
import type { Effect } from '../src/index.ts';
import { A, B, C, electedLeader, feed, fresh, type Srv, sends } from './helpers.ts';

describe('regressions', () => {
  it('resends batches lost while a follower was cut off, though its heartbeats get through', () => {
    // Found by the raft-server partition test (and its first fix, reply-driven, caused an
    // AppendEntries storm whenever a follower acknowledged entries it had not written yet): a leader elected while one follower was cut off
    // sent that follower its noop and a command; both were lost. Once the link healed, the
    // follower answered every heartbeat (probing at matchIndex 0, which always matches), the
    // in-flight count drained to zero, but nextIndex stayed past the lost entries, so nothing was
    // ever resent and the follower stayed behind forever.
    const a = electedLeader();
    feed(a, { type: 'command', command: 1, reply: { mode: 'noreply' } });
    const toB = sends(a.effects, 'append_entries.request').filter((s) => s.to === 'b');
    expect(toB.length).toBeGreaterThan(0);
    // every request with entries to B is lost; B (a real follower) only ever sees the empty ones
    const bSrv = fresh(B, [A, B, C]);
    const b: Srv = { role: bSrv.role, state: bSrv.state, effects: bSrv.effects };
    let resent = false;
    let probes = 0;
    const deliverEmpty = (effects: readonly Effect[]): void => {
      for (const s of sends(effects, 'append_entries.request')) {
        if (s.to !== 'b' || s.rpc.type !== 'append_entries.request') continue;
        if (s.rpc.entries.length > 0) {
          resent = true;
          continue;
        }
        probes++;
        const r = feed(b, s.rpc);
        for (const reply of sends(r.effects, 'append_entries.reply'))
          deliverEmpty(feed(a, reply.rpc).effects);
      }
    };
    for (let tick = 0; tick < 4 && !resent; tick++)
      deliverEmpty(feed(a, { type: 'tick', nowMs: tick * 50 }).effects);
    expect(probes).toBeGreaterThan(0);
    expect(resent).toBe(true);
  });
});
