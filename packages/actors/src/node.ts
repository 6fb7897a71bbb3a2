import type { NodeName, Pid } from '@otra/protocol';
import { pidKey } from '@otra/protocol';
import type { AnyGenServer, Behaviour, CallOptions, SpawnOptions, TimerRef } from './behaviour.ts';
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { CallTimeoutError, ExitError, NoProcError, StartError } from './errors.ts';
import type { ActorInfo, InspectionEvent, InspectionListener, NodeTree } from './inspect.ts';
import { CallEnvelope, CastEnvelope, StopEnvelope } from './internal/envelopes.ts';
import { Proc, type Watcher } from './internal/proc.ts';
import type { Distribution, Signal } from './internal/signals.ts';
import type { Dest, ExitReason, From, MonitorRef, RegName, SendStatus } from './types.ts';
import { errorReason, formatReason } from './types.ts';

/** Options for a runtime node. */
export interface NodeOptions {
  /** The node's name, unique among connected nodes. */
  readonly name: NodeName;
  /** Time source for timers and call timeouts; defaults to the system clock. */
  readonly clock?: Clock;
  /** Incarnation number; defaults to a random one, so a restarted node's old pids stay dead. */
  readonly creation?: number;
  /** Messages a ready actor handles before others get a turn. */
  readonly fairnessBudget?: number;
  /** Where runtime warnings go (crashes are also inspection events). Defaults to silence. */
  readonly log?: (level: 'warn' | 'error', message: string) => void;
}

interface PendingCall {
  readonly dest: Dest;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
  timer: unknown;
  /** Where the call's monitor lives: the local callee, or the remote node to send `demonitor` to. */
  target: Proc | Pid | RegName | undefined;
}

const DEFAULT_CALL_TIMEOUT = 5000;
/** Messages handled per scheduler pass before yielding to I/O with `setImmediate`. */
const PASS_BUDGET = 50_000;
/** Scheduler passes chained through microtasks before one goes through `setImmediate`. */
const MICROTASK_PASSES = 256;

/**
 * One runtime instance: spawns actors, delivers their messages, runs their links, monitors,
 * timers and registry. Everything an actor does to another goes through here, locally or across
 * an installed `Distribution`.
 */
export class Node {
  readonly name: NodeName;
  readonly creation: number;
  readonly clock: Clock;
  private readonly procs = new Map<number, Proc>();
  private readonly names = new Map<string, Proc>();
  private readonly pending = new Map<number, PendingCall>();
  private readonly timers = new Map<number, unknown>();
  private readonly listeners = new Map<InspectionListener, boolean>();
  private readonly startWaiters = new Map<
    Proc,
    { resolve: (pid: Pid) => void; reject: (e: Error) => void }
  >();
  private readonly exitWaiters = new Map<Proc, Array<(reason: ExitReason) => void>>();
  private distribution: Distribution | undefined;
  private nextId = 1;
  private nextRef = 1;
  private readonly budget: number;
  private ready: Proc[] = [];
  private readyHead = 0;
  private draining = false;
  private microPasses = 0;
  private traceMessages = false;
  private readonly log: ((level: 'warn' | 'error', message: string) => void) | undefined;
  /** The pid replies and call monitors are addressed to: id 0 is never an actor. */
  readonly sink: Pid;

  constructor(options: NodeOptions) {
    this.name = options.name;
    this.creation = options.creation ?? 1 + Math.floor(Math.random() * 0x7ffffffe);
    this.clock = options.clock ?? systemClock;
    this.budget = options.fairnessBudget ?? 1000;
    this.log = options.log;
    this.sink = { node: this.name, id: 0, creation: this.creation };
  }

  // ---- spawning -------------------------------------------------------------------------------

  /**
   * Starts an actor and returns its pid at once; `init` runs now (if synchronous) or before the
   * first message (if it returns a promise). A name already taken throws.
   */
  spawn<A>(behaviour: Behaviour<A>, args: A, options?: SpawnOptions): Pid {
    return (this.spawnProc(behaviour, args, options) as Proc).self;
  }

  /** Spawns and resolves with the pid once `init` has finished; rejects with `StartError` if it failed. */
  spawnAndWait<A>(behaviour: Behaviour<A>, args: A, options?: SpawnOptions): Promise<Pid> {
    return new Promise<Pid>((resolve, reject) => {
      this.spawnProc(behaviour, args, options, { resolve, reject });
    });
  }

