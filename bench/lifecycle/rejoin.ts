// One rejoin after a failover: the primary's server is SIGKILLed (its keeper lives on, as
// beside a crashed server), the standby's keeper promotes, and the old primary's keeper
// (auto_rejoin) turns its server into the new primary's standby. Measured from the kill to
// the moment the new primary lists the old one as its synchronous standby, with the keepers'
// own log lines for the phases between, under a client that writes all the time.

import type { NodeName } from '../../src/config/config.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { firstLine, lineTime, okEvent } from '../lib/keeper-log.js';
import type { Rig } from '../lib/rig.js';
import { wallNow } from '../lib/write-loop.js';
import { iso, r1, rel, warmUp, type Pace } from '../failover/samples.js';
import { keeperOf, other, writingOn, type Method } from './pairs.js';
import type { Probe } from './probe.js';
import type { RejoinSample } from './samples.js';

const AFTER_SYNC_MS = 300;

/**
 * Resolves once `primary`'s keeper sees a synchronous primary that cannot have acknowledged a
 * commit alone (else a rejoin after its failover would rightly be refused), and the other
 * keeper a synchronous standby.
 */
export async function waitUntilReady(rig: Rig, primary: NodeName, timeoutMs: number): Promise<void> {
  const kp = keeperOf(rig, primary);
  const ks = keeperOf(rig, other(primary));
  await waitFor(
    async () => {
      const [p, s] = await Promise.all([kp.status(), ks.status()]);
      return (
        p.role === 'primary' &&
        p.sync_mode === 'sync' &&
        p.guards.may_have_acknowledged_alone === false &&
        p.task === null &&
        s.role === 'standby' &&
        s.peer_reachable &&
        s.guards.synchronous_at_last_contact &&
        s.task === null
      );
    },
    `${primary} a synchronous primary whose commits are all on its standby`,
    timeoutMs,
    50,
  );
}

export async function rejoinAfterFailover(
  rig: Rig,
  probe: Probe,
  oldPrimary: NodeName,
  pairMethod: Method,
  databaseMB: number | null,
  label: string,
  pace: Pace,
): Promise<RejoinSample> {
  const newPrimary = other(oldPrimary);
  const { pair } = rig;
  pace.phase(`${label}: waiting for a healthy pair`);
  await waitUntilReady(rig, oldPrimary, pace.slowMs);
  const table = `bench_rejoin_${label.replace(/\W+/g, '_')}`;
  const loop = await writingOn(rig, oldPrimary, table);
  let killAt: number;
  let syncAt: number;
  let streamingAt: number | null;
  let sourceWalMB: number | null;
  try {
    pace.phase(`${label}: writing on ${oldPrimary}`);
    await warmUp(loop, oldPrimary, pace);
    const [wal] = await queryOnce<{ mb: string }>(
      pair.target(pair[newPrimary]),
      'SELECT coalesce(sum(size), 0) / 1048576.0 AS mb FROM pg_ls_waldir()',
    );
    sourceWalMB = wal ? Math.round(Number(wal.mb)) : null;
    pace.phase(`${label}: SIGKILL ${oldPrimary}'s server; failover and rejoin`);
    killAt = wallNow();
    await pair.kill(pair[oldPrimary], 'SIGKILL');
    streamingAt = await probe.waitForStandby(newPrimary, oldPrimary, 'streaming', pace.slowMs, 20);
    const synced = await probe.waitForStandby(newPrimary, oldPrimary, 'sync', pace.slowMs, 10);
    if (synced === null)
      throw new Error(`${newPrimary} did not list ${oldPrimary} as its synchronous standby in time`);
    syncAt = synced;
    await sleep(AFTER_SYNC_MS);
  } finally {
    await loop.stop();
  }

  const kOld = keeperOf(rig, oldPrimary);
  const kNew = keeperOf(rig, newPrimary);
  const promoted = firstLine(kNew, okEvent('promote'), killAt);
  const started = firstLine(kOld, (l) => l.event === 'rejoin-start', killAt);
  const done = await waitFor(
    () => firstLine(kOld, okEvent('rejoin'), killAt),
    `${oldPrimary}'s keeper to log the rejoin ok`,
    pace.slowMs,
    10,
  ).catch(() => undefined);
  const said = /by (\w+), in ([\d.]+) s/.exec(String(done?.reason ?? ''));
  const startAt = started ? lineTime(started) : null;
  const steps = kOld.lines
    .filter((l) => l.event === 'rejoin-step' && startAt !== null && lineTime(l) >= startAt)
    .filter((l) => !done || lineTime(l) <= lineTime(done))
    .map((l) => ({ step: String(l.step), atMs: r1(lineTime(l) - (startAt ?? 0)) }));

  const old = loop.acksOn(oldPrimary);
  const rows = await queryOnce<{ id: string }>(
    pair.target(pair[newPrimary]),
    `SELECT id FROM ${table}`,
    [],
    15_000,
  );
  const present = new Set(rows.map((r) => Number(r.id)));
  return {
    killAt: iso(killAt),
    oldPrimary,
    newPrimary,
    pairMethod,
    method: said?.[1] ?? null,
    databaseMB,
    sourceWalMB,
    promoteOkMs: rel(promoted ? lineTime(promoted) : null, killAt),
    rejoinStartMs: rel(startAt, killAt),
    rejoinOkMs: rel(done ? lineTime(done) : null, killAt),
    rejoinReportedMs: said ? Math.round(Number(said[2]) * 1000) : null,
    streamingMs: rel(streamingAt, killAt),
    total: r1(syncAt - killAt),
    rejoin: startAt !== null && done ? r1(lineTime(done) - startAt) : null,
    acked: old.length,
    lost: old.filter((a) => !present.has(a.id)).length,
    steps,
  };
}
