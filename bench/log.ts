/**
 * Durable log figures (issue 6), with the raw limits measured in the same run:
 *   raw.fdatasync        1 KiB append + fdatasync of a plain file, one at a time
 *   rocksdb.batch_sync   RocksDB alone: synced write batches of N 150 B entries, one at a time
 *   log.single           (a) one appender, one entry per sync, awaiting each
 *   log.group_commit     (b) 64 / 1,024 appends in flight to one server (pipelined clients)
 *   log.servers          (c) 1,000 servers, one append of one entry in flight each
 * Each otra figure is followed by RocksDB's own figure at the batch size the writer reached.
 * Run: `pnpm exec tsx bench/log.ts`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type KvOp, openRocksStorage, RocksKv, type RocksStorage } from '@otra/raft-log';
import { percentile, perSecond, report } from './support.ts';

const ENTRY_BYTES = 150;
const PHASE_MS = Number(process.env.BENCH_PHASE_MS ?? 2500);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'otra-bench-log-'));
let dirs = 0;
const freshDir = () => path.join(root, `d${dirs++}`);
const data = Buffer.alloc(ENTRY_BYTES, 0x61);

function ms(value: number): string {
  return `${value.toFixed(2)}ms`;
}

function rawFdatasync(): number {
  const file = path.join(root, 'raw.bin');
  const fd = fs.openSync(file, 'w');
  const block = Buffer.alloc(1024, 1);
  const lat: number[] = [];
  const start = performance.now();
  try {
    while (performance.now() - start < PHASE_MS / 2) {
      const t = performance.now();
      fs.writeSync(fd, block);
      fs.fdatasyncSync(fd);
      lat.push(performance.now() - t);
    }
  } finally {
    fs.closeSync(fd);
  }
  const elapsed = performance.now() - start;
  const p50 = percentile(lat, 50);
  report('raw.fdatasync', {
    bytes: 1024,
    syncs: perSecond(lat.length, elapsed),
    p50: ms(p50),
    p99: ms(percentile(lat, 99)),
  });
  return p50;
}

/** A key of the log's layout: tag, uid length, uid, big-endian index. */
function entryKey(uid: string, index: number): Buffer {
  const key = Buffer.alloc(2 + uid.length + 8);
  key[0] = 0x45;
  key[1] = uid.length;
  key.write(uid, 2, 'latin1');
  key.writeUInt32BE(index, key.length - 4);
  return key;
}

/**
 * RocksDB alone: synced batches of `size` entries, one in flight, with the log's key layout and
 * value size (150 B + 20 B header), spread over `servers` servers as the otra phase was.
 */
async function rocksBatchSync(size: number, servers = 1): Promise<number> {
  const kv = await RocksKv.open(freshDir());
  const uids = Array.from({ length: servers }, (_, k) => `srv-${k}`);
  const next = new Array<number>(servers).fill(0);
  let count = 0;
  let turn = 0;
  const lat: number[] = [];
  const start = performance.now();
  try {
    while (performance.now() - start < PHASE_MS / 2) {
      const ops: KvOp[] = [];
      for (let k = 0; k < size; k++) {
        const server = turn++ % servers;
        const key = entryKey(uids[server]!, ++next[server]!);
        ops.push({ type: 'put', key, value: Buffer.alloc(ENTRY_BYTES + 20, 0x61) });
      }
      const t = performance.now();
      await kv.batch(ops, true);
      lat.push(performance.now() - t);
      count += size;
    }
  } finally {
    await kv.close();
  }
  const elapsed = performance.now() - start;
  const rate = (count * 1000) / elapsed;
  report('rocksdb.batch_sync', {
    per_batch: size,
    servers,
    entries: `${Math.round(rate)}/s`,
    fsyncs: perSecond(lat.length, elapsed),
    p50: ms(percentile(lat, 50)),
  });
  return rate;
}

async function withStorage<T>(fn: (s: RocksStorage) => Promise<T>): Promise<T> {
  const storage = await openRocksStorage(freshDir());
  try {
    return await fn(storage);
  } finally {
    await storage.close();
  }
}