  private spawnProc<A>(
    behaviour: Behaviour<A>,
    args: A,
    options: SpawnOptions | undefined,
    waiter?: { resolve: (pid: Pid) => void; reject: (e: Error) => void },
  ): Proc | undefined {
    if (options?.name !== undefined && this.names.has(options.name)) {
      const err = new Error(`name already registered: ${options.name}`);
      if (waiter === undefined) throw err;
      waiter.reject(err);
      return undefined;
    }
    const pid: Pid = { node: this.name, id: this.nextId++, creation: this.creation };
    const proc = new Proc(this, pid, behaviour, options);
    this.procs.set(pid.id, proc);
    if (options?.name !== undefined && !this.names.has(options.name)) this.registerProc(options.name, proc);
    if (waiter !== undefined) this.startWaiters.set(proc, waiter);
    if (options?.link !== undefined) this.link(proc, options.link);
    if (this.listeners.size > 0) {
      const event: InspectionEvent = { type: '@actors.spawned', pid, kind: proc.kind };
      this.emit(
        options?.parent === undefined
          ? options?.name === undefined
            ? event
            : { ...event, name: options.name }
          : {
              ...event,
              parent: options.parent,
              ...(options.name === undefined ? {} : { name: options.name }),
            },
      );
    }
    if (proc.alive) void proc.start(args);
    return proc;
  }

  /** Called by a proc when its init finished. */
  started(proc: Proc): void {
    const waiter = this.startWaiters.get(proc);
    if (waiter !== undefined) {
      this.startWaiters.delete(proc);
      waiter.resolve(proc.self);
    }
  }

  // ---- messages -------------------------------------------------------------------------------

  private resolve(dest: Dest): Proc | undefined {
    if (typeof dest === 'string') return this.names.get(dest);
    if ('id' in dest) {
      const proc = this.procs.get(dest.id);
      return proc !== undefined && proc.self.creation === dest.creation ? proc : undefined;
    }
    return this.names.get(dest.name);
  }

  private isLocal(dest: Dest): boolean {
    return typeof dest === 'string' || dest.node === this.name;
  }

  /** Sends `msg` to `dest`'s `handleInfo`. Sending to a dead pid is not an error (as in Erlang). */
  send(dest: Dest, msg: unknown): SendStatus {
    if (typeof dest !== 'string' && dest.node !== this.name) {
      return this.route(dest.node, { t: 'send', to: dest, msg });
    }
    const proc = this.resolve(dest);
    if (proc !== undefined) this.enqueue(proc, msg);
    return 'ok';
  }

  /** Sends `msg` to `dest`'s `handleCast`. */
  cast(dest: Dest, msg: unknown): SendStatus {
    if (typeof dest !== 'string' && dest.node !== this.name) {
      return this.route(dest.node, { t: 'cast', to: dest, msg });
    }
    const proc = this.resolve(dest);
    if (proc !== undefined) this.enqueue(proc, new CastEnvelope(msg));
    return 'ok';
  }

  /**
   * Calls `dest` and resolves with its reply. Rejects with `NoProcError` if it does not exist,
   * `ExitError` if it exits first (`noconnection` when its node goes away), `CallTimeoutError` after
   * `timeoutMs`. A reply arriving after the call ended is dropped.
   */
  call<R = unknown>(dest: Dest, request: unknown, options?: CallOptions): Promise<R> {
    const ref = this.nextRef++;
    const from: From = { node: this.name, creation: this.creation, ref };
    const timeoutMs = options?.timeoutMs ?? DEFAULT_CALL_TIMEOUT;
    return new Promise<R>((resolve, reject) => {
      const pending: PendingCall = {
        dest,
        resolve: resolve as (value: unknown) => void,
        reject,
        timer: undefined,
        target: undefined,
      };
      if (this.isLocal(dest)) {
        const proc = this.resolve(dest);
        if (proc === undefined || !proc.alive) {
          reject(new NoProcError(dest));
          return;
        }
        this.pending.set(ref, pending);
        pending.target = proc;
        // a ref in a set, not a watcher with a callback: no closure or key string per call (under
        // tsx each named closure costs a defineProperty: esbuild's keepNames)
        (proc.calls ??= new Set()).add(ref);
        this.enqueue(proc, new CallEnvelope(request, from));
      } else {
        const target = dest as Pid | RegName;
        this.pending.set(ref, pending);
        pending.target = target;
        const monitored = this.route(target.node, { t: 'monitor', from: this.sink, to: target, ref });
        if (monitored === 'dropped') {
          this.pending.delete(ref);
          reject(new ExitError(dest, 'noconnection'));
          return;
        }
        this.route(target.node, { t: 'call', to: target, request, from });
      }
      if (Number.isFinite(timeoutMs)) {
        pending.timer = this.clock.setTimeout(() => {
          if (this.pending.get(ref) !== pending) return;
          this.endCall(ref, pending);
          reject(new CallTimeoutError(dest, timeoutMs));
        }, timeoutMs);
      }
    });
  }

