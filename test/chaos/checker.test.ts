// The checker on made-up histories: it must flag what the chaos runs are meant to find, excuse only
// what a partition explains, and accept a legitimate history where a server is primary twice.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { check, eras } from './checker.js';
import type { PlannedFault } from './schedule.js';
import { startedFault, type FaultRecord } from './types.js';
import type { NodeName } from '../../src/config/config.js';
import type { WriteRecord } from './workload.js';

let nextId = 1;
function w(node: NodeName, timeline: number, sentAt: number, ackAt: number | null): WriteRecord {
  return {
    id: nextId++,
    loop: 'main',
    node,
    sentAt,
    ackAt,
    timeline: ackAt === null ? null : timeline,
    error: null,
  };
}

function fault(index: number, kind: PlannedFault['kind'], startedAt: number, healedAt: number): FaultRecord {
  return {
    ...startedFault(
      {
        index,
        kind,
        target: null,
        mode: kind === 'partition' ? 'blackhole' : null,
        variant: null,
        member: null,
        durationMs: 0,
        quietMs: 0,
      },
      null,
      'node1',
      startedAt,
    ),
    endedAt: healedAt,
    healedAt,
  };
}

const present = (records: WriteRecord[], except: WriteRecord[] = []): Set<number> =>
  new Set(records.filter((r) => !except.includes(r)).map((r) => r.id));

describe('chaos checker', () => {
  test('a server that is primary again after two failovers is a new era, not two writers', () => {
    const records = [
      w('node1', 1, 0, 10),
      w('node1', 1, 20, 30),
      w('node2', 2, 100, 110),
      w('node1', 3, 200, 210),
    ];
    const r = check(
      1,
      records,
      [fault(1, 'kill-server', 40, 150), fault(2, 'kill-server', 160, 250)],
      present(records),
    );
    assert.deepEqual(r.anomalies, []);
    assert.deepEqual(
      eras(records).map((e) => `${e.node}/${e.timeline}`),
      ['node1/1', 'node2/2', 'node1/3'],
    );
  });

  test('a write sent to the old primary after the new one acknowledged is two writers', () => {
    const records = [w('node1', 1, 0, 10), w('node2', 2, 100, 110), w('node1', 1, 120, 130)];
    const r = check(1, records, [fault(1, 'freeze-server', 50, 300)], present(records));
    assert.deepEqual(
      r.anomalies.map((a) => [a.kind, a.fault]),
      [['two-writers', 1]],
    );
  });

  test('the same under a partition is measured, not an anomaly', () => {
    const late = w('node1', 1, 120, 130);
    const records = [w('node1', 1, 0, 10), w('node2', 2, 100, 110), late];
    const r = check(1, records, [fault(1, 'partition', 50, 300)], present(records, [late]));
    assert.deepEqual(r.anomalies, []);
    assert.equal(r.partitions[0]?.lostAcked, 1);
    assert.equal(r.partitions[0]?.bothAcceptedMs, 20);
  });

  test('an acknowledged write missing at the end is lost, blamed on the fault before its acknowledgement', () => {
    const gone = w('node1', 1, 95, 120);
    const records = [w('node1', 1, 0, 10), gone, w('node2', 2, 200, 210)];
    const r = check(
      1,
      records,
      [fault(1, 'kill-server', 20, 90), fault(2, 'cascade-kill', 100, 300)],
      present(records, [gone]),
    );
    assert.deepEqual(
      r.anomalies.map((a) => [a.kind, a.fault, a.faultKind]),
      [['lost-write', 2, 'cascade-kill']],
    );
  });

  test('a write in flight when a partition began belongs to the partition', () => {
    const inFlight = w('node1', 1, 95, 400);
    const records = [w('node1', 1, 0, 10), inFlight];
    const r = check(
      1,
      records,
      [fault(1, 'kill-server', 20, 90), fault(2, 'partition', 100, 500)],
      present(records, [inFlight]),
    );
    assert.deepEqual(r.anomalies, []);
    assert.equal(r.partitions[0]?.lostAcked, 1);
  });

  test('with the arbiter, the same overlap under a partition is an anomaly, and still measured', () => {
    const late = w('node1', 1, 120, 130);
    const records = [w('node1', 1, 0, 10), w('node2', 2, 100, 110), late];
    const r = check(1, records, [fault(1, 'partition', 50, 300)], present(records, [late]), {
      arbiter: true,
    });
    assert.deepEqual(r.anomalies.map((a) => [a.kind, a.fault]).sort(), [
      ['lost-write', 1],
      ['two-writers', 1],
    ]);
    assert.equal(r.partitions[0]?.lostAcked, 1);
  });

  test('with the arbiter, isolating the primary is judged like a partition', () => {
    const inFlight = w('node1', 1, 95, 400);
    const records = [w('node1', 1, 0, 10), inFlight];
    const r = check(1, records, [fault(1, 'isolate-primary', 100, 500)], present(records, [inFlight]), {
      arbiter: true,
    });
    assert.deepEqual(
      r.anomalies.map((a) => [a.kind, a.faultKind]),
      [['lost-write', 'isolate-primary']],
    );
  });

  test('with the arbiter, writes that stall during an etcd fault are a write stall', () => {
    const records = [w('node1', 1, 0, 10), w('node1', 1, 20, 30), w('node1', 1, 3000, 3010)];
    const faults = [fault(1, 'etcd-outage', 15, 3100)];
    assert.deepEqual(
      check(1, records, faults, present(records), { arbiter: true }).anomalies.map((a) => a.kind),
      ['write-stall'],
    );
    // A partition between the nodes stalls commits for a window by design: not judged so.
    const cut = [fault(1, 'partition', 15, 3100)];
    assert.deepEqual(check(1, records, cut, present(records), { arbiter: true }).anomalies, []);
  });

  test('an unacknowledged write is never lost', () => {
    const records = [w('node1', 1, 0, 10), w('node1', 1, 20, null)];
    const r = check(1, records, [], new Set([records[0]?.id ?? 0]));
    assert.deepEqual(r.anomalies, []);
    assert.equal(r.unacked, 1);
  });
});
