import { describe, expect, it } from 'vitest';
import {
  backoffDelay,
  CLOSE,
  type HandshakeConfig,
  type HandshakeState,
  handshakeDigest,
  handshakeStep,
  PROTOCOL_VERSION,
  startAcceptor,
  startInitiator,
} from '../src/index.ts';

const cookie = Buffer.from('secret');
const challengeA = new Uint8Array(32).fill(1);
const challengeB = new Uint8Array(32).fill(2);
const a: HandshakeConfig = { name: 'a', creation: 10, cookie, maxPayload: 1 << 20 };
const b: HandshakeConfig = { name: 'b', creation: 20, cookie, maxPayload: 1 << 16 };

describe('handshake', () => {
  it('authenticates both sides and learns name, creation and maxPayload', () => {
    const init = startInitiator(a, 'b', challengeA);
    expect(init.send).toEqual({
      k: 'hello',
      v: PROTOCOL_VERSION,
      name: 'a',
      creation: 10,
      challenge: challengeA,
      maxPayload: 1 << 20,
    });
    const b1 = handshakeStep(b, startAcceptor(challengeB), init.send);
    expect(b1.send).toEqual({
      k: 'challenge',
      v: PROTOCOL_VERSION,
      name: 'b',
      creation: 20,
      challenge: challengeB,
      digest: handshakeDigest(cookie, 'acceptor', 'b', 'a', challengeA, challengeB),
      maxPayload: 1 << 16,
    });
    expect(b1.up).toBeUndefined();
    const a1 = handshakeStep(a, init.state, b1.send);
    expect(a1.send).toEqual({
      k: 'response',
      digest: handshakeDigest(cookie, 'initiator', 'a', 'b', challengeB, challengeA),
    });
    expect(a1.up).toBeUndefined();
    const b2 = handshakeStep(b, b1.state, a1.send);
    expect(b2).toEqual({
      state: { phase: 'up', peer: { name: 'a', creation: 10, maxPayload: 1 << 20 } },
      send: { k: 'ok' },
      up: { name: 'a', creation: 10, maxPayload: 1 << 20 },
    });
    const a2 = handshakeStep(a, a1.state, b2.send);
    expect(a2.up).toEqual({ name: 'b', creation: 20, maxPayload: 1 << 16 });
    expect(a2.state.phase).toBe('up');
  });

  it('refuses a wrong cookie on the initiator side, before proving anything itself', () => {
    const wrong: HandshakeConfig = { ...b, cookie: Buffer.from('other') };
    const init = startInitiator(a, 'b', challengeA);
    const b1 = handshakeStep(wrong, startAcceptor(challengeB), init.send);
    const a1 = handshakeStep(a, init.state, b1.send);
    expect(a1.refuse?.code).toBe(CLOSE.badCookie);
    expect(a1.refuse?.reason).toMatch(/cookie mismatch/);
    expect(a1.send).toBeUndefined();
  });

  it('refuses a wrong cookie on the acceptor side', () => {
    const init = startInitiator(a, 'b', challengeA);
    const b1 = handshakeStep(b, startAcceptor(challengeB), init.send);
    const forged = { k: 'response', digest: new Uint8Array(32) };
    expect(handshakeStep(b, b1.state, forged).refuse?.code).toBe(CLOSE.badCookie);
    // a proof reflected back (the acceptor's own digest) does not verify either
    const reflected = { k: 'response', digest: (b1.send as { digest: Uint8Array }).digest };
    expect(handshakeStep(b, b1.state, reflected).refuse?.code).toBe(CLOSE.badCookie);
  });

  it('refuses another protocol version, its own name, the wrong node and out-of-order messages', () => {
    const hello = startInitiator(a, 'b', challengeA).send;
    const acceptor = startAcceptor(challengeB);
    expect(handshakeStep(b, acceptor, { ...hello, v: 99 }).refuse).toEqual({
      code: CLOSE.badVersion,
      reason: `protocol version 99 is not ${PROTOCOL_VERSION}`,
    });
    expect(handshakeStep(b, acceptor, { ...hello, name: 'b' }).refuse?.code).toBe(CLOSE.badName);
    expect(handshakeStep(b, acceptor, { k: 'ok' }).refuse?.code).toBe(CLOSE.protocol);
    expect(handshakeStep(b, acceptor, 'garbage').refuse?.code).toBe(CLOSE.protocol);
    expect(handshakeStep(b, acceptor, { ...hello, challenge: new Uint8Array(3) }).refuse?.code).toBe(
      CLOSE.protocol,
    );
    const init = startInitiator(a, 'c', challengeA);
    const b1 = handshakeStep(b, acceptor, init.send);
    expect(handshakeStep(a, init.state, b1.send).refuse?.code).toBe(CLOSE.badName);
    const up: HandshakeState = { phase: 'up', peer: { name: 'b', creation: 1, maxPayload: 2048 } };
    expect(handshakeStep(a, up, hello).refuse?.code).toBe(CLOSE.protocol);
  });

  it('asks admit() before answering a hello', () => {
    const refusing: HandshakeConfig = { ...b, admit: () => ({ code: CLOSE.duplicate, reason: 'dup' }) };
    const hello = startInitiator(a, 'b', challengeA).send;
    expect(handshakeStep(refusing, startAcceptor(challengeB), hello)).toEqual({
      state: { phase: 'failed', refusal: { code: CLOSE.duplicate, reason: 'dup' } },
      refuse: { code: CLOSE.duplicate, reason: 'dup' },
    });
  });

  it('computes exponential backoff with bounded jitter', () => {
    expect(backoffDelay(0, {}, 0)).toBe(50);
    expect(backoffDelay(0, {}, 0.999)).toBe(100);
    expect(backoffDelay(3, { initialMs: 100 }, 0)).toBe(400);
    expect(backoffDelay(20, { maxMs: 5000 }, 0.5)).toBe(3750);
  });
});
