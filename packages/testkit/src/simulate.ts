import type { Pid } from '@otra/protocol';
import type { Machine, Reply } from '@otra/raft-core';
import { Cluster, type ClusterOptions, type Driver } from './cluster.ts';
import { type KvState, kvMachine } from './kv.ts';
import { checkKv, type RegisterOp } from './linearizability.ts';

export interface SimulationOptions {
  readonly seed: number;
  /** Number of servers (3 or 5 in CI). */
  readonly servers?: number;
  /** Length of the fault phase; then faults heal and the cluster must make progress. */
  readonly faultMs?: number;
  /** How long a healed cluster gets to elect a leader, commit a probe and converge. */
  readonly settleMs?: number;
  readonly clients?: number;
  readonly keys?: number;
  /** Release a snapshot every this many applied commands (0: never). */
  readonly snapshotEvery?: number;
  /**
   * Characters per snapshot chunk (the cluster's default, 64, otherwise). Small chunks make
   * transfers long, so more of them stall under faults and are resumed.
   */
  readonly snapshotChunkChars?: number;
  readonly driver?: Driver;
  readonly transcript?: (line: string) => void;
  /** Turn random faults off (drop, duplicate, partitions, crashes). */
  readonly faults?: boolean;
  /**
   * The core's quiescence after this many idle ticks (0: off). The clients then also pause
   * together now and then, so that groups fall asleep and must wake up under faults.
   */
  readonly quiesceAfterTicks?: number;
  /**
   * Command de-duplication: every put carries a request id (its retries keep it), and one put in
   * five is also sent, as a copy, to another server. Each put must take effect once: a copy
   * applied again would show in the linearizability check, and members deciding differently
   * would show as diverging states.
   */
  readonly requestIds?: boolean;
  /**
   * Group commit: each server's log writer confirms the appends that complete within 0-5 ms with
   * one `log.written`, as the real writer confirms a batch (so one follower reply may answer
   * several AppendEntries). Off by default.
   */
  readonly groupCommit?: boolean;
  /**
   * Membership churn during the fault phase: now and then the leader is asked to add one of two
   * spare servers (as a voter, a promotable member or a non-voter), to remove a member (never
   * below `minVoters` voters) or to hand its leadership to a voter. Removed servers keep running, and
   * may be added again later with the log they kept. Faults reach the spares too. Off by default.
   */
  readonly membership?: boolean;
  /**
   * With `membership`: the fewest voters a removal may leave (1-3, default 3). Below three, a
   * configuration of one voter (which commits with its own write alone) or of two (which needs
   * both) is reached now and then, the leader removing itself from one included.
   */
  readonly minVoters?: number;
}

export interface SimulationResult {
  readonly seed: number;
  readonly steps: number;
  readonly committed: number;
  readonly elections: number;
  readonly ops: {
    readonly ok: number;
    readonly unknown: number;
    readonly retried: number;
    /** Puts also sent as a copy to a second server (`requestIds`). */
    readonly copies: number;
    /** Puts still unanswered when the history was checked: unknown outcomes, like timed-out ones. */
    readonly pendingAtEnd: number;
  };
  readonly faults: number;
  /** With `groupCommit`: appends confirmed together with a later one rather than on their own. */
  readonly writesCoalesced: number;
  /** Effects executed, by type (e.g. how many snapshots were installed). */
  readonly effects: Readonly<Record<string, number>>;
  /** Snapshot transfers that resumed after the follower's last acknowledged chunk. */
  readonly transfersResumed: number;
  /**
   * With `membership`: joins and leaves the leader was asked for, those answered `ok` (committed),
   * and leadership transfers asked for.
   */
  readonly membershipChanges: {
    readonly asked: number;
    readonly committed: number;
    readonly transfers: number;
  };
}

export class SimulationFailure extends Error {
  constructor(
    readonly seed: number,
    cause: unknown,
  ) {
    super(
      `simulation failed with seed ${seed}: ${cause instanceof Error ? cause.message : String(cause)}\n` +
        `replay: runSimulation({ seed: ${seed}, ... }) or pnpm soak --seed ${seed}`,
      { cause },
    );
  }
}

type ClientOp =
  | { readonly kind: 'put'; readonly key: string; readonly value: string }
  | { readonly kind: 'get'; readonly key: string };

