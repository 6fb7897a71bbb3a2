import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Distribution, Node, SendStatus, Signal } from '@otra/actors';
import type { NodeName, Pid } from '@otra/protocol';
import WebSocket, { WebSocketServer } from 'ws';
import { backoffDelay, type ReconnectOptions } from './internal/backoff.ts';
import {
  Connection,
  type ConnectionHooks,
  type ConnectionSettings,
  describe,
  type FullPolicy,
  type LinkCounters,
  type Logger,
  type LogLevel,
} from './internal/connection.ts';
import { CLOSE, type PeerInfo, type Refusal } from './internal/handshake.ts';
import { linkActorBehaviour, linkActorExited, linkManagerBehaviour } from './internal/link-actors.ts';

/** TLS material. The server side uses `cert`/`key`; `ca` verifies peers (self-signed clusters). */
export interface TlsOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Ask connecting nodes for a client certificate (mutual TLS). Default false. */
  readonly requestCert?: boolean;
  /** Refuse peers whose certificate does not verify against `ca` / the system roots. Default true. */
  readonly rejectUnauthorized?: boolean;
}

export interface TransportOptions {
  /** The shared secret every node of the cluster holds (Erlang's cookie). */
  readonly cookie: string | Uint8Array;
  /** Interface to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** Port to listen on; 0 picks a free one (read it back from `transport.port`). Default 0. */
  readonly port?: number;
  /** Accept incoming links at all. Default true. */
  readonly listen?: boolean;
  /** Peer addresses, node name -> `ws://host:port` or `wss://host:port`. Connected at start. */
  readonly peers?: Readonly<Record<NodeName, string>>;
  /** Serve `wss` with this certificate and verify `wss` peers with its `ca`. */
  readonly tls?: TlsOptions;
  /**
   * Liveness interval (as `net_ticktime`): an idle link sends a tick every `tickMs / 4`, and a
   * link with no frame from the peer for `tickMs` is declared down. Default 20,000 ms.
   */
  readonly tickMs?: number;
  /** Largest frame accepted from a peer (the link closes with 1009 above it). Default 16 MiB. */
  readonly maxPayload?: number;
  /** Bound on bytes queued plus not yet written per link. Default 8 MiB. */
  readonly sendBufferBytes?: number;
  /**
   * What a `send`/`cast` sees when its link's buffer is full: `busy` (refused; retry after
   * `whenWritable`), `drop_new` (discarded, status `dropped`) or `drop_oldest` (the oldest queued
   * `send`/`cast` messages are discarded to make room). Default `busy`. Control signals (calls,
   * replies, links, monitors, exits) are never refused.
   */
  readonly onFull?: FullPolicy;
  /** Unauthenticated connections are closed after this long. Default 5,000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** Handshakes in progress at once before new incoming connections are turned away. Default 64. */
  readonly maxHandshakes?: number;
  /** Reconnect with exponential backoff and jitter (`false`: never reconnect by itself). */
  readonly reconnect?: ReconnectOptions | false;
  /**
   * Mask the frames this node sends on links it dialled, with a random key per frame, as RFC 6455
   * asks of browsers. The mask defends HTTP intermediaries against script-crafted frames; it hides
   * nothing (the key travels with the frame). Links here are authenticated node-to-node traffic,
   * so by default the key is all zeros, which `ws` skips at both ends: on this machine masking and
   * unmasking cost about a fifth of a pipelining client's CPU. Set true when a proxy on the path
   * insists on masked frames. Default false.
   */
  readonly maskFrames?: boolean;
  /** Where link events go. Default: warnings and errors to stderr. */
  readonly log?: Logger;
}

/** An all-zero masking key: `ws` neither masks nor unmasks such frames. */
function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}

/** One peer as `peers()` reports it. */
export interface PeerStatus {
  readonly node: NodeName;
  readonly url: string | undefined;
  readonly connected: boolean;
  /** The peer's incarnation on the current (or last) link. */
  readonly creation: number | undefined;
  /** Reconnect attempts since the last successful link. */
  readonly attempts: number;
  /** Why the last link or attempt ended. */
  readonly lastError: string | undefined;
}

