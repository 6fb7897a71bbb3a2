import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Transport } from '../src/index.ts';
import { echo, startNode, until } from './helpers.ts';

const open: Transport[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/**
 * A TCP relay to `port` that records what the dialling side sends. Returns its port and the
 * recorded bytes.
 */
async function relay(port: number): Promise<{ port: number; sent: Buffer[] }> {
  const sent: Buffer[] = [];
  const sockets: Socket[] = [];
  const server = createServer((inbound) => {
    const outbound = connect(port, '127.0.0.1');
    sockets.push(inbound, outbound);
    inbound.on('data', (d) => {
      sent.push(d);
      outbound.write(d);
    });
    outbound.on('data', (d) => inbound.write(d));
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  server.on('close', () => {
    for (const s of sockets) s.destroy();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no relay port');
  return { port: address.port, sent };
}

/** The masking keys of the WebSocket frames after the HTTP upgrade request in `bytes`. */
function maskingKeys(bytes: Buffer): Buffer[] {
  let at = bytes.indexOf('\r\n\r\n') + 4;
  const keys: Buffer[] = [];
  while (at + 2 <= bytes.length) {
    const b1 = bytes[at + 1] as number;
    let length = b1 & 0x7f;
    let header = 2;
    if (length === 126) {
      length = bytes.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(at + 2));
      header = 10;
    }
    expect(b1 & 0x80).toBe(0x80); // a client frame always carries the mask bit
    keys.push(bytes.subarray(at + header, at + header + 4));
    at += header + 4 + length;
  }
  return keys;
}

async function linkThroughRelay(maskFrames: boolean | undefined): Promise<Buffer[]> {
  const b = await startNode('b');
  open.push(b.transport);
  const { port, sent } = await relay(b.transport.port);
  const a = await startNode('a', {
    peers: { b: `ws://127.0.0.1:${port}` },
    ...(maskFrames === undefined ? {} : { maskFrames }),
  });
  open.push(a.transport);
  await a.transport.connect('b');
  const seen: unknown[] = [];
  b.node.spawn(echo(seen), undefined, { name: 'echo' });
  for (let i = 0; i < 5; i++) a.node.send({ name: 'echo', node: 'b' }, { i, pad: 'x'.repeat(200 * i) });
  expect(await a.node.call({ name: 'echo', node: 'b' }, 'last')).toEqual({ echo: 'last' });
  await until(() => seen.length === 5, 2000, 'five messages');
  expect(seen).toEqual([0, 1, 2, 3, 4].map((i) => ({ i, pad: 'x'.repeat(200 * i) })));
  return maskingKeys(Buffer.concat(sent));
}

describe('frame masking on dialled links', () => {
  it('sends an all-zero key by default, which ws neither applies nor undoes', async () => {
    const keys = await linkThroughRelay(undefined);
    expect(keys.length).toBeGreaterThanOrEqual(3);
    for (const key of keys) expect([...key]).toEqual([0, 0, 0, 0]);
  });

  it('masks with random keys when maskFrames is set, and messages still arrive intact', async () => {
    const keys = await linkThroughRelay(true);
    expect(keys.length).toBeGreaterThanOrEqual(3);
    expect(keys.filter((k) => k.some((byte) => byte !== 0)).length).toBe(keys.length);
  });
});
