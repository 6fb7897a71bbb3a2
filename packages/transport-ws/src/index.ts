export type { ReconnectOptions } from './internal/backoff.ts';
export { backoffDelay } from './internal/backoff.ts';
export type { FullPolicy, LinkCounters, Logger, LogLevel } from './internal/connection.ts';
export type { FrameCodec, RawFrame } from './internal/frames.ts';
export {
  buildDataFrame,
  createFrameCodec,
  decodeFrame,
  encodeSignal,
  FrameError,
  signalToWire,
  wireToSignal,
} from './internal/frames.ts';
export type {
  HandshakeConfig,
  HandshakeMsg,
  HandshakeState,
  HandshakeStep,
  PeerInfo,
  Refusal,
} from './internal/handshake.ts';
export {
  CLOSE,
  handshakeDigest,
  handshakeStep,
  PROTOCOL_VERSION,
  startAcceptor,
  startInitiator,
} from './internal/handshake.ts';
export type { LinkStats, PeerStatus, TlsOptions, TransportOptions, TransportStats } from './transport.ts';
export { startTransport, Transport } from './transport.ts';
