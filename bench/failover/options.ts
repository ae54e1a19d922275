// The command line of the failover benchmark.

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

export class UsageError extends Error {}

export function parseArgs(argv: string[]): Options {
  const opts: Options = {
    runs: 10,
    keepaliveTime: 0.2,
    keepaliveCount: 3,
    label: '0.2x3',
    json: null,
    heartbeats: 0,
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
      case '--keepalive': {
        const v = value();
        const m = /^(\d+(?:\.\d+)?|\.\d+)x(\d+)$/.exec(v);
        const t = Number(m?.[1]);
        const c = Number(m?.[2]);
        if (!m || !(t > 0) || !(c >= 1))
          throw new UsageError(`--keepalive: expected TIMExCOUNT, e.g. 0.2x3, got ${v}`);
        opts.keepaliveTime = t;
        opts.keepaliveCount = c;
        opts.label = `${t}x${c}`;
        break;
      }
      case '--json':
        opts.json = value();
        break;
      case '--heartbeats': {
        const v = value();
        opts.heartbeats = Number(v);
        if (!Number.isInteger(opts.heartbeats) || opts.heartbeats < 2)
          throw new UsageError(`--heartbeats: need an integer >= 2, got ${v}`);
        break;
      }
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument: ${arg}`);
    }
  }
  if (opts.heartbeats === 0) opts.heartbeats = Math.max(25, Math.ceil(150 / opts.runs));
  return opts;
}

/** The window W: keepalive_time × keepalive_count, in ms. */
export function windowMs(opts: Options): number {
  return Math.round(opts.keepaliveTime * opts.keepaliveCount * 1000);
}

/** keepalive_time in ms. */
export function periodMs(opts: Options): number {
  return Math.round(opts.keepaliveTime * 1000);
}
