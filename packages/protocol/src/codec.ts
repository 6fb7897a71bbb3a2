import { Decoder, Encoder } from 'cbor-x';

/**
 * The CBOR codec set-up shared by links and the durable log. Records (structures) are off by
 * default: a link's peer may restart and lose the structure table; a codec that wants them makes
 * its own Encoder with a per-link table.
 */
export function createCodec(): { encode(value: unknown): Uint8Array; decode(bytes: Uint8Array): unknown } {
  const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
  const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });
  return {
    encode: (value) => encoder.encode(value),
    decode: (bytes) => decoder.decode(bytes),
  };
}
