import type { ServerId } from '@otra/protocol';
import { createMemoryStorage } from '@otra/raft-log';
import { afterEach, describe, expect, it } from 'vitest';
import {
  awaitLeader,
  consistentQuery,
  deleteCluster,
  localQuery,
  type MemberInfo,
  overview,
  processCommand,
  type RaftSystem,
  restartServer,
  startCluster,
  stopServer,
  transferLeadership,
} from '../src/index.ts';
import { eventually, type LocalCluster, localCluster, systemOf, watchReceives } from './support.ts';

let cluster: LocalCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('faults', () => {
  it('a partitioned leader is replaced and every acknowledged command survives', async () => {
    cluster = await localCluster(3);
    const s = cluster.systems;
    await startCluster(s[0]!, 'kv', { module: 'kv' }, cluster.ids);
    const acked: string[] = [];
    for (let i = 0; i < 20; i++) {
      await processCommand(s[0]!, cluster.ids[0]!, { op: 'put', key: `k${i}`, value: `${i}` });
      acked.push(`k${i}`);
    }
    const old = await awaitLeader(cluster.systems[0]!, cluster.ids, { timeoutMs: 10_000 });
    for (const other of cluster.nodes)
      if (other.name !== old.node) cluster.net.partition(old.node, other.name);
    const other = cluster.ids.find((id) => id.node !== old.node)!;
    const otherSys = systemOf(cluster, other);
    // asked from a node on the majority side: the old leader's node is cut off
    const fresh = await awaitLeader(
      otherSys,
      cluster.ids.filter((id) => id.node !== old.node),
      { timeoutMs: 10_000 },
    );
    expect(fresh.node).not.toBe(old.node);
    await processCommand(otherSys, other, { op: 'put', key: 'after', value: 'failover' });
    const q = await consistentQuery(otherSys, fresh, { name: 'get', args: ['k19'] });
    expect(q.result).toBe('19');
    // the old leader steps down (check-quorum) and, healed, catches up
    await eventually(async () => {
      const v = await overview(systemOf(cluster!, old), old);
      return v.role !== 'leader' ? true : undefined;
    });
    for (const n of cluster.nodes) if (n.name !== old.node) cluster.net.heal(old.node, n.name);
    const oldSys = systemOf(cluster, old);
    await eventually(async () => {
      const r = await localQuery(oldSys, old, (st: Record<string, string>) => st.after).catch(
        () => undefined,
      );
      return r?.result === 'failover' ? true : undefined;
    });
  });

  it('a crashed RaftServer actor is restarted by its supervisor from durable state', async () => {
    cluster = await localCluster(3);
    const s1 = cluster.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, cluster.ids);
    for (let i = 0; i < 10; i++)
      await processCommand(s1, cluster.ids[0]!, { op: 'put', key: `k${i}`, value: `${i}` });
    const node = cluster.nodes[0]!;
    const before = node.whereis('kv')!;
    const restarts: string[] = [];
    node.inspect((e) => {
      if (e.type === '@actors.restarted') restarts.push(e.childId);
    });
    node.exit(before, 'crash');
    const after = await eventually(() => {
      const pid = node.whereis('kv');
      return pid !== undefined && pid.id !== before.id ? pid : undefined;
    });
    expect(after.id).not.toBe(before.id);
    expect(restarts).toContain('raft_server');
    const tree = JSON.stringify(node.inspectTree());
    expect(tree).toContain('"childId":"raft_server"');
    expect(tree).toContain('"restarts":1');
    await eventually(async () => {
      const r = await localQuery(s1, cluster!.ids[0]!, (st: Record<string, string>) => st.k9).catch(
        () => undefined,
      );
      return r?.result === '9' ? true : undefined;
    });
  });

  it('a follower kept down long enough to need a snapshot catches up through the snapshot sender', async () => {
    // no trailing entries: any lag past a snapshot needs the snapshot
    const logs: string[] = [];
    cluster = await localCluster(3, {
      snapshotChunkBytes: 512,
      trailingEntries: 0,
      log: (_level, message) => logs.push(message),
    });
    const { leader, leaderSys, lagging, laggingSys, sentBefore, caught } = await lagPastSnapshot(cluster);
    expect(caught.snapshot?.index).toBeGreaterThanOrEqual(256);
    expect(caught.counters.snapshotsInstalled).toBeGreaterThanOrEqual(1);
    // the follower's last answer ("installed", chunk -1) is valid: the leader takes it
    expect(logs.filter((l) => /malformed/.test(l))).toEqual([]);
    // and one transfer did it: the acknowledgements of the sender's first chunks, which can come
    // back before the server knows the sender's pid, reached it (else it stalls until a retry)
    expect((await overview(leaderSys, leader)).counters.snapshotsSent - sentBefore).toBe(1);
    const r = await localQuery(laggingSys, lagging, (st: Record<string, string>) => Object.keys(st).length);
    expect(r.result).toBe(300);
  });

  it("a transfer cut off by a partition resumes at the follower's next chunk once healed", async () => {
    // 100 ms into the partition, every member's view of the members (the leader's shows the transfer)
    let seen: Promise<(MemberInfo[] | undefined)[]> | undefined;
    const cut = cutDuringTransfer((c) => {
      seen = new Promise((resolve) => setTimeout(resolve, 100)).then(() =>
        Promise.all(
          c.systems.map((sys, i) =>
            overview(sys, c.ids[i]!).then(
              (v) => [...v.members],
              () => undefined,
            ),
          ),
        ),
      );
    });
    cluster = await cut.ready;
    const { leader, leaderSys, lagging, laggingSys, sentBefore, caught } = await lagPastSnapshot(cluster);
    expect(cut.node()).toBe(lagging.node);
    const during = (await seen!)[cluster.ids.findIndex((id) => id.node === leader.node)]!;
    const transfer = during.find((m) => m.id.node === lagging.node)!.snapshotTransfer!;
    expect(transfer.index).toBe(caught.snapshot!.index);
    expect(transfer.nextChunk).toBeGreaterThanOrEqual(1);
    expect(transfer.nextChunk).toBeLessThanOrEqual(3);
    // and once it is over, no transfer is shown
    const afterwards = (await overview(leaderSys, leader)).members;
    expect(afterwards.find((m) => m.id.node === lagging.node)!.snapshotTransfer).toBeUndefined();
    expect(caught.counters.snapshotsInstalled).toBe(1);
    const counters = (await overview(leaderSys, leader)).counters;
    // the retry resumed the transfer: the follower's one receive took every chunk, none twice
    expect(counters.snapshotsSent - sentBefore).toBe(2);
    expect(counters.snapshotsResumed).toBe(1);
    expect(cut.begun(lagging.node)).toBe(1);
    const r = await localQuery(laggingSys, lagging, (st: Record<string, string>) => Object.keys(st).length);
    expect(r.result).toBe(300);
  });

  it('a resumed transfer the follower holds none of (it restarted) starts again from chunk 0', async () => {
    // the follower's RaftServer crashes as it is cut off: its restart has lost the receive
    const cut = cutDuringTransfer((c, node) => {
      const n = c.nodes.find((x) => x.name === node)!;
      n.exit(n.whereis('kv')!, 'crash');
    });
    cluster = await cut.ready;
    const { leader, leaderSys, lagging, caught } = await lagPastSnapshot(cluster);
    expect(cut.node()).toBe(lagging.node);
    expect(caught.counters.snapshotsInstalled).toBe(1);
    const counters = (await overview(leaderSys, leader)).counters;
    // resumed, answered with "none of it" (chunk -1), and sent again from the start at once
    expect(counters.snapshotsResumed).toBe(1);
    expect(cut.begun(lagging.node)).toBe(2);
  });

  it('an install slower than the stall timeout completes, and no retry sends the snapshot again', async () => {
    // every receive's install (complete) takes 1.5 s, longer than the leader waits on a silent
    // transfer (two election timeouts): the follower's server answers nothing meanwhile, so the
    // leader retries. Counted per node: chunks written, those written after its first install
    // began, and receives still open.
    const installing = new Set<string>();
    const written = new Map<string, number>();
    const writtenAfter = new Map<string, number>();
    const receives: { open(): number }[] = [];
    const bump = (m: Map<string, number>, node: string) => m.set(node, (m.get(node) ?? 0) + 1);
    cluster = await localCluster(3, (node) => {
      const storage = createMemoryStorage();
      receives.push(
        watchReceives(storage, {
          written: () => {
            bump(written, node);
            if (installing.has(node)) bump(writtenAfter, node);
          },
          beforeComplete: async () => {
            installing.add(node);
            await new Promise((resolve) => setTimeout(resolve, 1500));
          },
        }),
      );
      return { storage, snapshotChunkBytes: 512, trailingEntries: 0 };
    });
    const { leader, leaderSys, lagging, sentBefore, caught } = await lagPastSnapshot(cluster);
    expect(caught.counters.snapshotsInstalled).toBe(1);
    expect(installing.has(lagging.node)).toBe(true);
    // the leader retried during the install (the scenario happened) ...
    expect((await overview(leaderSys, leader)).counters.snapshotsSent - sentBefore).toBeGreaterThanOrEqual(2);
    // ... and what the retries got written is a chunk or two, not the snapshot again
    const total = written.get(lagging.node) ?? 0;
    const after = writtenAfter.get(lagging.node) ?? 0;
    expect(after).toBeLessThan(total - after);
    // and no receive is left open
    await eventually(() => (receives.every((r) => r.open() === 0) ? true : undefined));
  });

  it('starts no snapshot sender towards a node it has no link to, and sends once the link is back', async () => {
    cluster = await localCluster(3, { snapshotChunkBytes: 512, trailingEntries: 0 });
    const c = cluster;
    const { leader, leaderSys, lagging, laggingSys } = await startKv(c);
    const others = c.nodes.filter((n) => n.name !== lagging.node);
    for (const n of others) c.net.partition(lagging.node, n.name);
    // cut off, it misses the log up to past the snapshots
    await commitPastSnapshots(leaderSys, leader);
    // the leader's retries over more than two stall timeouts start no sender
    const sentBefore = (await overview(leaderSys, leader)).counters.snapshotsSent;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await overview(leaderSys, leader)).counters.snapshotsSent).toBe(sentBefore);
    for (const n of others) c.net.heal(lagging.node, n.name);
    const caught = await eventually(async () => {
      const v = await overview(laggingSys, lagging);
      return v.lastApplied >= 301 ? v : undefined;
    }, 10_000);
    expect(caught.counters.snapshotsInstalled).toBe(1);
    expect((await overview(leaderSys, leader)).counters.snapshotsSent).toBeGreaterThan(sentBefore);
  });

  it('a follower that missed fewer than trailingEntries catches up from the log, past a snapshot', async () => {
    // the leader's durable log starts after its snapshot; the entries before it are in memory
    cluster = await localCluster(3, { trailingEntries: 1000 });
    const { lagging, laggingSys, caught } = await lagPastSnapshot(cluster);
    expect(caught.counters.snapshotsInstalled).toBe(0);
    const r = await localQuery(laggingSys, lagging, (st: Record<string, string>) => Object.keys(st).length);
    expect(r.result).toBe(300);
  });

  it('a follower whose own snapshot write is overtaken by an installed newer one goes on', async () => {
    // the follower's own snapshot writes wait for `open` while `gated` is set
    const logs: string[] = [];
    let gated: string | undefined;
    let open: () => void = () => undefined;
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    cluster = await localCluster(3, (node) => {
      const storage = createMemoryStorage();
      const write = storage.snapshots.write.bind(storage.snapshots);
      storage.snapshots.write = async (uid, meta, data) => {
        if (gated === node) await opened;
        return write(uid, meta, data);
      };
      return { storage, trailingEntries: 0, log: (_level, message) => logs.push(`${node} ${message}`) };
    });
    const { leader, leaderSys, lagging: follower, laggingSys: followerSys } = await startKv(cluster);
    gated = follower.node;
    const put = (i: number) => processCommand(leaderSys, leader, { op: 'put', key: `k${i}`, value: `${i}` });
    // index 64 releases the cursor (the first entry is the leader's noop): the follower's write waits
    for (let i = 0; i < 70; i++) await put(i);
    await eventually(async () =>
      (await overview(followerSys, follower)).lastApplied >= 64 ? true : undefined,
    );
    // cut off, it misses the release at 128, which the leader's log is then compacted to
    const others = cluster.nodes.filter((n) => n.name !== follower.node);
    for (const n of others) cluster.net.partition(follower.node, n.name);
    for (let i = 70; i < 140; i++) await put(i);
    await eventually(async () =>
      (await overview(leaderSys, leader)).snapshot?.index === 128 ? true : undefined,
    );
    for (const n of others) cluster.net.heal(follower.node, n.name);
    const installed = await eventually(async () => {
      const v = await overview(followerSys, follower);
      return v.counters.snapshotsInstalled >= 1 && v.lastApplied >= 140 ? v : undefined;
    }, 10_000);
    expect(installed.snapshot?.index).toBe(128);
    // now the write of 64 finishes, behind the installed 128: the store refuses it as stale
    open();
    await eventually(() =>
      logs.some(
        (l) => l.startsWith(`${follower.node} `) && /at 64 is older than the current one at 128/.test(l),
      )
        ? true
        : undefined,
    );
    const after = await overview(followerSys, follower);
    // the same incarnation (a restarted server starts its counters again) and no rollback
    expect(after.counters.snapshotsInstalled).toBeGreaterThanOrEqual(1);
    expect(after.snapshot?.index).toBe(128);
    // and it writes its own snapshots again (the write in flight was settled): as the leader,
    // which never installs one, it must
    gated = undefined;
    await transferLeadership(leaderSys, leader, follower);
    await awaitLeader(followerSys, [follower], { timeoutMs: 10_000 });
    for (let i = 140; i < 200; i++) {
      await processCommand(followerSys, follower, { op: 'put', key: `k${i}`, value: `${i}` });
    }
    const later = await eventually(async () => {
      const v = await overview(followerSys, follower);
      return v.snapshot !== null && v.snapshot.index >= 192 ? v : undefined;
    });
    expect(later.role).toBe('leader');
    expect(later.counters.snapshotsWritten).toBeGreaterThanOrEqual(1);
    expect(later.counters.snapshotsInstalled).toBeGreaterThanOrEqual(1);
  });

  it('a release made while a snapshot is being written is written once that one is durable', async () => {
    // every member's write of the snapshot at 64 waits for `open`
    let open: () => void = () => undefined;
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    cluster = await localCluster(3, () => {
      const storage = createMemoryStorage();
      const write = storage.snapshots.write.bind(storage.snapshots);
      storage.snapshots.write = async (uid, meta, data) => {
        if (meta.index === 64) await opened;
        return write(uid, meta, data);
      };
      return { storage, trailingEntries: 0 };
    });
    const { leader, leaderSys } = await startKv(cluster);
    // the machine releases at 64 (the first entry is the leader's noop), then at 128 and 192 while
    // the write of 64 waits
    for (let i = 0; i < 200; i++) {
      await processCommand(leaderSys, leader, { op: 'put', key: `k${i}`, value: `${i}` });
    }
    expect((await overview(leaderSys, leader)).snapshot).toBeNull();
    open();
    // the newest of them is written next, with no command after it; 128 was superseded
    const after = await eventually(async () => {
      const v = await overview(leaderSys, leader);
      return v.snapshot?.index === 192 ? v : undefined;
    });
    expect(after.counters.snapshotsWritten).toBe(2);
    const r = await localQuery(leaderSys, leader, (st: Record<string, string>) => Object.keys(st).length);
    expect(r.result).toBe(200);
  });

  it('deleteCluster commits end of life and every member deletes itself', async () => {
    cluster = await localCluster(3);
    const s1 = cluster.systems[0]!;
    await startCluster(s1, 'kv', { module: 'kv' }, cluster.ids);
    await processCommand(s1, cluster.ids[0]!, { op: 'put', key: 'a', value: '1' });
    await deleteCluster(s1, cluster.ids);
    await eventually(() => (cluster!.nodes.every((n) => n.whereis('kv') === undefined) ? true : undefined));
    for (const sys of cluster.systems) {
      expect(sys.storage.meta.getValue('system:directory', 'kv')).toBeNull();
    }
  });
});

