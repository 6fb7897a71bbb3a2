/**
 * Spawns nodes as child processes (`node-main.ts` under tsx) and talks to them. Every process is
 * tracked so `killAll` (in `afterEach`) ends each one by its pid.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { NodeConfig } from './node-main.ts';

const MAIN = fileURLToPath(new URL('./node-main.ts', import.meta.url));

export interface Ready {
  name: string;
  port: number;
  url: string;
  creation: number;
}

export class NodeProc {
  readonly events: Array<{ event: string; [key: string]: unknown }> = [];
  stderr = '';
  exited: Promise<number | null>;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private buffer = '';

  private constructor(
    readonly child: ChildProcess,
    readonly ready: Ready,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static start(config: NodeConfig, tracked: NodeProc[], timeoutMs = 15_000): Promise<NodeProc> {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new Promise<NodeProc>((resolve, reject) => {
      let proc: NodeProc | undefined;
      let early = '';
      let errors = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`node ${config.name} did not start: ${errors}`));
      }, timeoutMs);
      child.stderr?.on('data', (d: Buffer) => {
        if (proc === undefined) errors += d.toString();
        else proc.stderr += d.toString();
      });
      child.once('exit', (code) => {
        if (proc === undefined) {
          clearTimeout(timer);
          reject(new Error(`node ${config.name} exited with ${code}: ${errors}`));
        }
      });
      child.stdout?.on('data', (d: Buffer) => {
        if (proc !== undefined) {
          proc.onData(d.toString());
          return;
        }
        early += d.toString();
        const nl = early.indexOf('\n');
        if (nl < 0) return;
        const first = JSON.parse(early.slice(0, nl)) as { ready: Ready };
        clearTimeout(timer);
        proc = new NodeProc(child, first.ready);
        proc.stderr = errors;
        tracked.push(proc);
        proc.onData(early.slice(nl + 1));
        resolve(proc);
      });
    });
  }

  private onData(text: string): void {
    this.buffer += text;
    let nl = this.buffer.indexOf('\n');
    while (nl >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      nl = this.buffer.indexOf('\n');
      const msg = JSON.parse(line) as {
        id?: number;
        ok?: unknown;
        error?: { message: string };
        event?: string;
      };
      if (msg.event !== undefined) this.events.push(msg as { event: string });
      else if (msg.id !== undefined) {
        const w = this.waiting.get(msg.id);
        this.waiting.delete(msg.id);
        if (msg.error !== undefined) w?.reject(new Error(msg.error.message));
        else w?.resolve(msg.ok);
      }
    }
  }

  /** Sends a command and resolves with its answer. */
  request<T = unknown>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.ready.name}: ${cmd} timed out`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.stdin?.write(`${JSON.stringify({ id, cmd, ...args })}\n`);
    });
  }

  /** Resolves with the first event matching `match`, failing after `timeoutMs`. */
  async waitEvent(match: (e: { event: string; [key: string]: unknown }) => boolean, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`${this.ready.name}: no matching event in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Waits until the process's stderr matches `pattern`. */
  async waitLog(pattern: RegExp, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.stderr)) {
      if (Date.now() > deadline)
        throw new Error(`${this.ready.name}: log never matched ${pattern}:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive && this.child.pid !== undefined) process.kill(this.child.pid, signal);
  }
}

/** Kills every tracked process by pid and waits for each to exit. */
export async function killAll(tracked: NodeProc[]): Promise<void> {
  const procs = tracked.splice(0);
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}

/** A cookie no other test uses, so parallel tests cannot link to each other by accident. */
export function freshCookie(): string {
  return `cookie-${process.pid}-${Math.random().toString(36).slice(2)}`;
}
