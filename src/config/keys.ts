// Every configuration key, in one table: its type check, default, whether SIGHUP reloads
// it, and one line of documentation. The loader, `check-config` and the README's
// reference all read this table, so they cannot disagree.

export type Raw = unknown;

export interface KeyDef {
  /** Older spellings accepted for pg_keeper compatibility. */
  aliases?: string[];
  reloadable: boolean;
  /** Shown in the reference; undefined means required. */
  defaultText?: string;
  doc: string;
  /** Returns an error message (what is allowed, what was given) or null. */
  check: (v: Raw) => string | null;
}

const got = (v: Raw): string => `got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`;

export const isString = (v: Raw): string | null =>
  typeof v === 'string' && v.trim() !== '' ? null : `must be a non-empty string, ${got(v)}`;

export const isOptionalString = (v: Raw): string | null =>
  v === null || typeof v === 'string' ? null : `must be a string (or empty), ${got(v)}`;

export const isBool = (v: Raw): string | null =>
  typeof v === 'boolean' ? null : `must be true or false, ${got(v)}`;

export function isNumber(min: number, max: number, unit: string, integer = false): (v: Raw) => string | null {
  return (v) => {
    const ok =
      typeof v === 'number' &&
      Number.isFinite(v) &&
      v >= min &&
      v <= max &&
      (!integer || Number.isInteger(v));
    return ok
      ? null
      : `must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}${unit}, ${got(v)}`;
  };
}

export const KEYS: Record<string, KeyDef> = {
  node1_conninfo: {
    reloadable: false,
    doc: 'libpq connection string (keyword=value or postgresql:// URI) of node1',
    check: isString,
  },
  node2_conninfo: {
    reloadable: false,
    doc: 'libpq connection string of node2',
    check: isString,
  },
  node: {
    reloadable: false,
    defaultText: '--node',
    doc: 'which node is local to this keeper: node1 or node2 (or --node on the command line)',
    check: (v) => (v === 'node1' || v === 'node2' ? null : `must be node1 or node2, ${got(v)}`),
  },
  keepalive_time: {
    aliases: ['keepalives_time'],
    reloadable: true,
    defaultText: '5',
    doc: 'seconds between heartbeats; decimals allowed (0.2)',
    check: isNumber(0.05, 3600, ' seconds'),
  },
  keepalive_count: {
    aliases: ['keepalives_count'],
    reloadable: true,
    defaultText: '4',
    doc: 'consecutive failed heartbeats before acting',
    check: isNumber(1, 1000, '', true),
  },
  heartbeat_timeout: {
    reloadable: true,
    defaultText: '0.8 × keepalive_time',
    doc: 'seconds one heartbeat may take before it counts as failed; below keepalive_time',
    check: isNumber(0.01, 3600, ' seconds'),
  },
  after_command: {
    reloadable: true,
    defaultText: 'none',
    doc: 'shell command run (/bin/sh -c) after this node promoted itself: move a VIP, fence the old primary',
    check: isOptionalString,
  },
  after_command_timeout: {
    reloadable: true,
    defaultText: '30',
    doc: 'seconds before after_command / after_async_command is killed',
    check: isNumber(0.1, 86400, ' seconds'),
  },
  after_async_command: {
    reloadable: true,
    defaultText: 'none',
    doc: 'shell command run after this primary switched to asynchronous replication',
    check: isOptionalString,
  },
  listen: {
    reloadable: false,
    defaultText: '0.0.0.0:9754',
    doc: 'HOST:PORT of the HTTP server (metrics, health checks, status)',
    check: (v) =>
      typeof v === 'string' && parseListen(v) !== null
        ? null
        : `must be HOST:PORT with a port 0-65535, ${got(v)}`,
  },
  failover_requires_sync: {
    reloadable: true,
    defaultText: 'true',
    doc: 'promote only a standby that was synchronous at last contact (false favours availability over data)',
    check: isBool,
  },
  stream_timeout: {
    reloadable: true,
    defaultText: 'max(keepalive_time × keepalive_count, keepalive_time + 1)',
    doc: 'seconds the replication stream must be silent before a lost peer counts as dead',
    check: isNumber(0.05, 86400, ' seconds'),
  },
  sync_restore_max_lag: {
    reloadable: true,
    defaultText: '1048576',
    doc: 'bytes of replay lag under which synchronous replication is restored',
    check: isNumber(0, 2 ** 50, ' bytes', true),
  },
  paused: {
    reloadable: true,
    defaultText: 'false',
    doc: 'observe and export, but take no action (says what it would have done)',
    check: isBool,
  },
  state_file: {
    reloadable: false,
    defaultText: '$STATE_DIRECTORY/<node>.state.json, else none',
    doc: 'where the keeper keeps what it must remember across restarts',
    check: isOptionalString,
  },
  http_token: {
    reloadable: true,
    defaultText: 'none (pause/resume off)',
    doc: 'bearer token for POST /pause and /resume',
    check: isOptionalString,
  },
  http_token_file: {
    reloadable: true,
    defaultText: 'none',
    doc: 'file holding the bearer token (instead of http_token)',
    check: isOptionalString,
  },
  tune_wal_retrieve_retry_interval: {
    reloadable: false,
    defaultText: 'false',
    doc: "set the standby's wal_retrieve_retry_interval to 1s when it is longer (otherwise only warn)",
    check: isBool,
  },
  log_level: {
    reloadable: true,
    defaultText: 'info',
    doc: 'debug, info, warn or error',
    check: (v) =>
      v === 'debug' || v === 'info' || v === 'warn' || v === 'error'
        ? null
        : `must be one of debug, info, warn, error, ${got(v)}`,
  },
};

/** The canonical name of a key or alias, or undefined when unknown. */
export function canonicalKey(name: string): string | undefined {
  if (name in KEYS) return name;
  return Object.keys(KEYS).find((k) => KEYS[k]?.aliases?.includes(name));
}

export function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]*):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[2]);
  if (port > 65535) return null;
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port };
}
