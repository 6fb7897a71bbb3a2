import type { CommandEntry, ConfigEntry, LogEntry, SnapshotMeta, SystemEntry } from '@otra/protocol';
import { pidEquals, pidKey, serverIdKey } from '@otra/protocol';
import { type ApplyMeta, DEFAULT_REQUEST_WINDOW, type MachineEffect } from '../machine.ts';
import { appendCommands } from './client.ts';
import { type Ctx, isMember, reply, snapshotPoint } from './context.ts';
import { entryAt, termAt } from './log.ts';
import { answerConsistentQueries, answerLocalQueries } from './queries.ts';
import { findRequest, type RequestRecord, recordRequest, requestsAt, wrapSnapshotState } from './requests.ts';
import { becomeFollower } from './roles.ts';

/**
 * Applies committed entries in order. Stops at a noop asking for a machine version we do not
 * have: the server keeps replicating (and acknowledging) but its machine waits for an upgrade.
 */
export function applyCommitted(ctx: Ctx): void {
  const s = ctx.s;
  if (s.lastApplied >= s.commitIndex) return;
  const isLeader = ctx.role === 'leader';
  let removedSelf = false;
  let appended: unknown[] | null = null;
  while (s.lastApplied < s.commitIndex && s.awaitingUpgrade === null) {
    const index = s.lastApplied + 1;
    const entry = entryAt(s.log, index);
    if (entry === undefined) break;
    switch (entry.type) {
      case 'command':
        appended = applyCommand(ctx, entry, isLeader, appended);
        break;
      case 'noop': {
        const local = s.cfg.machine.version?.() ?? 0;
        if (entry.machineVersion > local) {
          s.awaitingUpgrade = entry.machineVersion;
          continue;
        }
        s.machineVersion = entry.machineVersion;
        break;
      }
      case 'config':
        if (isLeader) {
          if (entry.from !== undefined) reply(ctx, entry.from, { type: 'ok', leader: s.cfg.id });
          if (!isMemberOf(entry, s.cfg.idKey)) removedSelf = true;
        }
        break;
      case 'system':
        appended = applySystem(ctx, entry, isLeader, appended);
        break;
    }
    s.lastApplied = index;
  }
  pruneConfigs(ctx);
  if (s.localQueries.length > 0) answerLocalQueries(ctx);
  if (ctx.role === 'leader') {
    if (removedSelf && !isMember(s, s.cfg.idKey)) {
      // The leader's own removal is committed: hand over by stepping down.
      ctx.fx.push({ type: 'hook', hook: 'follower_removed', id: s.cfg.id });
      becomeFollower(ctx, null);
      return;
    }
    if (appended !== null)
      appendCommands(
        ctx,
        appended.map((command) => ({ command, reply: { mode: 'noreply' } })),
      );
    if (s.leader!.queries.length > 0) answerConsistentQueries(ctx);
  }
}

/**
 * A command entry as a plain object: the host may keep an applied command in another form whose
 * fields are getters (see `swapAppliedEntries`), which a machine's `log` function could not spread.
 */
function plainCommand(e: CommandEntry): CommandEntry {
  const { type, index, term, command, reply, systemTime, requestId } = e;
  return requestId === undefined
    ? { type, index, term, command, reply, systemTime }
    : { type, index, term, command, reply, systemTime, requestId };
}

function isMemberOf(entry: ConfigEntry, key: string): boolean {
  return entry.cluster.some((m) => serverIdKey(m.id) === key);
}

function metaOf(ctx: Ctx, entry: CommandEntry | SystemEntry): ApplyMeta {
  return {
    index: entry.index,
    term: entry.term,
    systemTime: entry.systemTime,
    machineVersion: ctx.s.machineVersion,
  };
}

function moduleFor(ctx: Ctx) {
  const m = ctx.s.cfg.machine;
  return m.whichModule === undefined ? m : m.whichModule(ctx.s.machineVersion);
}

/** The request window in force: part of the machine version's definition, the same on every member. */
export function requestWindow(ctx: Ctx): number {
  const w = moduleFor(ctx).requestWindow;
  return w !== undefined && Number.isSafeInteger(w) && w > 0 ? w : DEFAULT_REQUEST_WINDOW;
}