interface Client {
  readonly name: string;
  readonly pid: Pid;
  target: string;
  ref: number;
  pending: { op: ClientOp; invoke: number; ref: number; retries: number } | null;
  seq: number;
}

/**
 * One seeded run: a KV cluster under random faults (message loss, duplication, delay/reordering,
 * symmetric, one-way and partial partitions, crashes and restarts) with clients issuing puts
 * (commands) and consistent reads (read-index queries). Safety is checked after every step; after
 * the fault phase the network heals, every server restarts, and the cluster must elect a leader,
 * commit a new command and converge. The client history must be linearizable.
 */
export function runSimulation(options: SimulationOptions): SimulationResult {
  try {
    return simulate(options);
  } catch (err) {
    throw new SimulationFailure(options.seed, err);
  }
}

function simulate(options: SimulationOptions): SimulationResult {
  const n = options.servers ?? 3;
  const faultMs = options.faultMs ?? 5000;
  const settleMs = options.settleMs ?? 5000;
  const faultsOn = options.faults ?? true;
  const names = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const snapshotEvery = options.snapshotEvery ?? 0;
  const clusterOptions: ClusterOptions = {
    seed: options.seed,
    servers: names,
    machine: () => kvMachine(snapshotEvery) as Machine<unknown, unknown, unknown>,
    driver: options.driver ?? 'handle',
    crashAfterVote: faultsOn ? 0.3 : 0,
    quiesceAfterTicks: options.quiesceAfterTicks ?? 0,
    // half the seeds keep a few entries below each snapshot (a follower lagging by fewer is sent
    // entries), half none (every lagging follower is sent the snapshot)
    trailingEntries: (options.seed >> 1) % 2 === 0 ? 0 : 1 + (options.seed % 5),
    ...(options.groupCommit === true ? { groupCommitMs: [0, 5] as const } : {}),
    ...(options.snapshotChunkChars === undefined ? {} : { snapshotChunkChars: options.snapshotChunkChars }),
    // Slow disks some runs: widens the window between append and durability that crashes hit.
    writeDelayMs: [[0, 2] as const, [0, 10] as const, [2, 40] as const][options.seed % 3]!,
    metaDelayMs: [[0, 1] as const, [0, 5] as const, [1, 20] as const][(options.seed >> 2) % 3]!,
    ...(options.transcript === undefined ? {} : { transcript: options.transcript }),
  };
  const c = new Cluster(clusterOptions);
  const rng = c.rng;
  if (faultsOn) {
    c.network.faults = {
      drop: rng.pick([0, 0.01, 0.05, 0.1]),
      duplicate: rng.pick([0, 0.01, 0.05]),
      minDelayMs: 1,
      maxDelayMs: rng.pick([5, 20, 60]),
    };
  }
  c.start();

  // ---- clients
  const keys = Array.from({ length: options.keys ?? 3 }, (_, i) => `k${i}`);
  const history = new Map<string, RegisterOp[]>(keys.map((k) => [k, []]));
  let logical = 0;
  const stamp = () => ++logical;
  let okOps = 0;
  let unknownOps = 0;
  let retried = 0;
  let copies = 0;
  let clientsActive = true;
  const clients: Client[] = Array.from({ length: options.clients ?? 5 }, (_, i) => {
    const name = `client${i + 1}`;
    return {
      name,
      pid: { node: name, id: 1, creation: 1 },
      target: rng.pick(names),
      ref: 0,
      pending: null,
      seq: 0,
    };
  });
  const byNode = new Map(clients.map((cl) => [cl.name, cl]));
  const clientTimeoutMs = 1500;
  /** A put whose outcome the client never learns: in the history as a write that may never end. */
  const unknownWrite = (p: NonNullable<Client['pending']>): boolean => {
    if (p.op.kind !== 'put') return false;
    history.get(p.op.key)!.push({ kind: 'write', value: p.op.value, invoke: p.invoke, response: Infinity });
    return true;
  };

  const issue = (cl: Client) => {
    const p = cl.pending!;
    cl.ref++;
    p.ref = cl.ref;
    const from = { pid: cl.pid, ref: cl.ref };
    if (p.op.kind === 'put') {
      const command = { op: 'put', key: p.op.key, value: p.op.value };
      if (options.requestIds === true) {
        // the value is unique to this op: it doubles as the request id
        const msg = {
          type: 'command',
          command,
          reply: { mode: 'await_consensus', from },
          requestId: p.op.value,
        } as const;
        c.sendFromClient(cl.name, cl.target, msg);
        if (rng.chance(0.2)) {
          copies++;
          c.sendFromClient(cl.name, rng.pick(names), msg);
        }
      } else {
        c.sendFromClient(cl.name, cl.target, {
          type: 'command',
          command,
          reply: { mode: 'await_consensus', from },
        });
      }
    } else {
      const key = p.op.key;
      c.sendFromClient(cl.name, cl.target, {
        type: 'query',
        kind: 'consistent',
        fn: (s) => (s as KvState).data[key] ?? null,
        from,
      });
    }
    const ref = cl.ref;
    c.at(c.now + clientTimeoutMs, () => {
      if (cl.pending === null || cl.pending.ref !== ref) return;
      // Unknown outcome: a put may take effect any time from its invocation, or never.
      unknownWrite(cl.pending);
      unknownOps++;
      cl.pending = null;
      cl.target = rng.pick(names);
      next(cl, 10);
    });
  };

  // with quiescence: every client pauses until `pausedUntil`, so the group goes idle
  let pausedUntil = 0;
  const next = (cl: Client, delay: number) => {
    if (!clientsActive) return;
    c.at(Math.max(c.now + delay, pausedUntil), () => {
      if (!clientsActive || cl.pending !== null) return;
      if (c.now < pausedUntil) {
        next(cl, 0);
        return;
      }
      const key = rng.pick(keys);
      cl.seq++;
      const op: ClientOp = rng.chance(0.5)
        ? { kind: 'put', key, value: `${cl.name}.${cl.seq}` }
        : { kind: 'get', key };
      cl.pending = { op, invoke: stamp(), ref: 0, retries: 0 };
      issue(cl);
    });
  };

  c.onReply = (to, reply) => {
    if (to.pid.node === 'membership') {
      if (!('notify' in reply) && reply.type === 'ok') membershipDone.add(to.ref ?? -1);
      return;
    }
    const cl = byNode.get(to.pid.node);
    if (cl === undefined || 'notify' in reply) return;
    onClientReply(cl, to.ref ?? -1, reply);
  };
  const onClientReply = (cl: Client, ref: number, r: Reply) => {
    const p = cl.pending;
    // Replies to an earlier attempt (or duplicated by the network) are ignored.
    if (p === null || p.ref !== ref) return;
    switch (r.type) {
      case 'applied':
        if (p.op.kind !== 'put') return;
        history
          .get(p.op.key)!
          .push({ kind: 'write', value: p.op.value, invoke: p.invoke, response: stamp() });
        break;
      case 'query':
        if (p.op.kind !== 'get') return;
        history
          .get(p.op.key)!
          .push({ kind: 'read', value: r.result as string | null, invoke: p.invoke, response: stamp() });
        break;
      case 'error':
        // Not appended (not_leader) or not answered (leadership_lost): safe to retry elsewhere.
        // Once: a copy of this reply (the network duplicates) must not send a second retry, which
        // would put the command in the log twice for one write in the history.
        p.ref = -1;
        retried++;
        p.retries++;
        cl.target = r.leader?.name ?? rng.pick(names);
        c.at(c.now + (p.retries > 3 ? 50 : 1), () => {
          if (cl.pending === p) issue(cl);
        });
        return;
      default:
        return;
    }
    okOps++;
    cl.pending = null;
    next(cl, rng.int(0, 20));
  };
  for (const cl of clients) next(cl, rng.int(0, 50));
  if ((options.quiesceAfterTicks ?? 0) > 0) {
    const pause = (t: number): void => {
      if (t >= faultMs) return;
      c.at(t, () => {
        pausedUntil = c.now + rng.int(200, 1200);
        c.transcriptLine(`clients pause until ${pausedUntil}`);
        pause(pausedUntil + rng.int(100, 800));
      });
    };
    pause(rng.int(200, 800));
  }

  // ---- membership churn
  const spares = options.membership === true ? [`n${n + 1}`, `n${n + 2}`] : [];
  const minVoters = options.minVoters ?? 3;
  if (!Number.isInteger(minVoters) || minVoters < 1 || minVoters > 3)
    throw new Error(`minVoters is 1, 2 or 3, not ${minVoters}`);
  /** Every server started so far: the initial ones, then spares once first added. */
  const started = () => [...c.servers.keys()];
  let membershipAsked = 0;
  let transfersAsked = 0;
  let membershipRef = 0;
  /** Joins and leaves answered `ok` (their configuration committed), by ref: a reply may come twice. */
  const membershipDone = new Set<number>();
  const latestMembers = (): readonly { id: { name: string }; membership: string }[] | undefined =>
    c.leader()?.state.configs.at(-1)?.members;
  /** Whether `name` is in the leader's latest configuration (true while there is no leader). */
  const inConfig = (name: string) => latestMembers()?.some((m) => m.id.name === name) ?? true;
  const changeMembership = () => {
    const leader = c.leader();
    const members = latestMembers();
    if (leader === undefined || members === undefined) return;
    const voters = members.filter((m) => m.membership === 'voter');
    if (rng.chance(0.15)) {
      // now and then a leadership transfer instead, to any voter (the leader itself included); its
      // answer goes to a pid of its own, apart from the configuration changes counted
      const name = rng.pick(voters).id.name;
      c.transcriptLine(`membership transfer to ${name}`);
      c.send(leader.name, {
        type: 'transfer_leadership',
        to: { name, node: name },
        from: { pid: { node: 'transfer', id: 1, creation: 1 }, ref: ++membershipRef },
      });
      transfersAsked++;
      return;
    }
    const from = { pid: { node: 'membership', id: 1, creation: 1 }, ref: ++membershipRef };
    const outside = [...names, ...spares].filter((x) => !inConfig(x));
    if (outside.length > 0 && (rng.chance(0.5) || voters.length <= minVoters)) {
      const name = rng.pick(outside);
      if (!c.servers.has(name)) {
        c.addServer(name);
        // a server added for the first time starts with the cluster it joins (never campaigning)
        c.restart(name, c.members);
      }
      const membership = rng.pick(['voter', 'promotable', 'non_voter'] as const);
      c.transcriptLine(`membership join ${name} as ${membership}`);
      c.send(leader.name, {
        type: 'membership.join',
        member: { id: { name, node: name }, membership },
        from,
      });
    } else {
      const candidates = members.filter((m) => m.membership !== 'voter' || voters.length > minVoters);
      if (candidates.length === 0) return;
      const name = rng.pick(candidates).id.name;
      c.transcriptLine(`membership leave ${name}`);
      c.send(leader.name, { type: 'membership.leave', id: { name, node: name }, from });
    }
    membershipAsked++;
  };
  const scheduleMembership = (t: number) => {
    if (spares.length === 0 || t >= faultMs) return;
    c.at(t, () => {
      changeMembership();
      scheduleMembership(c.now + rng.int(200, 900));
    });
  };
  scheduleMembership(rng.int(200, 600));

  // ---- faults
  let faults = 0;
  const [gapMin, gapMax] = rng.pick([
    [100, 600],
    [30, 250],
  ] as const);
  const scheduleFault = (t: number) => {
    if (!faultsOn || t >= faultMs) return;
    c.at(t, () => {
      faults++;
      injectFault(c, started());
      scheduleFault(c.now + rng.int(gapMin, gapMax));
    });
  };
  scheduleFault(rng.int(100, 400));

  c.runUntilTime(faultMs);

  // ---- heal and check progress
  clientsActive = false;
  c.network.healAll();
  c.network.faults = { ...c.network.faults, drop: 0, duplicate: 0 };
  for (const name of started()) if (!c.server(name).up) c.restart(name);
  // Let outstanding client calls finish or time out before the probe.
  c.runFor(clientTimeoutMs + 100);
  let probeOk = false;
  let probeIndex = 0;
  const probeFrom = { pid: { node: 'probe', id: 1, creation: 1 }, ref: 1 };
  const sendProbe = () => {
    const leader = c.leader();
    if (leader === undefined || probeOk) return;
    c.send(leader.name, {
      type: 'command',
      command: { op: 'put', key: 'probe', value: 'done' },
      reply: { mode: 'await_consensus', from: probeFrom },
    });
  };
  const prevOnReply = c.onReply;
  c.onReply = (to, reply) => {
    if (to.pid.node === 'probe') {
      if (!('notify' in reply) && reply.type === 'applied') {
        probeOk = true;
        probeIndex = reply.index;
      }
      return;
    }
    prevOnReply(to, reply);
  };
  const deadline = c.now + settleMs;
  while (!probeOk && c.now < deadline) {
    sendProbe();
    c.runFor(200);
  }
  if (!probeOk) throw new Error(`no progress: probe not committed within ${settleMs}ms after healing`);
  // the members of the configuration in force converge; a removed server is left where it was
  const converged = c.runUntil(
    () =>
      [...c.servers.values()].every((s) => !inConfig(s.name) || (s.up && s.state.lastApplied >= probeIndex)),
    settleMs,
  );
  if (!converged) {
    const where = [...c.servers.values()].map((s) => `${s.name}:${s.role}@${s.state.lastApplied}`).join(' ');
    throw new Error(`servers did not converge to ${probeIndex}: ${where}`);
  }

  // A put still unanswered now (its retry chain outlived the run) may have been applied, or not:
  // it is an unknown outcome, as a timed-out one is.
  let pendingAtEnd = 0;
  for (const cl of clients) if (cl.pending !== null && unknownWrite(cl.pending)) pendingAtEnd++;
  const lin = checkKv(history);
  if (!lin.ok) {
    // the key's operations in invocation order, to read next to the transcript
    const ops = [...history.get(lin.key!)!].sort((a, b) => a.invoke - b.invoke);
    const shown = ops.map((o) => `  ${o.kind} ${o.value} [${o.invoke}, ${o.response}]`).slice(0, 80);
    throw new Error(`history of key ${lin.key} is not linearizable:\n${shown.join('\n')}`);
  }

  let elections = 0;
  for (const s of c.servers.values()) elections = Math.max(elections, s.state.currentTerm);
  return {
    seed: options.seed,
    steps: c.steps,
    committed: c.checker.committedIndex,
    elections,
    ops: { ok: okOps, unknown: unknownOps, retried, copies, pendingAtEnd },
    faults,
    writesCoalesced: c.writesCoalesced,
    effects: Object.fromEntries(c.effectCounts),
    transfersResumed: c.transfersResumed,
    membershipChanges: { asked: membershipAsked, committed: membershipDone.size, transfers: transfersAsked },
  };
}

