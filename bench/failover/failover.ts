// Scenario 1, failover: the write loop commits on node1, node1 is SIGKILLed (every process), node2's
// keeper promotes, until the first acknowledged write on node2; then every id node1 acknowledged
// must be on node2.

import { decision, firstLine, heartbeatFailed, lineTime, waitForOkEvent } from '../lib/keeper-log.js';
import { firstPgLog, readPgLog } from '../lib/pg-log.js';
import { waitUntilHealthy, type Rig } from '../lib/rig.js';
import { wallNow, WriteLoop, type Ack } from '../lib/write-loop.js';
import { queryOnce } from '../../src/local-pair/query.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { iso, r1, rel, warmUp, type FailoverSample, type Pace } from './samples.js';

const AFTER_FAILOVER_MS = 300;

export async function failover(rig: Rig, pace: Pace): Promise<FailoverSample> {
  const { pair, k2 } = rig;
  const t1 = pair.target(pair.node1);
  const t2 = pair.target(pair.node2);
  pace.phase('failover: waiting for a healthy pair');
  await waitUntilHealthy(rig);
  await queryOnce(t1, 'CREATE TABLE bench_failover (id bigint PRIMARY KEY)');
  const loop = new WriteLoop(
    [
      { name: 'node1', target: t1 },
      { name: 'node2', target: t2 },
    ],
    'bench_failover',
  );
  loop.start();
  let killAt: number;
  let first: Ack;
  try {
    pace.phase('failover: warming up');
    await warmUp(loop, 'node1', pace);
    pace.phase('failover: SIGKILL node1');
    killAt = wallNow();
    await pair.kill(pair.node1, 'SIGKILL');
    first = await waitFor(
      () => loop.acks.find((a) => a.node === 'node2'),
      'the first acknowledged write on node2',
      pace.slowMs,
      5,
    );
    pace.phase('failover: writing on');
    await sleep(AFTER_FAILOVER_MS);
  } finally {
    await loop.stop();
  }
  const promoted = await waitForOkEvent(
    k2,
    'promote',
    killAt,
    "node2's keeper to log promote ok",
    pace.slowMs,
  );
  const promoteAt = lineTime(promoted);
  const dec = firstLine(k2, decision('promoting this standby'), killAt);
  const decisionAt = dec ? lineTime(dec) : promoteAt;
  const miss = firstLine(k2, heartbeatFailed, killAt);
  const reported = /promoted in (\d+) ms/.exec(String(promoted.reason ?? ''));
  const pgLog = readPgLog(pair.node2.logFile);
  const promoteRequestAt = firstPgLog(pgLog, 'received promote request', killAt);

  pace.phase('failover: checking for lost writes');
  const old = loop.acksOn('node1');
  const rows = await queryOnce<{ id: string }>(t2, 'SELECT id FROM bench_failover', [], 15_000);
  const present = new Set(rows.map((r) => Number(r.id)));
  const lostIds = old.filter((a) => !present.has(a.id)).map((a) => a.id);
  const acked = new Set(loop.acks.map((a) => a.id));
  const lastOld = old[old.length - 1];
  return {
    killAt: iso(killAt),
    firstMissMs: miss ? r1(lineTime(miss) - killAt) : null,
    decisionMs: r1(decisionAt - killAt),
    promoteOkMs: r1(promoteAt - killAt),
    promoteReportedMs: reported ? Number(reported[1]) : null,
    firstWriteMs: r1(first.end - killAt),
    firstWriteSentMs: r1(first.start - killAt),
    detection: r1(decisionAt - killAt),
    promotion: r1(promoteAt - decisionAt),
    firstWrite: r1(first.end - promoteAt),
    decisionToWrite: r1(first.end - decisionAt),
    total: r1(first.end - killAt),
    lastOldPrimaryAckMs: lastOld ? r1(lastOld.end - killAt) : null,
    ackedOnOldPrimary: old.length,
    ackedOnNewPrimary: loop.acksOn('node2').length,
    lost: lostIds.length,
    lostIds: lostIds.slice(0, 100),
    unacknowledgedPresent: [...present].filter((id) => !acked.has(id)).length,
    writeErrors: loop.errors.length,
    server: {
      promoteRequestMs: rel(promoteRequestAt, killAt),
      readyMs: rel(firstPgLog(pgLog, 'ready to accept connections', promoteRequestAt ?? killAt), killAt),
      reloadMs: rel(firstPgLog(pgLog, 'received SIGHUP', promoteRequestAt ?? killAt), killAt),
    },
  };
}
