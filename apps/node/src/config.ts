/**
 * `otra node` configuration: from command-line flags, environment variables and a JSON config
 * file (in that order of precedence), validated before anything starts, so that a bad option is
 * refused with a message that names it.
 */
import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';

/** A configuration the node refuses to start with; `message` says which option and why. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Everything `otra node` needs, resolved and checked. */
export interface NodeConfig {
  readonly name: string;
  /** Where this node accepts links from other nodes (`ws://`). */
  readonly listen: HostPort;
  /** Other nodes: name -> `ws://` or `wss://` URL (per node, so a link may go through a proxy). */
  readonly peers: Readonly<Record<string, string>>;
  /** RocksDB and snapshots; in memory when absent. */
  readonly dataDir?: string;
  /** Where the KV service's HTTP API listens; no HTTP API when absent. */
  readonly http?: HostPort;
  readonly cookie: string;
  /**
   * False (the default): when no KV server is recorded under the data dir, start one whose initial
   * cluster is this node plus every peer (as etcd's initial cluster). True: start none and wait to
   * be added (`otra members add`) or started (`otra cluster start`).
   */
  readonly join: boolean;
  readonly electionTimeoutMs?: readonly [number, number];
  readonly tickMs?: number;
  /** Idle ticks before a group sleeps (quiescence); 0 never. Default: the raft system's (10). */
  readonly quiesceAfterTicks?: number;
  /**
   * Log entries kept in memory below each snapshot, so a follower lagging by fewer is sent entries
   * instead of the snapshot. Default: the raft system's (4096).
   */
  readonly trailingEntries?: number;
}

/** Raw option values, before validation (flags and env vars are strings; a config file is JSON). */
interface RawOptions {
  name?: unknown;
  listen?: unknown;
  peers?: unknown;
  data?: unknown;
  http?: unknown;
  cookie?: unknown;
  cookieFile?: unknown;
  join?: unknown;
  electionTimeoutMs?: unknown;
  tickMs?: unknown;
  quiesceAfterTicks?: unknown;
  trailingEntries?: unknown;
}

const FILE_KEYS = new Set<keyof RawOptions>([
  'name',
  'listen',
  'peers',
  'data',
  'http',
  'cookie',
  'cookieFile',
  'join',
  'electionTimeoutMs',
  'tickMs',
  'quiesceAfterTicks',
  'trailingEntries',
]);

/** Environment variables and the option each sets. */
export const ENV_VARS: Readonly<Record<string, keyof RawOptions>> = {
  OTRA_NAME: 'name',
  OTRA_LISTEN: 'listen',
  OTRA_PEERS: 'peers',
  OTRA_DATA: 'data',
  OTRA_HTTP: 'http',
  OTRA_COOKIE: 'cookie',
  OTRA_COOKIE_FILE: 'cookieFile',
  OTRA_JOIN: 'join',
  OTRA_ELECTION_TIMEOUT: 'electionTimeoutMs',
  OTRA_TICK: 'tickMs',
  OTRA_QUIESCE_AFTER_TICKS: 'quiesceAfterTicks',
  OTRA_TRAILING_ENTRIES: 'trailingEntries',
};

/** Command-line flags and the option each sets (`--peer` may repeat). */
const FLAGS: Readonly<Record<string, keyof RawOptions>> = {
  name: 'name',
  listen: 'listen',
  peer: 'peers',
  data: 'data',
  http: 'http',
  cookie: 'cookie',
  'cookie-file': 'cookieFile',
  join: 'join',
  'election-timeout': 'electionTimeoutMs',
  tick: 'tickMs',
  'quiesce-after-ticks': 'quiesceAfterTicks',
  'trailing-entries': 'trailingEntries',
};

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** `host:port`, `[v6]:port` or `:port` (127.0.0.1). */
export function parseHostPort(value: unknown, what: string): HostPort {
  if (typeof value !== 'string' || value.length === 0)
    throw new ConfigError(`${what} is host:port, got ${JSON.stringify(value)}`);
  const colon = value.lastIndexOf(':');
  if (colon < 0) throw new ConfigError(`${what} is host:port, got ${value}`);
  let host = value.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const portText = value.slice(colon + 1);
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port > 65535)
    throw new ConfigError(`${what} needs a port 0-65535, got ${value}`);
  return { host: host.length === 0 ? '127.0.0.1' : host, port };
}

/**
 * Peers from `name=url` items (comma-separated or repeated) or a `{ name: url }` object. A name
 * is letters, digits, `_ . -`; a URL is `ws://` or `wss://` with a host.
 */
export function parsePeers(value: unknown, self?: string): Record<string, string> {
  const pairs: [string, string][] = [];
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [name, url] of Object.entries(value)) pairs.push([name, String(url)]);
  } else {
    const items = Array.isArray(value) ? value : [value];
    for (const item of items) {
      if (typeof item !== 'string')
        throw new ConfigError(`a peer is name=ws://host:port, got ${JSON.stringify(item)}`);
      for (const part of item.split(',')) {
        if (part.trim().length === 0) continue;
        const at = part.indexOf('=');
        if (at <= 0) throw new ConfigError(`a peer is name=ws://host:port, got ${part}`);
        pairs.push([part.slice(0, at).trim(), part.slice(at + 1).trim()]);
      }
    }
  }
  const peers: Record<string, string> = {};
  for (const [name, url] of pairs) {
    if (!NODE_NAME.test(name)) throw new ConfigError(`peer name ${JSON.stringify(name)} is not a node name`);
    if (name === self) throw new ConfigError(`peer ${name} is this node's own name`);
    if (Object.hasOwn(peers, name)) throw new ConfigError(`peer ${name} is given twice`);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`peer ${name} has a malformed URL: ${url}`);
    }
    if ((parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') || parsed.hostname.length === 0)
      throw new ConfigError(`peer ${name} needs a ws:// or wss:// URL, got ${url}`);
    peers[name] = url;
  }
  return peers;
}

