import type { CommandEntry, From, LogEntry, Pid, ServerId, SnapshotMeta } from '@otra/protocol';
import { assertNever } from '@otra/protocol';
import {
  chartTakes,
  type Effect,
  type HandleResult,
  handle,
  initServer,
  type Machine,
  type Message,
  type RaftContext,
  type Reply,
  type Role,
  raftMachine,
  roleChange,
  type ServerConfig,
  type ServerState,
  startServer,
  swapAppliedEntries,
} from '@otra/raft-core';
import { initialTransition, type SnapshotFrom, transition } from 'xstate';
import { SafetyChecker } from './invariants.ts';
import { type NetworkFaults, SimNetwork } from './network.ts';
import { EventQueue, Prng, SimClock } from './prng.ts';
import { MemoryStorage } from './storage.ts';
import { describeMessage } from './transcript.ts';

/** How the simulator runs each server's core (see `ClusterOptions.driver`). */
export type Driver = 'handle' | 'statechart' | 'roles';

export interface ClusterOptions {
  readonly seed: number;
  /** Server names; each is its own node. */
  readonly servers: readonly string[];
  readonly machine: () => Machine<unknown, unknown, unknown>;
  readonly tickMs?: number;
  readonly electionTimeoutMs?: readonly [number, number];
  readonly electionTimeoutTicks?: number;
  readonly maxAppendEntriesBatch?: number;
  readonly maxInFlight?: number;
  /** How long the log writer and the meta store take to make a write durable. */
  readonly writeDelayMs?: readonly [number, number];
  readonly metaDelayMs?: readonly [number, number];
  readonly network?: Partial<NetworkFaults>;
  /**
   * `handle` drives the pure handlers; `statechart` drives the XState chart through `transition`;
   * `roles` drives the handlers and hands the chart the results `chartTakes` picks (every role
   * change), as the RaftServer shell does, checking that the chart lands in the core's role.
   */
  readonly driver?: Driver;
  /** Receives one line per message, role change and fault. */
  readonly transcript?: (line: string) => void;
  readonly snapshotChunkChars?: number;
  /** Check the four safety properties after every step (default true). */
  readonly checkSafety?: boolean;
  /**
   * Probability of crashing a server right after it sent a granted vote (restarting it 1-10 ms
   * later): a vote that was not durable before it left would then be cast twice in one term.
   */
  readonly crashAfterVote?: number;
  /** The core's quiescence (0, the default: never). Monitors are simulated for it (see `SimServer`). */
  readonly quiesceAfterTicks?: number;
  /** The core's `trailingEntries` (default here 0: every lagging follower is sent the snapshot). */
  readonly trailingEntries?: number;
  /**
   * Group commit, as the real log writer confirms a batch: a completed append's `log.written` is
   * held for a delay drawn from this range, and appends completing meanwhile are confirmed by the
   * same one (the latest). Off by default: each append is confirmed on its own.
   */
  readonly groupCommitMs?: readonly [number, number];
}

type WriteOp =
  | { readonly op: 'append'; readonly effect: Extract<Effect, { type: 'log.append' }> }
  | { readonly op: 'truncate_prefix'; readonly upTo: number }
  | { readonly op: 'snapshot'; readonly meta: SnapshotMeta; readonly machineState: unknown }
  | { readonly op: 'install'; readonly meta: SnapshotMeta; readonly machineState: unknown };

type SimEvent =
  | { readonly kind: 'deliver'; readonly to: string; readonly msg: Message }
  | { readonly kind: 'local'; readonly to: string; readonly inc: number; readonly msg: Message }
  | { readonly kind: 'timer'; readonly to: string; readonly inc: number; readonly gen: number }
  | { readonly kind: 'tick'; readonly to: string; readonly inc: number }
  | { readonly kind: 'write'; readonly to: string; readonly inc: number; readonly write: WriteOp }
  | {
      readonly kind: 'resume';
      readonly to: string;
      readonly inc: number;
      readonly effects: readonly Effect[];
      readonly from: number;
    }
  | { readonly kind: 'call'; readonly fn: () => void };

