// Every configuration key, in one table: how its YAML value is parsed into its typed
// field, its default, whether SIGHUP reloads it, how it is shown (masked), and one line of
// documentation. The loader, `check-config`, `reload()`, `import-conf` and the README's
// reference all read this table, so they cannot disagree; the `Config` type itself is
// derived from it.

import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { toPgClientConfig } from '../postgres/client-config.js';
import { errnoCode, errorText } from '../util/errors.js';
import { loadWebConfig } from '../http/web-config.js';
import { ConfigError, NODES, type NodeName } from './config.js';
import { ConninfoError, maskConninfo, parseConninfo, type Conninfo } from './conninfo.js';

/** A value that could not be used: what is allowed, and what was given. */
export class Invalid {
  constructor(readonly problem: string) {}
}

/** The settings other keys' defaults and checks are computed from. */
export interface Basis {
  keepaliveTimeMs: number;
  keepaliveCount: number;
  node: NodeName;
  /** etcd_prefix when the arbiter is on (etcd_endpoints given), else null. */
  etcdPrefix: string | null;
  env: NodeJS.ProcessEnv;
}

type Shown = string | number | boolean | null;

type Default<T> =
  | { value: T }
  /** Required: the message says what to give. */
  | { required: string }
  /** Computed from other settings; `text` is what the reference shows. */
  | { derive: (b: Basis) => T; text: string };

export interface KeyDef<F extends string, T> {
  /** The Config field this key fills. Two keys may fill one field: then only one may be given. */
  field: F;
  /** Older spellings accepted for pg_keeper compatibility. */
  aliases?: readonly string[];
  /** pg_keeper 1.0 had this setting (`pg_keeper.<name>` in postgresql.conf): `import-conf` converts it. */
  fromPgKeeper?: boolean;
  reloadable: boolean;
  doc: string;
  parse: (v: unknown) => T | Invalid;
  default: Default<T>;
  /** How check-config and /status show the value: passwords and tokens never appear. */
  show: (v: T) => Shown;
  /** What the reference says when the absent value means "found" or "built in" (not a value of its own). */
  defaultText?: string;
  /** A check against the other settings, once all are known. */
  check?: (v: T, b: Basis) => string | null;
}

function key<const F extends string, T>(def: KeyDef<F, T>): KeyDef<F, T> {
  return def;
}

const got = (v: unknown): string => `got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`;

const requiredString = (v: unknown): string | Invalid =>
  typeof v === 'string' && v.trim() !== '' ? v : new Invalid(`must be a non-empty string, ${got(v)}`);

/** A string, or nothing: null, '' and blanks all mean "not set". */
const optionalString = (v: unknown): string | null | Invalid => {
  if (v === null) return null;
  if (typeof v !== 'string') return new Invalid(`must be a string (or empty), ${got(v)}`);
  return v.trim() === '' ? null : v;
};

const bool = (v: unknown): boolean | Invalid =>
  typeof v === 'boolean' ? v : new Invalid(`must be true or false, ${got(v)}`);

function number(min: number, max: number, unit: string, integer = false): (v: unknown) => number | Invalid {
  return (v) =>
    typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max && (!integer || Number.isInteger(v))
      ? v
      : new Invalid(`must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}${unit}, ${got(v)}`);
}

/** Seconds in the file, milliseconds in the program. */
function seconds(min: number, max: number): (v: unknown) => number | Invalid {
  const n = number(min, max, ' seconds');
  return (v) => {
    const s = n(v);
    return s instanceof Invalid ? s : Math.round(s * 1000);
  };
}
const showSeconds = (ms: number): number => ms / 1000;

function oneOf<const T extends string>(allowed: readonly T[]): (v: unknown) => T | Invalid {
  const choices = allowed.length === 2 ? `${allowed[0]} or ${allowed[1]}` : `one of ${allowed.join(', ')}`;
  return (v) => allowed.find((a) => a === v) ?? new Invalid(`must be ${choices}, ${got(v)}`);
}

function conninfo(v: unknown): Conninfo | Invalid {
  const text = requiredString(v);
  if (text instanceof Invalid) return text;
  try {
    const ci = parseConninfo(text);
    toPgClientConfig(ci); // what parses but cannot be used (service=, unreadable SSL files) is a config error too
    return ci;
  } catch (err) {
    if (err instanceof ConninfoError) return new Invalid(err.message);
    throw err;
  }
}

