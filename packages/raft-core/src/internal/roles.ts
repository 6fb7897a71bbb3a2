import type { ServerId } from '@otra/protocol';
import type { MachineRole } from '../machine.ts';
import type { Role } from '../types.ts';
import { armElectionTimer, type Ctx, persistMetaCoalesced, replyError } from './context.ts';
import { wake } from './quiesce.ts';

/** Tells the machine about a role change (its effects run on every role, as ra's state_enter). */
export function enterRole(ctx: Ctx, role: Role): void {
  const from = ctx.role;
  if (from === role) return;
  // a sleeping server wakes before it changes role (it stops watching, in its old role)
  wake(ctx);
  ctx.role = role;
  const machine = ctx.s.cfg.machine;
  if (machine.stateEnter !== undefined) {
    const effects = machine.stateEnter(role as MachineRole, ctx.s.machineState);
    for (const effect of effects) ctx.fx.push({ type: 'machine', effect });
  }
}

/**
 * A higher term seen in any RPC: adopt it, forget the vote, and step down to follower. The
 * `meta.persist` is emitted first, so anything the caller emits after it (a vote, an ack) only
 * leaves once the new term is durable.
 */
export function observeTerm(ctx: Ctx, term: number, leaderId: ServerId | null): void {
  if (term <= ctx.s.currentTerm) return;
  ctx.s.currentTerm = term;
  ctx.s.votedFor = null;
  ctx.s.matchedIndex = 0;
  ctx.s.leaderRound = 0;
  persistMetaCoalesced(ctx);
  becomeFollower(ctx, leaderId);
}

/** Steps down (or stays) to follower of `leaderId` in the current term. */
export function becomeFollower(ctx: Ctx, leaderId: ServerId | null): void {
  const s = ctx.s;
  wake(ctx);
  s.leaderId = leaderId;
  if (ctx.role === 'leader') abandonLeadership(ctx);
  s.votes = [];
  s.receiving = null;
  if (ctx.role !== 'follower') {
    enterRole(ctx, 'follower');
    armElectionTimer(ctx);
  }
}

/** A leader stepping down fails what only a leader can finish. Appended commands stay in the log. */
function abandonLeadership(ctx: Ctx): void {
  const leader = ctx.s.leader;
  ctx.s.leader = null;
  if (leader === null) return;
  for (const q of leader.queries) replyError(ctx, q.from, 'leadership_lost');
  rejectCommands(ctx, leader.lowQueue, 'not_leader');
}

export function rejectCommands(
  ctx: Ctx,
  commands: readonly { readonly reply: import('@otra/protocol').ReplyMode }[],
  error: 'not_leader',
): void {
  let batches: Map<string, { to: import('@otra/protocol').Pid; correlations: (string | number)[] }> | null =
    null;
  for (const c of commands) {
    const r = c.reply;
    switch (r.mode) {
      case 'await_consensus':
      case 'after_log_append':
        replyError(ctx, r.from, error);
        break;
      case 'notify': {
        batches ??= new Map();
        const key = `${r.to.node}.${r.to.id}.${r.to.creation}`;
        let b = batches.get(key);
        if (b === undefined) {
          b = { to: r.to, correlations: [] };
          batches.set(key, b);
        }
        b.correlations.push(r.correlation);
        break;
      }
      case 'noreply':
        break;
    }
  }
  if (batches !== null) {
    for (const b of batches.values()) {
      ctx.fx.push({
        type: 'notify.rejected',
        to: b.to,
        correlations: b.correlations,
        error,
        leader: ctx.s.leaderId,
      });
    }
  }
}
