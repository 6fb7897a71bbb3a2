/**
 * A TCP proxy for fault-injection tests: it sits on one directed link between two node
 * processes (the dialling side is configured with the proxy's address) and can cut and heal it.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * Listens on 127.0.0.1 (a free port) and pipes every accepted connection to
 * 127.0.0.1:`targetPort`. `cut()` destroys every live connection pair and makes the proxy
 * destroy new connections as soon as they are accepted, until `heal()`. Socket errors are
 * absorbed (a failed or reset side simply destroys its pair), so no 'error' event goes unhandled.
 */
export class TcpProxy {
  /**
   * Where accepted connections are piped to (on 127.0.0.1). Settable, so that a proxy can be
   * started before the port it fronts is known; while it is 0 new connections are destroyed.
   */
  targetPort: number;
  private readonly pairs = new Set<readonly [Socket, Socket]>();
  private severed = false;
  private closed = false;
  private accepted = 0;
  private refused = 0;

  private constructor(
    private readonly server: Server,
    /** The port this proxy listens on (127.0.0.1). */
    readonly port: number,
    targetPort: number,
  ) {
    this.targetPort = targetPort;
    server.on('connection', (socket) => this.onConnection(socket));
    // a listening server only errors on fatal conditions; don't let it crash the test process
    server.on('error', () => undefined);
  }

  /** Starts a proxy to 127.0.0.1:`targetPort` (0: not known yet, see `targetPort`). */
  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer({ noDelay: true });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });
    return new TcpProxy(server, port, targetPort);
  }

  /** `ws://127.0.0.1:<port>`: this proxy's address as a node's peer URL. */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** True between `cut()` and `heal()`. */
  get isCut(): boolean {
    return this.severed;
  }

  /** Live connection pairs, and connections accepted / refused (while cut) so far. */
  stats(): { live: number; accepted: number; refused: number } {
    return { live: this.pairs.size, accepted: this.accepted, refused: this.refused };
  }

  /** Destroys every live connection pair and refuses (destroys) new connections until `heal()`. */
  cut(): void {
    this.severed = true;
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  /** Lets new connections through again (the nodes' own reconnects re-establish the link). */
  heal(): void {
    this.severed = false;
  }

  /** Destroys every connection and stops listening. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(client: Socket): void {
    client.on('error', () => undefined);
    if (this.severed || this.closed || this.targetPort === 0) {
      this.refused++;
      client.destroy();
      return;
    }
    this.accepted++;
    const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort, noDelay: true });
    upstream.on('error', () => undefined);
    const pair = [client, upstream] as const;
    this.pairs.add(pair);
    const drop = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.once('close', drop);
    upstream.once('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