  /** Answers a call, locally or across a link. */
  reply(from: From, value: unknown): void {
    if (from.node !== this.name) {
      this.route(from.node, { t: 'reply', to: from, value });
      return;
    }
    if (from.creation !== this.creation) return;
    const pending = this.pending.get(from.ref);
    if (pending === undefined) return;
    this.endCall(from.ref, pending);
    pending.resolve(value);
  }

  private callDown(ref: MonitorRef, reason: ExitReason): void {
    const pending = this.pending.get(ref);
    if (pending === undefined) return;
    this.endCall(ref, pending);
    pending.reject(reason === 'noproc' ? new NoProcError(pending.dest) : new ExitError(pending.dest, reason));
  }

  private endCall(ref: MonitorRef, pending: PendingCall): void {
    this.pending.delete(ref);
    if (pending.timer !== undefined) this.clock.clearTimeout(pending.timer);
    const target = pending.target;
    if (target instanceof Proc) target.calls?.delete(ref);
    else if (target !== undefined && 'id' in target) {
      this.route(target.node, { t: 'demonitor', from: this.sink, to: target, ref });
    }
  }

  private enqueue(proc: Proc, msg: unknown): void {
    if (!proc.alive) return;
    proc.queue.push(msg);
    if (this.traceMessages) this.emit({ type: '@actors.message', to: proc.self, msg });
    if (!proc.scheduled && !proc.busy && proc.status === 'running') this.schedule(proc);
  }

  /** Puts a proc on the ready queue; one microtask drains the whole queue. */
  schedule(proc: Proc): void {
    if (proc.scheduled) return;
    proc.scheduled = true;
    this.ready.push(proc);
    if (!this.draining) {
      this.draining = true;
      // Passes chain through microtasks; every so often one goes through `setImmediate` so that
      // actors messaging each other in a closed loop (no I/O between) cannot starve timers.
      if (++this.microPasses < MICROTASK_PASSES) queueMicrotask(this.drain);
      else {
        this.microPasses = 0;
        setImmediate(this.drain);
      }
    }
  }

  private readonly drain = (): void => {
    let handled = 0;
    while (this.readyHead < this.ready.length) {
      const proc = this.ready[this.readyHead] as Proc;
      this.ready[this.readyHead++] = undefined as unknown as Proc;
      proc.scheduled = false;
      handled += proc.run(this.budget);
      if (proc.status === 'running' && !proc.busy && proc.mailboxLength > 0) this.schedule(proc);
      if (handled >= PASS_BUDGET) break;
    }
    if (this.readyHead === this.ready.length) {
      this.ready.length = 0;
      this.readyHead = 0;
      this.draining = false;
    } else {
      // let I/O and timers in before the next pass, so a busy actor cannot starve the event loop
      this.ready = this.ready.slice(this.readyHead);
      this.readyHead = 0;
      setImmediate(this.drain);
    }
  };

  // ---- exits ----------------------------------------------------------------------------------

  /**
   * Sends an exit signal to `pid` as `erlang:exit/2`: `kill` always kills (untrappable); other
   * reasons kill an actor that does not trap exits (except `normal`), and arrive as
   * `@actors.exit` messages in one that does.
   */
  exit(pid: Pid, reason: ExitReason, from: Pid = this.sink): void {
    if (pid.node !== this.name) {
      this.route(pid.node, { t: 'exit', from, to: pid, reason, link: false });
      return;
    }
    const proc = this.resolve(pid);
    if (proc !== undefined) this.exitSignal(proc, from, reason, false);
  }

