// One planned switchover under a client that writes all the time: POST /switchover to a
// keeper, then, from outside, the new primary's first acknowledged write and the moment it
// lists the old primary as its synchronous standby again; afterwards, every id the client saw
// acknowledged must be on the new primary.

import type { NodeName } from '../../src/config/config.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { firstLine, gauge, lineTime, okEvent, scrape } from '../lib/keeper-log.js';
import type { Rig } from '../lib/rig.js';
import { wallNow, type Ack } from '../lib/write-loop.js';
import { iso, r1, rel, warmUp, type Pace } from '../failover/samples.js';
import { keeperOf, other, TOKEN, writingOn } from './pairs.js';
import type { Probe } from './probe.js';
import type { SwitchoverSample } from './samples.js';

/** Writing goes on this long once sync is back, so that the gap is surely closed. */
const AFTER_SYNC_MS = 500;

export async function switchover(
  rig: Rig,
  probe: Probe,
  from: NodeName,
  askedOf: NodeName,
  index: number,
  pace: Pace,
): Promise<SwitchoverSample> {
  const to = other(from);
  const { pair } = rig;
  const table = `bench_switchover_${index}`;
  const loop = await writingOn(rig, from, table);
  let requestAt: number;
  let syncAt: number;
  let first: Ack;
  try {
    pace.phase(`switchover ${index}: writing on ${from}`);
    await warmUp(loop, from, pace);
    pace.phase(`switchover ${index}: ${from} -> ${to}`);
    requestAt = wallNow();
    const res = await keeperOf(rig, askedOf).get('/switchover', {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const answer = (await res.json().catch(() => ({}))) as { id?: string; error?: string };
    if (res.status !== 202)
      throw new Error(`POST /switchover to ${askedOf}'s keeper: HTTP ${res.status} ${answer.error ?? ''}`);
    const synced = await probe.waitForStandby(to, from, 'sync', pace.slowMs);
    if (synced === null) throw new Error(`${to} did not list ${from} as its synchronous standby in time`);
    syncAt = synced;
    first = await waitFor(() => loop.acks.find((a) => a.node === to), `a write on ${to}`, pace.slowMs, 5);
    await sleep(AFTER_SYNC_MS);
  } finally {
    await loop.stop();
  }

  const acks = [...loop.acks].sort((a, b) => a.end - b.end);
  let gap = { ms: 0, from: requestAt, to: requestAt };
  for (let i = 1; i < acks.length; i++) {
    const a = acks[i - 1] as Ack;
    const b = acks[i] as Ack;
    if (b.end < requestAt || a.end > syncAt) continue;
    if (b.end - a.end > gap.ms) gap = { ms: b.end - a.end, from: a.end, to: b.end };
  }
  const rows = await queryOnce<{ id: string }>(pair.target(pair[to]), `SELECT id FROM ${table}`, [], 15_000);
  const present = new Set(rows.map((r) => Number(r.id)));
  const lostIds = acks.filter((a) => !present.has(a.id)).map((a) => a.id);

  const kFrom = keeperOf(rig, from);
  const kTo = keeperOf(rig, to);
  const promoted = firstLine(kTo, okEvent('promote'), requestAt);
  const handed = await waitFor(
    () => firstLine(kFrom, okEvent('switchover'), requestAt),
    `${from}'s keeper to log the switchover ok`,
    pace.slowMs,
    10,
  ).catch(() => undefined);
  const reported = /handed the primary over in ([\d.]+) s/.exec(String(handed?.reason ?? ''));
  // Once both keepers have settled: a switchover still "in progress" afterwards is a finding.
  const inProgress = async (n: NodeName): Promise<number | null> =>
    gauge(keeperOf(rig, n), 'pg_keeper_switchover_in_progress');
  await waitFor(
    async () => (await inProgress(from)) === 0 && (await inProgress(to)) === 0,
    'both keepers to end the switchover',
    2000,
    100,
  ).catch(() => undefined);

  return {
    requestAt: iso(requestAt),
    from,
    to,
    askedOf,
    longestGap: r1(gap.ms),
    gapFromMs: r1(gap.from - requestAt),
    gapToMs: r1(gap.to - requestAt),
    promoteOkMs: rel(promoted ? lineTime(promoted) : null, requestAt),
    firstWriteMs: r1(first.end - requestAt),
    syncMs: r1(syncAt - requestAt),
    firstWriteToSync: r1(Math.max(0, syncAt - first.end)),
    switchoverOkMs: rel(handed ? lineTime(handed) : null, requestAt),
    switchoverReportedMs: reported ? Math.round(Number(reported[1]) * 1000) : null,
    acked: acks.length,
    ackedOnNewPrimary: acks.filter((a) => a.node === to).length,
    lost: lostIds.length,
    lostIds: lostIds.slice(0, 100),
    inProgressAfter: { [from]: await inProgress(from), [to]: await inProgress(to) } as Record<
      NodeName,
      number | null
    >,
    okCountAfter: await scrape(kFrom, 'pg_keeper_switchovers_total', 'result="ok"'),
  };
}