/** One simulated server: its durable storage survives crashes, everything else does not. */
export class SimServer {
  readonly storage = new MemoryStorage();
  up = false;
  /** Incarnation: events addressed to an earlier one (timers, write completions) are void. */
  inc = 0;
  role: Role = 'follower';
  state!: ServerState;
  chart: SnapshotFrom<typeof raftMachine> | null = null;
  timerGen = 0;
  writerFreeAt = 0;
  /** Group commit: the confirmation held back for appends completed since the last one. */
  heldWritten: { readonly index: number; readonly term: number } | null = null;
  /** While a `meta.persist` barrier is pending, the server processes nothing else. */
  blockedUntil = -1;
  chunks: string[] = [];
  /**
   * Quiescence monitors, as the runtime's process monitors behave: the watched server (by name)
   * gets one `leader.down` / `peer.down` when it crashes or a link between the two is cut (either
   * way: a real link dies as a whole). Random message loss is not a link failure.
   */
  leaderWatch: string | null = null;
  peerWatches = new Set<string>();
  constructor(
    readonly name: string,
    readonly id: ServerId,
  ) {}
}

/** Receives replies (with the call's `ref`) and notifications (without) sent to non-server pids. */
export type ReplyListener = (
  to: { readonly pid: Pid; readonly ref?: number },
  reply: Reply | { notify: unknown },
) => void;

/**
 * A deterministic simulated cluster running the real core: simulated clock, network, log writer
 * and meta store with delays (so "persist before send" is exercised), crash and restart losing what
 * was not durable, and the safety checker after every step. Same seed, same run.
 */
export class Cluster {
  readonly rng: Prng;
  readonly clock = new SimClock();
  readonly network: SimNetwork;
  readonly servers = new Map<string, SimServer>();
  readonly checker = new SafetyChecker();
  readonly members: ServerId[];
  private readonly queue = new EventQueue<SimEvent>();
  private readonly opts: Required<Omit<ClusterOptions, 'transcript' | 'network' | 'groupCommitMs'>> &
    Pick<ClusterOptions, 'transcript' | 'groupCommitMs'>;
  /** Where replies and notifications to pids on the `client` node go. */
  onReply: ReplyListener = () => {};
  steps = 0;
  /** Group commit: appends confirmed by a later append's `log.written` instead of their own. */
  writesCoalesced = 0;
  /** Effects seen, by type (for tests and transcripts). */
  readonly effectCounts = new Map<string, number>();
  /** Snapshot transfers that resumed a stalled one (`snapshot.send` from a chunk above 0). */
  transfersResumed = 0;

  constructor(options: ClusterOptions) {
    this.opts = {
      tickMs: 50,
      electionTimeoutMs: [300, 600],
      electionTimeoutTicks: 6,
      maxAppendEntriesBatch: 64,
      maxInFlight: 4,
      writeDelayMs: [0, 5],
      metaDelayMs: [0, 3],
      driver: 'handle',
      snapshotChunkChars: 64,
      checkSafety: true,
      crashAfterVote: 0,
      quiesceAfterTicks: 0,
      trailingEntries: 0,
      ...options,
    };
    this.rng = new Prng(options.seed);
    this.network = new SimNetwork(this.rng, {
      drop: 0,
      duplicate: 0,
      minDelayMs: 1,
      maxDelayMs: 10,
      ...options.network,
    });
    this.members = options.servers.map((name) => ({ name, node: name }));
    for (const id of this.members) this.servers.set(id.name, new SimServer(id.name, id));
  }

  get now(): number {
    return this.clock.now();
  }

  /** Adds a line to the transcript (faults, test narration). */
  transcriptLine(line: string): void {
    this.log(line);
  }

  private log(line: string): void {
    if (this.opts.transcript !== undefined) this.opts.transcript(`[${String(this.now).padStart(6)}] ${line}`);
  }

  config(name: string): ServerConfig {
    return {
      id: { name, node: name },
      initialMembers: this.members,
      machine: this.opts.machine(),
      electionTimeoutMs: this.opts.electionTimeoutMs,
      electionTimeoutTicks: this.opts.electionTimeoutTicks,
      maxAppendEntriesBatch: this.opts.maxAppendEntriesBatch,
      maxInFlight: this.opts.maxInFlight,
      quiesceAfterTicks: this.opts.quiesceAfterTicks,
      trailingEntries: this.opts.trailingEntries,
    };
  }

