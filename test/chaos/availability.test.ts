// The availability checks' deadlines on plain values: they follow from the keepers' window,
// stream_timeout and lease TTL, and a loss shorter than its deadline owes nothing.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ETCD_REVOKE_MS,
  failoverAfterReconnectMs,
  failoverBoundMs,
  judgeAvailability,
  PROMOTE_MS,
  SLACK_MS,
  timingFromConfig,
  type Timing,
} from './availability.js';

const twoNode: Timing = {
  keepaliveMs: 200,
  count: 3,
  heartbeatTimeoutMs: 160,
  streamTimeoutMs: 1200,
  ttlMs: null,
};
const arbiter: Timing = { ...twoNode, ttlMs: 3000 };

describe('chaos availability', () => {
  test('a killed primary is owed a promotion within the window, a heartbeat timeout and the promotion', () => {
    assert.equal(failoverBoundMs(twoNode, 'server-killed'), 600 + 160 + PROMOTE_MS);
    // With the arbiter the old keeper gives the lease up at its next tick: one more tick at most.
    assert.equal(failoverBoundMs(arbiter, 'server-killed'), 600 + 160 + 200 + PROMOTE_MS);
  });

  test('a frozen primary is also waited for until its stream has been silent for stream_timeout', () => {
    assert.equal(failoverBoundMs(twoNode, 'server-frozen'), 1200 + 200 + 160 + PROMOTE_MS);
    const slowStream = { ...twoNode, streamTimeoutMs: 5000 };
    assert.equal(failoverBoundMs(slowStream, 'server-frozen'), 5000 + 200 + 160 + PROMOTE_MS);
  });

  test("a lost host is waited for until etcd has revoked the lease and the standby's next tick", () => {
    assert.equal(failoverBoundMs(arbiter, 'host-lost'), 3000 + ETCD_REVOKE_MS + 200 + PROMOTE_MS);
    assert.throws(() => failoverBoundMs(twoNode, 'host-lost'), /only .* with the arbiter/);
  });

  test('a standby reaching etcd after the lease ran out is owed a promotion a tick later', () => {
    assert.equal(failoverAfterReconnectMs(arbiter, 1000), failoverBoundMs(arbiter, 'host-lost'));
    assert.equal(failoverAfterReconnectMs(arbiter, 9000), 9000 + 200 + 160 + PROMOTE_MS);
  });

  test('a loss shorter than its deadline owes nothing; a longer one owes a promotion within it', () => {
    const bound = failoverBoundMs(twoNode, 'server-killed');
    const short = judgeAvailability('server-killed', bound, bound + SLACK_MS - 1, null);
    assert.deepEqual([short.checked, short.ok], [false, true]);
    const missed = judgeAvailability('server-killed', bound, 4000, null);
    assert.deepEqual([missed.checked, missed.ok], [true, false]);
    const late = judgeAvailability('server-killed', bound, 4000, bound + SLACK_MS + 1);
    assert.deepEqual([late.checked, late.ok], [true, false]);
    const inTime = judgeAvailability('server-killed', bound, 4000, 540);
    assert.deepEqual([inTime.checked, inTime.ok], [true, true]);
  });

  test("the timing comes from a keeper's /status config, in seconds", () => {
    const config = {
      keepalive_time: 0.2,
      keepalive_count: 3,
      heartbeat_timeout: 0.16,
      stream_timeout: 1.2,
      etcd_lease_ttl: 3,
      etcd_endpoints: 'http://127.0.0.1:1,http://127.0.0.1:2',
    };
    assert.deepEqual(timingFromConfig(config), arbiter);
    assert.equal(timingFromConfig({ ...config, etcd_endpoints: null }).ttlMs, null);
    assert.throws(() => timingFromConfig({ ...config, stream_timeout: undefined }), /stream_timeout/);
  });
});