/** One random fault: partitions (symmetric, one-way, partial), crash/restart, or healing. */
function injectFault(c: Cluster, names: readonly string[]): void {
  const rng = c.rng;
  const r = rng.next();
  if (r < 0.2) {
    const shuffled = rng.shuffle(names);
    const k = rng.int(1, names.length - 1);
    c.network.partition([shuffled.slice(0, k), shuffled.slice(k)]);
    c.transcriptLine(`fault partition ${shuffled.slice(0, k).join(',')} | ${shuffled.slice(k).join(',')}`);
  } else if (r < 0.35) {
    const [a, b] = rng.shuffle(names);
    c.network.cutLink(a!, b!);
    c.transcriptLine(`fault cut ${a} -> ${b}`);
  } else if (r < 0.5) {
    // Partial: a follower loses the leader (both ways) but still reaches the others.
    const leader = c.leader()?.name ?? rng.pick(names);
    const other = rng.pick(names.filter((x) => x !== leader));
    c.network.cutBoth(leader, other);
    c.transcriptLine(`fault partial ${leader} x ${other}`);
  } else if (r < 0.6) {
    // Bounce: crash and come straight back, losing only what was in flight to disk.
    const victim = rng.pick(names);
    c.crash(victim);
    c.at(c.now + rng.int(1, 30), () => {
      if (!c.server(victim).up) c.restart(victim);
    });
  } else if (r < 0.75) {
    const victim = rng.chance(0.5) ? (c.leader()?.name ?? rng.pick(names)) : rng.pick(names);
    c.crash(victim);
    c.at(c.now + rng.int(50, 800), () => {
      if (!c.server(victim).up) c.restart(victim);
    });
  } else {
    c.network.healAll();
    c.transcriptLine('fault heal');
  }
}
