export { bufferView } from './buffer-view.ts';
export { writeCborHead } from './cbor-head.ts';
export { type Codec, createCodec } from './codec.ts';
export { FastEncoder } from './fast-encode.ts';
export type { NodeName, Pid, ServerId } from './ids.ts';
export { assertNever, isPid, isServerId, pidEquals, pidKey, serverIdEquals, serverIdKey } from './ids.ts';
export type * from './raft.ts';
export {
  commandProblem,
  isClusterConfig,
  isFrom,
  isIndex,
  isLogEntry,
  isReplyMode,
  isRequestId,
  isSnapshotMeta,
  MAX_COMMAND_DEPTH,
  MAX_REQUEST_ID_LENGTH,
  nestsDeeperThan,
} from './validate.ts';
