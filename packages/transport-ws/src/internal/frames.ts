/**
 * The wire format of a link. Every WebSocket message is one binary CBOR frame, an array whose first
 * element says what it is:
 *
 * - `[0, handshake]`: a handshake message (see `handshake.ts`), only before the link is up;
 * - `[1, seq, s1, s2, ...]`: a data frame, the signals queued for the peer in one event-loop turn,
 *   `seq` counting data frames from 1 on each connection so the receiver can check order;
 * - `[2]`: a tick, sent on an idle link so the peer knows we are alive.
 *
 * A signal travels as a tuple rather than an object (no key strings on the wire; the shape is fixed
 * by the tag), each pid as `[node, id, creation]` and a registered name as `[node, name]`. Each
 * signal is encoded on its own when it is routed (so the message is copied at send time, as Erlang
 * does, and its exact size is known to the send buffer); a data frame is the concatenation of those
 * encodings behind a CBOR array header, which is valid CBOR that one `decode` reads back.
 *
 * Decoding is defensive: a frame from the network is `unknown` until validated, and anything that
 * does not fit throws `FrameError`, which closes the link.
 */
import type { ExitReason, From, RegName, Signal } from '@otra/actors';
import { createCodec, type NodeName, type Pid, writeCborHead } from '@otra/protocol';

export const FRAME_HANDSHAKE = 0;
export const FRAME_DATA = 1;
export const FRAME_TICK = 2;

