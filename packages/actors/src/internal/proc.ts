import type { NodeName, Pid } from '@otra/protocol';
import { type AnyActorRef, createActor } from 'xstate';
import type {
  ActorContext,
  AnyGenServer,
  BatchItem,
  BatchServer,
  Behaviour,
  BehaviourKind,
  CallOptions,
  SpawnOptions,
  StatechartBehaviour,
  TimerRef,
} from '../behaviour.ts';
import type { ActorStatus } from '../inspect.ts';
import type { Node } from '../node.ts';
import type { Dest, ExitReason, From, MonitorRef, RegName, SendStatus } from '../types.ts';
import { errorReason } from '../types.ts';
import { CallEnvelope, CastEnvelope, StopEnvelope } from './envelopes.ts';

/** Someone watching a process: an actor, local or remote. */
export interface Watcher {
  readonly ref: MonitorRef;
  readonly pid: Pid;
}

// biome-ignore lint/suspicious/noExplicitAny: the runtime erases behaviour types
type AnyBatch = BatchServer<any, any>;
// biome-ignore lint/suspicious/noExplicitAny: the runtime erases behaviour types
type AnyChart = StatechartBehaviour<any, any>;

const DEFAULT_BATCH = 4096;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * One running actor: its mailbox, its state and its links. It is also the `ActorContext` its
 * handlers receive, so an idle actor costs one object plus its mailbox array.
 */
export class Proc implements ActorContext {
  state: unknown = undefined;
  status: ActorStatus = 'initializing';
  /** The mailbox: plain messages or envelopes, consumed from `head`. */
  queue: unknown[] = [];
  head = 0;
  /** In the node's ready queue. */
  scheduled = false;
  /** An async `init`, handler or `terminate` is in flight: nothing else runs until it settles. */
  busy = false;
  trapping = false;
  name: string | undefined = undefined;
  links: Map<string, Pid> | undefined = undefined;
  /** Monitors this actor holds, by ref. */
  monitors: Map<MonitorRef, Pid | RegName> | undefined = undefined;
  /** Who monitors this actor, keyed by `watcherNode#ref`. */
  watchers: Map<string, Watcher> | undefined = undefined;
  /** Refs of the local calls waiting for this process's reply: each fails if it exits first. */
  calls: Set<number> | undefined = undefined;
  nodeMonitors: Set<NodeName> | undefined = undefined;
  stopRequest: ExitReason | undefined = undefined;
  chart: AnyActorRef | undefined = undefined;
  readonly kind: BehaviourKind;
  readonly parent: Pid | undefined;
  readonly restarts: number;
  readonly childId: string | undefined;
  readonly nodeName: NodeName;

  constructor(
    readonly node: Node,
    readonly self: Pid,
    readonly behaviour: Behaviour,
    options: SpawnOptions | undefined,
  ) {
    this.nodeName = self.node;
    this.kind = behaviour.kind ?? 'gen_server';
    this.parent = options?.parent;
    this.restarts = options?.restarts ?? 0;
    this.childId = options?.childId;
    if (options?.trapExit === true) this.trapping = true;
  }

  get mailboxLength(): number {
    return this.queue.length - this.head;
  }

  get alive(): boolean {
    return this.status === 'initializing' || this.status === 'running';
  }

  // ---- running --------------------------------------------------------------------------------

  /** Runs `init`. Returns a promise only when init is async. */
  start(args: unknown): void | Promise<void> {
    const behaviour = this.behaviour;
    if (behaviour.kind === 'statechart') return this.startChart(behaviour as AnyChart, args);
    let result: unknown;
    try {
      result = (behaviour as AnyGenServer<unknown>).init(args, this);
    } catch (err) {
      this.node.finalize(this, errorReason(err));
      return;
    }
    if (isThenable(result)) {
      this.busy = true;
      return Promise.resolve(result).then(
        (state) => {
          if (this.status !== 'initializing') return;
          this.busy = false;
          this.initialised(state);
        },
        (err: unknown) => {
          if (this.status === 'initializing') this.node.finalize(this, errorReason(err));
        },
      );
    }
    this.initialised(result);
  }

