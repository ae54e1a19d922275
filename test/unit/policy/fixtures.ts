// Observations and rules for the policy tests: plain values, no database.

import { decide, settle } from '../../../src/policy/decide.js';
import type {
  ArbiterView,
  Decision,
  KeeperState,
  LocalAction,
  LocalObservation,
  Observation,
  PeerObservation,
  Rule,
  StandbyView,
  UpLocal,
  Outcome,
} from '../../../src/policy/types.js';
import { initialState } from '../../../src/policy/types.js';

export function rule(keepaliveTimeMs = 200, keepaliveCount = 3, extra: Partial<Rule> = {}): Rule {
  return {
    keepaliveTimeMs,
    keepaliveCount,
    streamTimeoutMs: keepaliveTimeMs * keepaliveCount,
    failoverRequiresSync: true,
    maxContactGapMs: keepaliveTimeMs * 2 + keepaliveTimeMs * 0.8,
    syncRestoreMaxLagBytes: 1024 * 1024,
    tuneWalRetrieveRetryInterval: false,
    arbiter: null,
    autoRejoin: false,
    rejoinBackoffMs: 10_000,
    self: 'node2',
    managesServer: false,
    paused: false,
    ...extra,
  };
}

/** The arbiter's rule: keepalive 0.3 s × 3, TTL 3 s; margin: a tick and a heartbeat timeout. */
export const withArbiter = (extra: Partial<Rule> = {}): Rule =>
  rule(300, 3, { arbiter: { ttlMs: 3000, marginMs: 540 }, ...extra });

/** What the arbiter shows a keeper that holds the lease, with "sync" recorded. */
export const leaseHeld = (extra: Partial<ArbiterView> = {}): ArbiterView => ({
  reachable: true,
  error: null,
  holder: 'self',
  leaseRemainingMs: 2500,
  replication: 'sync',
  replicationRevision: 7,
  ...extra,
});

export function standbyView(extra: Partial<StandbyView> = {}): StandbyView {
  return {
    name: 'node2',
    state: 'streaming',
    syncState: 'sync',
    replayLagBytes: 0,
    replayLagSeconds: 0,
    replyAgeMs: 50,
    flushLsn: '0/3000000',
    ...extra,
  };
}

export function primaryLocal(extra: Partial<UpLocal> = {}): LocalObservation {
  return {
    up: true,
    inRecovery: false,
    syncStandbyNames: '*',
    configuredSyncStandbyNames: null,
    timeline: 1,
    standbyName: null,
    walReceiver: null,
    walRetrieveRetryIntervalMs: null,
    standbys: [standbyView()],
    replayLsn: null,
    signals: [],
    ...extra,
  };
}

export function standbyLocal(extra: Partial<UpLocal> = {}): LocalObservation {
  return {
    up: true,
    inRecovery: true,
    syncStandbyNames: '*',
    configuredSyncStandbyNames: '*',
    timeline: 1,
    standbyName: 'node2',
    walReceiver: { status: 'streaming', lastMessageAgeMs: 100 },
    walRetrieveRetryIntervalMs: 1000,
    standbys: [],
    replayLsn: '0/3000000',
    signals: [],
    ...extra,
  };
}

export const peerStandby: PeerObservation = {
  reachable: true,
  inRecovery: true,
  synchronousStandbys: [],
  timeline: null,
  rttMs: 1,
};
export const peerPrimary = (sync: string[] = ['node2']): PeerObservation => ({
  reachable: true,
  inRecovery: false,
  synchronousStandbys: sync,
  timeline: 1,
  rttMs: 1,
});
export const peerDown: PeerObservation = { reachable: false, error: 'connect ECONNREFUSED 127.0.0.1:5551' };

export const seen = (local: LocalObservation, peer: PeerObservation): Observation => ({ local, peer });

/** A standby keeper that has seen its primary as the synchronous standby. */
export function syncStandbyState(): KeeperState {
  return {
    ...initialState(),
    role: 'standby',
    peerRole: 'primary',
    primarySeenAt: 0,
    syncAtLastContact: true,
    contactThisRun: true,
  };
}

/** The primary's WAL receiver fell silent: what a standby sees once the primary is dead or frozen. */
export const silentReceiver = { status: 'streaming', lastMessageAgeMs: 60_000 };

/** The outcome of an action that succeeded at `at`, as the runtime hands it back. */
export function succeeded(action: Outcome['action'], at: number): Outcome {
  return { action, ok: true, at, durationMs: 1 };
}

/**
 * Feeds the same observation at each tick of a fake clock; returns every decision. Each
 * local action succeeds, and its outcome goes back to the policy, as the runtime does.
 */
export function run(state: KeeperState, obs: Observation, ticks: number, r: Rule = rule()): Decision[] {
  const out = [];
  let s = state;
  for (let i = 0; i < ticks; i++) {
    const now = i * r.keepaliveTimeMs;
    const d = decide(s, obs, now, r);
    out.push(d);
    s = acted(d.state, d.actions, now);
  }
  return out;
}

/** The state after `ticks` ticks, the last one's actions carried out. */
export function stateAfter(
  state: KeeperState,
  obs: Observation,
  ticks: number,
  r: Rule = rule(),
): KeeperState {
  const last = run(state, obs, ticks, r).at(-1);
  return last ? acted(last.state, last.actions, (ticks - 1) * r.keepaliveTimeMs) : state;
}

/** The state after each local action succeeded. */
export function acted(state: KeeperState, actions: readonly { kind: string }[], at: number): KeeperState {
  return actions
    .filter((a): a is LocalAction => a.kind !== 'run-hook')
    .reduce((st, a) => settle(st, succeeded(a, at)), state);
}

/** What a decision says (situation, severity, actions, sentence, veto), without the state it carries. */
export function said(d: Decision | undefined): Omit<Decision, 'state'> | undefined {
  if (d === undefined) return undefined;
  const { state: _state, ...rest } = d;
  return rest;
}
