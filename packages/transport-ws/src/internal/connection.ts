import { randomBytes } from 'node:crypto';
import type { Node, SendStatus, Signal } from '@otra/actors';
import type { NodeName } from '@otra/protocol';
import type WebSocket from 'ws';
import {
  buildDataFrame,
  createFrameCodec,
  DATA_FRAME_OVERHEAD,
  decodeFrame,
  encodeControl,
  encodeSignal,
  FRAME_HANDSHAKE,
  FRAME_TICK,
  type FrameCodec,
  FrameError,
  wireToSignal,
} from './frames.ts';
import {
  CHALLENGE_BYTES,
  CLOSE,
  type HandshakeConfig,
  type HandshakeMsg,
  type HandshakeState,
  handshakeStep,
  type PeerInfo,
  type Refusal,
  startAcceptor,
  startInitiator,
} from './handshake.ts';

export type LogLevel = 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, message: string) => void;
export type FullPolicy = 'busy' | 'drop_oldest' | 'drop_new';

/** Settings a connection needs, derived once from the transport's options. */
export interface ConnectionSettings {
  readonly handshake: HandshakeConfig;
  readonly handshakeTimeoutMs: number;
  readonly sendBufferBytes: number;
  readonly onFull: FullPolicy;
  readonly log: Logger;
}

/** How a connection tells its transport about its life. */
export interface ConnectionHooks {
  /** The handshake succeeded: the transport installs the link (and retires any older one). */
  up(conn: Connection, peer: PeerInfo): void;
  /** Called exactly once, when the connection ends for any reason. */
  closed(conn: Connection, why: Refusal, byPeer: boolean): void;
  /** The send buffer fell below half its bound: wake whoever waits to write. */
  writable(conn: Connection): void;
}

/** Counters of one link, for `stats()`. */
export interface LinkCounters {
  framesOut: number;
  framesIn: number;
  signalsOut: number;
  signalsIn: number;
  bytesOut: number;
  bytesIn: number;
  busy: number;
  dropped: number;
}

/** Largest data frame we build; bigger signals go out alone (up to the peer's `maxPayload`). */
const FRAME_CAP = 256 * 1024;
/** Dead links are detected after this many tick intervals without a frame (as `net_ticktime`). */
const SILENT_TICKS = 4;
const CLOSE_GRACE_MS = 1000;

const EMPTY_REASON: Refusal = { code: 1006, reason: 'connection lost' };

/**
 * One WebSocket between this node and a peer: the handshake, then the link's send buffer, the
 * coalescing of signals into frames, and the decoding of the peer's frames into `node.deliver`.
 *
 * Send path: `enqueue` encodes a signal at once (the message is copied at send time) and queues
 * the bytes; one `process.nextTick` per turn turns everything queued into as few frames as
 * possible. The queue plus the bytes handed to the socket and not yet written (`inflight`, what
 * `ws.bufferedAmount` reports) are bounded by `sendBufferBytes`.
 */
export class Connection {
  peer: PeerInfo | undefined = undefined;
  state: 'handshake' | 'up' | 'closed' = 'handshake';
  readonly counters: LinkCounters = {
    framesOut: 0,
    framesIn: 0,
    signalsOut: 0,
    signalsIn: 0,
    bytesOut: 0,
    bytesIn: 0,
    busy: 0,
    dropped: 0,
  };
  private hs: HandshakeState;
  private readonly codec: FrameCodec = createFrameCodec();
  private queue: Uint8Array[] = [];
  /** For each queued item: may `drop_oldest` discard it (a `send` or `cast`)? */
  private droppable: boolean[] = [];
  private head = 0;
  private queuedBytes = 0;
  private inflight = 0;
  /** Sizes of the frames handed to the socket whose write has not completed, oldest first. */
  private writing: number[] = [];
  private writingHead = 0;
  private flushScheduled = false;
  private sendSeq = 0;
  private recvSeq = 0;
  private sentSinceTick = false;
  private recvMark = 0;
  private silentTicks = 0;
  private handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  private wantWritable = false;
  private readonly highWater: number;
  private frameCap = FRAME_CAP;