  private exitSignal(proc: Proc, from: Pid, reason: ExitReason, viaLink: boolean): void {
    if (proc.status === 'dead') return;
    if (viaLink) proc.links?.delete(pidKey(from));
    if (reason === 'kill' && !viaLink) {
      this.finalize(proc, 'killed');
      return;
    }
    if (proc.status === 'terminating') return;
    if (proc.trapping) {
      const fromParent = proc.parent !== undefined && pidKey(proc.parent) === pidKey(from);
      if (fromParent && proc.kind !== 'statechart') this.enqueue(proc, new StopEnvelope(reason));
      else this.enqueue(proc, { type: '@actors.exit', from, reason });
      return;
    }
    if (reason === 'normal') return;
    this.finalize(proc, reason);
  }

  /**
   * Stops `proc` in order: runs `terminate` (if any) and then exits with `reason`. Used for crashes,
   * `ctx.stop`, and parent shutdowns of actors that trap exits.
   */
  terminate(proc: Proc, reason: ExitReason): void {
    if (!proc.alive) return;
    const terminate =
      proc.kind === 'statechart' ? undefined : (proc.behaviour as AnyGenServer<unknown>).terminate;
    if (terminate === undefined || proc.status === 'initializing') {
      this.finalize(proc, reason);
      return;
    }
    proc.status = 'terminating';
    let result: unknown;
    try {
      result = terminate.call(proc.behaviour, reason, proc.state, proc);
    } catch (err) {
      this.log?.('warn', `terminate of ${pidKey(proc.self)} threw: ${formatReason(errorReason(err))}`);
    }
    if (result instanceof Promise) {
      proc.busy = true;
      result.then(
        () => this.finalize(proc, reason),
        () => this.finalize(proc, reason),
      );
      return;
    }
    this.finalize(proc, reason);
  }

  /** Removes a dead proc and tells its links, monitors and waiters. Idempotent. */
  finalize(proc: Proc, reason: ExitReason): void {
    if (proc.status === 'dead') return;
    const wasStarting = proc.status === 'initializing';
    proc.status = 'dead';
    proc.busy = false;
    this.procs.delete(proc.self.id);
    if (proc.name !== undefined && this.names.get(proc.name) === proc) this.names.delete(proc.name);
    proc.queue = [];
    proc.head = 0;
    if (proc.chart !== undefined) {
      const chart = proc.chart;
      proc.chart = undefined;
      try {
        chart.stop();
      } catch {
        // a statechart failing to stop is already dead
      }
    }
    const linkReason: ExitReason = reason === 'kill' ? 'killed' : reason;
    if (proc.links !== undefined) {
      const links = [...proc.links.values()];
      proc.links = undefined;
      for (const other of links)
        this.deliverSignal({ t: 'exit', from: proc.self, to: other, reason: linkReason, link: true });
    }
    if (proc.monitors !== undefined) {
      for (const [ref, target] of proc.monitors) this.dropMonitor(proc.self, ref, target);
      proc.monitors = undefined;
    }
    if (proc.watchers !== undefined) {
      const watchers = [...proc.watchers.values()];
      proc.watchers = undefined;
      for (const w of watchers) this.notifyDown(w, proc.self, linkReason);
    }
    if (proc.calls !== undefined) {
      const calls = [...proc.calls];
      proc.calls = undefined;
      for (const ref of calls) this.callDown(ref, linkReason);
    }
    if (wasStarting) {
      const waiter = this.startWaiters.get(proc);
      if (waiter !== undefined) {
        this.startWaiters.delete(proc);
        waiter.reject(new StartError(proc.self, reason));
      }
    }
    const waiters = this.exitWaiters.get(proc);
    if (waiters !== undefined) {
      this.exitWaiters.delete(proc);
      for (const w of waiters) w(reason);
    }
    if (this.listeners.size > 0) this.emit({ type: '@actors.exited', pid: proc.self, reason });
    if (!isQuietReason(reason)) this.log?.('warn', `${pidKey(proc.self)} exited: ${formatReason(reason)}`);
  }