function tokenFromFile(v: unknown): string | null | Invalid {
  const file = optionalString(v);
  if (file === null || file instanceof Invalid) return file;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return new Invalid(`cannot read ${file}: ${errnoCode(err) ?? errorText(err)}`);
  }
  return text.trim() === '' ? new Invalid(`the file ${file} is empty`) : text.trim();
}

/** A list of etcd client URLs: http(s)://host:port, no path, no credentials, one scheme for all. */
function endpoints(v: unknown): string[] | Invalid {
  const list = typeof v === 'string' ? v.split(',').map((x) => x.trim()) : v;
  if (!Array.isArray(list) || list.length === 0 || list.length > 7)
    return new Invalid(`must be a list of 1 to 7 etcd client URLs (http://host:2379), ${got(v)}`);
  const out: string[] = [];
  for (const item of list) {
    let url: URL;
    try {
      url = new URL(String(item));
    } catch {
      return new Invalid(
        `must be a list of http:// or https:// URLs, and ${JSON.stringify(item)} is not one`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      return new Invalid(`must be a list of http:// or https:// URLs, and ${url.protocol} is neither`);
    if (url.username !== '' || url.password !== '')
      return new Invalid('must not carry credentials in a URL: use etcd_user and etcd_password_file');
    if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '')
      return new Invalid(
        `must be URLs without a path or query (etcd's client URL, e.g. ${url.origin}), got ${url.href}`,
      );
    out.push(url.origin);
  }
  if (new Set(out.map((u) => u.split(':')[0])).size > 1)
    return new Invalid('must use one scheme for every endpoint, http:// or https://');
  return out;
}

/** A pair's name: short and printable, so that it is a good Prometheus label value and log field. */
function clusterName(v: unknown): string | Invalid {
  return typeof v === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(v)
    ? v
    : new Invalid(`must be a short name (letters, digits, . _ -; at most 63), such as orders, ${got(v)}`);
}

/** An etcd key prefix: /name[/name...], printable, no trailing slash. */
function prefix(v: unknown): string | Invalid {
  return typeof v === 'string' && /^(\/[A-Za-z0-9._-]+)+$/.test(v) && v.length <= 200
    ? v
    : new Invalid(
        `must be a path such as /pg-keeper/orders (letters, digits, . _ -, no trailing /), ${got(v)}`,
      );
}

/** A file that exists and can be read now (certificates, keys): a typo fails at start-up, not at the first failover. */
function readableFile(v: unknown): string | null | Invalid {
  const file = optionalString(v);
  if (file === null || file instanceof Invalid) return file;
  try {
    readFileSync(file);
  } catch (err) {
    return new Invalid(`cannot read ${file}: ${errnoCode(err) ?? errorText(err)}`);
  }
  return file;
}

/** A web configuration file that loads: its own problems are named with the file. */
function webConfigFile(v: unknown): string | null | Invalid {
  const file = optionalString(v);
  if (file === null || file instanceof Invalid) return file;
  try {
    loadWebConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) return new Invalid(`${err.file}: ${err.problems.join('; ')}`);
    throw err;
  }
  return file;
}

/** An existing directory (the data directory, the binaries): a typo fails at start-up. */
function directory(v: unknown): string | null | Invalid {
  const dir = optionalString(v);
  if (dir === null || dir instanceof Invalid) return dir;
  if (!isAbsolute(dir)) return new Invalid(`must be an absolute path, ${got(v)}`);
  try {
    if (!statSync(dir).isDirectory()) return new Invalid(`${dir} is not a directory`);
  } catch (err) {
    return new Invalid(`cannot use ${dir}: ${errnoCode(err) ?? errorText(err)}`);
  }
  return dir;
}

export function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]*):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[2]);
  if (port > 65535) return null;
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port };
}

const listen = (v: unknown): { host: string; port: number } | Invalid =>
  (typeof v === 'string' ? parseListen(v) : null) ??
  new Invalid(`must be HOST:PORT with a port 0-65535, ${got(v)}`);

const MASKED = '********';
const showText = (v: string | null): Shown => v;
const same = (v: Shown): Shown => v;

/**
 * A live primary's stream heartbeat can be up to keepalive_time + wal_writer_delay (200 ms)
 * old when the standby looks, plus scheduling jitter. With a short window (0.2 s × 3) that
 * leaves no margin, and a false "silent" would promote beside a live primary; so the
 * default never goes below keepalive_time + 1 s.
 */
export function defaultStreamTimeoutMs(keepaliveTimeMs: number, keepaliveCount: number): number {
  return Math.max(keepaliveTimeMs * keepaliveCount, keepaliveTimeMs + 1000);
}