export interface LinkStats extends LinkCounters {
  readonly node: NodeName;
  /** Bytes queued plus handed to the socket and not yet written (the bounded send buffer). */
  readonly buffered: number;
  readonly bufferedAmount: number;
}

export interface TransportStats {
  readonly links: readonly LinkStats[];
  readonly linksUp: number;
  readonly linksDown: number;
  readonly refused: number;
}

interface PeerState {
  readonly name: NodeName;
  url: string | undefined;
  link: Connection | undefined;
  /** Our own connection to the peer while its handshake runs. */
  outgoing: Connection | undefined;
  retry: ReturnType<typeof setTimeout> | undefined;
  attempts: number;
  /** Keep (re)connecting: set by configuration and `connect`, cleared by `disconnect`. */
  auto: boolean;
  creation: number | undefined;
  lastError: string | undefined;
  connectWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }>;
  writableWaiters: Array<() => void>;
  /** The link actor of the current link (a child of the `links` manager). */
  actor: Pid | undefined;
}

const DEFAULTS = {
  host: '127.0.0.1',
  tickMs: 20_000,
  maxPayload: 16 * 1024 * 1024,
  sendBufferBytes: 8 * 1024 * 1024,
  handshakeTimeoutMs: 5000,
  maxHandshakes: 64,
};

const FATAL_REFUSALS: ReadonlySet<number> = new Set([CLOSE.badCookie, CLOSE.badVersion, CLOSE.badName]);

const defaultLog: Logger = (level, message) => {
  if (level !== 'info') process.stderr.write(`[otra/links] ${level}: ${message}\n`);
};

/**
 * Starts listening (unless `listen: false`), installs the transport as `node`'s distribution and
 * connects to the configured peers in the background.
 */
export async function startTransport(node: Node, options: TransportOptions): Promise<Transport> {
  const transport = new Transport(node, options);
  await transport.listen();
  node.setDistribution(transport.distribution);
  transport.startManager();
  for (const name of Object.keys(options.peers ?? {})) transport.connectInBackground(name);
  return transport;
}

/**
 * The links of one node: a WebSocket server for incoming links, one connection per connected peer,
 * and the `Distribution` the node routes remote signals through.
 */
export class Transport {
  private readonly peersByName = new Map<NodeName, PeerState>();
  private readonly handshaking = new Set<Connection>();
  private readonly settings: ConnectionSettings;
  private readonly hooks: ConnectionHooks;
  private readonly log: Logger;
  private readonly tickMs: number;
  private readonly reconnect: ReconnectOptions | false;
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private ticker: ReturnType<typeof setInterval> | undefined;
  private closed = false;
  private counts = { linksUp: 0, linksDown: 0, refused: 0 };
  private boundPort = 0;
  private manager: Pid | undefined;

  /** What the node routes through (installed by `startTransport`). */
  readonly distribution: Distribution;

  constructor(
    readonly node: Node,
    private readonly options: TransportOptions,
  ) {
    this.log = options.log ?? defaultLog;
    const maxPayload = options.maxPayload ?? DEFAULTS.maxPayload;
    const cookie =
      typeof options.cookie === 'string' ? Buffer.from(options.cookie, 'utf8') : Buffer.from(options.cookie);
    if (cookie.length === 0) throw new Error('the cookie must not be empty');
    this.settings = {
      handshake: {
        name: node.name,
        creation: node.creation,
        cookie,
        maxPayload,
        admit: (peer) => this.admit(peer),
      },
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
      sendBufferBytes: options.sendBufferBytes ?? DEFAULTS.sendBufferBytes,
      onFull: options.onFull ?? 'busy',
      log: this.log,
    };
    this.tickMs = options.tickMs ?? DEFAULTS.tickMs;
    this.reconnect = options.reconnect ?? {};
    this.hooks = {
      up: (conn, peer) => this.linkUp(conn, peer),
      closed: (conn, why, byPeer) => this.connectionClosed(conn, why, byPeer),
      writable: (conn) => this.linkWritable(conn),
    };
    for (const [name, url] of Object.entries(options.peers ?? {})) this.peer(name).url = url;
    this.distribution = {
      route: (name, signal) => this.route(name, signal),
      isConnected: (name) => this.isConnected(name),
      connect: (name) => this.connectInBackground(name),
    };
  }