  constructor(
    readonly ws: WebSocket,
    readonly role: 'initiator' | 'acceptor',
    private readonly node: Node,
    private readonly settings: ConnectionSettings,
    private readonly hooks: ConnectionHooks,
    /** The node an initiator expects at its URL; the remote address for an acceptor (for logs). */
    readonly label: NodeName,
  ) {
    this.highWater = Math.max(64 * 1024, Math.floor(settings.sendBufferBytes / 4));
    const challenge = randomBytes(CHALLENGE_BYTES);
    if (role === 'acceptor') this.hs = startAcceptor(challenge);
    else {
      const start = startInitiator(settings.handshake, label, challenge);
      this.hs = start.state;
      ws.once('open', () => this.sendHandshake(start.send));
    }
    this.handshakeTimer = setTimeout(
      () => this.close(CLOSE.handshakeTimeout, `handshake not finished in ${settings.handshakeTimeoutMs} ms`),
      settings.handshakeTimeoutMs,
    );
    this.handshakeTimer.unref?.();
    ws.on('message', this.onMessage);
    ws.on('error', this.onError);
    ws.on('close', this.onClose);
  }

  /** Who is at the other end, for logs. */
  get who(): string {
    return this.peer?.name ?? this.label;
  }

  // ---- receiving ------------------------------------------------------------------------------

