import { describe, expect, it } from 'vitest';
import { B, electedLeader, feed, sends } from './helpers.ts';

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
    // every request to B is lost; B only ever sees heartbeats
    const term = a.state.currentTerm;
    let resent = false;
    for (let tick = 0; tick < 4 && !resent; tick++) {
      feed(a, { type: 'tick', nowMs: tick * 50 });
      resent ||= sends(a.effects, 'append_entries.request').some(
        (s) => s.to === 'b' && s.rpc.type === 'append_entries.request' && s.rpc.entries.length > 0,
      );
      const heartbeat = sends(a.effects, 'append_entries.request').find((s) => s.to === 'b');
      if (heartbeat === undefined) continue;
      const r = feed(a, {
        type: 'append_entries.reply',
        from: B,
        term,
        success: true,
        matchIndex: heartbeat.rpc.type === 'append_entries.request' ? heartbeat.rpc.prevLogIndex : 0,
        lastIndex: 0,
        lastTerm: 0,
        round: 0,
      });
      resent ||= sends(r.effects, 'append_entries.request').some(
        (s) => s.to === 'b' && s.rpc.type === 'append_entries.request' && s.rpc.entries.length > 0,
      );
    }
    expect(resent).toBe(true);
  });
});
