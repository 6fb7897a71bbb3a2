import type { CommandEntry, LogEntry, SystemCommand, SystemEntry } from '@otra/protocol';
import type { CommandMsg, PendingCommand } from '../types.ts';
import { type Ctx, reply } from './context.ts';
import { appendOne, lastIndex } from './log.ts';
import { replicateAll } from './replication.ts';
import { rejectCommands } from './roles.ts';

/** `command` and `commands`: the leader appends normal-priority ones now and queues low ones. */
export function onCommands(ctx: Ctx, commands: readonly CommandMsg[]): void {
  if (ctx.role !== 'leader') {
    rejectCommands(ctx, commands, 'not_leader');
    return;
  }
  let normal: PendingCommand[] | null = null;
  let low: PendingCommand[] | null = null;
  for (const c of commands) {
    if (c.priority === 'low') (low ??= []).push(c);
    else (normal ??= []).push(c);
  }
  if (low !== null) {
    const leader = ctx.s.leader!;
    ctx.s.leader = { ...leader, lowQueue: [...leader.lowQueue, ...low] };
  }
  if (normal !== null) appendCommands(ctx, normal);
}

/**
 * Low-priority commands are appended in batches of at most `lowPriorityBatch` whenever the leader
 * has a moment (after its own writes complete and on each tick), so they cannot starve the normal
 * stream but never wait longer than a tick.
 */
export function flushLowPriority(ctx: Ctx): void {
  const leader = ctx.s.leader!;
  if (leader.lowQueue.length === 0) return;
  const n = ctx.s.cfg.lowPriorityBatch;
  const batch = leader.lowQueue.slice(0, n);
  ctx.s.leader = { ...leader, lowQueue: leader.lowQueue.slice(n) };
  appendCommands(ctx, batch);
}

/** Appends commands (leader only): one `log.append`, replies for `after_log_append`, then replication. */
export function appendCommands(ctx: Ctx, commands: readonly PendingCommand[]): void {
  const s = ctx.s;
  const term = s.currentTerm;
  const entries: LogEntry[] = [];
  let log = s.log;
  let index = lastIndex(log);
  for (const c of commands) {
    index++;
    const entry: CommandEntry =
      c.requestId === undefined
        ? { type: 'command', index, term, command: c.command, reply: c.reply, systemTime: s.nowMs }
        : {
            type: 'command',
            index,
            term,
            command: c.command,
            reply: c.reply,
            systemTime: s.nowMs,
            requestId: c.requestId,
          };
    log = appendOne(log, entry);
    entries.push(entry);
  }
  s.log = log;
  ctx.fx.push({ type: 'log.append', entries });
  for (const e of entries as CommandEntry[]) {
    if (e.reply.mode === 'after_log_append') {
      reply(ctx, e.reply.from, { type: 'appended', index: e.index, term, leader: s.cfg.id });
    }
  }
  replicateAll(ctx);
}

/** Runtime events (monitors, machine timers) enter the log so every member applies them in order. */
export function onSystemEvent(ctx: Ctx, event: SystemCommand): void {
  if (ctx.role !== 'leader') return;
  const s = ctx.s;
  const entry: SystemEntry = {
    type: 'system',
    index: lastIndex(s.log) + 1,
    term: s.currentTerm,
    event,
    systemTime: s.nowMs,
  };
  s.log = appendOne(s.log, entry);
  ctx.fx.push({ type: 'log.append', entries: [entry] });
  replicateAll(ctx);
}