export const KEYS = {
  node1_conninfo: key({
    field: 'node1',
    fromPgKeeper: true,
    reloadable: false,
    doc: 'libpq connection string (keyword=value or postgresql:// URI) of node1',
    parse: conninfo,
    default: {
      required:
        'key "node1_conninfo" is required: a libpq connection string such as "host=pg1 port=5432 dbname=postgres"',
    },
    show: maskConninfo,
  }),
  node2_conninfo: key({
    field: 'node2',
    fromPgKeeper: true,
    reloadable: false,
    doc: 'libpq connection string of node2',
    parse: conninfo,
    default: {
      required:
        'key "node2_conninfo" is required: a libpq connection string such as "host=pg2 port=5432 dbname=postgres"',
    },
    show: maskConninfo,
  }),
  node: key({
    field: 'node',
    reloadable: false,
    doc: 'which node is local to this keeper: node1 or node2 (or --node on the command line)',
    parse: oneOf(NODES),
    default: {
      required: 'key "node" is required (or --node): which node is local to this keeper, node1 or node2',
    },
    show: same,
  }),
  cluster_name: key({
    field: 'clusterName',
    reloadable: false,
    doc: "the pair's name, on every view: the `cluster` label of pg_keeper_node_info, /status, the logs, the alerts (a Prometheus label value: letters, digits, . _ -)",
    parse: clusterName,
    default: {
      derive: (b) => (b.etcdPrefix === null ? 'default' : (b.etcdPrefix.split('/').pop() ?? 'default')),
      text: "default; with the arbiter, etcd_prefix's last part",
    },
    show: same,
  }),
  keepalive_time: key({
    field: 'keepaliveTimeMs',
    aliases: ['keepalives_time'],
    fromPgKeeper: true,
    reloadable: true,
    doc: 'seconds between heartbeats; decimals allowed (0.2)',
    parse: seconds(0.05, 3600),
    default: { value: 5000 },
    show: showSeconds,
  }),
  keepalive_count: key({
    field: 'keepaliveCount',
    aliases: ['keepalives_count'],
    fromPgKeeper: true,
    reloadable: true,
    doc: 'consecutive failed heartbeats before acting',
    parse: number(1, 1000, '', true),
    default: { value: 4 },
    show: same,
  }),
  heartbeat_timeout: key({
    field: 'heartbeatTimeoutMs',
    reloadable: true,
    doc: 'seconds one heartbeat may take before it counts as failed; below keepalive_time',
    parse: seconds(0.01, 3600),
    default: { derive: (b) => Math.round(b.keepaliveTimeMs * 0.8), text: '0.8 × keepalive_time' },
    show: showSeconds,
    check: (ms, b) =>
      ms < b.keepaliveTimeMs
        ? null
        : `must be below keepalive_time (${b.keepaliveTimeMs / 1000} s), got ${ms / 1000} s: ` +
          'a heartbeat must end before the next one is due',
  }),
  after_command: key({
    field: 'afterCommand',
    fromPgKeeper: true,
    reloadable: true,
    doc: 'shell command run (/bin/sh -c) after this node promoted itself: move a VIP, fence the old primary',
    parse: optionalString,
    default: { value: null },
    show: showText,
  }),
  after_command_timeout: key({
    field: 'afterCommandTimeoutMs',
    reloadable: true,
    doc: 'seconds before after_command / after_async_command is killed',
    parse: seconds(0.1, 86400),
    default: { value: 30_000 },
    show: showSeconds,
  }),
  after_async_command: key({
    field: 'afterAsyncCommand',
    reloadable: true,
    doc: 'shell command run after this primary switched to asynchronous replication',
    parse: optionalString,
    default: { value: null },
    show: showText,
  }),
  listen: key({
    field: 'listen',
    reloadable: false,
    doc: 'HOST:PORT of the HTTP server (metrics, health checks, status)',
    parse: listen,
    default: { value: { host: '0.0.0.0', port: 9754 } },
    show: (l) => `${l.host}:${l.port}`,
  }),
  failover_requires_sync: key({
    field: 'failoverRequiresSync',
    reloadable: true,
    doc: 'promote only a standby that was synchronous at last contact (false favours availability over data)',
    parse: bool,
    default: { value: true },
    show: same,
  }),
  stream_timeout: key({
    field: 'streamTimeoutMs',
    reloadable: true,
    doc: 'seconds the replication stream must be silent before a lost peer counts as dead',
    parse: seconds(0.05, 86400),
    default: {
      derive: (b) => defaultStreamTimeoutMs(b.keepaliveTimeMs, b.keepaliveCount),
      text: 'max(keepalive_time × keepalive_count, keepalive_time + 1)',
    },
    show: showSeconds,
  }),
  sync_restore_max_lag: key({
    field: 'syncRestoreMaxLagBytes',
    reloadable: true,
    doc: 'bytes of replay lag under which synchronous replication is restored',
    parse: number(0, 2 ** 50, ' bytes', true),
    default: { value: 1048576 },
    show: same,
  }),
  paused: key({
    field: 'paused',
    reloadable: true,
    doc: 'observe and export, but take no action (says what it would have done)',
    parse: bool,
    default: { value: false },
    show: same,
  }),
  state_file: key({
    field: 'stateFile',
    reloadable: false,
    doc: 'where the keeper keeps what it must remember across restarts',
    parse: optionalString,
    default: {
      derive: (b) => {
        const dir = b.env.STATE_DIRECTORY?.split(':')[0];
        return dir ? join(dir, `${b.node}.state.json`) : null;
      },
      text: '$STATE_DIRECTORY/<node>.state.json, else none',
    },
    show: showText,
  }),
  http_token: key({
    field: 'httpToken',
    reloadable: true,
    doc: 'bearer token for POST /pause and /resume (without one, they are off)',
    parse: optionalString,
    default: { value: null },
    show: (v) => (v === null ? null : MASKED),
  }),
  http_token_file: key({
    field: 'httpToken',
    reloadable: true,
    doc: 'file holding the bearer token (instead of http_token)',
    parse: tokenFromFile,
    default: { value: null },
    show: (v) => (v === null ? null : MASKED),
  }),
  tune_wal_retrieve_retry_interval: key({
    field: 'tuneWalRetrieveRetryInterval',
    reloadable: true,
    doc: "set the standby's wal_retrieve_retry_interval to 1s when it is longer (otherwise only warn)",
    parse: bool,
    default: { value: false },
    show: same,
  }),
  log_level: key({
    field: 'logLevel',
    reloadable: true,
    doc: 'debug, info, warn or error',
    parse: oneOf(['debug', 'info', 'warn', 'error'] as const),
    default: { value: 'info' },
    show: same,
  }),
  data_directory: key({
    field: 'dataDirectory',
    reloadable: false,
    doc: "the local server's data directory: with it the keeper can stop, rewind and start its own server (rejoin, switchover); absent: it never does",
    parse: directory,
    default: { value: null },
    show: showText,
  }),
  pg_bin_dir: key({
    field: 'pgBinDir',
    reloadable: false,
    doc: 'where pg_ctl, pg_rewind, pg_basebackup and pg_controldata are',
    parse: directory,
    default: { value: null },
    defaultText: "found: /usr/lib/postgresql/<data_directory's PG_VERSION>/bin, else pg_config --bindir",
    show: showText,
  }),
  server_start_command: key({
    field: 'serverStartCommand',
    reloadable: true,
    doc: 'shell command that starts the local server and returns once it runs (e.g. systemctl start postgresql@15-main); $PGDATA is set',
    parse: optionalString,
    default: { value: null },
    defaultText: 'pg_ctl start -w -D data_directory -l data_directory.log',
    show: showText,
  }),
  server_stop_command: key({
    field: 'serverStopCommand',
    reloadable: true,
    doc: 'shell command that stops the local server cleanly (fast shutdown) and returns once it is down; $PGDATA is set',
    parse: optionalString,
    default: { value: null },
    defaultText: 'pg_ctl stop -m fast -w -D data_directory',
    show: showText,
  }),
  auto_rejoin: key({
    field: 'autoRejoin',
    reloadable: true,
    doc: "turn the old primary into the new primary's standby by itself (pg_rewind, else pg_basebackup), unless that could discard an acknowledged commit",
    parse: bool,
    default: { value: false },
    show: same,
  }),
  web_config_file: key({
    field: 'webConfigFile',
    reloadable: false,
    doc: "the HTTP port's TLS, client certificates, basic authentication (bcrypt) and headers, in the Prometheus exporter toolkit's web configuration format; re-read on SIGHUP",
    parse: webConfigFile,
    default: { value: null },
    show: showText,
  }),
  etcd_endpoints: key({
    field: 'etcdEndpoints',
    reloadable: false,
    doc: 'the etcd v3 arbiter: a list of http:// or https:// client URLs (one member, or all of a 3- or 5-member cluster); absent: two-node mode',
    parse: endpoints,
    default: { value: [] },
    show: (v) => (v.length === 0 ? null : v.join(',')),
  }),
  etcd_lease_ttl: key({
    field: 'etcdLeaseTtlMs',
    reloadable: false,
    doc: "seconds the primary's lease lasts without renewal: failover after the loss of the primary's whole host takes about this long",
    parse: seconds(2, 300),
    default: { value: 5000 },
    show: showSeconds,
  }),
  etcd_prefix: key({
    field: 'etcdPrefix',
    reloadable: false,
    doc: "where the pair's keys live in etcd (leader, replication): one prefix per pair",
    parse: prefix,
    default: { value: '/pg-keeper/default' },
    show: same,
  }),
  etcd_cacert: key({
    field: 'etcdCaCert',
    reloadable: false,
    doc: "PEM file of the certificate authority that signed etcd's server certificates (https endpoints)",
    parse: readableFile,
    default: { value: null },
    show: showText,
  }),
  etcd_cert: key({
    field: 'etcdCert',
    reloadable: false,
    doc: 'PEM client certificate for etcd (with etcd_key)',
    parse: readableFile,
    default: { value: null },
    show: showText,
  }),
  etcd_key: key({
    field: 'etcdKey',
    reloadable: false,
    doc: 'PEM private key of etcd_cert',
    parse: readableFile,
    default: { value: null },
    show: showText,
  }),
  etcd_user: key({
    field: 'etcdUser',
    reloadable: false,
    doc: "etcd user (with etcd_password_file), when etcd's authentication is on",
    parse: optionalString,
    default: { value: null },
    show: showText,
  }),
  etcd_password_file: key({
    field: 'etcdPassword',
    reloadable: false,
    doc: "file holding etcd_user's password (it never appears in a log, /status, a metric or an error)",
    parse: tokenFromFile,
    default: { value: null },
    show: (v) => (v === null ? null : MASKED),
  }),
};