  /** Resolves with `pid`'s exit reason when it exits (`noproc` if it is not alive). Local pids only. */
  awaitExit(pid: Pid): Promise<ExitReason> {
    const proc = this.resolve(pid);
    if (proc === undefined || proc.status === 'dead') return Promise.resolve('noproc');
    return new Promise((resolve) => {
      const list = this.exitWaiters.get(proc);
      if (list === undefined) this.exitWaiters.set(proc, [resolve]);
      else list.push(resolve);
    });
  }

  /**
   * Stops a local actor in order, as `gen_server:stop`: `terminate` runs, then it exits with
   * `reason`. If it has not exited after `timeoutMs` it is killed. Resolves with the exit reason.
   */
  async stop(pid: Pid, reason: ExitReason = 'normal', timeoutMs = 5000): Promise<ExitReason> {
    const proc = this.resolve(pid);
    if (proc === undefined) return 'noproc';
    const exited = this.awaitExit(pid);
    if (proc.status === 'running' && !proc.busy) this.terminate(proc, reason);
    else this.enqueue(proc, new StopEnvelope(reason));
    if (proc.status === 'initializing') proc.stopRequest = reason;
    return this.withTimeout(exited, timeoutMs, () => this.exit(pid, 'kill'));
  }

  /** Waits for `exited`; after `ms` runs `onTimeout` and keeps waiting. */
  withTimeout(exited: Promise<ExitReason>, ms: number, onTimeout: () => void): Promise<ExitReason> {
    if (!Number.isFinite(ms)) return exited;
    let timer: unknown;
    const timeout = new Promise<void>((resolve) => {
      timer = this.clock.setTimeout(resolve, ms);
    });
    const onExpiry = (): Promise<ExitReason> => {
      onTimeout();
      return exited;
    };
    return Promise.race([exited, timeout.then(onExpiry)]).finally(() => this.clock.clearTimeout(timer));
  }

  // ---- links and monitors ---------------------------------------------------------------------

  /** Links `proc` to `pid` both ways. Linking to a dead pid delivers an exit signal `noproc`. */
  link(proc: Proc, pid: Pid): void {
    if (!proc.alive) return;
    const key = pidKey(pid);
    if (proc.links?.has(key)) return;
    if (pid.node !== this.name) {
      (proc.links ??= new Map()).set(key, pid);
      if (this.route(pid.node, { t: 'link', from: proc.self, to: pid }) === 'dropped') {
        this.exitSignal(proc, pid, 'noconnection', true);
      }
      return;
    }
    const other = this.resolve(pid);
    if (other === undefined || !other.alive) {
      this.exitSignal(proc, pid, 'noproc', true);
      return;
    }
    (proc.links ??= new Map()).set(key, pid);
    (other.links ??= new Map()).set(pidKey(proc.self), proc.self);
  }

  unlink(proc: Proc, pid: Pid): void {
    const key = pidKey(pid);
    if (proc.links?.delete(key) !== true) return;
    if (pid.node !== this.name) {
      this.route(pid.node, { t: 'unlink', from: proc.self, to: pid });
      return;
    }
    this.resolve(pid)?.links?.delete(pidKey(proc.self));
  }

  /** `proc` monitors `pid`: one `@actors.down` when it exits (`noproc` at once if it is already dead). */
  monitor(proc: Proc, pid: Pid | RegName): MonitorRef {
    const ref = this.nextRef++;
    if (!proc.alive) return ref;
    (proc.monitors ??= new Map()).set(ref, pid);
    if (pid.node !== this.name) {
      if (this.route(pid.node, { t: 'monitor', from: proc.self, to: pid, ref }) === 'dropped') {
        this.deliverDown(proc, ref, pid, 'noconnection');
      }
      return ref;
    }
    const target = this.resolve(pid);
    if (target === undefined || !target.alive) this.deliverDown(proc, ref, pid, 'noproc');
    else this.addWatcher(target, `${this.name}#${ref}`, { ref, pid: proc.self });
    return ref;
  }

  demonitor(proc: Proc, ref: MonitorRef): void {
    const target = proc.monitors?.get(ref);
    if (target === undefined) return;
    proc.monitors?.delete(ref);
    this.dropMonitor(proc.self, ref, target);
  }

  private dropMonitor(watcher: Pid, ref: MonitorRef, target: Pid | RegName): void {
    if (target.node !== this.name) {
      // by pid or by name: the remote side forgets the watcher either way (no leak on the target)
      this.route(target.node, { t: 'demonitor', from: watcher, to: target, ref });
      return;
    }
    this.resolve(target)?.watchers?.delete(`${watcher.node}#${ref}`);
  }