function applyCommand(
  ctx: Ctx,
  entry: CommandEntry,
  isLeader: boolean,
  appended: unknown[] | null,
): unknown[] | null {
  const s = ctx.s;
  const id = entry.requestId;
  if (id !== undefined) {
    const first = findRequest(s.requests, id, entry.index, requestWindow(ctx));
    if (first !== undefined) {
      // a copy of a request already applied: not applied again, answered as the first was
      if (isLeader) answer(ctx, entry, first.reply, first.error, first);
      return appended;
    }
  }
  let result: readonly [unknown, unknown, (readonly MachineEffect[])?];
  try {
    result = moduleFor(ctx).apply(metaOf(ctx, entry), entry.command, s.machineState);
    // a machine that returns something else (say, a switch with no case for a command from the
    // network) is treated as one that threw: the server must not crash on it
    if (!isApplyResult(result, 2)) throw new Error(malformed('apply', '[state, reply, effects?]', result));
  } catch (err) {
    // Deterministic on every member: the entry is a no-op for the state and the caller learns why.
    const message = err instanceof Error ? err.message : String(err);
    if (id !== undefined)
      remember(ctx, { id, index: entry.index, term: entry.term, reply: undefined, error: message });
    if (isLeader) answer(ctx, entry, undefined, message);
    return appended;
  }
  s.machineState = result[0];
  if (id !== undefined) remember(ctx, { id, index: entry.index, term: entry.term, reply: result[1] });
  if (isLeader) answer(ctx, entry, result[1], undefined);
  const effects = result[2];
  if (effects !== undefined && effects.length > 0) return machineEffects(ctx, effects, isLeader, appended);
  return appended;
}

/** `[state, ...]` with an optional effects array at `effectsAt`. */
function isApplyResult(result: unknown, effectsAt: number): boolean {
  if (!Array.isArray(result) || result.length === 0) return false;
  const effects = result[effectsAt];
  return (
    effects === undefined ||
    (Array.isArray(effects) &&
      effects.every((e) => typeof e === 'object' && e !== null && typeof e.type === 'string'))
  );
}

function malformed(callback: string, shape: string, got: unknown): string {
  const what = Array.isArray(got) ? `an array of ${got.length}` : got === null ? 'null' : typeof got;
  return `the machine's ${callback} returned ${what}, not ${shape}`;
}

/** Records an applied request id, dropping what no snapshot still to be taken can need. */
function remember(ctx: Ctx, record: RequestRecord): void {
  const s = ctx.s;
  const keepAfter = snapshotPoint(s) - requestWindow(ctx);
  s.requests = recordRequest(s.requests, record, keepAfter);
}

/**
 * Answers the caller of `entry`. `first`: the entry is a copy of this applied request, and the
 * caller learns the index and term the request was applied at.
 */
function answer(
  ctx: Ctx,
  entry: CommandEntry,
  value: unknown,
  error: string | undefined,
  first?: RequestRecord,
): void {
  const r = entry.reply;
  const leader = ctx.s.cfg.id;
  switch (r.mode) {
    case 'await_consensus':
      reply(
        ctx,
        r.from,
        error === undefined
          ? {
              type: 'applied',
              index: first?.index ?? entry.index,
              term: first?.term ?? entry.term,
              reply: value,
              leader,
            }
          : { type: 'error', error: 'machine_error', leader, message: error },
      );
      break;
    case 'notify': {
      const to = r.to;
      let batch = ctx.lastNotify;
      if (batch === null || !pidEquals(batch.to, to)) {
        ctx.notify ??= new Map();
        const key = pidKey(to);
        batch = ctx.notify.get(key) ?? null;
        if (batch === null) {
          batch = { to, applied: [] };
          ctx.notify.set(key, batch);
        }
        ctx.lastNotify = batch;
      }
      batch.applied.push([
        r.correlation,
        error === undefined ? value : { error: 'machine_error', message: error },
      ]);
      break;
    }
    case 'after_log_append':
    case 'noreply':
      break;
  }
}

