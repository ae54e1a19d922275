// pg_keeper's rule as a pure function: (state, observation, now, rule) -> decision.
// No I/O, no clock, no logger: every transition is tested with plain values.
//
// The behaviour is the table `situations` below: each tick is classified into exactly one
// situation, and the situation's handler says what to do and why.

import type {
  Action,
  Decision,
  KeeperState,
  LocalObservation,
  Observation,
  PeerObservation,
  Rule,
  StandbyView,
  VetoReason,
} from './types.js';

type UpLocal = Extract<LocalObservation, { up: true }>;
type ReachablePeer = Extract<PeerObservation, { reachable: true }>;

export type Situation =
  | 'local-down'
  | 'primary-with-standby'
  | 'two-primaries'
  | 'primary-missing-standby'
  | 'primary-lost-standby'
  | 'standby-with-primary'
  | 'standby-with-standby'
  | 'standby-missing-primary'
  | 'standby-lost-primary';

interface Tick {
  /** State with this tick's heartbeat already counted. */
  state: KeeperState;
  seen: Observation;
  local: UpLocal;
  now: number;
  rule: Rule;
}

type Handler = (t: Tick) => Omit<Decision, 'severity' | 'situation'> & { severity?: Decision['severity'] };

const situations: Record<Exclude<Situation, 'local-down'>, { comment: string; handle: Handler }> = {
  'primary-with-standby': {
    comment:
      'healthy primary: restore synchronous replication when it was switched off and the standby caught up',
    handle: (t) => restoreSyncOr(t, `primary; standby answers heartbeats (${replicationSummary(t.local)})`),
  },
  'two-primaries': {
    comment: 'both servers accept writes: never act, shout every tick until an operator demotes one',
    handle: (t) => ({
      state: t.state,
      actions: [],
      severity: 'error',
      reason: 'two primaries: the peer is also a primary; taking no action until one of them is demoted',
    }),
  },
  'primary-missing-standby': {
    comment: 'a few heartbeats failed: wait for keepalive_count before acting',
    handle: (t) =>
      restoreSyncOr(
        t,
        `primary; standby missed ${t.state.failures} of ${t.rule.keepaliveCount} heartbeats in a row`,
        'warn',
      ),
  },
  'primary-lost-standby': {
    comment: 'standby gone for the whole window: stop commits from waiting for it',
    handle: primaryLostStandby,
  },
  'standby-with-primary': {
    comment: 'healthy standby: remember the contact and whether we were the synchronous standby',
    handle: (t) => {
      const state = primaryContact(t.state, t.seen.peer as ReachablePeer, t.now);
      return {
        state,
        actions: [],
        reason: `standby; primary answers heartbeats; this standby is ${state.syncAtLastContact ? 'synchronous' : 'asynchronous'}`,
      };
    },
  },
  'standby-with-standby': {
    comment: 'no primary at all: promoting on this evidence would be a guess',
    handle: (t) => ({
      state: t.state,
      actions: [],
      severity: 'warn',
      reason: 'standby; the peer is a standby too, so there is no primary; taking no action',
    }),
  },
  'standby-missing-primary': {
    comment: 'a few heartbeats failed: wait for keepalive_count before acting',
    handle: (t) => ({
      state: t.state,
      actions: [],
      severity: 'warn',
      reason: `standby; primary missed ${t.state.failures} of ${t.rule.keepaliveCount} heartbeats in a row`,
    }),
  },
  'standby-lost-primary': {
    comment: 'primary gone for the whole window: promote, unless a guard says it would lose data or is wrong',
    handle: standbyLostPrimary,
  },
};

function classify(state: KeeperState, seen: Observation, rule: Rule): Situation {
  if (!seen.local.up) return 'local-down';
  const lost = state.failures >= rule.keepaliveCount;
  if (!seen.local.inRecovery) {
    if (seen.peer.reachable) return seen.peer.inRecovery ? 'primary-with-standby' : 'two-primaries';
    return lost ? 'primary-lost-standby' : 'primary-missing-standby';
  }
  if (seen.peer.reachable) return seen.peer.inRecovery ? 'standby-with-standby' : 'standby-with-primary';
  return lost ? 'standby-lost-primary' : 'standby-missing-primary';
}