function parseRange(value: unknown, what: string): readonly [number, number] {
  const parts = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [];
  const [min, max] = parts.map(Number);
  if (
    parts.length !== 2 ||
    !Number.isInteger(min) ||
    !Number.isInteger(max) ||
    (min as number) < 1 ||
    (max as number) < (min as number)
  )
    throw new ConfigError(`${what} is min,max in ms (1 <= min <= max), got ${JSON.stringify(value)}`);
  return [min as number, max as number];
}

function parseMs(value: unknown, what: string): number {
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 1 || ms > 60_000)
    throw new ConfigError(`${what} is 1-60000 ms, got ${JSON.stringify(value)}`);
  return ms;
}

function parseCount(value: unknown, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 1_000_000)
    throw new ConfigError(`${what} is a whole number >= 0, got ${JSON.stringify(value)}`);
  return n;
}

function parseBool(value: unknown, what: string): boolean {
  if (value === true || value === 'true' || value === '1' || value === '') return true;
  if (value === false || value === 'false' || value === '0') return false;
  throw new ConfigError(`${what} is true or false, got ${JSON.stringify(value)}`);
}

function readConfigFile(path: string): RawOptions {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  for (const key of Object.keys(json))
    if (!FILE_KEYS.has(key as keyof RawOptions))
      throw new ConfigError(
        `config file ${path} has an unknown option ${JSON.stringify(key)} (known: ${[...FILE_KEYS].join(', ')})`,
      );
  return json as RawOptions;
}

/** The cookie in `path`, trimmed; a `ConfigError` if it cannot be read or is empty. */
export function readCookieFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the cookie file ${path}: ${(err as Error).message}`);
  }
  const cookie = text.trim();
  if (cookie.length === 0) throw new ConfigError(`the cookie file ${path} is empty`);
  return cookie;
}

/**
 * Resolves a node's configuration from flags (`--name n1 --peer n2=ws://...`; `--config FILE`),
 * environment variables (`OTRA_NAME`, ..., `OTRA_CONFIG`) and the config file. Throws
 * `ConfigError` on anything missing or malformed. Does not touch the disk beyond reading files.
 */
export function resolveNodeConfig(
  flags: ReadonlyMap<string, readonly string[]>,
  env: Readonly<Record<string, string | undefined>>,
): NodeConfig {
  for (const key of flags.keys())
    if (!(key in FLAGS) && key !== 'config')
      throw new ConfigError(`unknown option --${key} (see otra node --help)`);
  const configPath = flags.get('config')?.at(-1) ?? env.OTRA_CONFIG;
  const raw: RawOptions = configPath === undefined ? {} : { ...readConfigFile(configPath) };
  for (const [variable, key] of Object.entries(ENV_VARS)) {
    const value = env[variable];
    if (value !== undefined && value.length > 0) raw[key] = value;
  }
  for (const [flag, key] of Object.entries(FLAGS)) {
    const values = flags.get(flag);
    if (values === undefined) continue;
    raw[key] = key === 'peers' ? values : values.at(-1);
  }

  if (typeof raw.name !== 'string' || !NODE_NAME.test(raw.name))
    throw new ConfigError(
      raw.name === undefined
        ? 'give the node a name with --name (or OTRA_NAME)'
        : `--name must be letters, digits, _ . - (at most 64), got ${JSON.stringify(raw.name)}`,
    );
  const name = raw.name;
  const cookie =
    raw.cookieFile !== undefined
      ? readCookieFile(String(raw.cookieFile))
      : typeof raw.cookie === 'string'
        ? raw.cookie
        : '';
  if (cookie.length === 0)
    throw new ConfigError(
      'no cookie: give the shared secret with --cookie-file FILE (or OTRA_COOKIE_FILE, OTRA_COOKIE)',
    );
  const config: NodeConfig = {
    name,
    listen: raw.listen === undefined ? { host: '127.0.0.1', port: 0 } : parseHostPort(raw.listen, '--listen'),
    peers: raw.peers === undefined ? {} : parsePeers(raw.peers, name),
    cookie,
    join: raw.join === undefined ? false : parseBool(raw.join, '--join'),
    ...(raw.data === undefined ? {} : { dataDir: String(raw.data) }),
    ...(raw.http === undefined ? {} : { http: parseHostPort(raw.http, '--http') }),
    ...(raw.electionTimeoutMs === undefined
      ? {}
      : { electionTimeoutMs: parseRange(raw.electionTimeoutMs, '--election-timeout') }),
    ...(raw.tickMs === undefined ? {} : { tickMs: parseMs(raw.tickMs, '--tick') }),
    ...(raw.quiesceAfterTicks === undefined
      ? {}
      : { quiesceAfterTicks: parseCount(raw.quiesceAfterTicks, '--quiesce-after-ticks') }),
    ...(raw.trailingEntries === undefined
      ? {}
      : { trailingEntries: parseCount(raw.trailingEntries, '--trailing-entries') }),
  };
  return config;
}

/** Creates the data dir if needed and checks this process can read and write it. */
export function prepareDataDir(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new ConfigError(`the data dir ${dir} is not a directory`);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new ConfigError(`cannot create the data dir ${dir}: ${(err as Error).message}`);
  }
  try {
    if (!statSync(dir).isDirectory()) throw new ConfigError(`the data dir ${dir} is not a directory`);
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`the data dir ${dir} is not readable and writable: ${(err as Error).message}`);
  }
}
