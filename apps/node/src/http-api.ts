/**
 * The KV service's HTTP API (JSON), served by every node: writes go through the node's own KV
 * server, which forwards them to the leader over the node links (or the client is redirected
 * with 307); reads choose their consistency. See apps/node/README.md for the routes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NodeTree } from '@otra/actors';
import type { ServerId } from '@otra/protocol';
import {
  addMember,
  ClusterChangeNotPermittedError,
  CommandOutcomeUnknownError,
  consistentQuery,
  forceDeleteServer,
  InvalidRequestError,
  leaderQuery,
  localQuery,
  MachineError,
  type MemberInfo,
  members,
  NotLeaderError,
  NotUpToDateError,
  type Overview,
  overview,
  processCommand,
  type RaftSystem,
  RequestRefusedError,
  removeMember,
  ServerNotFoundError,
  startServer,
  TimeoutError,
  transferLeadership,
} from '@otra/raft';
import type { Transport } from '@otra/transport-ws';
import {
  type KvCommand,
  type KvEntry,
  type KvRange,
  type KvReply,
  type KvValue,
  keyProblem,
  RANGE_MAX,
} from './kv.ts';
import type { KvMetrics } from './metrics.ts';

/** Largest request body accepted (larger ones get 413 and never reach the log). */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface HttpApiOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly system: RaftSystem;
  readonly transport: Transport;
  /** The KV cluster's name (also its servers' name). */
  readonly cluster: string;
  readonly metrics: KvMetrics;
  /** Another node's HTTP API URL (for 307 redirects and `/status`), or undefined if unknown. */
  readonly httpUrlOf: (node: string) => Promise<string | undefined>;
  /** Per request. Default 5,000 ms. */
  readonly requestTimeoutMs?: number;
  /** How long a request waits for a leader to be known before answering 503. Default 2,000 ms. */
  readonly leaderWaitMs?: number;
  readonly log?: (level: 'warn' | 'error', message: string) => void;
}

export interface HttpApi {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/** A request answered with an error status and a JSON body `{ error, message, ...extra }`. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Readonly<Record<string, unknown>> = {},
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

const unavailable = (code: string, message: string): HttpError =>
  new HttpError(503, code, message, {}, { 'retry-after': '1' });

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Reads the body as JSON, refusing more than MAX_BODY_BYTES and anything that does not parse. */
function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (declared > MAX_BODY_BYTES)
    return Promise.reject(new HttpError(413, 'body_too_large', `the body is over ${MAX_BODY_BYTES} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    // plain stream events: an async iterator costs several promises per request
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        failed = true;
        req.pause();
        reject(new HttpError(413, 'body_too_large', `the body is over ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', (err) => {
      if (!failed) reject(new HttpError(400, 'bad_request', `the request failed: ${err.message}`));
      failed = true;
    });
    req.on('end', () => {
      if (failed) return;
      if (size === 0) {
        reject(new HttpError(400, 'bad_request', 'a JSON body is required'));
        return;
      }
      const text = (chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)).toString(
        'utf8',
      );
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new HttpError(400, 'invalid_json', `the body is not valid JSON: ${(err as Error).message}`));
      }
    });
  });
}

/**
 * Submits writes in batches: every write that arrives in one event-loop turn (one poll phase
 * of the HTTP server) reaches the KV server together, so the leader appends them as one batch
 * and sends one AppendEntries per follower for all of them, rather than one per request.
 */
class WriteBatcher {
  private queue: (() => void)[] = [];
  private scheduled = false;

  /** Runs `start` (which must send its request synchronously) with the rest of this turn's writes. */
  add<T>(start: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push(() => {
        start().then(resolve, reject);
      });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const start of batch) start();
  }
}

/** A put's or delete's reply: whether the key existed, and with `prev` what it held. */
type KeyWriteReply = { readonly existed: boolean; readonly previous?: KvEntry };

/** `?prev=1`: the command asks for the previous entry (etcd's `prev_kv`). */
function prevAsked(url: URL): { prev?: true } {
  return url.searchParams.get('prev') === '1' ? { prev: true } : {};
}

/** The answer's `previous` field: the value the key held, absent when it held none (or was not asked). */
function previousOf(reply: KeyWriteReply): { previous?: KvValue } {
  return reply.previous == null ? {} : { previous: reply.previous.value };
}