  /** Starts every server (or the named ones) from its durable storage. */
  start(names: readonly string[] = [...this.servers.keys()]): void {
    for (const name of names) this.restart(name);
  }

  /** Adds a server that is not (yet) in the configuration, e.g. to join it. */
  addServer(name: string): SimServer {
    const s = new SimServer(name, { name, node: name });
    this.servers.set(name, s);
    return s;
  }

  server(name: string): SimServer {
    const s = this.servers.get(name);
    if (s === undefined) throw new Error(`no server ${name}`);
    return s;
  }

  crash(name: string): void {
    const s = this.server(name);
    if (!s.up) return;
    s.up = false;
    s.inc++;
    s.blockedUntil = -1;
    s.heldWritten = null;
    s.chunks = [];
    s.leaderWatch = null;
    s.peerWatches.clear();
    this.log(`${name} crash`);
    this.checkWatches();
  }

  /** Fires the quiescence monitors whose target crashed or whose link was cut. */
  checkWatches(): void {
    for (const w of this.servers.values()) {
      if (!w.up) continue;
      const gone = (target: string): boolean => {
        const t = this.servers.get(target);
        return (
          t === undefined || !t.up || this.network.isCut(w.name, target) || this.network.isCut(target, w.name)
        );
      };
      if (w.leaderWatch !== null && gone(w.leaderWatch)) {
        w.leaderWatch = null;
        this.queue.push(this.now + 1, {
          kind: 'local',
          to: w.name,
          inc: w.inc,
          msg: { type: 'leader.down' },
        });
      }
      for (const target of w.peerWatches) {
        if (!gone(target)) continue;
        w.peerWatches.delete(target);
        const id = this.servers.get(target)?.id ?? { name: target, node: target };
        this.queue.push(this.now + 1, {
          kind: 'local',
          to: w.name,
          inc: w.inc,
          msg: { type: 'peer.down', id },
        });
      }
    }
  }

  restart(name: string, initialMembers?: readonly ServerId[]): void {
    const s = this.server(name);
    if (s.up) this.crash(name);
    s.up = true;
    s.inc++;
    s.writerFreeAt = this.now;
    s.timerGen++;
    const cfg = initialMembers === undefined ? this.config(name) : { ...this.config(name), initialMembers };
    const recovered = s.storage.recovered();
    this.checker.restarted(name, recovered.currentTerm);
    let r: HandleResult;
    if (this.opts.driver !== 'handle') {
      const [snap] = initialTransition(raftMachine, { config: cfg, recovered });
      s.chart = snap;
      r = fromChart(snap.context);
    } else {
      r = startServer(initServer(cfg, recovered));
    }
    this.log(`${name} start term=${recovered.currentTerm} entries=${recovered.entries.length}`);
    this.applyResult(s, r, r.state.lastApplied + 1);
    this.queue.push(this.now + this.rng.int(1, this.opts.tickMs), { kind: 'tick', to: name, inc: s.inc });
  }

  leaders(): SimServer[] {
    return [...this.servers.values()].filter((s) => s.up && s.role === 'leader');
  }

  /** The leader with the highest term, if any. */
  leader(): SimServer | undefined {
    let best: SimServer | undefined;
    for (const s of this.leaders())
      if (best === undefined || s.state.currentTerm > best.state.currentTerm) best = s;
    return best;
  }

  /** Delivers a local message (command, query, membership...) to a server now. */
  send(name: string, msg: Message): void {
    this.deliver(this.server(name), msg);
  }

  /**
   * Sends a message from a client over the network (subject to drops and cut links, never
   * duplicated: a duplicated command would be a second command, at-least-once is the client's
   * business, not Raft's).
   */
  sendFromClient(client: string, name: string, msg: Message): void {
    const d = this.network.deliveries(client, name);
    if (d.length > 0) this.queue.push(this.now + d[0]!, { kind: 'deliver', to: name, msg });
  }

  at(time: number, fn: () => void): void {
    this.queue.push(Math.max(time, this.now), { kind: 'call', fn });
  }

