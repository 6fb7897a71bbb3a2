import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ActorInfo, Node } from '@otra/actors';
import type { Pid, ServerId } from '@otra/protocol';
import { createMemoryStorage, openRocksStorage, type RaftStorage } from '@otra/raft-log';
import { afterEach, describe, expect, it } from 'vitest';
import {
  addMember,
  awaitLeader,
  localQuery,
  members,
  overview,
  processCommand,
  restartServer,
  startCluster,
  startServer,
  stopServer,
} from '../src/index.ts';
import { eventually, type LocalCluster, localCluster, systemOf, watchReceives } from './support.ts';

let cluster: LocalCluster | undefined;
let dir: string | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Every file under `root`, as paths relative to it. */
function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name).slice(root.length + 1));
}

/**
 * A member that joins as `promotable` is sent a snapshot; its server is stopped and started again
 * (or crashes) while the transfer is half done. The restarted server has no receive open: the
 * leader must notice and send the snapshot again, and the member must be promoted in the end.
 */
async function joinAndInterrupt(
  interrupt: (c: LocalCluster, newcomer: ServerId) => Promise<{ done?: Promise<void> }>,
  storage: RaftStorage = createMemoryStorage(),
  /** The storage of n1-n3 (the default: in memory). */
  initialStorage?: (node: string) => RaftStorage,
) {
  let stall: (() => void) | undefined;
  let stalled: Promise<void> | undefined;
  let receivesBegun = 0;
  const receives = watchReceives(storage, {
    begun: () => {
      receivesBegun++;
    },
    // the first receive stops at its fourth chunk until the test lets it go
    beforeWrite: (chunk) => {
      if (receivesBegun !== 1 || chunk !== 4) return Promise.resolve();
      stalled ??= new Promise<void>((resolve) => {
        stall = resolve;
      });
      return stalled;
    },
  });
  cluster = await localCluster(4, (node) => ({
    snapshotChunkBytes: 256,
    trailingEntries: 0,
    ...(node === 'n4' ? { storage } : initialStorage === undefined ? {} : { storage: initialStorage(node) }),
  }));
  const c = cluster;
  const [s1] = c.systems;
  const initial = c.ids.slice(0, 3);
  await startCluster(s1!, 'kv', { module: 'kv' }, initial);
  // 200 keys of 100 B (about 90 chunks) and snapshots at every 64th index
  for (let i = 0; i < 200; i++)
    await processCommand(s1!, initial[0]!, { op: 'put', key: `k${i}`, value: `${i}`.padEnd(100, '.') });
  const newcomer = c.ids[3]!;
  await startServer(c.systems[3]!, {
    cluster: 'kv',
    id: newcomer,
    machine: { module: 'kv' },
    members: [...initial, newcomer],
  });
  await addMember(s1!, initial[0]!, newcomer, { membership: 'promotable' });
  await eventually(() => stall, 10_000);
  const { done } = await interrupt(c, newcomer);
  stall!();
  await done;
  const promoted = await eventually(async () => {
    const m = await members(s1!, initial[0]!).catch(() => undefined);
    const me = m?.members.find((x) => x.id.node === newcomer.node);
    return me?.membership === 'voter' ? me : undefined;
  }, 15_000);
  expect(promoted.membership).toBe('voter');
  const view = await overview(c.systems[3]!, newcomer);
  expect(view.counters.snapshotsInstalled).toBe(1);
  expect(view.snapshot?.index).toBeGreaterThanOrEqual(192);
  const k199 = await localQuery(c.systems[3]!, newcomer, (st: Record<string, string>) => st.k199);
  expect(k199.result).toBe('199'.padEnd(100, '.'));
  // the interrupted receive was given up, not left open (a leaked temporary file on disk)
  await eventually(() => (receives.open() === 0 ? true : undefined), 5000);
  expect(receives.open()).toBe(0);
  return { receivesBegun };
}

/**
 * Restarts the newcomer's server while its receive is stalled. The stalled chunk is let go once
 * the old actor is gone (its supervisor's shutdown kills it: it does not trap exits), so the
 * transfer cannot finish in the old instance.
 */