function objectBody(body: unknown, fields: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new HttpError(400, 'bad_request', `the body must be a JSON object ${fields}`);
  return body as Record<string, unknown>;
}

/** The routes, by the template metrics label them with (`unknown`: no such route). */
type RouteName =
  | '/kv'
  | '/kv/:key'
  | '/kv/:key/cas'
  | '/members/:node'
  | '/status'
  | '/inspect'
  | '/metrics'
  | '/members'
  | '/leadership'
  | 'unknown';

/** A matched route and its one path parameter (a key or a node name, still percent-encoded). */
interface Route {
  readonly name: RouteName;
  readonly segment: string;
}

const FIXED_ROUTES = new Set<RouteName>([
  '/kv',
  '/status',
  '/inspect',
  '/metrics',
  '/members',
  '/leadership',
]);

/** Matches a request path once: for the handler and for the metrics label. */
function matchRoute(pathname: string): Route {
  const parts = pathname.split('/').slice(1);
  const segment = parts[1] ?? '';
  if (parts[0] === 'kv') {
    // `/kv` lists; `/kv/` names no key (404), like any other path under /kv that is not a route
    if (parts.length === 1) return { name: '/kv', segment: '' };
    if (parts.length === 2 && segment.length > 0) return { name: '/kv/:key', segment };
    if (parts.length === 3 && segment.length > 0 && parts[2] === 'cas')
      return { name: '/kv/:key/cas', segment };
    return { name: 'unknown', segment: '' };
  }
  if (parts[0] === 'members' && parts.length === 2 && segment.length > 0)
    return { name: '/members/:node', segment };
  const path = (pathname.replace(/\/+$/, '') || '/') as RouteName;
  return { name: FIXED_ROUTES.has(path) ? path : 'unknown', segment: '' };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'bad_request', 'the path is not valid percent-encoding');
  }
}

function keyFrom(segment: string): string {
  const key = decodeSegment(segment);
  const problem = keyProblem(key);
  if (problem !== undefined) throw new HttpError(400, 'bad_request', problem);
  return key;
}

/** Maps the raft API's typed errors onto HTTP statuses. */
function fromRaftError(err: unknown, write: boolean): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof NotLeaderError)
    return unavailable('no_leader', err.leader === null ? 'no leader is known' : err.message);
  if (err instanceof CommandOutcomeUnknownError) return new HttpError(504, 'outcome_unknown', err.message);
  if (err instanceof ServerNotFoundError) return unavailable('unavailable', err.message);
  if (err instanceof TimeoutError)
    return new HttpError(
      504,
      'timeout',
      write ? `${err.message}; the write may or may not have been applied` : err.message,
    );
  if (err instanceof ClusterChangeNotPermittedError)
    return new HttpError(409, 'cluster_change_in_progress', err.message);
  if (err instanceof NotUpToDateError) return new HttpError(409, 'not_up_to_date', err.message);
  if (err instanceof InvalidRequestError) return new HttpError(400, 'bad_request', err.message);
  if (err instanceof MachineError) return new HttpError(422, 'rejected_by_machine', err.message);
  if (err instanceof RequestRefusedError) return new HttpError(409, err.code, err.message);
  return new HttpError(500, 'internal', err instanceof Error ? err.message : String(err));
}

/** What `/status` shows of a member's overview, for this node and in every member's row. */
function raftFields(view: Overview) {
  return {
    role: view.role,
    term: view.term,
    leader: view.leader?.node ?? null,
    commitIndex: view.commitIndex,
    lastApplied: view.lastApplied,
    lastIndex: view.lastIndex,
  };
}

/** A member's row in `/status`. */
export interface MemberStatus {
  readonly node: string;
  readonly membership: string;
  readonly matchIndex: number | null;
  /** The leader's snapshot transfer to this member, while one runs (else null). */
  readonly snapshotTransfer: { readonly index: number; readonly nextChunk: number } | null;
  readonly reachable: boolean;
  readonly role?: string;
  readonly term?: number;
  readonly leader?: string | null;
  readonly commitIndex?: number;
  readonly lastApplied?: number;
  readonly lastIndex?: number;
  readonly http?: string;
}