  /** The port the server listens on (0 when not listening). */
  get port(): number {
    return this.boundPort;
  }

  /** This node's own address, as peers should configure it. */
  get url(): string {
    const host = this.options.host ?? DEFAULTS.host;
    const shown = host.includes(':') ? `[${host}]` : host;
    return `${this.options.tls === undefined ? 'ws' : 'wss'}://${shown}:${this.boundPort}`;
  }

  /** @internal Opens the server; called by `startTransport`. */
  async listen(): Promise<void> {
    const interval = Math.max(10, Math.floor(this.tickMs / 4));
    this.ticker = setInterval(() => this.tickAll(), interval);
    this.ticker.unref?.();
    if (this.options.listen === false) return;
    const tls = this.options.tls;
    const server =
      tls === undefined
        ? createHttpServer()
        : createHttpsServer({
            cert: tls.cert,
            key: tls.key,
            ...(tls.ca === undefined ? {} : { ca: tls.ca as string | Buffer | Array<string | Buffer> }),
            requestCert: tls.requestCert ?? false,
            rejectUnauthorized: tls.requestCert === true ? (tls.rejectUnauthorized ?? true) : false,
          });
    // anything but a WebSocket upgrade is answered and forgotten; malformed HTTP just drops the socket
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' });
      res.end('otra node link: WebSocket upgrade required\n');
    });
    server.on('clientError', (_err: Error, socket: Socket) => socket.destroy());
    server.on('tlsClientError', () => {});
    const wss = new WebSocketServer({
      server,
      maxPayload: this.settings.handshake.maxPayload,
      perMessageDeflate: false,
      clientTracking: false,
    });
    wss.on('connection', (ws, req) => this.accept(ws, req));
    wss.on('error', (err) => this.log('warn', `link server error: ${describe(err)}`));
    this.server = server;
    this.wss = wss;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, this.options.host ?? DEFAULTS.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log('error', `link server error: ${describe(err)}`));
    this.boundPort = (server.address() as AddressInfo).port;
  }

  /**
   * @internal Spawns the `links` manager actor (called by `startTransport`). If the name is taken
   * the manager runs unregistered.
   */
  startManager(): void {
    const behaviour = linkManagerBehaviour({
      describe: () => ({ url: this.boundPort === 0 ? undefined : this.url, peers: this.peersByName.size }),
      query: (request) =>
        request === 'stats' ? this.stats() : request === 'peers' ? this.peers() : undefined,
      close: () => this.close(),
    });
    const taken = this.node.whereis('links') !== undefined;
    if (taken) this.log('warn', 'the name `links` is taken: the link manager runs unregistered');
    this.manager = this.node.spawn(behaviour, undefined, taken ? {} : { name: 'links' });
  }

  // ---- the distribution -----------------------------------------------------------------------

  /** Hands `signal` to `name`'s link; `dropped` when there is none (and starts connecting if known). */
  route(name: NodeName, signal: Signal): SendStatus {
    const peer = this.peersByName.get(name);
    const link = peer?.link;
    if (link !== undefined) return link.enqueue(signal);
    if (peer !== undefined && peer.url !== undefined && !this.closed) this.startConnecting(peer);
    return 'dropped';
  }

  isConnected(name: NodeName): boolean {
    return this.peersByName.get(name)?.link !== undefined;
  }

  // ---- public API -----------------------------------------------------------------------------

  /** Sets (or changes) the address of `name`; used by the next connection attempt. */
  setPeer(name: NodeName, url: string): void {
    if (name === this.node.name) throw new Error(`cannot add this node (${name}) as its own peer`);
    this.peer(name).url = url;
  }

  /**
   * Connects to `name` (at its configured URL) and resolves once the link is up. Keeps retrying
   * with backoff; rejects when the peer refuses us for good (cookie, version, name) or after
   * `timeoutMs` (default 10,000 ms), though attempts go on in the background.
   */
  connect(name: NodeName, options?: { timeoutMs?: number }): Promise<void> {
    const peer = this.peer(name);
    if (peer.link !== undefined) return Promise.resolve();
    if (peer.url === undefined && peer.outgoing === undefined) {
      return Promise.reject(new Error(`no address known for node ${name}`));
    }
    if (this.closed) return Promise.reject(new Error('transport closed'));
    peer.auto = true;
    const timeoutMs = options?.timeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        peer.connectWaiters = peer.connectWaiters.filter((w) => w !== waiter);
        reject(new Error(`no link to ${name} after ${timeoutMs} ms (${peer.lastError ?? 'no answer'})`));
      }, timeoutMs);
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      peer.connectWaiters.push(waiter);
      this.startConnecting(peer);
    });
  }

  /** Starts connecting to `name` if its address is known; never throws. */
  connectInBackground(name: NodeName): void {
    const peer = this.peersByName.get(name);
    if (peer === undefined || peer.url === undefined || this.closed) return;
    peer.auto = true;
    this.startConnecting(peer);
  }

  /**
   * Closes the link to `name` (monitors fire `noconnection` here and there) and stops reconnecting
   * until `connect` is called or a signal is routed to it again.
   */
  disconnect(name: NodeName): void {
    const peer = this.peersByName.get(name);
    if (peer === undefined) return;
    peer.auto = false;
    if (peer.retry !== undefined) clearTimeout(peer.retry);
    peer.retry = undefined;
    peer.outgoing?.close(CLOSE.disconnect, `disconnected by ${this.node.name}`);
    peer.link?.close(CLOSE.disconnect, `disconnected by ${this.node.name}`);
  }

  /**
   * Resolves once `name`'s link has room for `send`/`cast` again (after a `busy`), or at once
   * when it has room or there is no link.
   */
  whenWritable(name: NodeName): Promise<void> {
    const peer = this.peersByName.get(name);
    const link = peer?.link;
    if (peer === undefined || link === undefined || link.writable) return Promise.resolve();
    link.requestWritable();
    return new Promise((resolve) => peer.writableWaiters.push(resolve));
  }

  /** Known peers and their state. */
  peers(): PeerStatus[] {
    return [...this.peersByName.values()].map((p) => ({
      node: p.name,
      url: p.url,
      connected: p.link !== undefined,
      creation: p.creation,
      attempts: p.attempts,
      lastError: p.lastError,
    }));
  }

  /** Counters of every current link. */
  stats(): TransportStats {
    const links: LinkStats[] = [];
    for (const p of this.peersByName.values()) {
      if (p.link === undefined) continue;
      links.push({
        node: p.name,
        ...p.link.counters,
        buffered: p.link.buffered,
        bufferedAmount: p.link.ws.bufferedAmount,
      });
    }
    return { links, ...this.counts };
  }

  /** Closes every link (running `nodeDown` for each) and the server; uninstalls the distribution. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    for (const peer of this.peersByName.values()) {
      if (peer.retry !== undefined) clearTimeout(peer.retry);
      peer.retry = undefined;
      peer.outgoing?.close(CLOSE.shutdown, `${this.node.name} shutting down`);
      peer.link?.close(CLOSE.shutdown, `${this.node.name} shutting down`);
      for (const w of peer.connectWaiters.splice(0)) w.reject(new Error('transport closed'));
      for (const w of peer.writableWaiters.splice(0)) w();
    }
    for (const conn of [...this.handshaking]) conn.close(CLOSE.shutdown, `${this.node.name} shutting down`);
    this.node.setDistribution(undefined);
    if (this.manager !== undefined && this.node.isAlive(this.manager))
      void this.node.stop(this.manager, 'shutdown');
    const wss = this.wss;
    const server = this.server;
    if (wss !== undefined) await new Promise<void>((resolve) => wss.close(() => resolve()));
    if (server !== undefined) {
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  // ---- connections ----------------------------------------------------------------------------

  private peer(name: NodeName): PeerState {
    let peer = this.peersByName.get(name);
    if (peer === undefined) {
      peer = {
        name,
        url: undefined,
        link: undefined,
        outgoing: undefined,
        retry: undefined,
        attempts: 0,
        auto: false,
        creation: undefined,
        lastError: undefined,
        connectWaiters: [],
        writableWaiters: [],
        actor: undefined,
      };
      this.peersByName.set(name, peer);
    }
    return peer;
  }

  private startConnecting(peer: PeerState): void {
    if (this.closed || peer.link !== undefined || peer.outgoing !== undefined || peer.retry !== undefined)
      return;
    const url = peer.url;
    if (url === undefined) return;
    const tls = this.options.tls;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, {
        maxPayload: this.settings.handshake.maxPayload,
        perMessageDeflate: false,
        handshakeTimeout: this.settings.handshakeTimeoutMs,
        ...(this.options.maskFrames === true ? {} : { generateMask: zeroMask }),
        ...(tls === undefined
          ? {}
          : {
              ...(tls.ca === undefined ? {} : { ca: tls.ca as string | Buffer | Array<string | Buffer> }),
              cert: tls.cert,
              key: tls.key,
              rejectUnauthorized: tls.rejectUnauthorized ?? true,
            }),
      });
    } catch (err) {
      peer.lastError = `bad address ${url}: ${describe(err)}`;
      this.log('error', `cannot connect to ${peer.name}: ${peer.lastError}`);
      this.scheduleRetry(peer);
      return;
    }
    const conn = new Connection(ws, 'initiator', this.node, this.settings, this.hooks, peer.name);
    peer.outgoing = conn;
    this.handshaking.add(conn);
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const from = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    if (this.closed) {
      ws.terminate();
      return;
    }
    if (this.handshaking.size >= (this.options.maxHandshakes ?? DEFAULTS.maxHandshakes)) {
      this.log('warn', `turning away a connection from ${from}: too many handshakes in progress`);
      ws.on('error', () => {});
      ws.close(CLOSE.tooManyHandshakes, 'too many handshakes in progress');
      return;
    }
    const conn = new Connection(ws, 'acceptor', this.node, this.settings, this.hooks, from);
    this.handshaking.add(conn);
  }

  /**
   * Simultaneous connects: when both nodes dial each other, the connection initiated by the node
   * whose name sorts first wins. Refusing here happens before any proof, so it only ever refuses.
   */
  private admit(info: PeerInfo): Refusal | undefined {
    if (this.closed) return { code: CLOSE.shutdown, reason: `${this.node.name} shutting down` };
    const peer = this.peersByName.get(info.name);
    if (peer?.outgoing !== undefined && this.node.name < info.name) {
      return {
        code: CLOSE.duplicate,
        reason: `simultaneous connect: keeping the link ${this.node.name} initiated (${this.node.name} < ${info.name})`,
      };
    }
    return undefined;
  }

  private linkUp(conn: Connection, info: PeerInfo): void {
    this.handshaking.delete(conn);
    const peer = this.peer(info.name);
    if (peer.outgoing === conn) peer.outgoing = undefined;
    if (this.closed) {
      conn.close(CLOSE.shutdown, `${this.node.name} shutting down`);
      return;
    }
    const old = peer.link;
    if (old !== undefined) {
      // the peer dialled again: it lost the old link (or restarted as a new incarnation). Retire the
      // old one first so its monitors and links see `noconnection` before the new link is up.
      old.close(
        CLOSE.replaced,
        info.creation === peer.creation
          ? 'replaced by a newer link'
          : `replaced by incarnation ${info.creation}`,
      );
    }
    if (peer.outgoing !== undefined) {
      const outgoing = peer.outgoing;
      peer.outgoing = undefined;
      outgoing.close(CLOSE.duplicate, `superseded by the link from ${info.name}`);
    }
    if (peer.retry !== undefined) clearTimeout(peer.retry);
    peer.retry = undefined;
    peer.link = conn;
    peer.creation = info.creation;
    peer.attempts = 0;
    peer.lastError = undefined;
    this.counts.linksUp++;
    this.log('info', `link up: ${this.node.name} <-> ${info.name} (creation ${info.creation}, ${conn.role})`);
    if (this.manager !== undefined && this.node.isAlive(this.manager)) {
      const actor = this.node.spawn(linkActorBehaviour, conn, { parent: this.manager });
      peer.actor = actor;
      void this.node.awaitExit(actor).then((reason) => linkActorExited(conn, reason));
    }
    this.node.nodeUp(info.name);
    for (const w of peer.connectWaiters.splice(0)) w.resolve();
  }

  private connectionClosed(conn: Connection, why: Refusal, byPeer: boolean): void {
    this.handshaking.delete(conn);
    const name = conn.peer?.name;
    const peer = name === undefined ? undefined : this.peersByName.get(name);
    const side = byPeer ? 'by peer' : 'here';
    if (peer !== undefined && peer.link === conn) {
      peer.link = undefined;
      peer.lastError = `${why.code} ${why.reason}`;
      this.counts.linksDown++;
      const level = why.code === CLOSE.shutdown || why.code === CLOSE.disconnect ? 'info' : 'warn';
      this.log(
        level,
        `link down: ${this.node.name} <-> ${peer.name} (closed ${side}: ${why.code} ${why.reason})`,
      );
      this.node.nodeDown(peer.name);
      const actor = peer.actor;
      peer.actor = undefined;
      if (actor !== undefined && this.node.isAlive(actor)) void this.node.stop(actor, 'normal');
      for (const w of peer.writableWaiters.splice(0)) w();
      this.scheduleRetry(peer);
      return;
    }
    // a connection that never came up (or lost a race); find its peer by role
    const target = conn.role === 'initiator' ? this.peersByName.get(conn.label) : peer;
    if (target !== undefined && target.outgoing === conn) target.outgoing = undefined;
    if (why.code === CLOSE.duplicate || why.code === CLOSE.replaced) {
      this.log('info', `connection with ${conn.who} ended (${side}): ${why.reason}`);
    } else {
      if (why.code !== CLOSE.shutdown) this.counts.refused++;
      const level: LogLevel = FATAL_REFUSALS.has(why.code) ? 'error' : 'warn';
      this.log(level, `handshake with ${conn.who} failed (closed ${side}: ${why.code} ${why.reason})`);
    }
    if (conn.role !== 'initiator' || target === undefined) return;
    target.lastError = `${why.code} ${why.reason}`;
    if (FATAL_REFUSALS.has(why.code)) {
      const err = new Error(`link to ${target.name} refused: ${why.reason}`);
      for (const w of target.connectWaiters.splice(0)) w.reject(err);
    }
    this.scheduleRetry(target);
  }

  private scheduleRetry(peer: PeerState): void {
    if (this.closed || !peer.auto || this.reconnect === false || peer.url === undefined) return;
    if (peer.retry !== undefined || peer.link !== undefined || peer.outgoing !== undefined) return;
    const delay = backoffDelay(peer.attempts++, this.reconnect, Math.random());
    peer.retry = setTimeout(() => {
      peer.retry = undefined;
      this.startConnecting(peer);
    }, delay);
    peer.retry.unref?.();
  }

  private linkWritable(conn: Connection): void {
    const name = conn.peer?.name;
    const peer = name === undefined ? undefined : this.peersByName.get(name);
    if (peer === undefined || peer.link !== conn) return;
    for (const w of peer.writableWaiters.splice(0)) w();
  }

  private tickAll(): void {
    for (const peer of this.peersByName.values()) peer.link?.tick();
  }
}
