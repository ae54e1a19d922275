// Lifecycle benchmark: planned switchovers and rejoins after a failover, on real PostgreSQL
// pairs with two real keeper processes (the built CLI) that control their servers.
//
//   npm run bench:lifecycle -- [--runs N] [--growth-runs N] [--large] [--only PARTS] [--keepalive 0.2x3]
//
//   1. switchover (switchover.ts): a client writes all the time; POST /switchover to the
//      primary's keeper (the last run: to the standby's, which passes it on), alternating
//      between the nodes; the longest gap between two acknowledgements, every acknowledged
//      id on the new primary, and first write on the new primary -> synchronous again;
//   2. rejoin (rejoin.ts): SIGKILL of the primary's server under the same client, the
//      failover, and auto_rejoin: kill -> the old primary is the new one's synchronous
//      standby, on the small database of a fresh pair, alternating;
//   3. growth (growth.ts): the same at 100 MB (and 1 GB with --large), filled by pgbench -i,
//      on a pair that can be rewound and on one that cannot (the keeper copies it all).
//
// It reports (report.ts) and does not assert: it exits 0 even when a target is MISSED, 1 when
// a run failed, 2 on bad usage, 130/143 when interrupted. Servers and keepers are torn down on
// every path (error, Ctrl-C, SIGTERM).

import type { NodeName } from '../../src/config/config.js';
import { errorText } from '../../src/util/errors.js';
import { keepaliveOf, onInterrupt, parseOrUsage, resultsFile, runMain, writeResults } from '../lib/cli.js';
import { countPostgresProcesses, loadAverage, machineInfo } from '../lib/machine.js';
import { Progress } from '../lib/progress.js';
import { destroyAll, destroyRig, type Rig } from '../lib/rig.js';
import type { Pace } from '../failover/samples.js';
import { growthGroup } from './growth.js';
import { parseArgs, USAGE, windowMs, type Options } from './options.js';
import { lifecyclePair, other } from './pairs.js';
import { Probe } from './probe.js';
import { rejoinAfterFailover, waitUntilReady } from './rejoin.js';
import { evaluateTargets, report, summaries } from './report.js';
import type { RejoinGroup, RejoinSample, SwitchoverSample } from './samples.js';
import { switchover } from './switchover.js';

/** One pair for a series of runs on it; an error ends the series (the pair may be half-way). */
async function onOnePair(
  what: string,
  make: () => Promise<Rig>,
  runs: number,
  progress: Progress,
  pace: Pace,
  body: (rig: Rig, probe: Probe, i: number) => Promise<string>,
  errors: string[],
): Promise<void> {
  pace.phase(`${what}: creating the pair and keepers`);
  let rig: Rig;
  try {
    rig = await make();
  } catch (err) {
    errors.push(`${what}: setting up the pair: ${errorText(err)}`);
    for (let i = 0; i < runs; i++) progress.runDone('failed');
    return;
  }
  const probe = new Probe({ node1: rig.pair.target(rig.pair.node1), node2: rig.pair.target(rig.pair.node2) });
  let done = 0;
  try {
    for (let i = 1; i <= runs; i++) {
      const note = await body(rig, probe, i);
      done++;
      if (process.stderr.isTTY) progress.log(note);
      progress.runDone(note);
    }
  } catch (err) {
    errors.push(`${what}, run ${done + 1}: ${(err as Error).stack ?? errorText(err)}`);
    for (let i = done; i < runs; i++) progress.runDone('failed');
  } finally {
    probe.close();
    pace.phase(`${what}: teardown`);
    await destroyRig(rig);
  }
}

