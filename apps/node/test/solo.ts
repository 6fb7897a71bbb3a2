/**
 * Single-node KV services in this process, for the tests of one node's behaviour: each is a
 * one-member cluster with its HTTP API on a free port of 127.0.0.1. Call `stopSolos` after each
 * test: it stops the nodes still running and removes the data dirs `soloDir` made.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type OtraNode, startOtraNode } from '../src/otra-node.ts';

const dirs: string[] = [];
const running: OtraNode[] = [];

/** A fresh temp dir for a node's data, removed by `stopSolos`. */
export function soloDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** Starts the node `solo` on `dataDir`; what it logs goes to `log`. */
export async function startSolo(
  dataDir: string,
  log: (level: string, message: string) => void = () => undefined,
): Promise<OtraNode> {
  const node = await startOtraNode({
    name: 'solo',
    cookie: 'c',
    dataDir,
    peers: {},
    http: { host: '127.0.0.1', port: 0 },
    electionTimeoutMs: [50, 100],
    log,
  });
  running.push(node);
  return node;
}

/** Stops `node` now (a later `stopSolos` leaves it alone). */
export async function stopSolo(node: OtraNode): Promise<void> {
  running.splice(running.indexOf(node), 1);
  await node.stop();
}

export async function stopSolos(): Promise<void> {
  await Promise.all(running.splice(0).map((n) => n.stop()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