async function restartWhileStalled(c: LocalCluster, newcomer: ServerId): Promise<{ done: Promise<void> }> {
  const node = c.nodes[3]!;
  const before = node.whereis(newcomer.name)!;
  const done = restartServer(c.systems[3]!, newcomer, { timeoutMs: 20_000 });
  await eventually(() => (node.whereis(newcomer.name)?.id !== before.id ? true : undefined));
  return { done };
}

describe('a joining member restarted in the middle of its snapshot transfer', () => {
  it('restartServer: the member is sent the snapshot again and promoted', async () => {
    const { receivesBegun } = await joinAndInterrupt(restartWhileStalled);
    // the restarted server began a second receive
    expect(receivesBegun).toBeGreaterThanOrEqual(2);
  });

  it('on disk: restartServer leaves no temporary snapshot file behind', async () => {
    dir = mkdtempSync(join(tmpdir(), 'otra-restart-transfer-'));
    const storage = await openRocksStorage(dir);
    await joinAndInterrupt(restartWhileStalled, storage);
    const snapshots = filesUnder(join(dir, 'snapshots'));
    expect(snapshots.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(snapshots.filter((f) => f.endsWith('.snap'))).toHaveLength(1);
  });

  it('a crash of its RaftServer actor: restarted by the supervisor, sent the snapshot again', async () => {
    const { receivesBegun } = await joinAndInterrupt(async (c, newcomer) => {
      const node = c.nodes[3]!;
      const before = node.whereis(newcomer.name)!;
      node.exit(before, 'crash');
      await eventually(() => {
        const pid = node.whereis(newcomer.name);
        return pid !== undefined && pid.id !== before.id ? pid : undefined;
      });
      return {};
    });
    expect(receivesBegun).toBeGreaterThanOrEqual(2);
  });
});

/** Counts the snapshot readers of `storage` that are open (opened and not closed). */
function watchReaders(storage: RaftStorage): { open(): number } {
  let open = 0;
  const openRead = storage.snapshots.openRead.bind(storage.snapshots);
  storage.snapshots.openRead = async (uid) => {
    const reader = await openRead(uid);
    if (reader === null) return null;
    open++;
    let closed = false;
    return {
      info: reader.info,
      readChunk: (offset, length) => reader.readChunk(offset, length),
      chunks: (size) => reader.chunks(size),
      close: async () => {
        if (!closed) open--;
        closed = true;
        await reader.close();
      },
    };
  };
  return { open: () => open };
}

/** The pid of a snapshot sender running on `node`, if any. */
function senderOn(node: Node): Pid | undefined {
  const walk = (actors: readonly ActorInfo[]): Pid | undefined => {
    for (const a of actors) {
      if (a.childId?.startsWith('snapshot_sender:') === true && a.status === 'running') return a.pid;
      const found = walk(a.children);
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return walk(node.inspectTree().roots);
}

describe('a snapshot sender killed in the middle of a transfer', () => {
  it('its reader is closed by the server, and a new sender finishes the transfer', async () => {
    const readers = new Map<string, { open(): number }>();
    const initial = (node: string) => {
      const storage = createMemoryStorage();
      readers.set(node, watchReaders(storage));
      return storage;
    };
    let killed = false;
    await joinAndInterrupt(
      async (c) => {
        // the newcomer stalls its receive at chunk 4, so the leader's sender is still running
        const leaderNode = await eventually(() => c.nodes.slice(0, 3).find((n) => senderOn(n) !== undefined));
        leaderNode.exit(senderOn(leaderNode)!, 'kill');
        killed = true;
        return {};
      },
      createMemoryStorage(),
      initial,
    );
    expect(killed).toBe(true);
    const open = () => [...readers.values()].reduce((n, r) => n + r.open(), 0);
    await eventually(() => (open() === 0 ? true : undefined), 5000);
    expect(open()).toBe(0);
  });
});

describe('a server stopped by its supervisor (no terminate runs)', () => {
  it("its node's leaderboard no longer names it as the leader", async () => {
    cluster = await localCluster(3);
    await startCluster(cluster.systems[0]!, 'kv', { module: 'kv' }, cluster.ids);
    const leader = await awaitLeader(cluster.systems[0]!, cluster.ids);
    const sys = systemOf(cluster, leader);
    expect(sys.leaderboard().get('kv')).toEqual(leader);
    await stopServer(sys, leader);
    // no member of kv runs on this node any more: it knows of no leader, and not the stopped one
    expect(sys.leaderboard().get('kv')).toBeNull();
  });
});
