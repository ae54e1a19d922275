// The command line of the arbiter's benchmark.

import { SCENARIOS, type ScenarioName } from './samples.js';

export interface Options {
  runs: number;
  keepaliveTime: number;
  keepaliveCount: number;
  /** The lease's TTL (s) of every scenario but server-crash (6 s) and etcd-leader (5 s). */
  ttl: number;
  scenarios: ScenarioName[];
  json: string | null;
}

export const USAGE = `usage: npm run bench:arbiter -- [--runs N] [--scenarios a,b,...] [--keepalive TIMExCOUNT] [--ttl S] [--json FILE]

  --runs N            runs of every scenario (default 5), each on a fresh pair, keepers and etcd
  --scenarios LIST    some of: ${SCENARIOS.join(', ')} (default all)
  --keepalive 0.3x3   keepalive_time (seconds) x keepalive_count (default 0.3x3)
  --ttl S             etcd_lease_ttl (default 3; etcd's minimum is 2); server-crash runs at twice
                      this (6 s by default) and etcd-leader at 5 s, as their targets say
  --json FILE         where to write raw samples and summary
                      (default bench/results/arbiter-ttl<S>-<keepalive>-<timestamp>.json)

Needs the built CLI (npm run build), PostgreSQL binaries (PG_BIN or /usr/lib/postgresql) and
etcd (/usr/bin/etcd).`;

export class UsageError extends Error {}

export function parseArgs(argv: string[]): Options {
  const opts: Options = {
    runs: 5,
    keepaliveTime: 0.3,
    keepaliveCount: 3,
    ttl: 3,
    scenarios: [...SCENARIOS],
    json: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--runs': {
        const v = value();
        opts.runs = Number(v);
        if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new UsageError(`--runs: not a count: ${v}`);
        break;
      }
      case '--scenarios': {
        const names = value().split(',').filter(Boolean);
        const unknown = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
        if (names.length === 0 || unknown.length > 0)
          throw new UsageError(`--scenarios: unknown ${unknown.join(', ') || '(none given)'}`);
        opts.scenarios = SCENARIOS.filter((s) => names.includes(s));
        break;
      }
      case '--keepalive': {
        const v = value();
        const m = /^(\d+(?:\.\d+)?|\.\d+)x(\d+)$/.exec(v);
        const t = Number(m?.[1]);
        const c = Number(m?.[2]);
        if (!m || !(t > 0) || !(c >= 1))
          throw new UsageError(`--keepalive: expected TIMExCOUNT, e.g. 0.3x3, got ${v}`);
        opts.keepaliveTime = t;
        opts.keepaliveCount = c;
        break;
      }
      case '--ttl': {
        const v = value();
        opts.ttl = Number(v);
        if (!Number.isInteger(opts.ttl) || opts.ttl < 2 || opts.ttl > 300)
          throw new UsageError(`--ttl: whole seconds from 2 to 300, got ${v}`);
        break;
      }
      case '--json':
        opts.json = value();
        break;
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument: ${arg}`);
    }
  }
  return opts;
}

/** The window W in ms. */
export const windowMs = (o: Options): number => Math.round(o.keepaliveTime * o.keepaliveCount * 1000);
/** The keepers' default stream_timeout: max(W, keepalive_time + 1 s), as src/config/keys.ts derives it. */
export const streamTimeoutMs = (o: Options): number =>
  Math.max(windowMs(o), Math.round(o.keepaliveTime * 1000) + 1000);
export const label = (o: Options): string => `ttl${o.ttl}-${o.keepaliveTime}x${o.keepaliveCount}`;

/**
 * Each scenario's lease TTL and etcd members; and where the old primary holds commits back for
 * good (isolated, fenced), how soon its writer gives a write up to try the next.
 */
export function rigFor(
  o: Options,
  s: ScenarioName,
): { ttl: number; members: 1 | 3; writeTimeoutMs?: number } {
  if (s === 'server-crash') return { ttl: 2 * o.ttl, members: 1 };
  if (s === 'etcd-leader') return { ttl: Math.max(5, o.ttl), members: 3 };
  if (s === 'isolate-primary') return { ttl: o.ttl, members: 1, writeTimeoutMs: 1000 };
  return { ttl: o.ttl, members: 1 };
}
