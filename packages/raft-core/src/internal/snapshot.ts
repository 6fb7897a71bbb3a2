import {
  type InstallSnapshotReply,
  type InstallSnapshotRequest,
  type SnapshotMeta,
  serverIdEquals,
} from '@otra/protocol';
import type { ConfigAt, ServerState } from '../types.ts';
import { writeSnapshot } from './apply.ts';
import { armElectionTimer, type Ctx, peerIndex, send, snapshotPoint, updatePeer } from './context.ts';
import { compact, type LogView, lastIndex, termAt } from './log.ts';
import { answerLocalQueries } from './queries.ts';
import { replicate } from './replication.ts';
import { requestsFrom, unwrapSnapshotState } from './requests.ts';
import { becomeFollower, enterRole, observeTerm } from './roles.ts';

/** Our own snapshot is durable: move the snapshot point and let the log writer drop the prefix. */
export function onSnapshotWritten(ctx: Ctx, meta: SnapshotMeta): void {
  const s = ctx.s;
  if (s.snapshotWriting === null || s.snapshotWriting.index !== meta.index) return;
  s.snapshotWriting = null;
  if (meta.index > snapshotPoint(s)) {
    s.snapshot = meta;
    s.log = compactBelow(s.log, meta, s.cfg.trailingEntries);
    ctx.fx.push({ type: 'log.truncate_prefix', upTo: meta.index });
  }
  // a release the machine made meanwhile, unless a snapshot installed from the leader covers it
  const pending = s.snapshotPending;
  s.snapshotPending = null;
  if (pending !== null && pending.meta.index > snapshotPoint(s))
    writeSnapshot(ctx, pending.meta, pending.machineState);
}

/**
 * The in-memory log after a snapshot at `meta`: entries up to `trailing` below it stay, for
 * followers that lag a little (sent from memory; the durable log is truncated at the snapshot).
 * A log that does not hold the snapshot's entry is replaced by an empty one after it.
 */
function compactBelow(log: LogView, meta: SnapshotMeta, trailing: number): LogView {
  if (termAt(log, meta.index) !== meta.term) return compact(log, meta.index, meta.term);
  const keepFrom = meta.index - trailing;
  if (keepFrom <= log.snapshotIndex) return log;
  return compact(log, keepFrom, termAt(log, keepFrom) as number);
}

function ack(
  ctx: Ctx,
  to: InstallSnapshotRequest['from'],
  meta: SnapshotMeta,
  chunk: number,
  done: boolean,
): void {
  const r: InstallSnapshotReply = {
    type: 'install_snapshot.reply',
    from: ctx.s.cfg.id,
    term: ctx.s.currentTerm,
    meta,
    chunk,
    done,
  };
  send(ctx, to, r);
}

/**
 * A chunk of the leader's snapshot. Chunks are taken strictly in order; any other is answered
 * with the last chunk we have, and the leader's retry of a stalled transfer resumes after it. A
 * chunk 0 always starts a transfer afresh: it is either the first or a retry from the start.
 */
export function onInstallSnapshot(ctx: Ctx, m: InstallSnapshotRequest): void {
  const s = ctx.s;
  if (m.term < s.currentTerm) {
    ack(ctx, m.from, m.meta, m.chunk, false);
    return;
  }
  observeTerm(ctx, m.term, m.from);
  if (ctx.role === 'pre_vote' && m.chunk > 0 && continues(s.receiving, m)) {
    // our pre-vote interrupted this transfer (its chunks came slower than our election timeout):
    // same term, same leader, same snapshot, so it goes on where it stopped
    s.votes = [];
    enterRole(ctx, 'receive_snapshot');
  } else if (ctx.role === 'candidate' || ctx.role === 'pre_vote') becomeFollower(ctx, m.from);
  s.leaderId = m.from;
  armElectionTimer(ctx);
  if (m.meta.index <= s.lastApplied) {
    // We already have all of it (e.g. a retried transfer): tell the leader where we are.
    if (ctx.role === 'receive_snapshot') {
      s.receiving = null;
      enterRole(ctx, 'follower');
    }
    ack(ctx, m.from, m.meta, m.chunk, true);
    return;
  }
  if (m.chunk === 0) {
    s.receiving = { meta: m.meta, nextChunk: 0, leader: m.from };
    if (ctx.role !== 'receive_snapshot') enterRole(ctx, 'receive_snapshot');
  } else if (ctx.role !== 'receive_snapshot' || !continues(s.receiving, m)) {
    // a resumed transfer we hold none of (a new term or a restart ended ours): say so, and the
    // leader starts it again from chunk 0
    ack(ctx, m.from, m.meta, -1, false);
    return;
  }
  const receiving = s.receiving!;
  if (m.chunk !== receiving.nextChunk) {
    // a gap (chunks lost) or a repeat: tell the leader the last chunk we have
    ack(ctx, m.from, m.meta, receiving.nextChunk - 1, false);
    return;
  }
  s.receiving = { ...receiving, nextChunk: m.chunk + 1 };
  ctx.fx.push({ type: 'snapshot.chunk.write', meta: m.meta, chunk: m.chunk, last: m.last, data: m.data });
  if (m.last) ctx.fx.push({ type: 'snapshot.install', meta: m.meta });
  else ack(ctx, m.from, m.meta, m.chunk, false);
}