async function main(): Promise<number> {
  const opts = parseOrUsage(() => parseArgs(process.argv.slice(2)), USAGE);
  if (!opts) return 2;
  const startedAt = new Date();
  const jsonFile = resultsFile(opts.json, 'lifecycle', startedAt);
  const loadStart = loadAverage();
  const machine = machineInfo(countPostgresProcesses());
  const has = (p: Options['parts'][number]): boolean => opts.parts.includes(p);
  const total =
    (has('switchover') ? opts.runs : 0) +
    (has('rejoin') ? opts.runs : 0) +
    (has('growth') ? opts.growthRuns * opts.sizesMB.length * 2 : 0);
  const progress = new Progress(total, 'lifecycle');
  const pace: Pace = {
    periodMs: Math.round(opts.keepaliveTime * 1000),
    // A base backup of a large database takes minutes on a slow disk.
    slowMs: Math.max(120_000, 10 * windowMs(opts)),
    phase: (p) => progress.setPhase(p),
  };

  const interrupted = onInterrupt(progress, 'servers and keepers', destroyAll);

  const switchovers: SwitchoverSample[] = [];
  const rejoins: RejoinSample[] = [];
  const growth: RejoinGroup[] = [];
  const errors: string[] = [];
  const durations: Record<string, number> = {};
  const timed = async (part: string, body: () => Promise<void>): Promise<void> => {
    const t0 = Date.now();
    await body();
    durations[part] = Date.now() - t0;
  };

  /** A part's runs, all on one pair that can be rewound (auto_rejoin as the part needs). */
  const series = (
    part: 'switchover' | 'rejoin',
    autoRejoin: boolean,
    body: (rig: Rig, probe: Probe, i: number) => Promise<string>,
  ): Promise<void> =>
    timed(part, () =>
      onOnePair(
        part,
        () => lifecyclePair(opts, { method: 'rewind', autoRejoin }),
        opts.runs,
        progress,
        pace,
        body,
        errors,
      ),
    );

  if (has('switchover') && !interrupted())
    await series('switchover', false, async (rig, probe, i) => {
      const from: NodeName = i % 2 === 1 ? 'node1' : 'node2';
      await waitUntilReady(rig, from, pace.slowMs);
      // The last run asks the standby's keeper, which passes the request on.
      const askedOf = i === opts.runs && opts.runs > 1 ? other(from) : from;
      const s = await switchover(rig, probe, from, askedOf, i, pace);
      switchovers.push(s);
      return `switchover ${i}: gap ${Math.round(s.longestGap)} ms, sync again ${Math.round(s.firstWriteToSync)} ms after the first write, lost ${s.lost}`;
    });

  if (has('rejoin') && !interrupted())
    await series('rejoin', true, async (rig, probe, i) => {
      const old: NodeName = i % 2 === 1 ? 'node1' : 'node2';
      const s = await rejoinAfterFailover(rig, probe, old, 'rewind', null, `rejoin ${i}`, pace);
      rejoins.push(s);
      return `rejoin ${i}: kill -> sync ${Math.round(s.total)} ms (${s.method ?? '?'}, rejoin ${s.rejoin === null ? '?' : Math.round(s.rejoin)} ms)`;
    });

  if (has('growth'))
    for (const size of opts.sizesMB)
      for (const method of ['rewind', 'basebackup'] as const) {
        if (interrupted()) break;
        await timed(`growth ${size} MB ${method}`, async () => {
          const g = await growthGroup(opts, size, method, progress, pace);
          growth.push(g);
          errors.push(...g.errors.map((e) => `growth ${size} MB ${method}: ${e}`));
        });
      }
  progress.finish();
  if (interrupted()) return 130;

  const loadEnd = loadAverage();
  const sum = summaries(switchovers, rejoins, growth);
  const targets = evaluateTargets(sum);
  const data = { switchovers, rejoins, growth, errors };
  process.stdout.write(
    `${report(opts, sum, targets, data, machine, { start: loadStart, end: loadEnd }, durations)}\n`,
  );
  await writeResults(jsonFile, 'pg-keeper lifecycle', startedAt, {
    config: {
      ...keepaliveOf(opts),
      runs: opts.runs,
      growthRuns: opts.growthRuns,
      sizesMB: opts.sizesMB,
      pairs:
        'keepers as the OS user postgres with data_directory; wal_keep_size 256MB (growth: 64MB, max_wal_size 128MB, min_wal_size 32MB); wal_log_hints on, except on the basebackup pairs of the growth part',
      units: 'milliseconds; *Ms in samples are relative to the switchover request or the kill',
    },
    machine,
    loadavg: { start: loadStart, end: loadEnd },
    durationsMs: durations,
    summary: sum,
    targets,
    switchovers,
    rejoins,
    growth,
    errors,
  });
  return errors.length > 0 ? 1 : 0;
}

runMain(main, destroyAll);
