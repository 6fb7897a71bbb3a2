/**
 * Runs one benchmark alternately on another revision and on this work tree, so that both sides
 * see the same box (its speed swings by ±30% within minutes; only alternating runs compare):
 *
 *   pnpm exec tsx bench/ab.ts <rev> [--rounds 2] -- bench/cluster.ts latency throughput
 *
 * The other revision is checked out in a temporary git worktree. Its `node_modules` trees are
 * copied from this one (their links into `node_modules/.pnpm` are relative, so they resolve
 * inside the worktree), never symlinked: a symlinked `packages/x/node_modules` resolves
 * `@otra/*` to this tree's packages, and both sides would run the same code. Before running,
 * every workspace package is resolved from inside the worktree and must land there. The
 * revision must have the same `pnpm-lock.yaml`. A benchmark file the revision lacks (a new one, or
 * a scratch file) is copied into the worktree, so both sides run the same benchmark.
 *
 * Prints each line of the benchmark as `ab side=old|new rev=<rev> round=<n> <line>`, and the
 * worktree is removed at the end.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchV8Flags } from './support.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function usage(message: string): never {
  console.error(`bench/ab.ts: ${message}`);
  console.error('usage: pnpm exec tsx bench/ab.ts <rev> [--rounds N] -- <bench file> [args...]');
  process.exit(2);
}

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
if (dash < 0) usage('give the benchmark after --');
const own = argv.slice(0, dash);
const bench = argv.slice(dash + 1);
const rev = own[0];
if (rev === undefined || rev.startsWith('--')) usage('give a revision');
const roundsAt = own.indexOf('--rounds');
const rounds = roundsAt >= 0 ? Number(own[roundsAt + 1]) : 2;
if (!Number.isInteger(rounds) || rounds < 1) usage('--rounds takes a whole number >= 1');
if (bench[0] === undefined || !existsSync(join(ROOT, bench[0]))) usage(`no benchmark file ${bench[0]}`);

const git = (...args: string[]): string => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
const commit = git('rev-parse', '--verify', `${rev}^{commit}`);
if (git('show', `${commit}:pnpm-lock.yaml`) !== readFileSync(join(ROOT, 'pnpm-lock.yaml'), 'utf8').trim())
  usage(`${rev} has another pnpm-lock.yaml: install its dependencies in a checkout of its own instead`);

/** The workspace's package directories (relative), from pnpm-workspace.yaml's `dir/*` globs. */
function workspaceDirs(): string[] {
  const yaml = readFileSync(join(ROOT, 'pnpm-workspace.yaml'), 'utf8');
  const globs = [...yaml.matchAll(/-\s*['"]?([\w./-]+)\/\*['"]?/g)].map((m) => m[1] as string);
  return globs.flatMap((g) =>
    readdirSync(join(ROOT, g), { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(ROOT, g, d.name, 'package.json')))
      .map((d) => join(g, d.name)),
  );
}

const dir = mkdtempSync(join(tmpdir(), 'otra-ab-'));
const tree = join(dir, 'tree');
let added = false;
const cleanup = (): void => {
  if (added) {
    try {
      git('worktree', 'remove', '--force', tree);
    } catch {
      // removed below with the directory; `git worktree prune` forgets it
    }
  }
  rmSync(dir, { recursive: true, force: true });
  if (added) git('worktree', 'prune');
};
process.once('SIGINT', () => {
  cleanup();
  process.exit(130);
});

try {
  git('worktree', 'add', '--detach', tree, commit);
  added = true;
  // node_modules: .pnpm shared (absolute), every other entry copied as it is (relative links)
  mkdirSync(join(tree, 'node_modules'));
  symlinkSync(join(ROOT, 'node_modules', '.pnpm'), join(tree, 'node_modules', '.pnpm'));
  for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
    if (entry === '.pnpm') continue;
    cpSync(join(ROOT, 'node_modules', entry), join(tree, 'node_modules', entry), {
      recursive: true,
      verbatimSymlinks: true,
    });
  }
  const packages = workspaceDirs();
  for (const pkg of packages) {
    const from = join(ROOT, pkg, 'node_modules');
    if (existsSync(from) && existsSync(join(tree, pkg)))
      cpSync(from, join(tree, pkg, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  }
  // every workspace package, resolved from inside the worktree, must be the worktree's own
  for (const pkg of packages) {
    if (!existsSync(join(tree, pkg, 'node_modules', '@otra'))) continue;
    for (const name of readdirSync(join(tree, pkg, 'node_modules', '@otra'))) {
      const resolved = execFileSync(
        process.execPath,
        ['--input-type=module', '-e', `console.log(import.meta.resolve(${JSON.stringify(`@otra/${name}`)}))`],
        { cwd: join(tree, pkg), encoding: 'utf8' },
      ).trim();
      if (!resolved.startsWith(`file://${tree}/`))
        throw new Error(`@otra/${name} resolves to ${resolved} from the worktree's ${pkg}, not inside it`);
    }
  }
  // a benchmark the revision does not have (a new or scratch file) runs there as it is here
  const benchFile = bench[0] as string;
  if (!existsSync(join(tree, benchFile))) {
    mkdirSync(dirname(join(tree, benchFile)), { recursive: true });
    cpSync(join(ROOT, benchFile), join(tree, benchFile));
  }
  const sides = [
    { side: 'old', rev: commit.slice(0, 7), cwd: tree },
    { side: 'new', rev: 'worktree', cwd: ROOT },
  ];
  for (let round = 1; round <= rounds; round++) {
    for (const s of sides) {
      const run = spawnSync(process.execPath, [...benchV8Flags(), '--import', 'tsx', ...bench], {
        cwd: s.cwd,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: 30 * 60_000,
        killSignal: 'SIGKILL',
      });
      for (const line of run.stdout.split('\n'))
        if (line.trim() !== '') console.log(`ab side=${s.side} rev=${s.rev} round=${round} ${line}`);
      if (run.status !== 0)
        console.log(`ab side=${s.side} rev=${s.rev} round=${round} failed=${run.status ?? run.signal}`);
    }
  }
} finally {
  cleanup();
}
