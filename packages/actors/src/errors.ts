import type { Pid } from '@otra/protocol';
import type { Dest, ExitReason } from './types.ts';
import { formatReason } from './types.ts';

function destString(dest: Dest): string {
  if (typeof dest === 'string') return dest;
  if ('id' in dest) return `<${dest.node}.${dest.id}.${dest.creation}>`;
  return `${dest.name}@${dest.node}`;
}

/** A call got no reply within its `timeoutMs`. A late reply is discarded, never delivered elsewhere. */
export class CallTimeoutError extends Error {
  override readonly name = 'CallTimeoutError';
  constructor(
    readonly dest: Dest,
    readonly timeoutMs: number,
  ) {
    super(`call to ${destString(dest)} timed out after ${timeoutMs} ms`);
  }
}

/** The callee did not exist (or had already exited) when the call was made. */
export class NoProcError extends Error {
  override readonly name = 'NoProcError';
  constructor(readonly dest: Dest) {
    super(`no process ${destString(dest)}`);
  }
}

/** The callee exited before it replied; `reason` is its exit reason (`noconnection` if its node went away). */
export class ExitError extends Error {
  override readonly name = 'ExitError';
  constructor(
    readonly dest: Dest,
    readonly reason: ExitReason,
  ) {
    super(`${destString(dest)} exited before replying: ${formatReason(reason)}`);
  }
}

/** An actor failed to start: its `init` threw or rejected, or it exited while starting. */
export class StartError extends Error {
  override readonly name = 'StartError';
  constructor(
    readonly pid: Pid | undefined,
    readonly reason: ExitReason,
  ) {
    super(`actor failed to start: ${formatReason(reason)}`);
  }
}