  private readonly onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
    if (this.state === 'closed') return;
    try {
      if (!isBinary) throw new FrameError('text frame on a binary link');
      const bytes = toBytes(data);
      this.counters.framesIn++;
      this.counters.bytesIn += bytes.length;
      const frame = decodeFrame(this.codec, bytes);
      if (frame.kind === 'handshake') {
        this.onHandshake(frame.msg);
        return;
      }
      if (this.state !== 'up') throw new FrameError(`${frame.kind} frame before authentication`);
      if (frame.kind === 'tick') return;
      if (frame.seq !== this.recvSeq + 1) {
        throw new FrameError(`data frame ${frame.seq} out of order (expected ${this.recvSeq + 1})`);
      }
      this.recvSeq = frame.seq;
      const local = this.node.name;
      const peer = (this.peer as PeerInfo).name;
      delivering = true;
      for (const raw of frame.signals) {
        const signal = wireToSignal(raw, local, peer);
        this.counters.signalsIn++;
        this.node.deliver(signal);
        if (this.state !== 'up') return;
      }
    } catch (err) {
      if (err instanceof FrameError) this.close(CLOSE.protocol, err.message);
      else this.close(CLOSE.protocol, `internal error on a received frame: ${describe(err)}`);
    } finally {
      delivering = false;
    }
  };

  private onHandshake(msg: unknown): void {
    const step = handshakeStep(this.settings.handshake, this.hs, msg);
    this.hs = step.state;
    if (step.refuse !== undefined) {
      this.close(step.refuse.code, step.refuse.reason);
      return;
    }
    if (step.send !== undefined) this.sendHandshake(step.send);
    if (step.up !== undefined) {
      this.peer = step.up;
      this.state = 'up';
      this.frameCap = Math.min(FRAME_CAP, step.up.maxPayload - DATA_FRAME_OVERHEAD);
      if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
      this.handshakeTimer = undefined;
      this.hooks.up(this, step.up);
    } else if (this.hs.phase === 'acceptor.challenge_sent') this.peer = this.hs.peer;
  }

  private readonly onError = (err: Error): void => {
    // 'close' always follows; keep the first cause for the log
    this.lastError ??= describe(err);
  };
  private lastError: string | undefined;

  private readonly onClose = (code: number, reason: Buffer): void => {
    if (this.state === 'closed') return;
    const text = reason.toString('utf8');
    const why: Refusal = {
      code,
      reason: text.length > 0 ? text : (this.lastError ?? closeCodeText(code) ?? EMPTY_REASON.reason),
    };
    this.finish(why, true);
  };

  // ---- sending --------------------------------------------------------------------------------

  private sendHandshake(msg: HandshakeMsg): void {
    if (this.ws.readyState !== 1) return;
    this.ws.send(encodeControl(this.codec, [FRAME_HANDSHAKE, msg]));
  }

  /** Queues a signal for the next frame. `send`/`cast` obey the bound; other signals never wait. */
  enqueue(signal: Signal): SendStatus {
    if (this.state !== 'up') return 'dropped';
    let bytes: Uint8Array;
    try {
      bytes = encodeSignal(this.codec, signal);
    } catch (err) {
      this.counters.dropped++;
      this.settings.log('warn', `cannot encode a ${signal.t} signal for ${this.who}: ${describe(err)}`);
      return 'dropped';
    }
    const size = bytes.length;
    if (size + DATA_FRAME_OVERHEAD > (this.peer as PeerInfo).maxPayload) {
      this.counters.dropped++;
      this.settings.log(
        'warn',
        `dropped a ${signal.t} signal of ${size} bytes for ${this.who}: over its maxPayload ${(this.peer as PeerInfo).maxPayload}`,
      );
      return 'dropped';
    }
    const flow = signal.t === 'send' || signal.t === 'cast';
    if (flow && this.queuedBytes + this.inflight + size > this.settings.sendBufferBytes) {
      const status = this.full(size);
      if (status !== 'ok') return status;
    }
    this.queue.push(bytes);
    this.droppable.push(flow);
    this.queuedBytes += size;
    if (this.queuedBytes >= this.frameCap && this.inflight < this.highWater) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      if (delivering) process.nextTick(this.flushTick);
      else queueMicrotask(this.flushNow);
    }
    return 'ok';
  }

  /** The buffer is full: apply the policy. `ok` means room was made for `size` bytes. */
  private full(size: number): SendStatus {
    switch (this.settings.onFull) {
      case 'busy':
        this.counters.busy++;
        this.wantWritable = true;
        return 'busy';
      case 'drop_new':
        this.counters.dropped++;
        return 'dropped';
      case 'drop_oldest': {
        const room = this.settings.sendBufferBytes - size;
        let i = this.head;
        while (this.queuedBytes + this.inflight > room && i < this.queue.length) {
          if (this.droppable[i] === true) {
            this.queuedBytes -= (this.queue[i] as Uint8Array).length;
            this.queue.splice(i, 1);
            this.droppable.splice(i, 1);
            this.counters.dropped++;
          } else i++;
        }
        if (this.queuedBytes + this.inflight > room) {
          this.counters.dropped++;
          return 'dropped';
        }
        return 'ok';
      }
    }
  }

  /** Bytes queued or handed to the socket and not yet written. */
  get buffered(): number {
    return this.queuedBytes + this.inflight;
  }

  /** Is the send buffer below half its bound (the point where a `busy` sender is woken)? */
  get writable(): boolean {
    return this.buffered * 2 < this.settings.sendBufferBytes;
  }

  /** Ask for a `writable` hook call once the buffer has drained below half. */
  requestWritable(): void {
    this.wantWritable = true;
  }

  /**
   * Signals routed while a received frame is being delivered flush from `process.nextTick`, which
   * runs before the promise jobs of the current turn, and then hop once more through
   * `queueMicrotask`: the continuations already queued (a caller awaiting the reply that just
   * arrived and making its next call) then add their signals to the same frame. Signals routed
   * from anywhere else (an actor's handler runs in the node's drain microtask) flush from one
   * microtask queued behind the current one.
   */
  private readonly flushTick = (): void => {
    queueMicrotask(this.flushNow);
  };

  private readonly flushNow = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  /** Writes queued signals as frames of up to `frameCap` bytes while the socket keeps up. */
  private flush(): void {
    if (this.state !== 'up') return;
    const queue = this.queue;
    while (this.head < queue.length && this.inflight < this.highWater) {
      let end = this.head;
      let bytes = 0;
      while (end < queue.length) {
        const n = (queue[end] as Uint8Array).length;
        if (end > this.head && bytes + n > this.frameCap) break;
        bytes += n;
        end++;
      }
      const frame = buildDataFrame(++this.sendSeq, queue, this.head, end, bytes);
      this.counters.signalsOut += end - this.head;
      for (let i = this.head; i < end; i++) queue[i] = EMPTY;
      this.head = end;
      this.queuedBytes -= bytes;
      this.write(frame);
    }
    if (this.head === queue.length) {
      queue.length = 0;
      this.droppable.length = 0;
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > queue.length) {
      this.queue = queue.slice(this.head);
      this.droppable = this.droppable.slice(this.head);
      this.head = 0;
    }
  }

  private write(frame: Uint8Array): void {
    const length = frame.length;
    this.inflight += length;
    this.sentSinceTick = true;
    this.counters.framesOut++;
    this.counters.bytesOut += length;
    this.writing.push(length);
    this.ws.send(frame, SEND_OPTIONS, this.written);
  }

  /** A frame reached the kernel. Socket writes complete in order, so `writing` is a FIFO. */
  private readonly written = (): void => {
    this.inflight -= this.writing[this.writingHead++] ?? 0;
    if (this.writingHead === this.writing.length) {
      this.writing.length = 0;
      this.writingHead = 0;
    }
    if (this.state !== 'up') return;
    if (this.head < this.queue.length && this.inflight < this.highWater) this.flush();
    if (this.wantWritable && this.buffered * 2 < this.settings.sendBufferBytes) {
      this.wantWritable = false;
      this.hooks.writable(this);
    }
  };

  // ---- liveness -------------------------------------------------------------------------------

  /** Called every tick interval: sends a tick on an idle link, closes one that has gone silent. */
  tick(): void {
    if (this.state !== 'up') return;
    if (this.counters.framesIn === this.recvMark) {
      if (++this.silentTicks >= SILENT_TICKS) {
        this.close(CLOSE.tickTimeout, `no frame from ${this.who} in ${SILENT_TICKS} tick intervals`);
        this.ws.terminate();
        return;
      }
    } else {
      this.recvMark = this.counters.framesIn;
      this.silentTicks = 0;
    }
    if (!this.sentSinceTick && this.ws.readyState === 1) {
      this.ws.send(encodeControl(this.codec, [FRAME_TICK]));
      this.counters.framesOut++;
    }
    this.sentSinceTick = false;
  }

  // ---- closing --------------------------------------------------------------------------------

  /** Closes the connection with a reason both ends log; the transport hears of it at once. */
  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    const ws = this.ws;
    if (ws.readyState === 0) ws.terminate();
    else if (ws.readyState === 1) {
      ws.close(code, truncateReason(reason));
      const timer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
      timer.unref?.();
      ws.once('close', () => clearTimeout(timer));
    }
    this.finish({ code, reason }, false);
  }

  private finish(why: Refusal, byPeer: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.queue = [];
    this.droppable = [];
    this.head = 0;
    this.queuedBytes = 0;
    this.hooks.closed(this, why, byPeer);
  }
}

const EMPTY = new Uint8Array(0);
const SEND_OPTIONS = { binary: true };
/** True while a received frame's signals are being handed to a node (see `flushTick`). */
let delivering = false;

function toBytes(data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

function truncateReason(reason: string): string {
  // a close reason is at most 123 bytes of UTF-8
  let out = reason.length > 120 ? reason.slice(0, 120) : reason;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

function closeCodeText(code: number): string | undefined {
  switch (code) {
    case 1000:
      return 'closed normally';
    case 1001:
      return 'peer going away';
    case 1006:
      return 'connection lost';
    case 1009:
      return 'frame larger than maxPayload';
    default:
      return undefined;
  }
}

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
