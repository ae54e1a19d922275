// Observations and rules for the policy tests: plain values, no database.

import type {
  KeeperState,
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
    paused: false,
    ...extra,
  };
}

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