/** `GET /status`. */
export interface NodeStatus {
  readonly node: string;
  readonly cluster: string;
  /** False on a node that hosts no member of the cluster (started with `--join`, not added yet). */
  readonly member: boolean;
  readonly role: string | null;
  readonly term: number | null;
  readonly leader: string | null;
  readonly commitIndex: number | null;
  readonly lastApplied: number | null;
  readonly lastIndex: number | null;
  readonly snapshotIndex: number | null;
  readonly keys: number | null;
  /** The group sleeps (quiescence): no heartbeats, no election timer here. */
  readonly quiesced: boolean | null;
  readonly members: readonly MemberStatus[];
}

/** Starts the HTTP API of one node. */
export async function startHttpApi(options: HttpApiOptions): Promise<HttpApi> {
  const { system, cluster, metrics } = options;
  const node = system.node;
  const self: ServerId = { name: cluster, node: node.name };
  const timeoutMs = options.requestTimeoutMs ?? 5000;
  const leaderWaitMs = options.leaderWaitMs ?? 2000;
  const log =
    options.log ?? ((level, message) => process.stderr.write(`[${node.name}] http ${level}: ${message}\n`));
  const idOf = (name: string): ServerId => ({ name: cluster, node: name });

  const hostsMember = (): boolean => node.whereis(cluster) !== undefined;

  const writes = new WriteBatcher();
  let requests = 0;

  /** The leader this node's member knows of, waiting up to leaderWaitMs for an election to end. */
  async function knownLeader(): Promise<ServerId> {
    if (!hostsMember()) throw unavailable('not_a_member', `${node.name} hosts no member of ${cluster}`);
    const known = system.leaderOf(cluster);
    if (known !== null) return known;
    const deadline = Date.now() + leaderWaitMs;
    for (let i = 0; i < 10_000; i++) {
      const leader = system.leaderOf(cluster);
      if (leader !== null) return leader;
      if (Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw unavailable('no_leader', `no leader of ${cluster} is known to ${node.name}; retry shortly`);
  }

  /** Runs a write through the log; undefined when the client was redirected instead. */
  async function submit(
    command: KvCommand,
    req: IncomingMessage,
    url: URL,
    res: ServerResponse,
  ): Promise<{ reply: KvReply; index: number } | undefined> {
    const leader = await knownLeader();
    if (url.searchParams.get('redirect') === '1' && leader.node !== node.name) {
      const target = await options.httpUrlOf(leader.node);
      if (target === undefined)
        throw unavailable(
          'leader_unknown_url',
          `the leader is ${leader.node}, whose HTTP address is not known here`,
        );
      const location = new URL(req.url ?? '/', target).toString();
      sendJson(res, 307, { leader: leader.node, location }, { location });
      return undefined;
    }
    const started = performance.now();
    // a request id unique to this request: the core applies a resent copy only once
    const requestId = `${node.name}.${node.creation}.${++requests}`;
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const left = Math.max(1, deadline - Date.now());
        const result = await writes.add(() =>
          processCommand(system, self, command, { timeoutMs: left, requestId }),
        );
        metrics.commandDone(command.op, 'ok', (performance.now() - started) / 1000);
        return { reply: result.reply as KvReply, index: result.index };
      } catch (err) {
        // the leader went away before answering: resending is safe, the request id dedupes it
        if (err instanceof CommandOutcomeUnknownError && deadline - Date.now() > 50 && attempt < 100) {
          await new Promise((resolve) => setTimeout(resolve, 25));
          continue;
        }
        metrics.commandDone(command.op, 'error', (performance.now() - started) / 1000);
        throw fromRaftError(err, true);
      }
    }
  }

  /** Runs a named KV query at the request's `consistency` (default linearizable). */
  async function read(
    query: { readonly name: string; readonly args: readonly unknown[] },
    url: URL,
  ): Promise<{ result: unknown; index: number }> {
    const consistency = url.searchParams.get('consistency') ?? 'linearizable';
    if (!hostsMember()) throw unavailable('not_a_member', `${node.name} hosts no member of ${cluster}`);
    try {
      switch (consistency) {
        case 'linearizable': {
          await knownLeader();
          return await consistentQuery(system, self, query, { timeoutMs });
        }
        case 'leader': {
          await knownLeader();
          return await leaderQuery(system, self, query, { timeoutMs });
        }
        case 'local': {
          return await localQuery(system, self, query, { timeoutMs });
        }
        default:
          throw new HttpError(
            400,
            'bad_request',
            `consistency is linearizable, leader or local, got ${consistency}`,
          );
      }
    } catch (err) {
      throw fromRaftError(err, false);
    }
  }

  async function memberStatus({
    id,
    membership,
    matchIndex,
    snapshotTransfer,
  }: MemberInfo): Promise<MemberStatus> {
    const base = {
      node: id.node,
      membership,
      matchIndex: matchIndex ?? null,
      snapshotTransfer: snapshotTransfer ?? null,
    };
    const [view, http] = await Promise.all([
      overview(system, id, { timeoutMs: 1000 }).catch(() => undefined),
      id.node === node.name ? api.url : options.httpUrlOf(id.node).catch(() => undefined),
    ]);
    const where = http === undefined ? {} : { http };
    if (view === undefined) return { ...base, reachable: false, ...where };
    return { ...base, reachable: true, ...raftFields(view), ...where };
  }

  async function status(): Promise<NodeStatus> {
    const none = {
      node: node.name,
      cluster,
      member: false,
      role: null,
      term: null,
      leader: null,
      commitIndex: null,
      lastApplied: null,
      lastIndex: null,
      snapshotIndex: null,
      keys: null,
      quiesced: null,
      members: [],
    };
    if (!hostsMember()) return none;
    let view: Overview;
    try {
      view = await overview(system, self, { timeoutMs });
    } catch (err) {
      throw fromRaftError(err, false);
    }
    // the leader's view has every member's match index; fall back to our own view
    const known = await members(system, self, { timeoutMs: 1000 }).catch(() => ({
      members: view.members,
      leader: view.leader,
    }));
    const rows = await Promise.all(known.members.map(memberStatus));
    return {
      node: node.name,
      cluster,
      member: true,
      ...raftFields(view),
      snapshotIndex: view.snapshot?.index ?? null,
      keys: (view.machine as { keys?: number } | null)?.keys ?? null,
      quiesced: view.quiesced,
      members: rows.sort((a, b) => a.node.localeCompare(b.node)),
    };
  }

  function nodeNameFrom(value: unknown, what: string): string {
    if (typeof value !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(value))
      throw new HttpError(400, 'bad_request', `${what} must be a node name`);
    return value;
  }

  async function addMemberRoute(body: Record<string, unknown>): Promise<unknown> {
    const target = nodeNameFrom(body.node, '"node"');
    const membership = body.membership ?? 'promotable';
    if (membership !== 'voter' && membership !== 'promotable' && membership !== 'non_voter')
      throw new HttpError(400, 'bad_request', '"membership" is voter, promotable or non_voter');
    if (body.url !== undefined) {
      if (typeof body.url !== 'string' || !/^wss?:\/\/./.test(body.url))
        throw new HttpError(400, 'bad_request', '"url" must be a ws:// or wss:// URL');
      options.transport.setPeer(target, body.url);
    }
    if (!hostsMember()) throw unavailable('not_a_member', `${node.name} hosts no member of ${cluster}`);
    try {
      await options.transport.connect(target, { timeoutMs: Math.min(timeoutMs, 3000) });
    } catch (err) {
      throw new HttpError(502, 'node_unreachable', `cannot reach node ${target}: ${(err as Error).message}`);
    }
    try {
      const current = await members(system, self, { timeoutMs });
      if (current.members.some((m) => m.id.node === target))
        throw new HttpError(409, 'already_member', `${target} is already a member of ${cluster}`);
      const newId = idOf(target);
      await startServer(
        system,
        {
          cluster,
          id: newId,
          machine: { module: 'kv' },
          members: [...current.members.map((m) => m.id), newId],
        },
        { timeoutMs },
      );
      try {
        const r = await addMember(system, self, newId, { membership, timeoutMs });
        return { added: target, membership, leader: r.leader?.node ?? null };
      } catch (err) {
        await forceDeleteServer(system, newId, { timeoutMs }).catch(() => undefined);
        throw err;
      }
    } catch (err) {
      throw fromRaftError(err, true);
    }
  }

  async function removeMemberRoute(target: string): Promise<unknown> {
    if (!hostsMember()) throw unavailable('not_a_member', `${node.name} hosts no member of ${cluster}`);
    try {
      const r = await removeMember(system, self, idOf(target), { timeoutMs });
      // the removed member's data goes too, when its node can be reached
      const deleted = await forceDeleteServer(system, idOf(target), { timeoutMs })
        .then(() => true)
        .catch(() => false);
      return { removed: target, deleted, leader: r.leader?.node ?? null };
    } catch (err) {
      throw fromRaftError(err, true);
    }
  }

  const allow = (method: string, methods: string): never => {
    throw new HttpError(
      405,
      'method_not_allowed',
      `${method} is not allowed here (allowed: ${methods})`,
      {},
      { allow: methods },
    );
  };

  async function kvRoute(req: IncomingMessage, res: ServerResponse, url: URL, key: string): Promise<void> {
    const method = req.method ?? 'GET';
    switch (method) {
      case 'GET': {
        const { result, index } = await read({ name: 'entry', args: [key] }, url);
        const entry = result as KvEntry;
        if (entry === null) throw new HttpError(404, 'not_found', `no key ${JSON.stringify(key)}`, { index });
        sendJson(res, 200, { value: entry.value, index });
        return;
      }
      case 'PUT': {
        const body = objectBody(await readJson(req), 'with "value"');
        if (!('value' in body)) throw new HttpError(400, 'bad_request', 'the body needs a "value"');
        const prev = prevAsked(url);
        const r = await submit({ op: 'put', key, value: body.value as KvValue, ...prev }, req, url, res);
        if (r === undefined) return;
        const reply = r.reply as KeyWriteReply;
        sendJson(
          res,
          200,
          prev.prev ? { index: r.index, existed: reply.existed, ...previousOf(reply) } : { index: r.index },
        );
        return;
      }
      case 'DELETE': {
        const r = await submit({ op: 'delete', key, ...prevAsked(url) }, req, url, res);
        if (r === undefined) return;
        const reply = r.reply as KeyWriteReply;
        sendJson(res, 200, { index: r.index, deleted: reply.existed, ...previousOf(reply) });
        return;
      }
      default:
        return allow(method, 'GET, PUT, DELETE');
    }
  }

  /** `/kv`: `GET ?prefix=&after=&limit=` lists a page of keys and values in key order, `DELETE ?prefix=` deletes them all. */
  async function prefixRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.method === 'DELETE') {
      const prefix = url.searchParams.get('prefix') ?? '';
      const problem = keyProblem(prefix);
      if (problem !== undefined)
        throw new HttpError(400, 'bad_request', `DELETE /kv needs ?prefix= (${problem})`);
      const r = await submit({ op: 'delete_prefix', prefix }, req, url, res);
      if (r !== undefined)
        sendJson(res, 200, { index: r.index, deleted: (r.reply as { deleted: number }).deleted });
      return;
    }
    if (req.method !== 'GET') return allow(req.method ?? 'GET', 'GET, DELETE');
    const prefix = url.searchParams.get('prefix') ?? '';
    const after = url.searchParams.get('after');
    const limitText = url.searchParams.get('limit') ?? '100';
    const limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit < 1 || limit > RANGE_MAX)
      throw new HttpError(400, 'bad_request', `limit is an integer from 1 to ${RANGE_MAX}, got ${limitText}`);
    const { result, index } = await read({ name: 'range', args: [prefix, after, limit] }, url);
    const page = result as KvRange;
    const last = page.items[page.items.length - 1];
    sendJson(res, 200, {
      items: page.items,
      more: page.more,
      ...(page.more && last !== undefined ? { next: last.key } : {}),
      index,
    });
  }

  async function casRoute(req: IncomingMessage, res: ServerResponse, url: URL, key: string): Promise<void> {
    if (req.method !== 'POST') return allow(req.method ?? 'GET', 'POST');
    const body = objectBody(await readJson(req), 'with "value" (and "expect")');
    if (!('value' in body)) throw new HttpError(400, 'bad_request', 'the body needs a "value"');
    const command: KvCommand =
      'expect' in body
        ? { op: 'cas', key, expect: body.expect as KvValue, value: body.value as KvValue }
        : { op: 'cas', key, value: body.value as KvValue };
    const r = await submit(command, req, url, res);
    if (r === undefined) return;
    const reply = r.reply as { ok: boolean; current: KvEntry };
    if (reply.ok) sendJson(res, 200, { index: r.index });
    else
      sendJson(res, 409, {
        error: 'compare_failed',
        message: `${JSON.stringify(key)} does not hold the expected value`,
        exists: reply.current !== null,
        ...(reply.current === null ? {} : { current: reply.current.value }),
        index: r.index,
      });
  }

  async function membersRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'POST') {
      sendJson(res, 200, await addMemberRoute(objectBody(await readJson(req), 'with "node"')));
      return;
    }
    if (req.method !== 'GET') return allow(req.method ?? 'GET', 'GET, POST');
    try {
      const r = await members(system, self, { timeoutMs });
      sendJson(res, 200, {
        leader: r.leader?.node ?? null,
        members: r.members.map((m) => ({
          node: m.id.node,
          membership: m.membership,
          matchIndex: m.matchIndex ?? null,
          snapshotTransfer: m.snapshotTransfer ?? null,
        })),
      });
    } catch (err) {
      throw fromRaftError(err, false);
    }
  }

  async function leadershipRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return allow(req.method ?? 'GET', 'POST');
    const body = objectBody(await readJson(req), 'with "to"');
    const to = nodeNameFrom(body.to, '"to"');
    if (!hostsMember()) throw unavailable('not_a_member', `${node.name} hosts no member of ${cluster}`);
    try {
      await transferLeadership(system, self, idOf(to), { timeoutMs });
    } catch (err) {
      throw fromRaftError(err, true);
    }
    sendJson(res, 200, { leader: to });
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL, matched: Route): Promise<void> {
    const method = req.method ?? 'GET';
    switch (matched.name) {
      case '/kv':
        return prefixRoute(req, res, url);
      case '/kv/:key':
        return kvRoute(req, res, url, keyFrom(matched.segment));
      case '/kv/:key/cas':
        return casRoute(req, res, url, keyFrom(matched.segment));
      case '/members/:node': {
        if (method !== 'DELETE') return allow(method, 'DELETE');
        const target = nodeNameFrom(decodeSegment(matched.segment), 'the member');
        sendJson(res, 200, await removeMemberRoute(target));
        return;
      }
      case '/members':
        return membersRoute(req, res);
      case '/leadership':
        return leadershipRoute(req, res);
      case '/status':
        if (method !== 'GET') allow(method, 'GET');
        sendJson(res, 200, await status());
        return;
      case '/inspect':
        if (method !== 'GET') allow(method, 'GET');
        sendJson(res, 200, node.inspectTree() satisfies NodeTree);
        return;
      case '/metrics': {
        if (method !== 'GET') allow(method, 'GET');
        const text = await metrics.render();
        res.writeHead(200, {
          'content-type': metrics.contentType,
          'content-length': Buffer.byteLength(text),
        });
        res.end(text);
        return;
      }
      case 'unknown':
        throw new HttpError(404, 'not_found', `no route ${method} ${url.pathname}`);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let routeName = 'unknown';
    try {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://localhost');
      } catch {
        throw new HttpError(400, 'bad_request', 'malformed request URL');
      }
      const matched = matchRoute(url.pathname);
      routeName = matched.name;
      await route(req, res, url, matched);
    } catch (err) {
      const e = err instanceof HttpError ? err : fromRaftError(err, false);
      if (e.status >= 500 && e.status !== 503 && e.status !== 504)
        log('error', `${req.method} ${req.url}: ${e.message}`);
      if (!res.headersSent) {
        // a body left unread (too large) is not drained: close the connection after answering
        const close = e.status === 413 ? { connection: 'close' } : {};
        sendJson(
          res,
          e.status,
          { error: e.code, message: e.message, ...e.extra },
          { ...e.headers, ...close },
        );
      } else res.end();
    } finally {
      metrics.requestDone(routeName, req.method ?? 'GET', res.statusCode);
    }
  }

  const server = createServer(
    { requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 30_000 },
    (req, res) => {
      void handle(req, res);
    },
  );
  // requests Node's parser refuses (a bad path, malformed headers) get a JSON error as well
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const body = JSON.stringify({
      error: tooLarge ? 'headers_too_large' : 'bad_request',
      message: tooLarge
        ? 'the request headers are too large'
        : `malformed HTTP request (${err.code ?? 'parse error'})`,
    });
    socket.end(
      `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const api: HttpApi = {
    url: `http://${host}:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return api;
}