  private addWatcher(target: Proc, key: string, watcher: Watcher): void {
    (target.watchers ??= new Map()).set(key, watcher);
  }

  private notifyDown(watcher: Watcher, pid: Pid | RegName, reason: ExitReason): void {
    const to = watcher.pid;
    if (to.node !== this.name) {
      this.route(to.node, { t: 'down', to, ref: watcher.ref, pid, reason });
      return;
    }
    const proc = this.resolve(to);
    if (proc !== undefined) this.deliverDown(proc, watcher.ref, pid, reason);
  }

  private deliverDown(proc: Proc, ref: MonitorRef, pid: Pid | RegName, reason: ExitReason): void {
    if (proc.monitors?.delete(ref) !== true) return;
    this.enqueue(proc, { type: '@actors.down', ref, pid, reason });
  }

  /** Whether signals to `node` leave now: this node itself, or a node with a link up. */
  isConnected(node: NodeName): boolean {
    if (node === this.name) return true;
    return this.distribution?.isConnected(node) ?? false;
  }

  /** `proc` gets `@actors.nodeup`/`@actors.nodedown` for `node`. */
  monitorNode(proc: Proc, node: NodeName, enable: boolean): void {
    if (!enable) {
      proc.nodeMonitors?.delete(node);
      return;
    }
    (proc.nodeMonitors ??= new Set()).add(node);
    if (this.distribution === undefined || !this.distribution.isConnected(node)) {
      this.distribution?.connect?.(node);
      if (this.distribution === undefined || !this.distribution.isConnected(node)) {
        this.enqueue(proc, { type: '@actors.nodedown', node });
      }
    }
  }

  // ---- registry and timers --------------------------------------------------------------------

  /** Registers a local pid under `name`; throws if the name is taken or the pid is not alive. */
  register(name: string, pid: Pid): void {
    const proc = pid.node === this.name ? this.resolve(pid) : undefined;
    if (proc === undefined || !proc.alive) throw new NoProcError(pid);
    this.registerProc(name, proc);
  }

  registerProc(name: string, proc: Proc): void {
    const holder = this.names.get(name);
    if (holder !== undefined && holder !== proc) throw new Error(`name already registered: ${name}`);
    if (proc.name !== undefined && proc.name !== name) this.names.delete(proc.name);
    this.names.set(name, proc);
    proc.name = name;
  }

  unregister(name: string): void {
    const proc = this.names.get(name);
    if (proc === undefined) return;
    this.names.delete(name);
    proc.name = undefined;
  }

  /** The pid registered under `name`, if any. */
  whereis(name: string): Pid | undefined {
    return this.names.get(name)?.self;
  }

