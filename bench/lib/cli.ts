// What every benchmark's main.ts does around its runs: the command line (bad usage: exit 2), the
// results file, Ctrl-C and SIGTERM (tear down, exit 130/143), and the JSON of raw samples.

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkBuild, MissingBuild } from './build.js';
import type { Progress } from './progress.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** A wrong command line; main prints it with the usage and exits 2. */
export class UsageError extends Error {}

/**
 * Walks a command line of `--name value`, `--name=value` and flags: `take` handles one option
 * (`value()` reads its value) and returns false for one it does not know. --help and -h print
 * `usage` and exit 0.
 */
export function walkArgs(
  argv: string[],
  usage: string,
  take: (name: string, value: () => string) => boolean,
): void {
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
    if (name === '--help' || name === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    if (!take(name, value)) throw new UsageError(`unknown argument: ${arg}`);
  }
}

/** The options every benchmark takes. */
export interface CommonOptions {
  keepaliveTime: number;
  keepaliveCount: number;
  json: string | null;
}

/**
 * --keepalive TIMExCOUNT and --json FILE, for walkArgs' `take`: false for any other option.
 * `example` is the benchmark's default keepalive, shown in the error.
 */
export function takeCommon(opts: CommonOptions, name: string, value: () => string, example: string): boolean {
  switch (name) {
    case '--keepalive': {
      const v = value();
      const m = /^(\d+(?:\.\d+)?|\.\d+)x(\d+)$/.exec(v);
      const time = Number(m?.[1]);
      const count = Number(m?.[2]);
      if (!m || !(time > 0) || !(count >= 1))
        throw new UsageError(`--keepalive: expected TIMExCOUNT, e.g. ${example}, got ${v}`);
      opts.keepaliveTime = time;
      opts.keepaliveCount = count;
      return true;
    }
    case '--json':
      opts.json = value();
      return true;
    default:
      return false;
  }
}

/** --runs N of the failover and arbiter benchmarks: a count from 1. */
export function runsOf(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--runs: not a count: ${v}`);
  return n;
}

/** The window W: keepalive_time × keepalive_count, in ms. */
export function windowMs(o: { keepaliveTime: number; keepaliveCount: number }): number {
  return Math.round(o.keepaliveTime * o.keepaliveCount * 1000);
}

/** The options, or null when the command line is wrong or the CLI is not built (said on stderr). */
export function parseOrUsage<O>(parse: () => O, usage: string): O | null {
  try {
    const opts = parse();
    checkBuild();
    return opts;
  } catch (err) {
    if (err instanceof UsageError || err instanceof MissingBuild) {
      process.stderr.write(`${err.message}\n${usage}\n`);
      return null;
    }
    throw err;
  }
}

/** --json FILE, or bench/results/<name>-<startedAt>.json. */
export function resultsFile(json: string | null, name: string, startedAt: Date): string {
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  return path.resolve(json ?? path.join(ROOT, 'bench', 'results', `${name}-${stamp}.json`));
}

/**
 * On SIGINT or SIGTERM: `destroyAll` and exit 130 or 143; a second signal, or 30 s, exits at once
 * (the exit hooks of keepers, pairs and directories SIGKILL by pid). `what` is what is torn down.
 * Returns whether a signal came.
 */
export function onInterrupt(
  progress: Progress,
  what: string,
  destroyAll: () => Promise<void>,
): () => boolean {
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    const code = signal === 'SIGINT' ? 130 : 143;
    if (interrupted) process.exit(code);
    interrupted = true;
    progress.finish();
    process.stderr.write(`\n${signal}: tearing down ${what} (again to force)...\n`);
    setTimeout(() => process.exit(code), 30_000).unref();
    void destroyAll().finally(() => process.exit(code));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => interrupted;
}

/** The keepalive a benchmark ran at, first in its results' config. */
export const keepaliveOf = (o: CommonOptions): { keepaliveTime: number; keepaliveCount: number } => ({
  keepaliveTime: o.keepaliveTime,
  keepaliveCount: o.keepaliveCount,
});

/**
 * Writes the raw samples and summary, formatted as the repository's prettier would: `data` after
 * which benchmark it is, when it started and finished, and its command line.
 */
export async function writeResults(
  file: string,
  benchmark: string,
  startedAt: Date,
  data: Record<string, unknown>,
): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  const head = {
    benchmark,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    argv: process.argv.slice(2),
  };
  let text = `${JSON.stringify({ ...head, ...data }, null, 2)}\n`;
  try {
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(file)) ?? {};
    text = await prettier.format(text, { ...config, parser: 'json' });
  } catch {
    // prettier is a dev dependency; without it the plain JSON is kept
  }
  writeFileSync(file, text);
  process.stdout.write(`\nraw samples and summary: ${path.relative(process.cwd(), file) || file}\n`);
}

/** Runs main and sets the exit code; on an unexpected error, tears everything down first. */
export function runMain(main: () => Promise<number>, destroyAll: () => Promise<void>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    async (err: unknown) => {
      process.stderr.write(`benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
      await destroyAll();
      process.exitCode = 1;
    },
  );
}
