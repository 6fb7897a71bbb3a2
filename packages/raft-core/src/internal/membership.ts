import type { ClusterConfig, ClusterMember, ConfigEntry, From, ServerId } from '@otra/protocol';
import { serverIdKey } from '@otra/protocol';
import { type Ctx, cluster, isVoter, peerIndex, reply, replyError, send } from './context.ts';
import { newPeer } from './election.ts';
import { appendOne, lastIndex } from './log.ts';
import { replicateAll } from './replication.ts';

/**
 * One change at a time (the Raft thesis §4.1 single-server changes, as ra): refused while the
 * last configuration is uncommitted or before this leader committed its first entry.
 */
function changeAllowed(ctx: Ctx): boolean {
  const s = ctx.s;
  return s.configs[s.configs.length - 1]!.index <= s.commitIndex && s.commitIndex >= s.leader!.termStartIndex;
}

function sorted(members: ClusterMember[]): ClusterConfig {
  return members.sort((a, b) => {
    const ka = serverIdKey(a.id);
    const kb = serverIdKey(b.id);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}

/** Appends a configuration entry; it takes effect now, peers follow it. */
function appendConfig(ctx: Ctx, members: ClusterConfig, from: From | undefined): void {
  const s = ctx.s;
  const base = {
    type: 'config' as const,
    index: lastIndex(s.log) + 1,
    term: s.currentTerm,
    cluster: members,
  };
  const entry: ConfigEntry = from === undefined ? base : { ...base, from };
  s.log = appendOne(s.log, entry);
  s.configs = [...s.configs, { index: entry.index, members }];
  const leader = s.leader!;
  const peers = [];
  for (const m of members) {
    const key = serverIdKey(m.id);
    if (key === s.cfg.idKey) continue;
    const i = peerIndex(leader, key);
    peers.push(i >= 0 ? leader.peers[i]! : newPeer(m.id, key, entry.index));
  }
  s.leader = { ...leader, peers };
  ctx.fx.push({ type: 'log.append', entries: [entry] });
  replicateAll(ctx);
}

export function onJoin(ctx: Ctx, member: ClusterMember, from: From): void {
  const s = ctx.s;
  if (ctx.role !== 'leader') {
    replyError(ctx, from, 'not_leader');
    return;
  }
  if (!changeAllowed(ctx)) {
    replyError(ctx, from, 'cluster_change_not_permitted');
    return;
  }
  const key = serverIdKey(member.id);
  if (cluster(s).some((m) => serverIdKey(m.id) === key)) {
    replyError(ctx, from, 'already_member');
    return;
  }
  const added: ClusterMember =
    member.membership === 'promotable'
      ? { ...member, targetIndex: member.targetIndex ?? lastIndex(s.log) }
      : member;
  appendConfig(ctx, sorted([...cluster(s), added]), from);
  ctx.fx.push({ type: 'hook', hook: 'follower_added', member: added });
}

export function onLeave(ctx: Ctx, id: ServerId, from: From): void {
  const s = ctx.s;
  if (ctx.role !== 'leader') {
    replyError(ctx, from, 'not_leader');
    return;
  }
  if (!changeAllowed(ctx)) {
    replyError(ctx, from, 'cluster_change_not_permitted');
    return;
  }
  const key = serverIdKey(id);
  const members = cluster(s).filter((m) => serverIdKey(m.id) !== key);
  if (members.length === cluster(s).length) {
    replyError(ctx, from, 'not_member');
    return;
  }
  appendConfig(ctx, members, from);
  // The leader's own removal is announced when it commits (and it steps down then).
  if (key !== s.cfg.idKey) ctx.fx.push({ type: 'hook', hook: 'follower_removed', id });
}

/** A promotable member that replicated up to its target index becomes a voter. */
export function maybePromote(ctx: Ctx, key: string, matchIndex: number): void {
  const s = ctx.s;
  const members = cluster(s);
  const m = members.find((x) => serverIdKey(x.id) === key);
  if (m === undefined || m.membership !== 'promotable' || matchIndex < (m.targetIndex ?? 0)) return;
  if (!changeAllowed(ctx)) return;
  const promoted: ClusterMember = { id: m.id, membership: 'voter' };
  appendConfig(
    ctx,
    members.map((x) => (x === m ? promoted : x)),
    undefined,
  );
}

/** Leadership transfer: only to an up-to-date voter; the target campaigns at once on `timeout_now`. */
export function onTransfer(ctx: Ctx, to: ServerId, from: From): void {
  const s = ctx.s;
  if (ctx.role !== 'leader') {
    replyError(ctx, from, 'not_leader');
    return;
  }
  const key = serverIdKey(to);
  if (key === s.cfg.idKey) {
    reply(ctx, from, { type: 'ok', leader: s.cfg.id });
    return;
  }
  if (!isVoter(s, key)) {
    replyError(ctx, from, 'not_voter');
    return;
  }
  const leader = s.leader!;
  const peer = leader.peers[peerIndex(leader, key)];
  if (peer === undefined || peer.matchIndex < lastIndex(s.log)) {
    replyError(ctx, from, 'not_up_to_date');
    return;
  }
  send(ctx, to, { type: 'timeout_now', from: s.cfg.id, term: s.currentTerm });
  reply(ctx, from, { type: 'ok', leader: s.cfg.id });
}
