// The command line of the failover benchmark.

import { runsOf, takeCommon, UsageError, walkArgs, windowMs } from '../lib/cli.js';

export { UsageError, windowMs };

export interface Options {
  runs: number;
  keepaliveTime: number;
  keepaliveCount: number;
  label: string;
  json: string | null;
  /** Failed heartbeats to collect per run while the standby is down (before the rebuild starts). */
  heartbeats: number;
}

export const USAGE = `usage: npx tsx bench/failover/main.ts [--runs N] [--keepalive TIMExCOUNT] [--json FILE] [--heartbeats N]

  --runs N            runs (default 10); each run: standby loss, return to sync, failover
  --keepalive 0.2x3   keepalive_time (seconds) x keepalive_count (default 0.2x3)
  --json FILE         where to write raw samples and summary
                      (default bench/results/failover-<keepalive>-<timestamp>.json)
  --heartbeats N      failed heartbeats to log per run while the standby is down
                      (default: enough for 150 intervals over all runs, at least 25)

Needs the built CLI (npm run build) and PostgreSQL binaries (PG_BIN or /usr/lib/postgresql).`;

export function parseArgs(argv: string[]): Options {
  const opts: Options = {
    runs: 10,
    keepaliveTime: 0.2,
    keepaliveCount: 3,
    label: '0.2x3',
    json: null,
    heartbeats: 0,
  };
  walkArgs(argv, USAGE, (name, value) => {
    switch (name) {
      case '--runs':
        opts.runs = runsOf(value());
        return true;
      case '--heartbeats': {
        const v = value();
        opts.heartbeats = Number(v);
        if (!Number.isInteger(opts.heartbeats) || opts.heartbeats < 2)
          throw new UsageError(`--heartbeats: need an integer >= 2, got ${v}`);
        return true;
      }
      default:
        return takeCommon(opts, name, value, '0.2x3');
    }
  });
  opts.label = `${opts.keepaliveTime}x${opts.keepaliveCount}`;
  if (opts.heartbeats === 0) opts.heartbeats = Math.max(25, Math.ceil(150 / opts.runs));
  return opts;
}

/** keepalive_time in ms. */
export function periodMs(opts: Options): number {
  return Math.round(opts.keepaliveTime * 1000);
}
