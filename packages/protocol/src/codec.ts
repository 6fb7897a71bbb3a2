import { Decoder, Encoder } from 'cbor-x';
import { FastEncoder } from './fast-encode.ts';

/**
 * The CBOR codec set-up shared by links and the durable log. Records (structures) are off by
 * default: a link's peer may restart and lose the structure table; a codec that wants them makes
 * its own Encoder with a per-link table. Encoding goes through `FastEncoder`, which writes cbor-x's
 * bytes for plain values faster and hands anything else to cbor-x.
 */
export function createCodec(): Codec {
  const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
  const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });
  const fast = new FastEncoder((value) => encoder.encode(value));
  return {
    encode: (value) => fast.encode(value),
    decode: (bytes) => decoder.decode(bytes),
    decodeSequence: (bytes) => decoder.decodeMultiple(bytes) as unknown[],
  };
}

/** A CBOR codec made by `createCodec`. */
export interface Codec {
  encode(value: unknown): Uint8Array;
  /** Decodes exactly one item: bytes after it are an error. */
  decode(bytes: Uint8Array): unknown;
  /** Decodes a sequence of whole items, one after another, with `decode`'s semantics for each. */
  decodeSequence(bytes: Uint8Array): unknown[];
}
