import { flushMicrotasks } from '@otra/actors';
import { type CommandEntry, createCodec, isLogEntry, type LogEntry, writeCborHead } from '@otra/protocol';
import type { StoredEntry } from '@otra/raft-log';

const codec = createCodec();

/**
 * An entry's bytes, as stored and as sent. Encoded once: the leader encodes when it appends, and
 * later sends take the bytes back from the log store's in-memory tail; a follower stores the bytes
 * it received. Nothing here remembers bytes per entry object: a table of the entries in memory (a
 * WeakMap was) costs every young-generation GC, and those entries live until the next snapshot.
 */
export function encodeEntry(entry: LogEntry): Uint8Array {
  return codec.encode(entry.type === 'command' ? packCommand(entry) : entry);
}

export function storedEntry(entry: LogEntry): StoredEntry {
  return { index: entry.index, term: entry.term, data: encodeEntry(entry) };
}

/**
 * Command entries (nearly every entry) are stored and sent as a CBOR array instead of a map:
 * `[0, index, term, systemTime, command, reply]`, plus the `requestId` as a seventh element when
 * the command has one; the reply as `[0]` (noreply),
 * `[1, node, id, creation, correlation]` (notify), or `[2 | 3, node, id, creation, ref]`
 * (after_log_append | await_consensus). No key names: about a third fewer bytes, and encoding
 * and decoding cost 35-50% less than the map. Other entries, and command entries written before
 * this form, are maps; both decode.
 */
const COMMAND = 0;
const REPLY_MODES = ['noreply', 'notify', 'after_log_append', 'await_consensus'] as const;

function packCommand(entry: CommandEntry): unknown[] {
  const r = entry.reply;
  let reply: unknown[];
  switch (r.mode) {
    case 'noreply':
      reply = [0];
      break;
    case 'notify':
      reply = [1, r.to.node, r.to.id, r.to.creation, r.correlation];
      break;
    case 'after_log_append':
    case 'await_consensus':
      reply = [
        r.mode === 'after_log_append' ? 2 : 3,
        r.from.pid.node,
        r.from.pid.id,
        r.from.pid.creation,
        r.from.ref,
      ];
      break;
  }
  const packed = [COMMAND, entry.index, entry.term, entry.systemTime, entry.command, reply];
  if (entry.requestId !== undefined) packed.push(entry.requestId);
  return packed;
}

/** The array form back to an entry; whatever its fields hold, `unpack` checks it as a map entry is. */
function unpackCommand(a: readonly unknown[]): unknown {
  const [tag, index, term, systemTime, command, r, requestId] = a;
  if ((a.length !== 6 && a.length !== 7) || tag !== COMMAND || !Array.isArray(r))
    throw new Error('not a command entry');
  const mode = REPLY_MODES[r[0] as number];
  const [, node, id, creation, last] = r;
  const pid = { node, id, creation };
  const reply =
    mode === 'notify'
      ? { mode, to: pid, correlation: last }
      : mode === 'after_log_append' || mode === 'await_consensus'
        ? { mode, from: { pid, ref: last } }
        : { mode };
  return a.length === 7
    ? { type: 'command', index, term, command, reply, systemTime, requestId }
    : { type: 'command', index, term, command, reply, systemTime };
}

/** The entry in `data`, either form; throws when it is not an entry. */
function unpack(data: Uint8Array): LogEntry {
  const decoded = codec.decode(data);
  const value = Array.isArray(decoded) ? unpackCommand(decoded) : decoded;
  // either form, every field checked: a malformed entry from a peer or the disk must not crash
  // whoever applies it later
  if (!isLogEntry(value)) throw new Error('does not decode to an entry');
  return value;
}

/** Decodes a stored entry, checking it is the entry the store says it is. */
export function decodeEntry(stored: StoredEntry): LogEntry {
  let entry: LogEntry;
  try {
    entry = unpack(stored.data);
  } catch {
    throw new Error(`stored entry ${stored.index} does not decode to itself`);
  }
  if (entry.index !== stored.index || entry.term !== stored.term) {
    throw new Error(`stored entry ${stored.index} does not decode to itself`);
  }
  return entry;
}

/** Decodes an entry received as bytes from a leader (the caller keeps the bytes for the log write). */
export function decodePacked(data: Uint8Array): LogEntry {
  try {
    return unpack(data);
  } catch {
    throw new Error('a packed entry does not decode to an entry');
  }
}

/** The entry decoded last by a `StoredCommand`'s getters (one at a time: nothing accumulates). */
let decodedFor: StoredCommand | undefined;
let decoded: CommandEntry | undefined;