/**
 * A three-node cluster (512-byte snapshot chunks, no trailing entries) in which the first node to
 * write the third chunk of a snapshot receive is cut off from the others for 200 ms; `onCut` runs
 * then. `begun(node)` counts the snapshot receives each node began.
 */
function cutDuringTransfer(onCut?: (c: LocalCluster, node: string) => void) {
  const begun = new Map<string, number>();
  let cutNode: string | undefined;
  let c: LocalCluster | undefined;
  const storageOf = (node: string) => {
    const storage = createMemoryStorage();
    watchReceives(storage, {
      begun: () => begun.set(node, (begun.get(node) ?? 0) + 1),
      written: (chunk) => {
        if (chunk !== 3 || cutNode !== undefined || c === undefined) return;
        cutNode = node;
        const others = c.nodes.filter((n) => n.name !== node);
        for (const n of others) c.net.partition(node, n.name);
        onCut?.(c, node);
        setTimeout(() => {
          for (const n of others) c?.net.heal(node, n.name);
        }, 200);
      },
    });
    return storage;
  };
  const ready = localCluster(3, (node) => ({
    storage: storageOf(node),
    snapshotChunkBytes: 512,
    trailingEntries: 0,
  }));
  return {
    ready: ready.then((x) => {
      c = x;
      return x;
    }),
    node: () => cutNode,
    begun: (node: string) => begun.get(node) ?? 0,
  };
}

