/**
 * A node started by `spawnNodeProcess` must not outlive the process that started it: here the
 * parent is SIGKILLed (no cleanup runs) and its node has to stop by itself.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const PROCESS_CLUSTER = fileURLToPath(new URL('../src/process-cluster.ts', import.meta.url));
const dirs: string[] = [];
const pids: number[] = [];

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

afterEach(() => {
  for (const pid of pids.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('a spawned node and its parent', () => {
  it('stops by itself when the process that spawned it is SIGKILLed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otra-orphan-'));
    dirs.push(dir);
    const parentScript = join(dir, 'parent.mts');
    writeFileSync(
      parentScript,
      [
        `import { spawnNodeProcess } from ${JSON.stringify(PROCESS_CLUSTER)};`,
        `const node = await spawnNodeProcess({ name: 'orphan', cookie: 'c', dataDir: ${JSON.stringify(join(dir, 'data'))} });`,
        "process.stdout.write(JSON.stringify({ child: node.pid }) + '\\n');",
        'setInterval(() => undefined, 1000);',
      ].join('\n'),
    );
    const parent = spawn(process.execPath, ['--import', 'tsx', parentScript], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    });
    pids.push(parent.pid as number);
    let stderr = '';
    parent.stderr!.on('data', (d) => {
      stderr += String(d);
    });
    const child = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no child pid in 30 s: ${stderr}`)), 30_000);
      parent.stdout!.on('data', (d) => {
        out += String(d);
        const m = /\{"child":(\d+)\}/.exec(out);
        if (m !== null) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      parent.once('exit', (code) => reject(new Error(`parent exited with ${code}: ${stderr}`)));
    });
    pids.push(child);
    expect(alive(child)).toBe(true);
    parent.kill('SIGKILL');
    const deadline = Date.now() + 15_000;
    while (alive(child) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(alive(child)).toBe(false);
  }, 60_000);
});
