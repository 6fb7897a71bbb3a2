import { Node, startChild, startSupervisor } from '@otra/actors';
import type { InstallSnapshotRequest, Pid, SnapshotMeta } from '@otra/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import type { SystemRuntime } from '../src/internal/runtime.ts';
import { snapshotSenderSpec } from '../src/internal/snapshot-sender.ts';

const meta: SnapshotMeta = { index: 9, term: 2, cluster: [], machineVersion: 0 };
let node: Node | undefined;
afterEach(async () => {
  await node?.shutdown(1000);
  node = undefined;
});

/**
 * A sender of a 2,000-byte snapshot in 512-byte chunks (four: 0-3) to a recorder registered as
 * `kv` on the same node, from `fromChunk`; resolves with the chunks it sent once it has sent
 * `expected` of them (and a moment more, for any extra one).
 */
async function chunksSent(fromChunk: number, expected: number): Promise<number[]> {
  const n = new Node({ name: 'n1' });
  node = n;
  const sent: number[] = [];
  n.spawn<void>(
    {
      init: () => null,
      handleInfo: (msg, state) => {
        sent.push((msg as InstallSnapshotRequest).chunk);
        return state;
      },
    },
    undefined,
    { name: 'kv' },
  );
  const reader = {
    info: { meta, size: 2000, checksum: 7 },
    readChunk: async (_offset: number, length: number) => new Uint8Array(length),
    close: async () => undefined,
  };
  const sys = {
    storage: { snapshots: { openRead: async () => reader } },
    senderReaders: new Map(),
  } as unknown as SystemRuntime;
  const sup: Pid = await startSupervisor(n, { strategy: 'one_for_one' }, []);
  const spec = snapshotSenderSpec(sys, {
    uid: 'u',
    leader: { name: 'kv', node: 'n0' },
    to: { name: 'kv', node: 'n1' },
    term: 2,
    meta,
    fromChunk,
    chunkBytes: 512,
  });
  await startChild(n, sup, spec);
  for (let i = 0; i < 200 && sent.length < expected; i++) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 20));
  return sent;
}

describe('snapshot sender', () => {
  it('sends a window of two chunks from fromChunk', async () => {
    expect(await chunksSent(0, 2)).toEqual([0, 1]);
    await node?.shutdown(1000);
    expect(await chunksSent(2, 2)).toEqual([2, 3]);
  });

  it('sends only the last chunk when the follower acknowledged every chunk (it is installing)', async () => {
    // not the whole snapshot again from chunk 0
    expect(await chunksSent(4, 1)).toEqual([3]);
    await node?.shutdown(1000);
    expect(await chunksSent(9, 1)).toEqual([3]);
  });
});
