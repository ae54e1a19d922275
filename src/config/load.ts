// YAML file -> validated Config. Every problem found is reported at once, each naming the
// key and the file and saying what is allowed, so an operator fixes a file in one pass.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument, isMap } from 'yaml';
import { ConfigError, type Config, type NodeName } from './config.js';
import { ConninfoError, parseConninfo, maskConninfo, toPgClientConfig, type Conninfo } from './conninfo.js';
import { KEYS, canonicalKey, parseListen } from './keys.js';

export interface Overrides {
  node?: string;
  listen?: string;
}

export function loadConfig(file: string, overrides: Overrides = {}, env = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as Error).message}`]);
  }
  return parseConfig(text, file, overrides, env);
}

export function parseConfig(
  text: string,
  file: string,
  overrides: Overrides = {},
  env = process.env,
): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map(
        (e) => `YAML syntax error at line ${e.linePos?.[0]?.line ?? '?'}: ${firstLine(e.message)}`,
      ),
    );
  }
  const root: unknown = doc.toJS();
  if (
    root !== null &&
    root !== undefined &&
    (typeof root !== 'object' || Array.isArray(root) || !isMap(doc.contents))
  ) {
    throw new ConfigError(file, ['the file must be a mapping of keys to values (key: value lines)']);
  }
  const given = (root ?? {}) as Record<string, unknown>;
  const problems: string[] = [];
  const values = new Map<string, unknown>();

  for (const [name, value] of Object.entries(given)) {
    const key = canonicalKey(name);
    if (key === undefined) {
      problems.push(`unknown key "${name}": allowed keys are ${Object.keys(KEYS).join(', ')}`);
      continue;
    }
    if (values.has(key)) {
      problems.push(`key "${name}" repeats "${key}" (an alias of it): give only one`);
      continue;
    }
    const def = KEYS[key];
    const wrong = value === undefined ? null : (def?.check(value) ?? null);
    if (wrong !== null) problems.push(`key "${name}" ${wrong}`);
    else values.set(key, value);
  }
  if (overrides.node !== undefined) values.set('node', overrides.node);
  if (overrides.listen !== undefined) {
    if (parseListen(overrides.listen) === null)
      problems.push(`--listen must be HOST:PORT, got "${overrides.listen}"`);
    else values.set('listen', overrides.listen);
  }

  const conninfo = (key: 'node1_conninfo' | 'node2_conninfo'): Conninfo | null => {
    const v = values.get(key);
    if (v === undefined) {
      if (!problems.some((p) => p.includes(`"${key}"`)))
        problems.push(
          `key "${key}" is required: a libpq connection string such as "host=pg1 port=5432 dbname=postgres"`,
        );
      return null;
    }
    try {
      const ci = parseConninfo(v as string);
      toPgClientConfig(ci); // what parses but cannot be used (service=, unreadable SSL files) is a config error too
      return ci;
    } catch (err) {
      if (err instanceof ConninfoError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
        problems.push(`key "${key}": ${(err as Error).message}`);
        return null;
      }
      throw err;
    }
  };
  const node1 = conninfo('node1_conninfo');
  const node2 = conninfo('node2_conninfo');

  const node = values.get('node');
  if (node !== 'node1' && node !== 'node2') {
    problems.push(
      node === undefined
        ? 'key "node" is required (or --node): which node is local to this keeper, node1 or node2'
        : `key "node" (or --node) must be node1 or node2, got ${JSON.stringify(node)}`,
    );
  }

  const num = (key: string, fallback: number): number => (values.get(key) as number | undefined) ?? fallback;
  const str = (key: string): string | null => {
    const v = values.get(key) as string | null | undefined;
    return v === undefined || v === null || v.trim() === '' ? null : v;
  };
  const bool = (key: string, fallback: boolean): boolean =>
    (values.get(key) as boolean | undefined) ?? fallback;

  const keepaliveTimeMs = Math.round(num('keepalive_time', 5) * 1000);
  const keepaliveCount = num('keepalive_count', 4);
  const heartbeatTimeoutMs = Math.round(num('heartbeat_timeout', (keepaliveTimeMs * 0.8) / 1000) * 1000);
  if (heartbeatTimeoutMs >= keepaliveTimeMs) {
    problems.push(
      `key "heartbeat_timeout" must be below keepalive_time (${keepaliveTimeMs / 1000} s), ` +
        `got ${heartbeatTimeoutMs / 1000} s: a heartbeat must end before the next one is due`,
    );
  }

  let httpToken = str('http_token');
  const tokenFile = str('http_token_file');
  if (httpToken !== null && tokenFile !== null)
    problems.push('keys "http_token" and "http_token_file": give only one');
  if (tokenFile !== null) {
    try {
      httpToken = readFileSync(tokenFile, 'utf8').trim() || null;
      if (httpToken === null) problems.push(`key "http_token_file": the file ${tokenFile} is empty`);
    } catch (err) {
      problems.push(
        `key "http_token_file": cannot read ${tokenFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  }

  if (problems.length > 0 || node1 === null || node2 === null) throw new ConfigError(file, problems);
  const localNode = node as NodeName;
  const stateDir = env.STATE_DIRECTORY?.split(':')[0];

  return {
    file,
    node: localNode,
    node1,
    node2,
    keepaliveTimeMs,
    keepaliveCount,
    heartbeatTimeoutMs,
    afterCommand: str('after_command'),
    afterCommandTimeoutMs: Math.round(num('after_command_timeout', 30) * 1000),
    afterAsyncCommand: str('after_async_command'),
    listen: parseListen((values.get('listen') as string | undefined) ?? '0.0.0.0:9754') ?? {
      host: '0.0.0.0',
      port: 9754,
    },
    failoverRequiresSync: bool('failover_requires_sync', true),
    streamTimeoutMs: Math.round(
      num('stream_timeout', defaultStreamTimeoutMs(keepaliveTimeMs, keepaliveCount) / 1000) * 1000,
    ),
    syncRestoreMaxLagBytes: num('sync_restore_max_lag', 1048576),
    paused: bool('paused', false),
    stateFile: str('state_file') ?? (stateDir ? join(stateDir, `${localNode}.state.json`) : null),
    httpToken,
    tuneWalRetrieveRetryInterval: bool('tune_wal_retrieve_retry_interval', false),
    logLevel: (values.get('log_level') as Config['logLevel'] | undefined) ?? 'info',
  };
}