  /** Sends `msg` to `dest` after `ms` on the node's clock. */
  sendAfter(ms: number, dest: Dest, msg: unknown): TimerRef {
    const timer = this.nextRef++;
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(timer);
      this.send(dest, msg);
    }, ms);
    this.timers.set(timer, handle);
    return { timer };
  }

  /** Cancels a `sendAfter`; false if it already fired or was cancelled. */
  cancelTimer(ref: TimerRef): boolean {
    const handle = this.timers.get(ref.timer);
    if (handle === undefined) return false;
    this.timers.delete(ref.timer);
    this.clock.clearTimeout(handle);
    return true;
  }

  // ---- distribution ---------------------------------------------------------------------------

  /** Installs the transport that carries signals to other nodes. */
  setDistribution(distribution: Distribution | undefined): void {
    this.distribution = distribution;
  }

  private route(node: NodeName, signal: Signal): SendStatus {
    if (this.distribution === undefined) return 'dropped';
    return this.distribution.route(node, signal);
  }

  /**
   * Hands a signal that arrived from another node to the local actors it is for. A message in
   * the runtime's own namespace (`@actors.down`, `@actors.exit`, `@actors.nodeup`, ...) is made
   * only by the local runtime: one sent from another node is dropped, so a peer cannot fake a
   * monitor firing or an exit.
   */
  deliver(signal: Signal): void {
    if (signal.t === 'reply') {
      this.reply(signal.to, signal.value);
      return;
    }
    if (signal.to.node !== this.name) return;
    if ((signal.t === 'send' || signal.t === 'cast') && isRuntimeMessage(signal.msg)) {
      this.log?.('warn', `dropped a ${(signal.msg as { type: string }).type} sent from another node`);
      return;
    }
    this.deliverSignal(signal);
  }

  /** Acts on a signal whose destination is local, or routes it on if not. */
  private deliverSignal(signal: Signal): void {
    if (signal.t === 'reply') {
      this.reply(signal.to, signal.value);
      return;
    }
    const to = signal.to;
    if (to.node !== this.name) {
      this.route(to.node, signal);
      return;
    }
    switch (signal.t) {
      case 'send':
        this.send(to, signal.msg);
        return;
      case 'cast':
        this.cast(to, signal.msg);
        return;
      case 'call': {
        const proc = this.resolve(to);
        // no process: the caller's monitor answers `noproc`
        if (proc !== undefined) this.enqueue(proc, new CallEnvelope(signal.request, signal.from));
        return;
      }
      case 'link': {
        const proc = this.resolve(to);
        if (proc === undefined || !proc.alive) {
          this.route(signal.from.node, {
            t: 'exit',
            from: signal.to as Pid,
            to: signal.from,
            reason: 'noproc',
            link: true,
          });
        } else (proc.links ??= new Map()).set(pidKey(signal.from), signal.from);
        return;
      }
      case 'unlink':
        this.resolve(to)?.links?.delete(pidKey(signal.from));
        return;
      case 'exit': {
        const proc = this.resolve(to);
        if (proc !== undefined) this.exitSignal(proc, signal.from, signal.reason, signal.link);
        return;
      }
      case 'monitor': {
        const proc = this.resolve(to);
        const watcher: Watcher = { ref: signal.ref, pid: signal.from };
        if (proc === undefined || !proc.alive) this.notifyDown(watcher, to, 'noproc');
        else this.addWatcher(proc, `${signal.from.node}#${signal.ref}`, watcher);
        return;
      }
      case 'demonitor':
        this.resolve(to)?.watchers?.delete(`${signal.from.node}#${signal.ref}`);
        return;
      case 'down': {
        if (signal.to.id === 0) {
          if (signal.to.creation === this.creation) this.callDown(signal.ref, signal.reason);
          return;
        }
        const proc = this.resolve(to);
        if (proc !== undefined) this.deliverDown(proc, signal.ref, signal.pid, signal.reason);
        return;
      }
    }
  }

  /** The transport reports a new authenticated link to `node`. */
  nodeUp(node: NodeName): void {
    for (const proc of this.procs.values()) {
      if (proc.nodeMonitors?.has(node)) this.enqueue(proc, { type: '@actors.nodeup', node });
    }
  }

  /**
   * The link to `node` went down: monitors of its actors fire `noconnection`, links to them deliver
   * `noconnection` exit signals, calls to them fail, and node monitors get `@actors.nodedown`.
   */
  nodeDown(node: NodeName): void {
    for (const [ref, pending] of [...this.pending]) {
      const target = pending.target;
      if (target !== undefined && !(target instanceof Proc) && target.node === node) {
        this.pending.delete(ref);
        if (pending.timer !== undefined) this.clock.clearTimeout(pending.timer);
        pending.reject(new ExitError(pending.dest, 'noconnection'));
      }
    }
    for (const proc of [...this.procs.values()]) {
      if (proc.watchers !== undefined) {
        for (const [key, w] of proc.watchers) if (w.pid.node === node) proc.watchers.delete(key);
      }
      if (proc.monitors !== undefined) {
        for (const [ref, target] of [...proc.monitors]) {
          if (target.node === node) this.deliverDown(proc, ref, target, 'noconnection');
        }
      }
      if (proc.links !== undefined) {
        for (const other of [...proc.links.values()]) {
          if (other.node === node) this.exitSignal(proc, other, 'noconnection', true);
        }
      }
      if (proc.nodeMonitors?.has(node)) this.enqueue(proc, { type: '@actors.nodedown', node });
    }
  }

  // ---- inspection -----------------------------------------------------------------------------

  /** Is `pid` a live local actor? */
  isAlive(pid: Pid): boolean {
    const proc = pid.node === this.name ? this.resolve(pid) : undefined;
    return proc?.alive === true;
  }

  /** The number of live actors. */
  get size(): number {
    return this.procs.size;
  }

  /**
   * Streams lifecycle events to `listener` until the returned function is called. With
   * `{ messages: true }` every local delivery is reported too (slow: for debugging).
   */
  inspect(listener: InspectionListener, options?: { messages?: boolean }): () => void {
    this.listeners.set(listener, options?.messages === true);
    this.traceMessages = [...this.listeners.values()].some(Boolean);
    return () => {
      this.listeners.delete(listener);
      this.traceMessages = [...this.listeners.values()].some(Boolean);
    };
  }

  /** Publishes an inspection event (supervisors report restarts through this). */
  emit(event: InspectionEvent): void {
    for (const [listener, messages] of this.listeners) {
      if (event.type === '@actors.message' && !messages) continue;
      try {
        listener(event);
      } catch (err) {
        this.log?.('warn', `inspection listener threw: ${formatReason(errorReason(err))}`);
      }
    }
  }

  /** Information about one local actor, without its children. */
  info(pid: Pid): Omit<ActorInfo, 'children'> | undefined {
    const proc = pid.node === this.name ? this.resolve(pid) : undefined;
    return proc === undefined ? undefined : describeProc(proc);
  }

  /** The live tree of actors on this node as JSON: roots are actors without a live local parent. */
  inspectTree(): NodeTree {
    const byParent = new Map<number, Proc[]>();
    const roots: Proc[] = [];
    for (const proc of this.procs.values()) {
      const parent = proc.parent;
      if (parent !== undefined && parent.node === this.name && this.resolve(parent) !== undefined) {
        const list = byParent.get(parent.id);
        if (list === undefined) byParent.set(parent.id, [proc]);
        else list.push(proc);
      } else roots.push(proc);
    }
    const build = (proc: Proc): ActorInfo => ({
      ...describeProc(proc),
      children: (byParent.get(proc.self.id) ?? []).map(build),
    });
    return { node: this.name, creation: this.creation, actors: this.procs.size, roots: roots.map(build) };
  }

  /**
   * Stops every actor: roots in reverse spawn order, each in order (supervisors stop their
   * children first), killing any that take longer than `timeoutMs`.
   */
  async shutdown(timeoutMs = 5000): Promise<void> {
    const roots = this.inspectTree().roots.map((r) => r.pid);
    for (const pid of roots.reverse()) await this.stop(pid, 'shutdown', timeoutMs);
    for (const proc of [...this.procs.values()]) this.finalize(proc, 'killed');
    for (const handle of this.timers.values()) this.clock.clearTimeout(handle);
    this.timers.clear();
  }
}

