import { bufferView } from './buffer-view.ts';
import { writeCborHead } from './cbor-head.ts';

/**
 * A CBOR encoder for the values otra sends and stores on every command: plain objects, arrays,
 * strings, numbers, booleans, null, undefined and byte arrays. It writes exactly the bytes cbor-x
 * writes for them with otra's options (`useRecords: false, mapsAsObjects: true, tagUint8Array:
 * false`): objects as a map with a 16-bit count, strings, numbers and heads as cbor-x does. A value
 * holding anything else (a Map, a Date, a bigint, a class instance, a typed array other than
 * `Uint8Array`, an object of 65,536 keys or more, nesting deeper than 512) is handed whole to
 * cbor-x, so the bytes never depend on which of the two wrote them.
 *
 * Why: cbor-x's `encode` does general work per call (shared structures, bundled strings, reference
 * maps, a `try`/`finally`) and per object (six `instanceof` checks before a byte array); here that
 * was 0.3 us per call and 1.9 us for a command entry, and cbor-x's encoding was 40% of a leader's
 * CPU under load.
 */

/** Node's Buffer has this below `write` (which normalizes its arguments first); cbor-x calls it too. */
interface NodeUtf8Writer {
  utf8Write(value: string, offset: number, length: number): number;
}

/** Encoded values are views into targets of this size; a larger value gets a target of its own. */
const TARGET_BYTES = 8192;
/** An encode does not start this close to the end of a target (a new target is taken). */
const MIN_ROOM = 2048;
/** Deeper nesting goes to the fallback (which is as deep as the stack allows). */
const MAX_DEPTH = 512;

/** A view over `target` from `start`; a Buffer, as cbor-x returns in Node. */
export class FastEncoder {
  private target: Buffer = Buffer.allocUnsafeSlow(TARGET_BYTES);
  private position = 0;
  private start = 0;

  constructor(private readonly fallback: (value: unknown) => Uint8Array) {}

  encode(value: unknown): Uint8Array {
    if (this.target.length - this.position < MIN_ROOM) {
      this.target = Buffer.allocUnsafeSlow(TARGET_BYTES);
      this.position = 0;
    }
    this.start = this.position;
    let done: boolean;
    try {
      done = this.write(value, 0);
    } catch (error) {
      this.position = this.start;
      throw error;
    }
    if (!done) {
      this.position = this.start;
      return this.fallback(value);
    }
    const target = this.target;
    const out = bufferView(
      target.buffer as ArrayBuffer,
      target.byteOffset + this.start,
      this.position - this.start,
    );
    if (this.target.length > TARGET_BYTES) {
      // a target grown for one large value is not kept for the next ones
      this.target = Buffer.allocUnsafeSlow(TARGET_BYTES);
      this.position = 0;
    }
    return out;
  }

  /** Makes room for `bytes` more at `position`, moving what this encode wrote to a larger target. */
  private ensure(bytes: number): void {
    const end = this.position + bytes;
    if (end <= this.target.length) return;
    const written = this.position - this.start;
    const size = Math.max(TARGET_BYTES, (written + bytes) * 2);
    const next = Buffer.allocUnsafeSlow(size);
    this.target.copy(next, 0, this.start, this.position);
    this.target = next;
    this.start = 0;
    this.position = written;
  }

  /** Writes `value`; false (nothing usable written) when it holds a value only cbor-x encodes. */
  private write(value: unknown, depth: number): boolean {
    switch (typeof value) {
      case 'string':
        this.writeString(value);
        return true;
      case 'number':
        this.writeNumber(value);
        return true;
      case 'boolean':
        this.ensure(1);
        this.target[this.position++] = value ? 0xf5 : 0xf4;
        return true;
      case 'undefined':
        this.ensure(1);
        this.target[this.position++] = 0xf7;
        return true;
      case 'object': {
        if (value === null) {
          this.ensure(1);
          this.target[this.position++] = 0xf6;
          return true;
        }
        if (depth >= MAX_DEPTH) return false;
        const kind = (value as { constructor?: unknown }).constructor;
        if (kind === Object) return this.writeObject(value as Record<string, unknown>, depth);
        if (kind === Array) {
          const array = value as unknown[];
          const length = array.length;
          this.writeHead(4, length);
          for (let i = 0; i < length; i++) if (!this.write(array[i], depth + 1)) return false;
          return true;
        }
        if (value instanceof Uint8Array && (kind === Uint8Array || kind === Buffer)) {
          const length = value.byteLength;
          this.writeHead(2, length);
          this.ensure(length);
          this.target.set(value, this.position);
          this.position += length;
          return true;
        }
        return false;
      }
      default:
        return false;
    }
  }

