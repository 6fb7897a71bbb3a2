type BufferConstructorOf = new (buffer: ArrayBuffer, byteOffset: number, length: number) => Buffer;

/**
 * `Buffer[Symbol.species]` is Node's internal `FastBuffer`, whose instances are ordinary Buffers
 * (`Buffer.from(arrayBuffer, offset, length)` makes one after its argument checks, and
 * `buffer.subarray` after a species lookup: each about twice the cost). Checked once here;
 * `Buffer.from` is used if it ever is anything else.
 */
const FastBuffer: BufferConstructorOf | undefined = (() => {
  const species: unknown = (Buffer as unknown as Record<symbol, unknown>)[Symbol.species];
  if (typeof species !== 'function' || species === Buffer) return undefined;
  try {
    const made: unknown = new (species as BufferConstructorOf)(new ArrayBuffer(8), 4, 2);
    const ok =
      Buffer.isBuffer(made) &&
      Object.getPrototypeOf(made) === Buffer.prototype &&
      made.byteOffset === 4 &&
      made.length === 2;
    return ok ? (species as BufferConstructorOf) : undefined;
  } catch {
    return undefined;
  }
})();

/** A Buffer over `length` bytes of `buffer` from `byteOffset` (no copy, no argument checks). */
export function bufferView(buffer: ArrayBuffer, byteOffset: number, length: number): Buffer {
  return FastBuffer === undefined
    ? Buffer.from(buffer, byteOffset, length)
    : new FastBuffer(buffer, byteOffset, length);
}
