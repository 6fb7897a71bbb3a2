/**
 * Every `otra node` runs with `NODE_V8_FLAGS` (see its TSDoc for why): `spawnNodeProcess` passes
 * them, the `otra` script's shebang and the package scripts carry the same, and `v8Flags: []`
 * leaves V8's defaults.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { type NodeProcess, spawnNodeProcess } from '../src/process-cluster.ts';
import { NODE_V8_FLAGS } from '../src/v8-flags.ts';

const dirs: string[] = [];
const nodes: NodeProcess[] = [];

afterEach(async () => {
  for (const n of nodes.splice(0)) await n.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function start(v8Flags?: readonly string[]): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'otra-v8-'));
  dirs.push(dir);
  const node = await spawnNodeProcess({
    name: 'v8',
    cookie: 'c',
    dataDir: join(dir, 'data'),
    ...(v8Flags === undefined ? {} : { v8Flags }),
  });
  nodes.push(node);
  return readFileSync(`/proc/${node.pid}/cmdline`, 'utf8').split('\0');
}

describe('the V8 flags of a node', () => {
  it('are NODE_V8_FLAGS by default, before the script', async () => {
    expect(NODE_V8_FLAGS).toContain('--interrupt-budget=8000');
    const args = await start();
    const script = args.findIndex((a) => a.endsWith('cli.ts'));
    for (const flag of NODE_V8_FLAGS) {
      const at = args.indexOf(flag);
      expect(at).toBeGreaterThan(0);
      expect(at).toBeLessThan(script);
    }
  });

  it('are V8 defaults with v8Flags: []', async () => {
    const args = await start([]);
    for (const flag of NODE_V8_FLAGS) expect(args).not.toContain(flag);
  });

  it('are the same in the otra script and the package scripts', () => {
    const cli = readFileSync(fileURLToPath(new URL('../src/cli.ts', import.meta.url)), 'utf8');
    const shebang = cli.split('\n')[0]!;
    const scripts = JSON.parse(
      readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8'),
    ).scripts as Record<string, string>;
    for (const flag of NODE_V8_FLAGS) {
      expect(shebang).toContain(flag);
      expect(scripts.otra).toContain(flag);
      expect(scripts.demo).toContain(flag);
    }
  });
});