/** A frame that cannot be accepted; the link is closed with `message` as the logged reason. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
}

const SIGNAL_TAGS = {
  send: 0,
  cast: 1,
  call: 2,
  reply: 3,
  link: 4,
  unlink: 5,
  exit: 6,
  monitor: 7,
  demonitor: 8,
  down: 9,
} as const satisfies Record<Signal['t'], number>;

type WirePid = [NodeName, number, number];
type WireDest = WirePid | [NodeName, string];

/** The encoder and decoder of one side of a link (no shared record tables: both sides stay stateless). */
export interface FrameCodec {
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

/** The shared CBOR set-up (`createCodec`): the same options and fast encoder as the log's. */
export function createFrameCodec(): FrameCodec {
  const codec = createCodec();
  return { encode: codec.encode, decode: codec.decode };
}

function wirePid(pid: Pid): WirePid {
  return [pid.node, pid.id, pid.creation];
}

function wireDest(dest: Pid | RegName): WireDest {
  return 'id' in dest ? [dest.node, dest.id, dest.creation] : [dest.node, dest.name];
}

/** The tuple form of a signal, ready for `encode`. */
export function signalToWire(signal: Signal): unknown[] {
  switch (signal.t) {
    case 'send':
      return [SIGNAL_TAGS.send, wireDest(signal.to), signal.msg];
    case 'cast':
      return [SIGNAL_TAGS.cast, wireDest(signal.to), signal.msg];
    case 'call':
      return [
        SIGNAL_TAGS.call,
        wireDest(signal.to),
        signal.request,
        signal.from.node,
        signal.from.creation,
        signal.from.ref,
      ];
    case 'reply':
      return [SIGNAL_TAGS.reply, signal.to.node, signal.to.creation, signal.to.ref, signal.value];
    case 'link':
      return [SIGNAL_TAGS.link, wirePid(signal.from), wirePid(signal.to)];
    case 'unlink':
      return [SIGNAL_TAGS.unlink, wirePid(signal.from), wirePid(signal.to)];
    case 'exit':
      return [SIGNAL_TAGS.exit, wirePid(signal.from), wirePid(signal.to), signal.reason, signal.link];
    case 'monitor':
      return [SIGNAL_TAGS.monitor, wirePid(signal.from), wireDest(signal.to), signal.ref];
    case 'demonitor':
      return [SIGNAL_TAGS.demonitor, wirePid(signal.from), wireDest(signal.to), signal.ref];
    case 'down':
      return [SIGNAL_TAGS.down, wirePid(signal.to), signal.ref, wireDest(signal.pid), signal.reason];
  }
}

/** Encodes one signal for the send buffer. */
export function encodeSignal(codec: FrameCodec, signal: Signal): Uint8Array {
  return codec.encode(signalToWire(signal));
}

/** Encodes a control frame (handshake or tick). */
export function encodeControl(codec: FrameCodec, frame: readonly unknown[]): Uint8Array {
  return codec.encode(frame);
}

/** Bytes a data frame adds around its signals, at most. */
export const DATA_FRAME_OVERHEAD = 19;

/**
 * Builds the data frame `[1, seq, ...items]` from already encoded signals `items[from..to)` whose
 * sizes add up to `bytes`.
 */
export function buildDataFrame(
  seq: number,
  items: readonly Uint8Array[],
  from: number,
  to: number,
  bytes: number,
): Uint8Array {
  const out = Buffer.allocUnsafe(bytes + DATA_FRAME_OVERHEAD);
  let at = writeCborHead(out, 0, 4, to - from + 2);
  out[at++] = FRAME_DATA;
  at = writeCborHead(out, at, 0, seq);
  for (let i = from; i < to; i++) {
    const item = items[i] as Uint8Array;
    out.set(item, at);
    at += item.length;
  }
  return out.subarray(0, at);
}

/** A frame as read from the network, before its signals are validated. */
export type RawFrame =
  | { readonly kind: 'handshake'; readonly msg: unknown }
  | { readonly kind: 'data'; readonly seq: number; readonly signals: readonly unknown[] }
  | { readonly kind: 'tick' };

/** Decodes a frame's envelope; throws `FrameError` on anything that is not one. */
export function decodeFrame(codec: FrameCodec, bytes: Uint8Array): RawFrame {
  let value: unknown;
  try {
    value = codec.decode(bytes);
  } catch (err) {
    throw new FrameError(`undecodable frame: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!Array.isArray(value) || value.length === 0) throw new FrameError('frame is not a tagged array');
  switch (value[0]) {
    case FRAME_HANDSHAKE:
      if (value.length !== 2) throw new FrameError('malformed handshake frame');
      return { kind: 'handshake', msg: value[1] };
    case FRAME_DATA: {
      // cbor-x reads 8-byte integers (sequences past 2^32) as bigints
      const raw: unknown = value[1];
      const seq = typeof raw === 'bigint' && raw <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw) : raw;
      if (!Number.isSafeInteger(seq) || (seq as number) < 1)
        throw new FrameError('data frame without a sequence');
      return { kind: 'data', seq: seq as number, signals: value.slice(2) };
    }
    case FRAME_TICK:
      if (value.length !== 1) throw new FrameError('malformed tick frame');
      return { kind: 'tick' };
    default:
      throw new FrameError(`unknown frame type ${safeTag(value[0])}`);
  }
}

function safeTag(value: unknown): string {
  return typeof value === 'number' || typeof value === 'string' ? String(value).slice(0, 32) : typeof value;
}

function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 255;
}

function isInt(value: unknown): value is number {
  return Number.isSafeInteger(value);
}

function readPid(value: unknown, what: string): Pid {
  if (!Array.isArray(value) || value.length !== 3) throw new FrameError(`${what} is not a pid`);
  const [node, id, creation] = value as unknown[];
  if (!isName(node) || !isInt(id) || !isInt(creation)) throw new FrameError(`${what} is not a pid`);
  return { node, id, creation };
}

function readDest(value: unknown, what: string): Pid | RegName {
  if (Array.isArray(value) && value.length === 2) {
    const [node, name] = value as unknown[];
    if (isName(node) && typeof name === 'string') return { node, name };
    throw new FrameError(`${what} is not a registered name`);
  }
  return readPid(value, what);
}

/** Exit reasons are strings or plain objects (an error or a shutdown with detail). */
function readReason(value: unknown): ExitReason {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const v = value as Record<string, unknown>;
    if (typeof v.error === 'string' && typeof v.message === 'string') {
      return typeof v.stack === 'string'
        ? { error: v.error, message: v.message, stack: v.stack }
        : { error: v.error, message: v.message };
    }
    if ('shutdown' in v) return { shutdown: v.shutdown };
  }
  throw new FrameError('malformed exit reason');
}

function expectLength(tuple: unknown[], n: number, what: string): void {
  if (tuple.length !== n) throw new FrameError(`malformed ${what} signal`);
}

function mustBeLocal(dest: { node: NodeName }, local: NodeName, what: string): void {
  if (dest.node !== local) throw new FrameError(`${what} addressed to node ${dest.node}, not ${local}`);
}

function mustBePeer(pid: { node: NodeName }, peer: NodeName, what: string): void {
  if (pid.node !== peer) throw new FrameError(`${what} claims node ${pid.node}, but the link is to ${peer}`);
}

/**
 * Turns a received tuple into a signal, checking that it is addressed to `local` and that every
 * pid it claims as its sender belongs to `peer` (a peer cannot speak for a third node).
 */
export function wireToSignal(value: unknown, local: NodeName, peer: NodeName): Signal {
  if (!Array.isArray(value) || value.length === 0) throw new FrameError('signal is not a tagged array');
  const tuple = value as unknown[];
  switch (tuple[0]) {
    case SIGNAL_TAGS.send:
    case SIGNAL_TAGS.cast: {
      expectLength(tuple, 3, 'send');
      const to = readDest(tuple[1], 'destination');
      mustBeLocal(to, local, 'message');
      return { t: tuple[0] === SIGNAL_TAGS.send ? 'send' : 'cast', to, msg: tuple[2] };
    }
    case SIGNAL_TAGS.call: {
      expectLength(tuple, 6, 'call');
      const to = readDest(tuple[1], 'destination');
      mustBeLocal(to, local, 'call');
      const [, , request, node, creation, ref] = tuple;
      if (!isName(node) || !isInt(creation) || !isInt(ref)) throw new FrameError('malformed call sender');
      const from: From = { node, creation, ref };
      mustBePeer(from, peer, 'call');
      return { t: 'call', to, request, from };
    }
    case SIGNAL_TAGS.reply: {
      expectLength(tuple, 5, 'reply');
      const [, node, creation, ref, replyValue] = tuple;
      if (!isName(node) || !isInt(creation) || !isInt(ref)) throw new FrameError('malformed reply target');
      const to: From = { node, creation, ref };
      mustBeLocal(to, local, 'reply');
      return { t: 'reply', to, value: replyValue };
    }
    case SIGNAL_TAGS.link:
    case SIGNAL_TAGS.unlink: {
      expectLength(tuple, 3, 'link');
      const from = readPid(tuple[1], 'link sender');
      const to = readPid(tuple[2], 'link target');
      mustBePeer(from, peer, 'link');
      mustBeLocal(to, local, 'link');
      return { t: tuple[0] === SIGNAL_TAGS.link ? 'link' : 'unlink', from, to };
    }
    case SIGNAL_TAGS.exit: {
      expectLength(tuple, 5, 'exit');
      const from = readPid(tuple[1], 'exit sender');
      const to = readPid(tuple[2], 'exit target');
      mustBePeer(from, peer, 'exit');
      mustBeLocal(to, local, 'exit');
      if (typeof tuple[4] !== 'boolean') throw new FrameError('malformed exit signal');
      return { t: 'exit', from, to, reason: readReason(tuple[3]), link: tuple[4] };
    }
    case SIGNAL_TAGS.monitor: {
      expectLength(tuple, 4, 'monitor');
      const from = readPid(tuple[1], 'monitor sender');
      const to = readDest(tuple[2], 'monitor target');
      mustBePeer(from, peer, 'monitor');
      mustBeLocal(to, local, 'monitor');
      if (!isInt(tuple[3])) throw new FrameError('malformed monitor ref');
      return { t: 'monitor', from, to, ref: tuple[3] };
    }
    case SIGNAL_TAGS.demonitor: {
      expectLength(tuple, 4, 'demonitor');
      const from = readPid(tuple[1], 'demonitor sender');
      const to = readDest(tuple[2], 'demonitor target');
      mustBePeer(from, peer, 'demonitor');
      mustBeLocal(to, local, 'demonitor');
      if (!isInt(tuple[3])) throw new FrameError('malformed demonitor ref');
      return { t: 'demonitor', from, to, ref: tuple[3] };
    }
    case SIGNAL_TAGS.down: {
      expectLength(tuple, 5, 'down');
      const to = readPid(tuple[1], 'down target');
      mustBeLocal(to, local, 'down');
      if (!isInt(tuple[2])) throw new FrameError('malformed down ref');
      const pid = readDest(tuple[3], 'down subject');
      mustBePeer(pid, peer, 'down');
      return { t: 'down', to, ref: tuple[2], pid, reason: readReason(tuple[4]) };
    }
    default:
      throw new FrameError(`unknown signal type ${safeTag(tuple[0])}`);
  }
}