function applySystem(
  ctx: Ctx,
  entry: SystemEntry,
  isLeader: boolean,
  appended: unknown[] | null,
): unknown[] | null {
  const m = moduleFor(ctx);
  if (m.applySystem === undefined) return appended;
  let result: readonly [unknown, (readonly MachineEffect[])?];
  try {
    result = m.applySystem(metaOf(ctx, entry), entry.event, ctx.s.machineState);
    if (!isApplyResult(result, 1)) return appended;
  } catch {
    return appended;
  }
  ctx.s.machineState = result[0];
  const effects = result[1];
  if (effects !== undefined && effects.length > 0) return machineEffects(ctx, effects, isLeader, appended);
  return appended;
}

/**
 * Routes machine effects: `release_cursor` is handled here on every member, `checkpoint` and `aux`
 * go to the shell on every member, everything else only on the leader. `append` commands are
 * collected and appended after the apply loop; `log` reads the in-memory log now.
 */
export function machineEffects(
  ctx: Ctx,
  effects: readonly MachineEffect[],
  isLeader: boolean,
  appended: unknown[] | null,
): unknown[] | null {
  let out = appended;
  for (const effect of effects) {
    switch (effect.type) {
      case 'release_cursor':
        releaseCursor(ctx, effect.index, effect.machineState);
        break;
      case 'checkpoint':
      case 'aux':
        ctx.fx.push({ type: 'machine', effect });
        break;
      case 'append':
        if (isLeader) {
          out ??= [];
          out.push(effect.command);
        }
        break;
      case 'log':
        if (isLeader) {
          const entries: LogEntry[] = [];
          for (const i of effect.indexes) {
            const e = entryAt(ctx.s.log, i);
            if (e !== undefined) entries.push(e.type === 'command' ? plainCommand(e) : e);
          }
          out = machineEffects(ctx, effect.fn(entries), isLeader, out);
        }
        break;
      default:
        if (isLeader) ctx.fx.push({ type: 'machine', effect });
    }
  }
  return out;
}

/**
 * The machine no longer needs entries up to `index`: snapshot its state there. One snapshot is
 * written at a time; the newest release made meanwhile is written once that one is confirmed.
 */
export function releaseCursor(ctx: Ctx, index: number, machineState: unknown): void {
  const s = ctx.s;
  // `lastApplied` moves past an entry only after its apply returns, so a machine releasing the
  // entry it is applying asks for `lastApplied + 1`.
  if (index > s.lastApplied + 1 || index <= snapshotPoint(s)) return;
  const writing = s.snapshotWriting;
  if (writing !== null && (index <= writing.index || index <= (s.snapshotPending?.meta.index ?? 0))) return;
  const term = termAt(s.log, index);
  if (term === undefined) return;
  // Everything the snapshot needs is taken now: by the time a deferred one is written, the
  // configurations below the commit index and the request records have been pruned.
  let members = s.configs[0]!.members;
  for (const c of s.configs) if (c.index <= index) members = c.members;
  const meta = { index, term, cluster: members, machineVersion: s.machineVersion };
  // the request ids a member restarting from this snapshot needs to decide as the others do
  const requests = requestsAt(s.requests, index, requestWindow(ctx));
  const state = wrapSnapshotState(machineState, requests);
  if (writing !== null) s.snapshotPending = { meta, machineState: state };
  else writeSnapshot(ctx, meta, state);
}

/** Issues `snapshot.write` for `meta`; `onSnapshotWritten` takes its confirmation. */
export function writeSnapshot(ctx: Ctx, meta: SnapshotMeta, machineState: unknown): void {
  ctx.s.snapshotWriting = meta;
  ctx.fx.push({ type: 'snapshot.write', meta, machineState });
}

/** Configurations at or below the commit index are settled: keep only the newest as the base. */
function pruneConfigs(ctx: Ctx): void {
  const configs = ctx.s.configs;
  if (configs.length < 2 || configs[1]!.index > ctx.s.commitIndex) return;
  let base = 0;
  while (base + 1 < configs.length && configs[base + 1]!.index <= ctx.s.commitIndex) base++;
  ctx.s.configs = configs.slice(base);
}