/** Whether chunk `m` belongs to the transfer `receiving` (same snapshot, same leader). */
function continues(receiving: ServerState['receiving'], m: InstallSnapshotRequest): boolean {
  return (
    receiving !== null &&
    receiving.meta.index === m.meta.index &&
    receiving.meta.term === m.meta.term &&
    serverIdEquals(receiving.leader, m.from)
  );
}

/**
 * The received snapshot is durable and decoded: it replaces the machine state and log prefix. In
 * `pre_vote` too, when our election timer fired while the shell installed it (the term is the same).
 */
export function onSnapshotInstalled(ctx: Ctx, meta: SnapshotMeta, stored: unknown): void {
  const s = ctx.s;
  if (
    (ctx.role !== 'receive_snapshot' && ctx.role !== 'pre_vote') ||
    s.receiving === null ||
    s.receiving.meta.index !== meta.index
  )
    return;
  const leader = s.receiving.leader;
  s.receiving = null;
  s.leaderId = leader;
  s.votes = [];
  s.log = compact(s.log, meta.index, meta.term);
  s.snapshot = meta;
  const { machineState, requests } = unwrapSnapshotState(stored);
  s.machineState = machineState;
  s.requests = requestsFrom(requests);
  s.machineVersion = meta.machineVersion;
  s.awaitingUpgrade = null;
  if (s.commitIndex < meta.index) s.commitIndex = meta.index;
  s.lastApplied = meta.index;
  if (s.matchedIndex < meta.index) s.matchedIndex = meta.index;
  if (s.lastWritten.index < meta.index || lastIndex(s.log) === meta.index) {
    s.lastWritten = { index: meta.index, term: meta.term };
  }
  const configs: ConfigAt[] = [{ index: meta.index, members: meta.cluster }];
  for (let i = 0; i < s.log.length; i++) {
    const e = s.log.entries[i]!;
    if (e.type === 'config') configs.push({ index: e.index, members: e.cluster });
  }
  s.configs = configs;
  enterRole(ctx, 'follower');
  const machine = s.cfg.machine;
  if (machine.snapshotInstalled !== undefined) {
    const effects = machine.snapshotInstalled(
      { index: meta.index, term: meta.term, systemTime: s.nowMs, machineVersion: meta.machineVersion },
      machineState,
    );
    for (const effect of effects) ctx.fx.push({ type: 'machine', effect });
  }
  if (s.localQueries.length > 0) answerLocalQueries(ctx);
  ack(ctx, leader, meta, -1, true);
}

export function onInstallSnapshotReply(ctx: Ctx, m: InstallSnapshotReply): void {
  const s = ctx.s;
  if (m.term > s.currentTerm) {
    observeTerm(ctx, m.term, null);
    return;
  }
  if (ctx.role !== 'leader' || m.term < s.currentTerm) return;
  const i = peerIndex(s.leader!, `${m.from.name}@${m.from.node}`);
  if (i < 0) return;
  const peer = s.leader!.peers[i]!;
  if (!m.done) {
    const progress = peer.snapshotProgress;
    if (peer.snapshotTicks === 0 || progress === null || progress.index !== m.meta.index) return;
    if (m.chunk + 1 < progress.from) {
      // the follower holds less than this transfer resumed after (it lost the earlier chunks):
      // start again from what it has
      updatePeer(ctx, i, {
        snapshotTicks: 0,
        active: true,
        snapshotProgress: { ...progress, next: m.chunk + 1 },
      });
      replicate(ctx, i);
      return;
    }
    updatePeer(ctx, i, {
      snapshotTicks: 2 * s.cfg.electionTimeoutTicks,
      active: true,
      snapshotProgress: {
        ...progress,
        next: Math.max(progress.next, m.chunk + 1),
        answered: true,
      },
    });
    return;
  }
  const matchIndex = Math.max(peer.matchIndex, m.meta.index);
  updatePeer(ctx, i, {
    matchIndex,
    nextIndex: matchIndex + 1,
    inFlight: 0,
    snapshotTicks: 0,
    snapshotProgress: null,
    active: true,
    replied: true,
  });
  ctx.fx.push({ type: 'hook', hook: 'restored', meta: m.meta });
  replicate(ctx, i);
}