  /** Runs events until `time`. */
  runUntilTime(time: number): void {
    for (;;) {
      const at = this.queue.peekTime();
      if (at === undefined || at > time) break;
      const next = this.queue.pop()!;
      this.clock.advanceTo(next.time);
      // links cut since the last event take their monitors down with them
      if (this.opts.quiesceAfterTicks > 0) this.checkWatches();
      this.process(next.item);
    }
    if (time > this.now) this.clock.advanceTo(time);
  }

  runFor(ms: number): void {
    this.runUntilTime(this.now + ms);
  }

  /** Runs until `pred` holds (checked every `stepMs`) or `maxMs` passed; returns whether it held. */
  runUntil(pred: () => boolean, maxMs: number, stepMs = 10): boolean {
    const end = this.now + maxMs;
    while (this.now < end) {
      if (pred()) return true;
      this.runUntilTime(Math.min(end, this.now + stepMs));
    }
    return pred();
  }

  private process(ev: SimEvent): void {
    switch (ev.kind) {
      case 'deliver': {
        const s = this.servers.get(ev.to);
        if (s !== undefined) this.deliver(s, ev.msg);
        return;
      }
      case 'local': {
        const s = this.server(ev.to);
        if (s.inc === ev.inc) this.deliver(s, ev.msg);
        return;
      }
      case 'timer': {
        const s = this.server(ev.to);
        if (s.inc === ev.inc && s.timerGen === ev.gen) this.deliver(s, { type: 'election.timeout' });
        return;
      }
      case 'tick': {
        const s = this.server(ev.to);
        if (s.inc !== ev.inc || !s.up) return;
        this.deliver(s, { type: 'tick', nowMs: this.now });
        this.queue.push(this.now + this.opts.tickMs, ev);
        return;
      }
      case 'write': {
        const s = this.server(ev.to);
        if (s.inc === ev.inc && s.up) this.completeWrite(s, ev.write);
        return;
      }
      case 'resume': {
        const s = this.server(ev.to);
        if (s.inc !== ev.inc || !s.up) return;
        const persist = ev.effects[ev.from - 1];
        if (persist?.type === 'meta.persist') s.storage.persistMeta(persist.currentTerm, persist.votedFor);
        s.blockedUntil = -1;
        this.runEffects(s, ev.effects, ev.from);
        return;
      }
      case 'call':
        ev.fn();
        return;
      default:
        assertNever(ev);
    }
  }

  private deliver(s: SimServer, msg: Message): void {
    if (!s.up) return;
    if (s.blockedUntil >= 0) {
      // A synchronous fsync in the shell: the message waits in the mailbox.
      this.queue.push(s.blockedUntil, { kind: 'local', to: s.name, inc: s.inc, msg });
      return;
    }
    if (
      msg.type !== 'tick' &&
      msg.type !== 'log.written' &&
      'from' in msg &&
      this.opts.transcript !== undefined
    ) {
      const from = (msg as { from: unknown }).from;
      const fromName = typeof from === 'object' && from !== null && 'name' in from ? String(from.name) : '?';
      this.log(`${fromName} -> ${s.name} ${describeMessage(msg)}`);
    } else if (this.opts.transcript !== undefined && msg.type !== 'tick' && msg.type !== 'log.written') {
      this.log(`${s.name} <- ${describeMessage(msg)}`);
    }
    let r: HandleResult;
    if (s.chart !== null && this.opts.driver === 'statechart') {
      const [next] = transition(raftMachine, s.chart, msg);
      s.chart = next;
      r = fromChart(next.context);
    } else {
      r = handle(s.role, s.state, msg);
      if (s.chart !== null && chartTakes(s.role, s.state, r)) {
        const [next] = transition(raftMachine, s.chart, roleChange(r));
        if (next.value !== r.role) {
          throw new Error(`${s.name}: the statechart is in ${String(next.value)}, the core in ${r.role}`);
        }
        s.chart = next;
      }
    }
    this.steps++;
    this.applyResult(s, r, s.state.lastApplied + 1);
  }

