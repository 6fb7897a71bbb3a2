/**
 * The link handshake, as a pure state machine: `(config, state, message) -> step`. It does no I/O;
 * the connection sends what a step says and closes the socket when a step refuses.
 *
 * ```
 * initiator (A)                                   acceptor (B)
 *   hello {v, name A, creation, challenge cA} ->
 *                                                 checks version and name, asks `admit` (duplicates)
 *   <- challenge {v, name B, creation, challenge cB, digest = HMAC(cookie, acceptor|B|A|cA|cB)}
 * checks B's digest (B knows the cookie)
 *   response {digest = HMAC(cookie, initiator|A|B|cB|cA)} ->
 *                                                 checks A's digest: B's link is up
 *   <- ok
 * A's link is up
 * ```
 *
 * Each side proves it knows the cookie over a fresh challenge of the other, so neither proof can be
 * replayed; the role and both names are in the MAC so a proof cannot be reflected back to its
 * author or reused on another pair. A refusal is a WebSocket close code plus a reason, so both ends
 * log the same cause. Nothing but handshake frames is accepted before `up`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { NodeName } from '@otra/protocol';

/** Bumped on any incompatible change of the frame format or the handshake. */
export const PROTOCOL_VERSION = 1;
export const CHALLENGE_BYTES = 32;

/** Close codes of a link (the 4000-4999 range is the application's). */
export const CLOSE = {
  badCookie: 4001,
  badVersion: 4002,
  duplicate: 4003,
  badName: 4004,
  protocol: 4005,
  tickTimeout: 4006,
  handshakeTimeout: 4007,
  replaced: 4008,
  shutdown: 4009,
  disconnect: 4010,
  tooManyHandshakes: 4011,
} as const;

export type HandshakeMsg =
  | {
      readonly k: 'hello';
      readonly v: number;
      readonly name: NodeName;
      readonly creation: number;
      readonly challenge: Uint8Array;
      readonly maxPayload: number;
    }
  | {
      readonly k: 'challenge';
      readonly v: number;
      readonly name: NodeName;
      readonly creation: number;
      readonly challenge: Uint8Array;
      readonly digest: Uint8Array;
      readonly maxPayload: number;
    }
  | { readonly k: 'response'; readonly digest: Uint8Array }
  | { readonly k: 'ok' };

/** What the handshake learns about the peer. */
export interface PeerInfo {
  readonly name: NodeName;
  readonly creation: number;
  /** The largest frame the peer accepts. */
  readonly maxPayload: number;
}

/** Why a handshake or a link ended: sent as the WebSocket close code and reason. */
export interface Refusal {
  readonly code: number;
  readonly reason: string;
}

export interface HandshakeConfig {
  readonly name: NodeName;
  readonly creation: number;
  readonly cookie: Uint8Array;
  readonly maxPayload: number;
  /**
   * Asked by the acceptor when a hello arrives (before any proof): a refusal here settles
   * simultaneous connects. The name is not yet authenticated, so this may only refuse.
   */
  readonly admit?: (peer: PeerInfo) => Refusal | undefined;
}

export type HandshakeState =
  | { readonly phase: 'initiator.hello_sent'; readonly expect: NodeName; readonly challenge: Uint8Array }
  | { readonly phase: 'acceptor.await_hello'; readonly challenge: Uint8Array }
  | {
      readonly phase: 'acceptor.challenge_sent';
      readonly peer: PeerInfo;
      readonly peerChallenge: Uint8Array;
      readonly challenge: Uint8Array;
    }
  | { readonly phase: 'initiator.response_sent'; readonly peer: PeerInfo }
  | { readonly phase: 'up'; readonly peer: PeerInfo }
  | { readonly phase: 'failed'; readonly refusal: Refusal };

/** What to do after a handshake message: send `send`, then, if `up`, the link is authenticated. */
export interface HandshakeStep {
  readonly state: HandshakeState;
  readonly send?: HandshakeMsg;
  readonly up?: PeerInfo;
  readonly refuse?: Refusal;
}

/** The MAC a node of `role` named `signer` gives `other` over both challenges. */
export function handshakeDigest(
  cookie: Uint8Array,
  role: 'initiator' | 'acceptor',
  signer: NodeName,
  other: NodeName,
  theirChallenge: Uint8Array,
  ownChallenge: Uint8Array,
): Uint8Array {
  const mac = createHmac('sha256', cookie);
  mac.update(`otra/${PROTOCOL_VERSION}\0${role}\0${signer}\0${other}\0`);
  mac.update(theirChallenge);
  mac.update(ownChallenge);
  return mac.digest();
}

function digestMatches(expected: Uint8Array, actual: unknown): boolean {
  return (
    actual instanceof Uint8Array && actual.length === expected.length && timingSafeEqual(expected, actual)
  );
}

/** Starts the initiator's side: send the returned hello. `expect` is the node the URL is configured for. */
export function startInitiator(
  config: HandshakeConfig,
  expect: NodeName,
  challenge: Uint8Array,
): { state: HandshakeState; send: HandshakeMsg } {
  return {
    state: { phase: 'initiator.hello_sent', expect, challenge },
    send: {
      k: 'hello',
      v: PROTOCOL_VERSION,
      name: config.name,
      creation: config.creation,
      challenge,
      maxPayload: config.maxPayload,
    },
  };
}

