// The command line of the lifecycle benchmark.

import { takeCommon, UsageError, walkArgs, windowMs } from '../lib/cli.js';

export { UsageError, windowMs };

export const PARTS = ['switchover', 'rejoin', 'growth'] as const;
export type Part = (typeof PARTS)[number];

export interface Options {
  /** Switchovers, and rejoins after a failover on the small database. */
  runs: number;
  /** Rejoins per database size and method (rewind, basebackup). */
  growthRuns: number;
  /** Database sizes of the growth part, in MB (pgbench -i at the matching scale). */
  sizesMB: number[];
  keepaliveTime: number;
  keepaliveCount: number;
  parts: Part[];
  json: string | null;
}

export const USAGE = `usage: npm run bench:lifecycle -- [--runs N] [--growth-runs N] [--large] [--only PARTS] [--keepalive TIMExCOUNT] [--json FILE]

  --runs N              switchovers, and rejoins after a failover on a small database (default 10)
  --growth-runs N       rejoins per database size and method, rewind and basebackup (default 3)
  --large               the growth part at 1 GB too, beside 100 MB (a few minutes more per pair)
  --only PARTS          some of switchover,rejoin,growth (default: all three)
  --keepalive 0.2x3     keepalive_time (seconds) x keepalive_count (default 0.2x3)
  --json FILE           where to write samples and summary
                        (default bench/results/lifecycle-<timestamp>.json)

Needs the built CLI (npm run build), PostgreSQL's binaries (with pgbench) and, as root, the OS
user postgres: the keepers run as it, as the data directories' owner.`;

export function parseArgs(argv: string[]): Options {
  const opts: Options = {
    runs: 10,
    growthRuns: 3,
    sizesMB: [100],
    keepaliveTime: 0.2,
    keepaliveCount: 3,
    parts: [...PARTS],
    json: null,
  };
  const count = (name: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new UsageError(`${name}: expected an integer >= ${min}, got ${v}`);
    return n;
  };
  walkArgs(argv, USAGE, (name, value) => {
    switch (name) {
      case '--runs':
        opts.runs = count(name, value(), 1);
        return true;
      case '--growth-runs':
        opts.growthRuns = count(name, value(), 1);
        return true;
      case '--large':
        opts.sizesMB = [100, 1000];
        return true;
      case '--only': {
        const v = value();
        const parts = v.split(',').map((p) => p.trim());
        const unknown = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
        if (parts.length === 0 || unknown.length > 0)
          throw new UsageError(`--only: expected some of ${PARTS.join(',')}, got ${v}`);
        opts.parts = PARTS.filter((p) => parts.includes(p));
        return true;
      }
      default:
        return takeCommon(opts, name, value, '0.2x3');
    }
  });
  return opts;
}