  /** cbor-x's map for `useRecords: false`: `0xb9`, a 16-bit count, then each own key and value. */
  private writeObject(object: Record<string, unknown>, depth: number): boolean {
    this.ensure(3);
    const target = this.target;
    target[this.position] = 0xb9;
    const countAt = this.position + 1 - this.start;
    this.position += 3;
    let size = 0;
    // for...in with cbor-x's own-key test, so the keys and their order are cbor-x's
    const checks = typeof object.hasOwnProperty === 'function';
    for (const key in object) {
      if (checks && !Object.hasOwn(object, key)) continue;
      this.writeString(key);
      if (!this.write(object[key], depth + 1)) return false;
      size++;
    }
    if (size >= 0x10000) return false;
    const at = this.start + countAt;
    this.target[at] = size >> 8;
    this.target[at + 1] = size & 0xff;
    return true;
  }

  /** The shortest head of major type `major` (0-7) for `n`: a count, a length or an integer. */
  private writeHead(major: number, n: number): void {
    this.ensure(9);
    this.position = writeCborHead(this.target, this.position, major, n);
  }

  /** As cbor-x: integers from -2^32 to 2^32 - 1 as heads of major type 0 or 1, the rest float64. */
  private writeNumber(value: number): void {
    if (value >>> 0 === value) this.writeHead(0, value);
    else if (value < 0 && value >= -0x100000000 && Math.floor(value) === value) this.writeHead(1, -1 - value);
    else {
      this.ensure(9);
      const target = this.target;
      target[this.position] = 0xfb;
      target.writeDoubleBE(value, this.position + 1);
      this.position += 9;
    }
  }

  /**
   * cbor-x's text string: below 64 UTF-16 units its own loop (a lone surrogate as three bytes),
   * from 64 on Node's UTF-8 writer (a lone surrogate as U+FFFD); the head is the shortest for the
   * byte length, the bytes moved along when the estimated head was short.
   */
  private writeString(value: string): void {
    const units = value.length;
    const headerSize = units < 0x20 ? 1 : units < 0x100 ? 2 : units < 0x10000 ? 3 : 5;
    const maxBytes = units * 3;
    // (the head can come out up to 4 bytes longer than estimated)
    this.ensure(headerSize + maxBytes + 4);
    const target = this.target;
    const position = this.position;
    let length: number;
    if (units < 0x40) {
      let at = position + headerSize;
      for (let i = 0; i < units; i++) {
        let c1 = value.charCodeAt(i);
        let c2: number;
        if (c1 < 0x80) target[at++] = c1;
        else if (c1 < 0x800) {
          target[at++] = (c1 >> 6) | 0xc0;
          target[at++] = (c1 & 0x3f) | 0x80;
        } else if ((c1 & 0xfc00) === 0xd800 && ((c2 = value.charCodeAt(i + 1)) & 0xfc00) === 0xdc00) {
          c1 = 0x10000 + ((c1 & 0x03ff) << 10) + (c2 & 0x03ff);
          i++;
          target[at++] = (c1 >> 18) | 0xf0;
          target[at++] = ((c1 >> 12) & 0x3f) | 0x80;
          target[at++] = ((c1 >> 6) & 0x3f) | 0x80;
          target[at++] = (c1 & 0x3f) | 0x80;
        } else {
          target[at++] = (c1 >> 12) | 0xe0;
          target[at++] = ((c1 >> 6) & 0x3f) | 0x80;
          target[at++] = (c1 & 0x3f) | 0x80;
        }
      }
      length = at - position - headerSize;
    } else {
      length = (target as unknown as NodeUtf8Writer).utf8Write(value, position + headerSize, maxBytes);
    }
    const needed = length < 0x18 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
    if (needed !== headerSize) {
      target.copyWithin(position + needed, position + headerSize, position + headerSize + length);
    }
    this.position = writeCborHead(target, position, 3, length) + length;
  }
}