function isQuietReason(reason: ExitReason): boolean {
  return (
    reason === 'normal' ||
    reason === 'shutdown' ||
    reason === 'killed' ||
    (typeof reason === 'object' && 'shutdown' in reason)
  );
}

function describeProc(proc: Proc): Omit<ActorInfo, 'children'> {
  let stateValue: unknown;
  if (proc.chart !== undefined) stateValue = (proc.chart.getSnapshot() as { value?: unknown }).value;
  else if (proc.status === 'running') {
    const describe = (proc.behaviour as AnyGenServer<unknown>).describe;
    if (describe !== undefined) {
      try {
        stateValue = describe(proc.state);
      } catch {
        stateValue = undefined;
      }
    }
  }
  return {
    pid: proc.self,
    ...(proc.name === undefined ? {} : { name: proc.name }),
    kind: proc.kind,
    ...(proc.parent === undefined ? {} : { parent: proc.parent }),
    ...(proc.childId === undefined ? {} : { childId: proc.childId }),
    status: proc.status,
    busy: proc.busy,
    mailbox: proc.mailboxLength,
    restarts: proc.restarts,
    trapExit: proc.trapping,
    links: proc.links?.size ?? 0,
    monitors: proc.monitors?.size ?? 0,
    ...(stateValue === undefined ? {} : { stateValue }),
  };
}

/** True for a message in the runtime's namespace (`{ type: '@actors.…' }`). */
function isRuntimeMessage(msg: unknown): boolean {
  if (typeof msg !== 'object' || msg === null) return false;
  const type = (msg as { type?: unknown }).type;
  return typeof type === 'string' && type.startsWith('@actors.');
}