/** Starts the KV cluster on `c` and waits for a leader; `lagging` is one of its followers. */
async function startKv(c: LocalCluster) {
  await startCluster(c.systems[0]!, 'kv', { module: 'kv' }, c.ids);
  const leader = await awaitLeader(c.systems[0]!, c.ids, { timeoutMs: 10_000 });
  const lagging = c.ids.find((id) => id.node !== leader.node)!;
  return { leader, leaderSys: systemOf(c, leader), lagging, laggingSys: systemOf(c, lagging) };
}

/** Commits 300 puts on the leader (its KV machine snapshots at 64, 128, 192 and 256). */
async function commitPastSnapshots(leaderSys: RaftSystem, leader: ServerId): Promise<void> {
  for (let i = 0; i < 300; i++) {
    await processCommand(leaderSys, leader, { op: 'put', key: `k${i}`, value: 'x'.repeat(20) });
  }
  await eventually(async () => {
    const v = await overview(leaderSys, leader);
    return v.snapshot !== null && v.snapshot.index >= 256 ? v : undefined;
  });
}

/**
 * Starts the KV cluster, stops a follower, commits 300 puts past the leader's snapshots, restarts
 * the follower and waits until it has applied all 300.
 */
async function lagPastSnapshot(c: LocalCluster) {
  const { leader, leaderSys, lagging, laggingSys } = await startKv(c);
  await stopServer(leaderSys, lagging);
  await commitPastSnapshots(leaderSys, leader);
  const sentBefore = (await overview(leaderSys, leader)).counters.snapshotsSent;
  await restartServer(leaderSys, lagging);
  const caught = await eventually(async () => {
    const v = await overview(laggingSys, lagging);
    return v.lastApplied >= 300 ? v : undefined;
  }, 10_000);
  return { leader, leaderSys, lagging, laggingSys, sentBefore, caught };
}