/**
 * An applied command entry kept as the bytes it was stored as (`swapAppliedEntries`): one small
 * object instead of the entry, its command, its reply mode and their strings, all of which would
 * otherwise live until the next snapshot (at 1,024 commands in flight a follower retained 45-55 MB
 * of heap with them, 27-33 MB without). Its fields decode on demand, the last decoded entry
 * cached, which only a lagging follower's catch-up (which sends `data` as it is) or a machine's
 * `log` effect asks for. The bytes are ones this server validated when it stored or received them.
 */
export class StoredCommand {
  readonly type = 'command';

  constructor(
    readonly index: number,
    readonly term: number,
    readonly data: Uint8Array,
  ) {}

  private entry(): CommandEntry {
    if (decodedFor !== this) {
      const entry = decodePacked(this.data);
      if (entry.type !== 'command' || entry.index !== this.index || entry.term !== this.term)
        throw new Error(`the bytes of command entry ${this.index} hold another entry`);
      decoded = entry;
      decodedFor = this;
    }
    return decoded as CommandEntry;
  }

  get command(): unknown {
    return this.entry().command;
  }

  get reply(): CommandEntry['reply'] {
    return this.entry().reply;
  }

  get systemTime(): number {
    return this.entry().systemTime;
  }

  get requestId(): string | undefined {
    return this.entry().requestId;
  }

  /**
   * This object as the entry it holds (a `CommandEntry`'s optional `requestId` is absent where
   * this one reads undefined, which is how every reader tells it has none).
   */
  asEntry(): CommandEntry {
    return this as unknown as CommandEntry;
  }
}

/**
 * Encoding a snapshot's state gives the event loop a turn after about this much time, so a turn is
 * never held for long, however large the state...
 */
export const STATE_SLICE_MS = 8;
/** ...or once this many bytes are waiting, so a chunk stays small for the store. */
export const STATE_CHUNK_BYTES = 1 << 20;
/**
 * Arrays, plain objects and Maps are written member by member behind their CBOR heads when they
 * are at most `WALK_ALWAYS_DEPTH` deep in the state (its top-level fields), or at most
 * `WALK_MAX_DEPTH` deep with at least `WALK_MIN_MEMBERS` members; anything else is encoded whole.
 */
const WALK_ALWAYS_DEPTH = 1;
const WALK_MAX_DEPTH = 4;
const WALK_MIN_MEMBERS = 64;
/** Members of a walked array that are not walked themselves are encoded this many at a time. */
const ARRAY_RUN = 256;
/** The tag cbor-x puts before a Map, so that it decodes as a Map again. */
const MAP_TAG = 259;