  private startChart(behaviour: AnyChart, args: unknown): void {
    try {
      const input = behaviour.input?.(args, this);
      const actor = createActor(behaviour.logic, input === undefined ? {} : { input });
      this.chart = actor;
      actor.subscribe({
        error: (err: unknown) => this.node.finalize(this, errorReason(err)),
        complete: () => this.node.finalize(this, 'normal'),
      });
      actor.start();
    } catch (err) {
      this.node.finalize(this, errorReason(err));
      return;
    }
    if (this.status === 'initializing') this.initialised(undefined);
  }

  private initialised(state: unknown): void {
    this.state = state;
    this.status = 'running';
    this.node.started(this);
    if (this.stopRequest !== undefined) {
      this.node.terminate(this, this.stopRequest);
      return;
    }
    if (this.mailboxLength > 0) this.node.schedule(this);
  }

  /** Handles up to `budget` messages; returns how many it took. */
  run(budget: number): number {
    if (this.kind === 'batch') return this.runBatch(budget);
    let n = 0;
    while (n < budget && this.head < this.queue.length && this.status === 'running' && !this.busy) {
      const msg = this.queue[this.head];
      this.queue[this.head++] = undefined;
      n++;
      this.handle(msg);
    }
    this.compact();
    return n;
  }

  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private handle(msg: unknown): void {
    if (msg instanceof StopEnvelope) {
      this.node.terminate(this, msg.reason);
      return;
    }
    if (this.chart !== undefined) {
      this.deliverToChart(msg);
      return;
    }
    const behaviour = this.behaviour as AnyGenServer<unknown>;
    let result: unknown;
    const isCall = msg instanceof CallEnvelope;
    try {
      if (isCall) {
        if (behaviour.handleCall === undefined) throw new Error('handleCall is not defined for this actor');
        result = behaviour.handleCall(msg.request, msg.from, this.state, this);
      } else if (msg instanceof CastEnvelope) {
        if (behaviour.handleCast === undefined) return;
        result = behaviour.handleCast(msg.msg, this.state, this);
      } else {
        if (behaviour.handleInfo === undefined) return;
        result = behaviour.handleInfo(msg, this.state, this);
      }
    } catch (err) {
      this.crash(err);
      return;
    }
    if (isThenable(result)) {
      this.busy = true;
      Promise.resolve(result).then(
        (value) => {
          if (this.status !== 'running') return;
          this.busy = false;
          this.complete(value, isCall ? msg.from : undefined);
          if (this.status === 'running' && this.mailboxLength > 0) this.node.schedule(this);
        },
        (err: unknown) => {
          if (this.status === 'running') this.crash(err);
        },
      );
      return;
    }
    this.complete(result, isCall ? msg.from : undefined);
  }

  private complete(result: unknown, from: From | undefined): void {
    if (from !== undefined) {
      const r = result as { reply?: unknown; noreply?: true; state: unknown };
      if (r === null || typeof r !== 'object' || !('state' in r)) {
        this.crash(new Error('handleCall must return { reply, state } or { noreply: true, state }'));
        return;
      }
      if (!('noreply' in r)) this.node.reply(from, r.reply);
      this.state = r.state;
    } else {
      this.state = result;
    }
    if (this.stopRequest !== undefined) this.node.terminate(this, this.stopRequest);
  }

  private deliverToChart(msg: unknown): void {
    const chart = this.chart as AnyActorRef;
    try {
      if (msg instanceof CallEnvelope) chart.send({ ...(msg.request as object), from: msg.from });
      else if (msg instanceof CastEnvelope) chart.send(msg.msg as { type: string });
      else chart.send(msg as { type: string });
    } catch (err) {
      this.crash(err);
    }
  }