/** The effective settings as YAML-ish lines, passwords and tokens masked: for check-config and /status. */
export function describeConfig(cfg: Config): Record<string, string | number | boolean | null> {
  return {
    node: cfg.node,
    node1_conninfo: maskConninfo(cfg.node1),
    node2_conninfo: maskConninfo(cfg.node2),
    keepalive_time: cfg.keepaliveTimeMs / 1000,
    keepalive_count: cfg.keepaliveCount,
    heartbeat_timeout: cfg.heartbeatTimeoutMs / 1000,
    after_command: cfg.afterCommand,
    after_command_timeout: cfg.afterCommandTimeoutMs / 1000,
    after_async_command: cfg.afterAsyncCommand,
    listen: `${cfg.listen.host}:${cfg.listen.port}`,
    failover_requires_sync: cfg.failoverRequiresSync,
    stream_timeout: cfg.streamTimeoutMs / 1000,
    sync_restore_max_lag: cfg.syncRestoreMaxLagBytes,
    paused: cfg.paused,
    state_file: cfg.stateFile,
    http_token: cfg.httpToken === null ? null : '********',
    tune_wal_retrieve_retry_interval: cfg.tuneWalRetrieveRetryInterval,
    log_level: cfg.logLevel,
  };
}

/**
 * A live primary's stream heartbeat can be up to keepalive_time + wal_writer_delay (200 ms)
 * old when the standby looks, plus scheduling jitter. With a short window (0.2 s × 3) that
 * leaves no margin, and a false "silent" would promote beside a live primary; so the
 * default never goes below keepalive_time + 1 s.
 */
export function defaultStreamTimeoutMs(keepaliveTimeMs: number, keepaliveCount: number): number {
  return Math.max(keepaliveTimeMs * keepaliveCount, keepaliveTimeMs + 1000);
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}