function cborHead(major: number, n: number): Uint8Array {
  const out = new Uint8Array(9);
  return out.subarray(0, writeCborHead(out, 0, major, n));
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * How many members `value` has if it is written member by member at `depth` (an array, a Map or a
 * plain object, near enough to the top: see `WALK_ALWAYS_DEPTH`), else -1: it is encoded whole.
 */
function walkedMembers(value: unknown, depth: number): number {
  if (depth > WALK_MAX_DEPTH || typeof value !== 'object' || value === null) return -1;
  const n = Array.isArray(value)
    ? value.length
    : value instanceof Map
      ? value.size
      : isPlainObject(value)
        ? Object.keys(value).length
        : -1;
  return n >= 0 && (depth <= WALK_ALWAYS_DEPTH || n >= WALK_MIN_MEMBERS) ? n : -1;
}

/**
 * Members `[from, to)` of an array, encoded as one array by cbor-x with its head cut off (one call
 * instead of one per member); member by member if the head is not the one expected.
 */
function* arrayRun(
  value: readonly unknown[],
  from: number,
  to: number,
  depth: number,
): Generator<Uint8Array> {
  const bytes = codec.encode(value.slice(from, to));
  const head = cborHead(4, to - from);
  let same = bytes.length >= head.length;
  for (let i = 0; same && i < head.length; i++) same = bytes[i] === head[i];
  if (same) yield bytes.subarray(head.length);
  else for (let i = from; i < to; i++) yield* statePieces(value[i], depth);
}

/** The CBOR of `value` in pieces: the heads of large containers near the top, and their members. */
function* statePieces(value: unknown, depth: number): Generator<Uint8Array> {
  const n = walkedMembers(value, depth);
  if (n < 0) {
    yield codec.encode(value);
  } else if (Array.isArray(value)) {
    yield cborHead(4, n);
    // runs of members that are encoded whole go to cbor-x together
    let run = 0;
    for (let i = 0; i < n; i++) {
      if (walkedMembers(value[i], depth + 1) >= 0) {
        if (run < i) yield* arrayRun(value, run, i, depth + 1);
        yield* statePieces(value[i], depth + 1);
        run = i + 1;
      } else if (i + 1 - run >= ARRAY_RUN) {
        yield* arrayRun(value, run, i + 1, depth + 1);
        run = i + 1;
      }
    }
    if (run < n) yield* arrayRun(value, run, n, depth + 1);
  } else if (value instanceof Map) {
    yield concatBytes([cborHead(6, MAP_TAG), cborHead(5, n)]);
    for (const [k, v] of value) {
      yield codec.encode(k);
      yield* statePieces(v, depth + 1);
    }
  } else {
    const object = value as Record<string, unknown>;
    yield cborHead(5, n);
    for (const k of Object.keys(object)) {
      yield codec.encode(k);
      yield* statePieces(object[k], depth + 1);
    }
  }
}

/** The encoder's and decoder's clock: whether the current slice has run `STATE_SLICE_MS`. */
class SliceClock {
  private start = performance.now();
  late(): boolean {
    return performance.now() - this.start >= STATE_SLICE_MS;
  }
  restart(): void {
    this.start = performance.now();
  }
}

/**
 * A snapshot's bytes, the CBOR of `{ state }`, in chunks, with a turn of the event loop after
 * every `STATE_SLICE_MS` of encoding: a large machine state is encoded without stalling the node
 * for the whole of it (a 10,000-key KV state took up to 190 ms at once on a loaded box, longer
 * than an election timeout). Arrays, plain objects and Maps near the top are written member by
 * member behind their CBOR heads (`walkedMembers`), so a slice ends between members; one huge member
 * deeper down is still encoded at once. The state must not change meanwhile: a state passed in
 * `release_cursor` never does (the machine contract).
 */
export async function* encodeStateChunks(state: unknown): AsyncGenerator<Uint8Array> {
  const head = concatBytes([cborHead(5, 1), codec.encode('state')]);
  let parts: Uint8Array[] = [head];
  let size = head.length;
  const clock = new SliceClock();
  for (const piece of statePieces(state, 0)) {
    parts.push(piece);
    size += piece.length;
    const late = clock.late();
    if (late || size >= STATE_CHUNK_BYTES) {
      yield concatBytes(parts);
      parts = [];
      size = 0;
      if (late) {
        await flushMicrotasks();
        clock.restart();
      }
    }
  }
  if (parts.length > 0) yield concatBytes(parts);
}

/** The state in a snapshot's bytes, the CBOR of `{ state }`; throws if they hold anything else. */
function stateOf(wrapped: unknown): unknown {
  if (wrapped === null || typeof wrapped !== 'object' || !('state' in wrapped)) {
    throw new Error('snapshot does not hold a machine state');
  }
  return (wrapped as { state: unknown }).state;
}

/**
 * A CBOR head read by `readHead`: major type, argument (a length, a count, a tag or a value), and
 * where the head ends. `indefinite` for an indefinite-length head (argument 0).
 */
interface Head {
  major: number;
  n: number;
  end: number;
  indefinite: boolean;
}

function readHead(bytes: Uint8Array, at: number, head: Head): Head {
  const first = bytes[at];
  if (first === undefined) throw new Error('snapshot state ends inside a CBOR item');
  const ai = first & 31;
  head.major = first >>> 5;
  head.indefinite = false;
  if (ai < 24) {
    head.n = ai;
    head.end = at + 1;
  } else if (ai < 28) {
    const size = 1 << (ai - 24);
    if (at + 1 + size > bytes.length) throw new Error('snapshot state ends inside a CBOR head');
    let n = 0;
    for (let i = 1; i <= size; i++) n = n * 256 + (bytes[at + i] as number);
    head.n = n;
    head.end = at + 1 + size;
  } else if (ai === 31 && head.major >= 2 && head.major <= 5) {
    head.n = 0;
    head.end = at + 1;
    head.indefinite = true;
  } else {
    throw new Error(`snapshot state holds a malformed CBOR head (0x${first.toString(16)})`);
  }
  return head;
}

/** `itemEnd`'s head, read into and copied out before it recurses. */
const SKIPPED: Head = { major: 0, n: 0, end: 0, indefinite: false };

/** Where the CBOR item at `at` ends, found from its heads alone (nothing is decoded). */
function itemEnd(bytes: Uint8Array, at: number): number {
  const { major, n, end, indefinite } = readHead(bytes, at, SKIPPED);
  if (indefinite) {
    let pos = end;
    while (bytes[pos] !== 0xff) {
      if (pos >= bytes.length) throw new Error('snapshot state ends inside a CBOR item');
      pos = itemEnd(bytes, pos);
    }
    return pos + 1;
  }
  let pos = end;
  if (major === 2 || major === 3) pos += n;
  else if (major === 4 || major === 5) {
    const items = major === 5 ? 2 * n : n;
    // every item takes at least a byte: a count beyond what is left is damage, not a long loop
    if (items > bytes.length - pos) throw new Error('snapshot state ends inside a CBOR item');
    for (let i = 0; i < items; i++) pos = itemEnd(bytes, pos);
  } else if (major === 6) pos = itemEnd(bytes, pos);
  if (pos > bytes.length) throw new Error('snapshot state ends inside a CBOR item');
  return pos;
}

/** What `readContainer` makes: an array, a plain object or a Map, and where its CBOR ends. */
interface Read {
  value: unknown;
  end: number;
}

/** The kind of container at a head, if the decoder reads it member by member at `depth`. */
function walkedKind(
  bytes: Uint8Array,
  at: number,
  depth: number,
  head: Head,
): 'array' | 'object' | 'map' | undefined {
  if (depth > WALK_MAX_DEPTH) return undefined;
  readHead(bytes, at, head);
  let kind: 'array' | 'object' | 'map' | undefined;
  if (head.major === 4) kind = 'array';
  else if (head.major === 5) kind = 'object';
  else if (head.major === 6 && head.n === MAP_TAG && (bytes[head.end] ?? 0) >>> 5 === 5) {
    readHead(bytes, head.end, head);
    kind = 'map';
  }
  if (kind === undefined || head.indefinite) return undefined;
  return depth <= WALK_ALWAYS_DEPTH || head.n >= WALK_MIN_MEMBERS ? kind : undefined;
}

/**
 * Reads the container at `at` member by member: runs of members that are not containers to walk
 * go to cbor-x together (`decodeSequence`), walked ones recursively, and the generator yields
 * between them once the slice is late. A plain object whose keys are not all strings other than
 * `__proto__` is decoded whole instead, so that cbor-x's own rules for such keys apply.
 */
function* readContainer(
  bytes: Uint8Array,
  at: number,
  depth: number,
  clock: SliceClock,
): Generator<void, Read> {
  const head: Head = { major: 0, n: 0, end: 0, indefinite: false };
  const kind = walkedKind(bytes, at, depth, head);
  if (kind === undefined) {
    const end = itemEnd(bytes, at);
    return { value: codec.decode(bytes.subarray(at, end)), end };
  }
  const n = head.n;
  const perMember = kind === 'array' ? 1 : 2;
  const members: unknown[] = [];
  let pos = head.end;
  let done = 0;
  while (done < n) {
    // a run of members read whole, ended by one to walk (or ARRAY_RUN members, or the last)
    const runStart = pos;
    let count = 0;
    // where the value of the member that ends the run starts, when it is one to walk
    let walkAt = -1;
    while (done + count < n && count < ARRAY_RUN) {
      const valueAt = perMember === 1 ? pos : itemEnd(bytes, pos);
      if (walkedKind(bytes, valueAt, depth + 1, head) !== undefined) {
        walkAt = valueAt;
        break;
      }
      pos = itemEnd(bytes, valueAt);
      count++;
    }
    if (count > 0) {
      for (const v of codec.decodeSequence(bytes.subarray(runStart, pos))) members.push(v);
      done += count;
    }
    if (walkAt >= 0) {
      // a map member's key is the item before its value
      if (perMember === 2) members.push(codec.decode(bytes.subarray(pos, walkAt)));
      const member = yield* readContainer(bytes, walkAt, depth + 1, clock);
      members.push(member.value);
      pos = member.end;
      done++;
    }
    if (clock.late()) yield;
  }
  if (kind === 'array') return { value: members, end: pos };
  if (kind === 'map') {
    const map = new Map<unknown, unknown>();
    for (let i = 0; i < members.length; i += 2) map.set(members[i], members[i + 1]);
    return { value: map, end: pos };
  }
  const object: Record<string, unknown> = {};
  for (let i = 0; i < members.length; i += 2) {
    const key = members[i];
    if (typeof key !== 'string' || key === '__proto__') {
      return { value: codec.decode(bytes.subarray(at, pos)), end: pos };
    }
    object[key] = members[i + 1];
  }
  return { value: object, end: pos };
}

/**
 * The machine state in a snapshot's bytes (the CBOR of `{ state }`), decoded as cbor-x decodes it
 * whole, but with a turn of the event loop after every `STATE_SLICE_MS` of decoding: arrays, plain
 * objects and Maps near the top (as `encodeStateChunks` walks them) are read member by member, so
 * installing or recovering a large snapshot does not stall the node. Throws on bytes that do not
 * decode, trail the state, or hold no state.
 */
export async function decodeState(bytes: Uint8Array): Promise<unknown> {
  const clock = new SliceClock();
  const reading = readContainer(bytes, 0, -1, clock);
  for (;;) {
    const step = reading.next();
    if (step.done === true) {
      if (step.value.end !== bytes.length) throw new Error('snapshot has bytes after its state');
      return stateOf(step.value.value);
    }
    await flushMicrotasks();
    clock.restart();
  }
}

/** Concatenates chunks. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  let size = 0;
  for (const c of chunks) size += c.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