  /** Takes a step's result; what it applied from index `appliedFrom` on is kept as `KeptCommand`s. */
  private applyResult(s: SimServer, r: HandleResult, appliedFrom: number): void {
    if (r.role !== s.role && this.opts.transcript !== undefined) {
      this.log(`${s.name} ${s.role} -> ${r.role} (term ${r.state.currentTerm})`);
    }
    // as the RaftServer shell does, keep what this step applied in another form (fields as getters)
    swapAppliedEntries(r.state, appliedFrom, keptForm);
    s.role = r.role;
    s.state = r.state;
    if (this.opts.checkSafety) this.checker.observe(s.name, r.role, r.state);
    this.runEffects(s, r.effects, 0);
  }

  private writeDelay(): number {
    return this.rng.int(this.opts.writeDelayMs[0], this.opts.writeDelayMs[1]);
  }

  private enqueueWrite(s: SimServer, write: WriteOp): void {
    // The log writer is FIFO: a write completes after every write issued before it.
    const done = Math.max(this.now, s.writerFreeAt) + this.writeDelay();
    s.writerFreeAt = done;
    this.queue.push(done, { kind: 'write', to: s.name, inc: s.inc, write });
  }

  private completeWrite(s: SimServer, w: WriteOp): void {
    switch (w.op) {
      case 'append': {
        let last: ReturnType<MemoryStorage['append']>;
        try {
          last = s.storage.append(w.effect.entries, w.effect.truncateFrom);
        } catch (err) {
          throw new Error(`${s.name}: ${(err as Error).message}`);
        }
        if (last === undefined) return;
        const group = this.opts.groupCommitMs;
        if (group === undefined) {
          this.deliver(s, { type: 'log.written', upTo: last.index, term: last.term });
          return;
        }
        // one confirmation for whatever completes before it is sent: the latest append's last entry
        const held = s.heldWritten;
        s.heldWritten = { index: last.index, term: last.term };
        if (held !== null) {
          this.writesCoalesced++;
          return;
        }
        const inc = s.inc;
        this.at(this.now + this.rng.int(group[0], group[1]), () => {
          const w = s.heldWritten;
          if (!s.up || s.inc !== inc || w === null) return;
          s.heldWritten = null;
          this.deliver(s, { type: 'log.written', upTo: w.index, term: w.term });
        });
        return;
      }
      case 'truncate_prefix':
        s.storage.truncatePrefix(w.upTo);
        return;
      case 'snapshot':
        s.storage.writeSnapshot(w.meta, w.machineState);
        this.deliver(s, { type: 'snapshot.written', meta: w.meta });
        return;
      case 'install':
        s.storage.installSnapshot(w.meta, w.machineState);
        this.deliver(s, {
          type: 'snapshot.installed',
          meta: w.meta,
          machineState: structuredClone(w.machineState),
        });
        return;
    }
  }

