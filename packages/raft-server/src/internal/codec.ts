import { createCodec, type LogEntry } from '@otra/protocol';
import type { StoredEntry } from '@otra/raft-log';

const codec = createCodec();

/**
 * Each entry is encoded once: the leader encodes when it appends, and the bytes are reused if the
 * same entry object is appended again (entries are immutable). Keyed weakly, so it never pins memory.
 */
const encoded = new WeakMap<LogEntry, Uint8Array>();

export function storedEntry(entry: LogEntry): StoredEntry {
  let data = encoded.get(entry);
  if (data === undefined) {
    data = codec.encode(entry);
    encoded.set(entry, data);
  }
  return { index: entry.index, term: entry.term, data };
}

/** Decodes a stored entry, checking it is the entry the store says it is. */
export function decodeEntry(stored: StoredEntry): LogEntry {
  const entry = codec.decode(stored.data) as LogEntry;
  if (
    entry === null ||
    typeof entry !== 'object' ||
    entry.index !== stored.index ||
    entry.term !== stored.term ||
    typeof entry.type !== 'string'
  ) {
    throw new Error(`stored entry ${stored.index} does not decode to itself`);
  }
  encoded.set(entry, stored.data);
  return entry;
}

/** Decodes an entry received as bytes from a leader, keeping the bytes for the log write. */
export function decodePacked(data: Uint8Array): LogEntry {
  const entry = codec.decode(data) as LogEntry;
  if (
    entry === null ||
    typeof entry !== 'object' ||
    !Number.isInteger(entry.index) ||
    !Number.isInteger(entry.term) ||
    typeof entry.type !== 'string'
  ) {
    throw new Error('a packed entry does not decode to an entry');
  }
  encoded.set(entry, data);
  return entry;
}

export function encodeState(state: unknown): Uint8Array {
  return codec.encode({ state });
}

export function decodeState(bytes: Uint8Array): unknown {
  const wrapped = codec.decode(bytes) as { state?: unknown } | null;
  if (wrapped === null || typeof wrapped !== 'object' || !('state' in wrapped)) {
    throw new Error('snapshot does not hold a machine state');
  }
  return wrapped.state;
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