/** Checks across keys, on the assembled settings; each names the keys and says what to give. */
export const CROSS_CHECKS: ((s: Settings) => string | null)[] = [
  (s) =>
    (s.etcdCert === null) === (s.etcdKey === null)
      ? null
      : 'keys "etcd_cert" and "etcd_key": give both (a client certificate and its key) or neither',
  (s) =>
    s.autoRejoin && s.dataDirectory === null
      ? 'key "auto_rejoin" needs data_directory: the keeper can only rejoin a server whose data directory it knows'
      : null,
  (s) =>
    (s.etcdUser === null) === (s.etcdPassword === null)
      ? null
      : 'keys "etcd_user" and "etcd_password_file": give both or neither',
  (s) => {
    const etcdOnly = [
      ['etcd_cacert', s.etcdCaCert],
      ['etcd_cert', s.etcdCert],
      ['etcd_user', s.etcdUser],
    ].filter(([, v]) => v !== null);
    return s.etcdEndpoints.length === 0 && etcdOnly.length > 0
      ? `key "${String(etcdOnly[0]?.[0])}" needs etcd_endpoints: without it there is no arbiter`
      : null;
  },
  (s) =>
    (s.etcdCaCert !== null || s.etcdCert !== null) && s.etcdEndpoints.some((e) => e.startsWith('http://'))
      ? 'key "etcd_endpoints": etcd_cacert and etcd_cert are for https:// endpoints, and some are http://'
      : null,
];

