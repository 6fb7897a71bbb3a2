import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { freshCookie, killAll, NodeProc } from './support/links/harness.ts';

const procs: NodeProc[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await killAll(procs);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

type Pid = { node: string; id: number; creation: number };

/** Writes raw bytes to a port and waits for the server to hang up (or 2 s). */
function rawExchange(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.on('data', (d) => {
      answer += d.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
    socket.write(bytes, () => socket.end());
  });
}

function closeCode(ws: WebSocket): Promise<number> {
  ws.on('error', () => {});
  return new Promise((resolve) => ws.on('close', (code) => resolve(code)));
}

describe('links: authentication, TLS and hostile input', () => {
  it('refuses a wrong cookie with a logged reason on both sides and delivers nothing', async () => {
    const n2 = await NodeProc.start({ name: 'n2', cookie: freshCookie() }, procs);
    const n1 = await NodeProc.start(
      { name: 'n1', cookie: freshCookie(), peers: { n2: n2.ready.url } },
      procs,
    );
    await expect(n1.request('connect', { node: 'n2', timeoutMs: 3000 })).rejects.toThrow(/cookie mismatch/);
    await n1.waitLog(
      /\[n1\] error: handshake with n2 failed \(closed here: 4001 cookie mismatch: n2's proof/,
    );
    await n2.waitLog(/\[n2\] error: handshake with n1 failed \(closed by peer: 4001 cookie mismatch/);
    await n2.request('spawnEcho', { name: 'echo' });
    await expect(
      n1.request('call', { dest: { name: 'echo', node: 'n2' }, request: 1, timeoutMs: 2000 }),
    ).rejects.toThrow(/noconnection/);
    expect(n2.events).toEqual([]);
    const peers = await n2.request<unknown[]>('peers');
    expect(peers.filter((p) => (p as { connected: boolean }).connected)).toEqual([]);
  });

  it('links over TLS with a self-signed certificate made here', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otra-tls-'));
    dirs.push(dir);
    const keyFile = join(dir, 'k.pem');
    const certFile = join(dir, 'c.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-days',
        '1',
      ].concat(['-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1']),
      { stdio: 'ignore' },
    );
    const cookie = freshCookie();
    const tls = { certFile, keyFile, caFile: certFile };
    const n2 = await NodeProc.start({ name: 'n2', cookie, tls }, procs);
    expect(n2.ready.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    const n1 = await NodeProc.start({ name: 'n1', cookie, tls, peers: { n2: n2.ready.url } }, procs);
    await n1.request('connect', { node: 'n2' });
    const echo = await n2.request<Pid>('spawnEcho', { name: 'echo' });
    expect(await n1.request('call', { dest: echo, request: 'over tls' })).toEqual({
      echo: 'over tls',
      node: 'n2',
    });
    // a client that does not trust the certificate cannot connect; plain ws to the TLS port fails too
    expect(await closeCode(new WebSocket(n2.ready.url))).toBe(1006);
    expect(await closeCode(new WebSocket(n2.ready.url.replace('wss:', 'ws:')))).toBe(1006);
    expect(await n1.request('call', { dest: echo, request: 'still up' })).toEqual({
      echo: 'still up',
      node: 'n2',
    });
  });

  it('survives garbage bytes, plain HTTP, bad frames and an oversized frame', async () => {
    const cookie = freshCookie();
    const n2 = await NodeProc.start({ name: 'n2', cookie, maxPayload: 64 * 1024 }, procs);
    const n1 = await NodeProc.start({ name: 'n1', cookie, peers: { n2: n2.ready.url } }, procs);
    await n1.request('connect', { node: 'n2' });
    const echo = await n2.request<Pid>('spawnEcho', { name: 'echo' });
    const port = n2.ready.port;

    // random bytes and a plain HTTP request on the port
    for (let i = 0; i < 5; i++) await rawExchange(port, randomBytes(512 + i * 100));
    const http = await rawExchange(
      port,
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    );
    expect(http).toMatch(/^HTTP\/1\.1 426/);

    // a WebSocket that sends a text frame, one that sends garbage, one that sends data unauthenticated
    const text = new WebSocket(n2.ready.url);
    const textClosed = closeCode(text);
    text.on('open', () => text.send('hello?'));
    expect(await textClosed).toBe(4005);
    const garbage = new WebSocket(n2.ready.url);
    const garbageClosed = closeCode(garbage);
    garbage.on('open', () => garbage.send(randomBytes(256)));
    expect(await garbageClosed).toBe(4005);
    const early = new WebSocket(n2.ready.url);
    const earlyClosed = closeCode(early);
    // [1, 1, [0, ["n2", 1, 1], "sneaky"]]: a data frame before any handshake
    early.on('open', () => early.send(Buffer.from('830101830083626e32010166736e65616b79', 'hex')));
    expect(await earlyClosed).toBe(4005);

    // a frame over maxPayload: ws closes with 1009 before reading it
    const big = new WebSocket(n2.ready.url);
    const bigClosed = closeCode(big);
    big.on('open', () => big.send(randomBytes(200 * 1024)));
    expect(await bigClosed).toBe(1009);

    // a message over the peer's maxPayload is refused at the sender; the link stays up
    expect(await n1.request('cast', { dest: echo, msg: 'z'.repeat(100 * 1024) })).toBe('dropped');
    await n1.waitLog(/dropped a cast signal of \d+ bytes for n2: over its maxPayload 65536/);

    await n2.waitLog(/text frame on a binary link/);
    await n2.waitLog(/data frame before authentication/);
    expect(n2.alive).toBe(true);
    expect(await n1.request('call', { dest: echo, request: 'alive' })).toEqual({ echo: 'alive', node: 'n2' });
    // the echo actor, the link manager and the one link actor (to n1): nothing else came to life
    expect(await n2.request('alive')).toEqual({ actors: 3, creation: n2.ready.creation });
  });
});