export function decide(state: KeeperState, seen: Observation, now: number, rule: Rule): Decision {
  const counted = countHeartbeat(state, seen, now);
  if (!seen.local.up) {
    const peer = seen.peer.reachable ? 'peer answers' : `peer missed ${counted.failures} heartbeats in a row`;
    const watched =
      seen.peer.reachable && !seen.peer.inRecovery ? primaryContact(counted, seen.peer, now) : counted;
    return {
      state: { ...watched, role: 'unknown' },
      actions: [],
      severity: 'error',
      situation: 'local-down',
      reason: `local server unreachable (${seen.local.error}); ${peer}; nothing can be done on this node`,
    };
  }
  const local = seen.local;
  const withRole: KeeperState = {
    ...counted,
    role: local.inRecovery ? 'standby' : 'primary',
    standbyName: local.inRecovery ? local.standbyName : counted.standbyName,
    // The value to restore exists only while replication is asynchronous.
    savedSyncNames: !local.inRecovery && local.syncStandbyNames.trim() !== '' ? null : counted.savedSyncNames,
  };
  const situation = classify(withRole, seen, rule);
  if (situation === 'local-down') throw new Error('unreachable: local-down handled above');
  const d = situations[situation].handle({ state: withRole, seen, local, now, rule });
  return { severity: 'info', ...d, situation };
}

/** One success resets the count; a failure adds one. Vetoes are counted once per run of failures. */
function countHeartbeat(state: KeeperState, seen: Observation, now: number): KeeperState {
  if (seen.peer.reachable) {
    return {
      ...state,
      failures: 0,
      failingSince: null,
      vetoed: [],
      peerRole: seen.peer.inRecovery ? 'standby' : 'primary',
    };
  }
  return { ...state, failures: state.failures + 1, failingSince: state.failingSince ?? now };
}

/**
 * A contact with a reachable primary: remember it, and whether this node was among its
 * synchronous standbys. Also while the local server is down: the primary then drops this
 * node from its synchronous standbys (and may go async), which a later promotion must know.
 */
function primaryContact(state: KeeperState, peer: ReachablePeer, now: number): KeeperState {
  const sync = state.standbyName !== null && peer.synchronousStandbys.includes(state.standbyName);
  return { ...state, primarySeenAt: now, syncAtLastContact: sync };
}

function primaryLostStandby(t: Tick): ReturnType<Handler> {
  const { state, local, rule } = t;
  const missed = `standby missed ${state.failures} heartbeats in a row (keepalive_count ${rule.keepaliveCount})`;
  if (local.syncStandbyNames.trim() === '') {
    // restoreSyncOr says why sync is not back yet when there is something to restore.
    if (state.savedSyncNames !== null) return restoreSyncOr(t, `primary; ${missed}`, 'warn');
    return {
      state,
      actions: [],
      severity: 'warn',
      reason: `primary; ${missed}; replication is already asynchronous`,
    };
  }
  const talking = local.standbys.find((s) => s.replyAgeMs !== null && s.replyAgeMs < rule.streamSilenceMs);
  if (talking) {
    return {
      state,
      actions: [],
      severity: 'warn',
      reason:
        `primary; ${missed}, but standby ${talking.name} replied on the replication stream ` +
        `${Math.round(talking.replyAgeMs ?? 0)} ms ago; keeping synchronous replication`,
    };
  }
  if (rule.paused) return vetoed(t, 'paused', `paused: would switch to asynchronous replication (${missed})`);
  return {
    state: {
      ...state,
      savedSyncNames: local.syncStandbyNames,
      lastAction: { kind: 'switch-to-async', at: t.now },
    },
    actions: [
      { kind: 'switch-to-async' },
      { kind: 'run-hook', hook: 'after_async_command', event: 'switch-to-async' },
    ],
    severity: 'warn',
    reason: `${missed}: switching to asynchronous replication so that commits stop waiting`,
  };
}