  private runBatch(budget: number): number {
    if (this.status !== 'running' || this.busy) return 0;
    const behaviour = this.behaviour as AnyBatch;
    const limit = Math.min(budget, behaviour.maxBatchSize ?? DEFAULT_BATCH);
    const items: BatchItem[] = [];
    let stop: StopEnvelope | undefined;
    while (items.length < limit && this.head < this.queue.length) {
      const msg = this.queue[this.head];
      this.queue[this.head++] = undefined;
      if (msg instanceof StopEnvelope) {
        stop = msg;
        break;
      }
      if (msg instanceof CallEnvelope) items.push({ kind: 'call', request: msg.request, from: msg.from });
      else if (msg instanceof CastEnvelope) items.push({ kind: 'cast', msg: msg.msg });
      else items.push({ kind: 'info', msg });
    }
    this.compact();
    const n = items.length + (stop === undefined ? 0 : 1);
    if (items.length === 0) {
      this.finishBatch(stop);
      return n;
    }
    let result: unknown;
    try {
      result = behaviour.handleBatch(items, this.state, this);
    } catch (err) {
      this.crash(err);
      return n;
    }
    if (isThenable(result)) {
      this.busy = true;
      Promise.resolve(result).then(
        (state) => {
          if (this.status !== 'running') return;
          this.busy = false;
          this.complete(state, undefined);
          this.finishBatch(stop);
          if (this.status === 'running' && this.mailboxLength > 0) this.node.schedule(this);
        },
        (err: unknown) => {
          if (this.status === 'running') this.crash(err);
        },
      );
      return n;
    }
    this.complete(result, undefined);
    this.finishBatch(stop);
    return n;
  }

  /**
   * After a batch: a stop request taken out of the mailbox with it takes effect now. (A method,
   * not a closure per batch: under tsx, esbuild's keepNames makes each named closure a
   * defineProperty call.)
   */
  private finishBatch(stop: StopEnvelope | undefined): void {
    if (stop !== undefined && this.status === 'running') this.node.terminate(this, stop.reason);
  }

  private crash(err: unknown): void {
    this.busy = false;
    this.node.terminate(this, errorReason(err));
  }

  // ---- ActorContext ---------------------------------------------------------------------------

  now(): number {
    return this.node.clock.now();
  }
  send(dest: Dest, msg: unknown): SendStatus {
    return this.node.send(dest, msg);
  }
  cast(dest: Dest, msg: unknown): SendStatus {
    return this.node.cast(dest, msg);
  }
  call<R = unknown>(dest: Dest, request: unknown, options?: CallOptions): Promise<R> {
    return this.node.call<R>(dest, request, options);
  }
  reply(from: From, value: unknown): void {
    this.node.reply(from, value);
  }
  spawn<A>(behaviour: Behaviour<A>, args: A, options?: SpawnOptions): Pid {
    return this.node.spawn(behaviour, args, { parent: this.self, ...options });
  }
  spawnLink<A>(behaviour: Behaviour<A>, args: A, options?: SpawnOptions): Pid {
    return this.node.spawn(behaviour, args, { parent: this.self, ...options, link: this.self });
  }
  link(pid: Pid): void {
    this.node.link(this, pid);
  }
  unlink(pid: Pid): void {
    this.node.unlink(this, pid);
  }
  monitor(pid: Pid | RegName): MonitorRef {
    return this.node.monitor(this, pid);
  }
  demonitor(ref: MonitorRef): void {
    this.node.demonitor(this, ref);
  }
  monitorNode(node: NodeName, enable = true): void {
    this.node.monitorNode(this, node, enable);
  }
  trapExit(enable: boolean): void {
    this.trapping = enable;
  }
  exit(pid: Pid, reason: ExitReason): void {
    this.node.exit(pid, reason, this.self);
  }
  stop(reason: ExitReason = 'normal'): void {
    this.stopRequest = reason;
  }
  register(name: string): void {
    this.node.registerProc(name, this);
  }
  unregister(): void {
    if (this.name !== undefined) this.node.unregister(this.name);
  }
  sendAfter(ms: number, msg: unknown, dest: Dest = this.self): TimerRef {
    return this.node.sendAfter(ms, dest, msg);
  }
  cancelTimer(ref: TimerRef): boolean {
    return this.node.cancelTimer(ref);
  }
}