export type KeyName = keyof typeof KEYS;
type Def<K extends KeyName> = (typeof KEYS)[K];
type ValueOf<D> = D extends KeyDef<string, infer T> ? T : never;

/** The settings of one keeper: one field per key (two keys may share one). */
export type Settings = { [K in KeyName as Def<K>['field']]: ValueOf<Def<K>> };
export type Field = keyof Settings;

export const KEY_NAMES = Object.keys(KEYS) as KeyName[];

export function defOf(name: KeyName): KeyDef<Field, unknown> {
  return KEYS[name] as unknown as KeyDef<Field, unknown>;
}

/** The canonical name of a key or alias, or undefined when unknown. */
export function canonicalKey(name: string): KeyName | undefined {
  return KEY_NAMES.find((k) => k === name || (defOf(k).aliases ?? []).includes(name));
}

/** The keys that fill a field, the first one being the name it is shown under. */
export function keysOf(field: Field): KeyName[] {
  return KEY_NAMES.filter((k) => defOf(k).field === field);
}

/** What the reference shows as a key's default. */
export function defaultText(name: KeyName): string | undefined {
  const def = defOf(name);
  if (def.defaultText !== undefined) return def.defaultText;
  const d = def.default;
  if ('required' in d) return undefined;
  if ('derive' in d) return d.text;
  const shown = def.show(d.value);
  return shown === null ? 'none' : String(shown);
}