/** Starts the acceptor's side: wait for a hello. */
export function startAcceptor(challenge: Uint8Array): HandshakeState {
  return { phase: 'acceptor.await_hello', challenge };
}

function fail(code: number, reason: string): HandshakeStep {
  const refusal = { code, reason };
  return { state: { phase: 'failed', refusal }, refuse: refusal };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads the version, name, creation, challenge and max payload of a hello or challenge. */
function readIntro(msg: Record<string, unknown>): { peer: PeerInfo; challenge: Uint8Array } | string {
  const { name, creation, challenge, maxPayload } = msg;
  if (typeof name !== 'string' || name.length === 0 || name.length > 255)
    return 'missing or invalid node name';
  if (!Number.isSafeInteger(creation)) return 'missing creation';
  if (!(challenge instanceof Uint8Array) || challenge.length !== CHALLENGE_BYTES) return 'missing challenge';
  if (!Number.isSafeInteger(maxPayload) || (maxPayload as number) < 1024) return 'invalid maxPayload';
  return {
    peer: { name, creation: creation as number, maxPayload: maxPayload as number },
    challenge: new Uint8Array(challenge),
  };
}

/** Advances the handshake with one message from the peer (still `unknown`: it came off the wire). */
export function handshakeStep(config: HandshakeConfig, state: HandshakeState, msg: unknown): HandshakeStep {
  if (!isRecord(msg) || typeof msg.k !== 'string') return fail(CLOSE.protocol, 'malformed handshake message');
  switch (state.phase) {
    case 'acceptor.await_hello': {
      if (msg.k !== 'hello') return fail(CLOSE.protocol, `expected hello, got ${msg.k.slice(0, 32)}`);
      if (msg.v !== PROTOCOL_VERSION) {
        return fail(CLOSE.badVersion, `protocol version ${String(msg.v)} is not ${PROTOCOL_VERSION}`);
      }
      const intro = readIntro(msg);
      if (typeof intro === 'string') return fail(CLOSE.protocol, `bad hello: ${intro}`);
      if (intro.peer.name === config.name)
        return fail(CLOSE.badName, `peer uses this node's own name ${config.name}`);
      const refusal = config.admit?.(intro.peer);
      if (refusal !== undefined) return { state: { phase: 'failed', refusal }, refuse: refusal };
      const digest = handshakeDigest(
        config.cookie,
        'acceptor',
        config.name,
        intro.peer.name,
        intro.challenge,
        state.challenge,
      );
      return {
        state: {
          phase: 'acceptor.challenge_sent',
          peer: intro.peer,
          peerChallenge: intro.challenge,
          challenge: state.challenge,
        },
        send: {
          k: 'challenge',
          v: PROTOCOL_VERSION,
          name: config.name,
          creation: config.creation,
          challenge: state.challenge,
          digest,
          maxPayload: config.maxPayload,
        },
      };
    }
    case 'initiator.hello_sent': {
      if (msg.k !== 'challenge') return fail(CLOSE.protocol, `expected challenge, got ${msg.k.slice(0, 32)}`);
      if (msg.v !== PROTOCOL_VERSION) {
        return fail(CLOSE.badVersion, `protocol version ${String(msg.v)} is not ${PROTOCOL_VERSION}`);
      }
      const intro = readIntro(msg);
      if (typeof intro === 'string') return fail(CLOSE.protocol, `bad challenge: ${intro}`);
      if (intro.peer.name !== state.expect) {
        return fail(CLOSE.badName, `expected node ${state.expect} at this address, found ${intro.peer.name}`);
      }
      const expected = handshakeDigest(
        config.cookie,
        'acceptor',
        intro.peer.name,
        config.name,
        state.challenge,
        intro.challenge,
      );
      if (!digestMatches(expected, msg.digest)) {
        return fail(CLOSE.badCookie, `cookie mismatch: ${intro.peer.name}'s proof does not verify`);
      }
      const digest = handshakeDigest(
        config.cookie,
        'initiator',
        config.name,
        intro.peer.name,
        intro.challenge,
        state.challenge,
      );
      return {
        state: { phase: 'initiator.response_sent', peer: intro.peer },
        send: { k: 'response', digest },
      };
    }
    case 'acceptor.challenge_sent': {
      if (msg.k !== 'response') return fail(CLOSE.protocol, `expected response, got ${msg.k.slice(0, 32)}`);
      const expected = handshakeDigest(
        config.cookie,
        'initiator',
        state.peer.name,
        config.name,
        state.challenge,
        state.peerChallenge,
      );
      if (!digestMatches(expected, msg.digest)) {
        return fail(CLOSE.badCookie, `cookie mismatch: ${state.peer.name}'s proof does not verify`);
      }
      return { state: { phase: 'up', peer: state.peer }, send: { k: 'ok' }, up: state.peer };
    }
    case 'initiator.response_sent': {
      if (msg.k !== 'ok') return fail(CLOSE.protocol, `expected ok, got ${msg.k.slice(0, 32)}`);
      return { state: { phase: 'up', peer: state.peer }, up: state.peer };
    }
    case 'up':
      return fail(CLOSE.protocol, 'handshake message on an established link');
    case 'failed':
      return { state };
  }
}