function standbyLostPrimary(t: Tick): ReturnType<Handler> {
  const { state, local, rule } = t;
  const missed = `primary missed ${state.failures} heartbeats in a row (keepalive_count ${rule.keepaliveCount})`;
  if (state.primarySeenAt === null) {
    return vetoed(
      t,
      'never-saw-primary',
      `${missed}, but this standby has never reached the primary; not promoting`,
    );
  }
  if (rule.failoverRequiresSync && !state.syncAtLastContact) {
    return vetoed(
      t,
      'not-synchronous',
      `${missed}, but this standby was not synchronous at last contact: promoting could lose acknowledged commits; ` +
        'not promoting (failover_requires_sync: false allows it)',
    );
  }
  // A primary whose standby's connection vanished goes async after keepalive_count of its
  // own heartbeats, and says so in its synchronous standbys, which a watching keeper sees at
  // its next tick. A keeper that missed more than a tick between its last contact and the
  // first failure was not watching (frozen, restarted): the primary may have gone async
  // unseen and acknowledged commits this standby never received.
  const gap = (state.failingSince ?? t.now) - state.primarySeenAt;
  if (rule.failoverRequiresSync && gap > rule.maxContactGapMs) {
    return vetoed(
      t,
      'not-synchronous',
      `${missed}, but the last contact with the primary was ${Math.round(gap)} ms before it became unreachable: ` +
        'this keeper was not watching, and the primary may have gone asynchronous meanwhile; ' +
        'not promoting (failover_requires_sync: false allows it)',
    );
  }
  const rx = local.walReceiver;
  if (
    rx &&
    rx.status === 'streaming' &&
    rx.lastMessageAgeMs !== null &&
    rx.lastMessageAgeMs < rule.streamSilenceMs
  ) {
    return vetoed(
      t,
      'stream-alive',
      `${missed}, but the WAL receiver heard from the primary ${Math.round(rx.lastMessageAgeMs)} ms ago: ` +
        'the primary is alive and only the heartbeat path is broken; not promoting',
    );
  }
  if (rule.paused) return vetoed(t, 'paused', `paused: would promote this standby (${missed})`);
  // What to restore once the old primary returns as our standby. A standby cloned while the
  // primary was async carries '' in postgresql.auto.conf: fall back to the configured value.
  const saved =
    [local.syncStandbyNames, local.configuredSyncStandbyNames].find((v) => v && v.trim() !== '') ?? null;
  const actions: Action[] = [
    { kind: 'promote' },
    { kind: 'run-hook', hook: 'after_command', event: 'promote' },
  ];
  return {
    state: { ...state, savedSyncNames: saved, lastAction: { kind: 'promote', at: t.now } },
    actions,
    severity: 'warn',
    reason: `${missed}: promoting this standby`,
  };
}

/** A guard held: say so, and report the veto once per run of failures. */
function vetoed(t: Tick, veto: VetoReason, reason: string): ReturnType<Handler> {
  const first = !t.state.vetoed.includes(veto);
  return {
    state: first ? { ...t.state, vetoed: [...t.state.vetoed, veto] } : t.state,
    actions: [],
    severity: 'warn',
    reason,
    ...(first ? { veto } : {}),
  };
}

/**
 * On a primary that switched to async: put sync back once a standby streams, has caught up,
 * and replied recently. pg_stat_replication keeps 'streaming' for a frozen standby until
 * wal_sender_timeout, so the state alone would turn sync on for a standby that cannot
 * answer, and the next window would turn it off again, over and over.
 */
function restoreSyncOr(
  t: Tick,
  reason: string,
  severity: Decision['severity'] = 'info',
): ReturnType<Handler> {
  const { state, local, rule } = t;
  if (state.savedSyncNames === null || local.syncStandbyNames.trim() !== '')
    return { state, actions: [], reason, severity };
  const streaming = local.standbys.filter((s) => s.state === 'streaming');
  const replying = (s: StandbyView): boolean => s.replyAgeMs !== null && s.replyAgeMs < rule.streamSilenceMs;
  const caughtUp = (s: StandbyView): boolean =>
    s.replayLagBytes !== null && s.replayLagBytes <= rule.syncRestoreMaxLagBytes;
  const ready = streaming.find((s) => replying(s) && caughtUp(s));
  if (!ready) {
    const first = streaming[0];
    const why = !first
      ? 'no standby streams'
      : !replying(first)
        ? `standby ${first.name} has not replied for ${first.replyAgeMs ?? '?'} ms (stream_timeout ${rule.streamSilenceMs})`
        : `standby ${first.name} streams but is ${first.replayLagBytes ?? 'an unknown number of'} bytes behind ` +
          `(sync_restore_max_lag ${rule.syncRestoreMaxLagBytes})`;
    return { state, actions: [], severity: 'warn', reason: `${reason}; replication is asynchronous: ${why}` };
  }
  if (rule.paused) {
    return {
      state,
      actions: [],
      severity: 'warn',
      reason: `paused: would restore synchronous replication (standby ${ready.name} caught up)`,
    };
  }
  return {
    state: { ...state, lastAction: { kind: 'restore-sync', at: t.now } },
    actions: [{ kind: 'restore-sync', value: state.savedSyncNames }],
    severity: 'info',
    reason: `standby ${ready.name} streams and is ${ready.replayLagBytes} bytes behind: restoring synchronous replication`,
  };
}

function replicationSummary(local: UpLocal): string {
  if (local.syncStandbyNames.trim() === '') return 'replication asynchronous';
  const sync = local.standbys.filter((s: StandbyView) => s.syncState === 'sync' || s.syncState === 'quorum');
  return sync.length > 0
    ? `synchronous standby ${sync.map((s) => s.name).join(', ')}`
    : 'no synchronous standby streams';
}