/** (a) One appender, one entry per sync. */
async function single(rawP50: number): Promise<void> {
  await withStorage(async (s) => {
    const lat: number[] = [];
    let index = 0;
    const start = performance.now();
    while (performance.now() - start < PHASE_MS) {
      const t = performance.now();
      index++;
      await s.log.append('single', [{ index, term: 1, data }]);
      lat.push(performance.now() - t);
    }
    const elapsed = performance.now() - start;
    const p50 = percentile(lat, 50);
    report('log.single', {
      entries: perSecond(index, elapsed),
      fsyncs: perSecond(s.writer.stats().batches, elapsed),
      p50: ms(p50),
      p99: ms(percentile(lat, 99)),
      vs_raw_fdatasync: `${(p50 / rawP50).toFixed(2)}x`,
    });
  });
  // RocksDB alone at one entry per synced batch, for the same comparison without otra.
  await rocksBatchSync(1);
}

/**
 * Closed-loop appenders: each of `appenders` keeps one append of one entry in flight, spread over
 * `servers` servers (one server: a leader with that many client commands pipelined).
 */
async function closedLoop(name: string, appenders: number, servers: number): Promise<number> {
  return withStorage(async (s) => {
    const uids = Array.from({ length: servers }, (_, k) => `srv-${k}`);
    const lat: number[] = [];
    let stop = false;
    let entries = 0;
    const loop = async (k: number): Promise<void> => {
      const uid = uids[k % servers]!;
      while (!stop) {
        const t = performance.now();
        // The index is taken at call time: appends to one server are applied in call order.
        const index = s.log.last(uid).index + 1;
        await s.log.append(uid, [{ index, term: 1, data }]);
        lat.push(performance.now() - t);
        entries++;
      }
    };
    // Warm up (RocksDB's first batches, JIT), then measure from a clean counter.
    const warm = Array.from({ length: appenders }, (_, k) => loop(k));
    await new Promise((resolve) => setTimeout(resolve, 300));
    stop = true;
    await Promise.all(warm);
    stop = false;
    lat.length = 0;
    entries = 0;
    const before = s.writer.stats();
    const start = performance.now();
    const running = Array.from({ length: appenders }, (_, k) => loop(k));
    await new Promise((resolve) => setTimeout(resolve, PHASE_MS));
    stop = true;
    await Promise.all(running);
    const elapsed = performance.now() - start;
    const after = s.writer.stats();
    const batches = after.batches - before.batches;
    const perFsync = Math.round((after.requests - before.requests) / batches);
    const rate = (entries * 1000) / elapsed;
    report(name, {
      appenders,
      servers,
      entries: `${Math.round(rate)}/s`,
      fsyncs: perSecond(batches, elapsed),
      per_fsync: perFsync,
      p50: ms(percentile(lat, 50)),
      p99: ms(percentile(lat, 99)),
      sync_busy: `${Math.round(((after.syncMicros - before.syncMicros) / 1000 / elapsed) * 100)}%`,
    });
    const rocks = await rocksBatchSync(Math.max(1, perFsync), servers);
    report(`${name}.vs_rocksdb`, {
      appenders,
      per_fsync: perFsync,
      ratio: `${Math.round((rate / rocks) * 100)}%`,
    });
    return rate;
  });
}

/** `BENCH_ONLY=single,servers` runs a subset (raw figures always run). */
const only = process.env.BENCH_ONLY?.split(',');
const wanted = (name: string) => only === undefined || only.includes(name);

async function main(): Promise<void> {
  const started = performance.now();
  const rawP50 = rawFdatasync();
  await rocksBatchSync(256);
  if (wanted('single')) await single(rawP50);
  if (wanted('group')) await closedLoop('log.group_commit', 64, 1);
  if (wanted('group')) await closedLoop('log.group_commit', 1024, 1);
  if (wanted('servers')) await closedLoop('log.servers', 1000, 1000);
  report('bench.log', { seconds: ((performance.now() - started) / 1000).toFixed(1) });
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => fs.rmSync(root, { recursive: true, force: true }));