  private runEffects(s: SimServer, effects: readonly Effect[], from: number): void {
    for (let i = from; i < effects.length; i++) {
      if (!s.up) return;
      const e = effects[i]!;
      this.effectCounts.set(e.type, (this.effectCounts.get(e.type) ?? 0) + 1);
      switch (e.type) {
        case 'meta.persist': {
          const [lo, hi] = this.opts.metaDelayMs;
          const at = this.now + this.rng.int(lo, hi);
          s.blockedUntil = at;
          this.queue.push(at, { kind: 'resume', to: s.name, inc: s.inc, effects, from: i + 1 });
          return;
        }
        case 'log.append':
          this.enqueueWrite(s, { op: 'append', effect: e });
          break;
        case 'log.truncate_prefix':
          this.enqueueWrite(s, { op: 'truncate_prefix', upTo: e.upTo });
          break;
        case 'send_rpc':
          for (const d of this.network.deliveries(s.name, e.to.name)) {
            this.queue.push(this.now + d, { kind: 'deliver', to: e.to.name, msg: e.rpc });
          }
          if (e.rpc.type === 'vote.reply' && e.rpc.granted && this.rng.chance(this.opts.crashAfterVote)) {
            this.crash(s.name);
            const name = s.name;
            this.at(this.now + this.rng.int(1, 10), () => {
              if (!this.server(name).up) this.restart(name);
            });
            return;
          }
          break;
        case 'reply':
          this.replyTo(s, e.to, e.reply);
          break;
        case 'notify':
          this.replyTo(s, { pid: e.to }, { notify: e.applied });
          break;
        case 'notify.rejected':
          this.replyTo(s, { pid: e.to }, { notify: { rejected: e.correlations, leader: e.leader } });
          break;
        case 'timer.set': {
          s.timerGen++;
          const delay = this.rng.int(e.minMs, e.maxMs);
          this.queue.push(this.now + delay, { kind: 'timer', to: s.name, inc: s.inc, gen: s.timerGen });
          break;
        }
        case 'timer.cancel':
          s.timerGen++;
          break;
        case 'monitor.leader':
          s.leaderWatch = e.leader?.name ?? null;
          this.checkWatches();
          break;
        case 'monitor.peers':
          s.peerWatches = new Set(e.peers.map((p) => p.name));
          this.checkWatches();
          break;
        case 'snapshot.write':
          this.enqueueWrite(s, { op: 'snapshot', meta: e.meta, machineState: e.machineState });
          break;
        case 'snapshot.send':
          if (e.fromChunk > 0) this.transfersResumed++;
          this.sendSnapshot(s, e.to.name, e.term, e.fromChunk);
          break;
        case 'snapshot.chunk.write':
          if (e.chunk === 0) s.chunks = [];
          s.chunks[e.chunk] = e.data as string;
          break;
        case 'snapshot.install':
          this.enqueueWrite(s, { op: 'install', meta: e.meta, machineState: JSON.parse(s.chunks.join('')) });
          break;
        case 'machine':
        case 'hook':
          break;
        default:
          assertNever(e);
      }
    }
  }

  /** The snapshot sender: chunks of the stored snapshot from `fromChunk`, delivered in order (or lost). */
  private sendSnapshot(s: SimServer, to: string, term: number, fromChunk: number): void {
    const snap = s.storage.snapshot;
    if (snap === null) return;
    const data = JSON.stringify(snap.machineState);
    const size = this.opts.snapshotChunkChars;
    const n = Math.max(1, Math.ceil(data.length / size));
    let at = this.now;
    // as the snapshot sender: a follower that acknowledged every chunk is asked with the last one
    for (let c = Math.min(fromChunk, n - 1); c < n; c++) {
      const msg: Message = {
        type: 'install_snapshot.request',
        from: s.id,
        term,
        meta: snap.meta,
        chunk: c,
        last: c === n - 1,
        data: data.slice(c * size, (c + 1) * size),
      };
      const d = this.network.deliveries(s.name, to);
      if (d.length === 0) return;
      at = Math.max(at, this.now + d[0]!);
      this.queue.push(at, { kind: 'deliver', to, msg });
    }
  }

  private replyTo(
    s: SimServer,
    to: { readonly pid: Pid; readonly ref?: number },
    reply: Reply | { notify: unknown },
  ): void {
    for (const d of this.network.deliveries(s.name, to.pid.node)) {
      this.at(this.now + d, () => this.onReply(to, reply));
    }
  }

  /** A fresh `from` for a call by `client`. */
  static from(client: string, ref: number): From {
    return { pid: { node: client, id: 1, creation: 1 }, ref };
  }
}

function fromChart(ctx: RaftContext): HandleResult {
  return { role: ctx.role, state: ctx.server, effects: ctx.effects as Effect[] };
}

/**
 * An applied command entry whose fields are getters on a prototype, not its own: the kind of form
 * the RaftServer shell keeps applied commands in (`StoredCommand`, decoded from bytes when read).
 * The simulator swaps every applied command for one, so the core is run as the shell runs it.
 */
class KeptCommand {
  readonly type = 'command';

  constructor(
    readonly index: number,
    readonly term: number,
    private readonly held: CommandEntry,
  ) {}

  get command(): unknown {
    return this.held.command;
  }

  get reply(): CommandEntry['reply'] {
    return this.held.reply;
  }

  get systemTime(): number {
    return this.held.systemTime;
  }

  get requestId(): string | undefined {
    return this.held.requestId;
  }
}

function keptForm(entry: LogEntry): LogEntry {
  if (entry.type !== 'command' || entry instanceof KeptCommand) return entry;
  return new KeptCommand(entry.index, entry.term, entry) as unknown as LogEntry;
}
