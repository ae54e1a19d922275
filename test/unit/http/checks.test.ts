// The Patroni-style health checks as a table of views: what HAProxy is told for each
// combination of role, server, WAL receiver and peer. The HTTP answers themselves are
// proven against running keepers in test/e2e/http.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHECK_NAMES, checkView, checks, type CheckView } from '../../../src/http/status.js';
import { initialSnapshot } from '../../../src/runtime/snapshot.js';
import { initialState } from '../../../src/policy/types.js';
import { peerDown, peerPrimary, peerStandby, primaryLocal, standbyLocal } from '../policy/fixtures.js';

const view = (extra: Partial<CheckView>): CheckView => ({
  role: 'primary',
  localUp: true,
  peerIsPrimary: false,
  walReceiverStatus: null,
  synchronousAtLastContact: false,
  peerReachable: true,
  leaseHolder: 'unknown',
  ...extra,
});

const answers = (v: CheckView): string => CHECK_NAMES.filter((c) => checks[c](v)).join(' ') || '-';

test('a writable primary answers primary and read-only, nothing else', () => {
  assert.equal(answers(view({})), 'primary read-only');
});

test('a primary beside a second primary, or whose server is down, is not a primary', () => {
  assert.equal(answers(view({ peerIsPrimary: true })), '-');
  assert.equal(answers(view({ localUp: false })), '-');
});

test('a streaming synchronous standby answers replica, read-only and sync', () => {
  const v = view({ role: 'standby', walReceiverStatus: 'streaming', synchronousAtLastContact: true });
  assert.equal(answers(v), 'replica read-only sync');
});

test('a streaming standby that is not synchronous, or cannot reach the primary, answers async', () => {
  const base = { role: 'standby' as const, walReceiverStatus: 'streaming' };
  assert.equal(answers(view({ ...base, synchronousAtLastContact: false })), 'replica read-only async');
  assert.equal(
    answers(view({ ...base, synchronousAtLastContact: true, peerReachable: false })),
    'replica read-only async',
  );
});

test('a standby that does not stream, or whose server is down, answers nothing', () => {
  assert.equal(answers(view({ role: 'standby', walReceiverStatus: 'starting' })), '-');
  assert.equal(answers(view({ role: 'standby', walReceiverStatus: null })), '-');
  assert.equal(answers(view({ role: 'standby', walReceiverStatus: 'streaming', localUp: false })), '-');
  assert.equal(answers(view({ role: 'unknown', localUp: false })), '-');
});

test('the view is read from the snapshot', () => {
  const snap = initialSnapshot(
    'node2',
    { ...initialState(), role: 'standby', syncAtLastContact: true },
    0,
    false,
  );
  assert.deepEqual(checkView(snap), {
    role: 'standby',
    localUp: false,
    peerIsPrimary: false,
    walReceiverStatus: null,
    synchronousAtLastContact: true,
    peerReachable: false,
    leaseHolder: 'unknown',
  });
  const seen = { ...snap, observation: { local: standbyLocal(), peer: peerPrimary() } };
  assert.equal(checkView(seen).walReceiverStatus, 'streaming');
  assert.equal(checkView(seen).peerReachable, true);
  assert.equal(
    checkView({ ...snap, observation: { local: standbyLocal(), peer: peerDown } }).peerReachable,
    false,
  );
  const twoPrimaries = { ...snap, observation: { local: primaryLocal(), peer: peerPrimary() } };
  assert.equal(checkView(twoPrimaries).peerIsPrimary, true);
  const onePrimary = { ...snap, observation: { local: primaryLocal(), peer: peerStandby } };
  assert.equal(checkView(onePrimary).peerIsPrimary, false);
  assert.equal(
    checkView({ ...snap, observation: { local: primaryLocal(), peer: peerStandby } }).localUp,
    true,
  );
});

test('only a standby is a replica, whatever else its view says', () => {
  assert.equal(answers(view({ role: 'primary', walReceiverStatus: 'streaming' })), 'primary read-only');
  assert.equal(answers(view({ role: 'unknown', walReceiverStatus: 'streaming' })), '-');
});

test('with the arbiter, a primary whose lease the peer holds is no primary, and of two primaries the holder is', () => {
  assert.equal(answers(view({ leaseHolder: 'peer' })), '-');
  assert.equal(answers(view({ leaseHolder: 'self' })), 'primary read-only');
  assert.equal(answers(view({ leaseHolder: 'nobody' })), 'primary read-only');
  assert.equal(answers(view({ peerIsPrimary: true, leaseHolder: 'self' })), 'primary read-only');
  assert.equal(answers(view({ peerIsPrimary: true, leaseHolder: 'nobody' })), '-');
  // An etcd outage alone changes nothing: a lone primary stays a primary.
  assert.equal(answers(view({ leaseHolder: 'unknown' })), 'primary read-only');
});

test('with the arbiter, a primary cut off from etcd and its peer after its lease ran out is no primary', () => {
  // Isolated: the standby may have taken the lease and promoted; clients must go there.
  assert.equal(answers(view({ leaseHolder: 'lost', peerReachable: false })), '-');
  // etcd down, the peer still answering: nothing changes (the standby cannot take over).
  assert.equal(answers(view({ leaseHolder: 'lost', peerReachable: true })), 'primary read-only');
  // While its lease lasts, an isolated primary is still the primary.
  assert.equal(answers(view({ leaseHolder: 'self', peerReachable: false })), 'primary read-only');
});
