/**
 * Long soak of the seeded cluster simulation: `pnpm soak [count] [--from n] [--servers 3|5]
 * [--seed n] [--transcript] [--request-ids] [--group-commit] [--membership [--min-voters 1|2|3]]
 * [--quiesce ticks]
 * [--driver handle|statechart|roles] [--chunk-chars n]`
 * (`--request-ids`: puts carry request ids and some are sent twice, see
 * `SimulationOptions.requestIds`; `--group-commit`: one log confirmation for appends that complete
 * together, see `SimulationOptions.groupCommit`; `--membership`: joins and leaves during the faults,
 * see `SimulationOptions.membership`, and `--min-voters` the fewest voters a removal may leave; `--quiesce`: idle groups sleep after this many
 * ticks and clients pause now and then, see `SimulationOptions.quiesceAfterTicks`; `--driver`: how each server's core runs, see
 * `ClusterOptions.driver`, `roles` being the RaftServer shell's way; `--chunk-chars`: characters
 * per snapshot chunk, small for long transfers that stall and resume). Without `--servers`, odd
 * seeds run 3 servers and even seeds 5; every
 * third seed snapshots often. A failing seed is printed and the exit code is 1; replay one seed with
 * `pnpm soak --seed <n> --transcript` to see one line per message.
 */
import { type Driver, runSimulation, SimulationFailure } from '../src/index.ts';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const positional = process.argv
  .slice(2)
  .filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));
const single = flag('seed');
const count = single !== undefined ? 1 : Number(positional[0] ?? 2000);
const from = single !== undefined ? Number(single) : Number(flag('from') ?? 1);
const fixedServers = flag('servers');
const transcript = process.argv.includes('--transcript');
const requestIds = process.argv.includes('--request-ids');
const groupCommit = process.argv.includes('--group-commit');
const membership = process.argv.includes('--membership');
const minVoters = flag('min-voters');
if (minVoters !== undefined && !['1', '2', '3'].includes(minVoters)) {
  console.error(`--min-voters is 1, 2 or 3, not ${minVoters}`);
  process.exit(2);
}
const quiesce = flag('quiesce');
if (quiesce !== undefined && !(Number(quiesce) > 0)) {
  console.error(`--quiesce is a number of ticks above 0, not ${quiesce}`);
  process.exit(2);
}
const chunkChars = flag('chunk-chars');
if (chunkChars !== undefined && !(Number.isInteger(Number(chunkChars)) && Number(chunkChars) > 0)) {
  console.error(`--chunk-chars is a whole number above 0, not ${chunkChars}`);
  process.exit(2);
}
const driver = flag('driver');
const DRIVERS: readonly Driver[] = ['handle', 'statechart', 'roles'];
if (driver !== undefined && !DRIVERS.includes(driver as Driver)) {
  console.error(`--driver is one of ${DRIVERS.join(', ')}, not ${driver}`);
  process.exit(2);
}

let failures = 0;
let steps = 0;
let ops = 0;
const t0 = performance.now();
for (let seed = from; seed < from + count; seed++) {
  const servers = fixedServers !== undefined ? Number(fixedServers) : seed % 2 === 1 ? 3 : 5;
  try {
    const r = runSimulation({
      seed,
      servers,
      snapshotEvery: seed % 3 === 0 ? 7 : 0,
      ...(requestIds ? { requestIds } : {}),
      ...(groupCommit ? { groupCommit } : {}),
      ...(membership ? { membership } : {}),
      ...(minVoters !== undefined ? { minVoters: Number(minVoters) } : {}),
      ...(quiesce !== undefined ? { quiesceAfterTicks: Number(quiesce) } : {}),
      ...(chunkChars !== undefined ? { snapshotChunkChars: Number(chunkChars) } : {}),
      ...(driver !== undefined ? { driver: driver as Driver } : {}),
      ...(transcript ? { transcript: (line: string) => console.log(line) } : {}),
    });
    steps += r.steps;
    ops += r.ops.ok;
    if (single !== undefined) console.log(JSON.stringify(r));
  } catch (err) {
    failures++;
    console.log(err instanceof SimulationFailure ? err.message : err);
  }
  if ((seed - from + 1) % 500 === 0) console.log(`... ${seed - from + 1} seeds, ${failures} failed`);
}
const secs = (performance.now() - t0) / 1000;
console.log(
  `soak seeds=${count} from=${from} driver=${driver ?? 'handle'} failures=${failures} steps=${steps} client_ops=${ops} seconds=${secs.toFixed(1)}`,
);
process.exitCode = failures > 0 ? 1 : 0;
