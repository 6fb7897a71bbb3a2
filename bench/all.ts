/**
 * Runs every benchmark in turn, each in its own process so they do not disturb each other:
 * `pnpm bench` (or `pnpm bench actors links` for some of them). Each runs with the V8 flags of
 * an `otra node` (`NODE_V8_FLAGS`), as the node processes they start do; `V8_DEFAULTS=1` runs
 * both with V8's defaults. In `http-kv` the flags are the load generator's, the same for etcd.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchV8Flags } from './support.ts';

const flags = benchV8Flags();

const benches = ['actors', 'core', 'log', 'links', 'shell', 'skeleton', 'cluster', 'http-kv'];
const wanted = process.argv.slice(2);
for (const name of wanted.length > 0 ? wanted : benches) {
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  console.log(`# bench/${name}.ts`);
  const result = spawnSync(process.execPath, [...flags, '--import', 'tsx', file], { stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`bench/${name}.ts failed (${result.status ?? result.signal})`);
    process.exitCode = 1;
  }
}
