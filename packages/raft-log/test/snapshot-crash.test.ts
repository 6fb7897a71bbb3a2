import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openRocksStorage } from '../src/index.ts';
import { snapshotChunk } from './fixtures/crash-model.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const CHILD = path.join(import.meta.dirname, 'fixtures', 'snapshot-child.ts');

let children: ChildProcess[] = [];
let dir: string | undefined;

afterEach(() => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children = [];
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Starts a child writing the snapshot at `index` and SIGKILLs it `killAfterMs` after it is ready. */
async function writeAndKill(storageDir: string, index: number, killAfterMs: number): Promise<boolean> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, storageDir, String(index)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let stderr = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    onReady = resolve;
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.includes('ready')) onReady();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const started = await Promise.race([
    ready.then(() => true),
    exited.then(() => false),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20_000)),
  ]);
  if (!started) throw new Error(`snapshot child did not start: ${stderr}`);
  await new Promise((resolve) => setTimeout(resolve, killAfterMs));
  child.kill('SIGKILL');
  await exited;
  return out.includes(`complete ${index}`);
}

describe('snapshot crash safety', () => {
  it('keeps the previous snapshot whole when a snapshot write is killed mid-stream', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'otra-'));
    const storageDir = path.join(dir, 'storage');
    let current = 0;
    let interrupted = 0;
    let completed = 0;
    // Kill points from early in the stream to after it completes (48 chunks, ~2 ms apart, plus I/O).
    const killPoints = [5, 40, 80, 20, 400, 60, 30, 500];
    for (let round = 0; round < killPoints.length; round++) {
      const index = round + 1;
      const acked = await writeAndKill(storageDir, index, killPoints[round]!);
      const storage = await openRocksStorage(storageDir);
      try {
        const info = storage.snapshots.current('snap');
        const found = info?.meta.index ?? 0;
        // Either the new snapshot (it must be, if it was acknowledged) or the previous one, whole.
        if (acked) expect(found).toBe(index);
        else expect([current, index]).toContain(found);
        if (found === index) completed++;
        else interrupted++;
        if (found > 0) {
          const reader = (await storage.snapshots.openRead('snap'))!;
          const bytes = Buffer.from(await reader.readChunk(0, info!.size));
          await reader.close();
          const expected = Buffer.concat(Array.from({ length: 48 }, (_, k) => snapshotChunk(found, k)));
          expect(bytes.equals(expected)).toBe(true);
        }
        current = found;
        // Recovery removed the interrupted temp file and any superseded snapshot.
        const files = fs.existsSync(path.join(storageDir, 'snapshots', 'snap'))
          ? fs.readdirSync(path.join(storageDir, 'snapshots', 'snap'))
          : [];
        expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
        expect(files.length).toBe(found > 0 ? 1 : 0);
      } finally {
        await storage.close();
      }
    }
    expect(interrupted).toBeGreaterThan(0);
    expect(completed).toBeGreaterThan(0);
  }, 60_000);
});
