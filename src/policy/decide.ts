// pg_keeper's rule as a pure function: (state, observation, now, rule) -> decision.
// No I/O, no clock, no logger: every transition is tested with plain values.
//
// The behaviour is the table `ROWS` below. Each tick is classified into exactly one
// situation (the first row, in `SITUATIONS` order, whose `matches` holds), and that row's
// handler says what to do and why. A tick that no row matches is a bug, and says so.
// docs/SITUATIONS.md is generated from this table (`npm run docs:situations`).

import {
  FAST_WAL_RETRIEVE_RETRY_MS,
  SITUATIONS,
  type Action,
  type Decision,
  type KeeperState,
  type Observation,
  type Outcome,
  type ReachablePeer,
  type Rule,
  type Situation,
  type StandbyView,
  type UpLocal,
  type VetoReason,
} from './types.js';

interface Tick {
  /** State with this tick's heartbeat already counted. */
  state: KeeperState;
  seen: Observation;
  now: number;
  rule: Rule;
}

/** A tick whose local server answered. */
interface UpTick extends Tick {
  local: UpLocal;
}

type Handled = Omit<Decision, 'severity' | 'situation'> & { severity?: Decision['severity'] };

interface Row<T extends Tick> {
  /** When the row applies, for people: the docs show it beside `matches`. */
  when: string;
  /** Why the row does what it does: logged when the keeper enters this situation. */
  comment: string;
  /** The actions it may take. */
  may: readonly Action['kind'][];
  /** The guards that can hold it back (each a veto reason, or `paused`). */
  guards: readonly VetoReason[];
  /** Logged at every tick while it lasts, not only when it begins. */
  loud?: boolean;
  matches: (t: T) => boolean;
  handle: (t: T) => Handled;
}

const primary = (t: UpTick): boolean => !t.local.inRecovery;
const standby = (t: UpTick): boolean => t.local.inRecovery;
const peerAnswers = (t: UpTick): boolean => t.seen.peer.reachable;
const peerIsStandby = (t: UpTick): boolean => t.seen.peer.reachable && t.seen.peer.inRecovery;
const peerIsPrimary = (t: UpTick): boolean => t.seen.peer.reachable && !t.seen.peer.inRecovery;
const windowPassed = (t: UpTick): boolean => t.state.failures >= t.rule.keepaliveCount;
const asynchronous = (t: UpTick): boolean => t.local.syncStandbyNames.trim() === '';

const LOCAL_DOWN: Row<Tick> = {
  when: 'the local server does not answer',
  comment:
    'nothing can be done on this node; keep heartbeating the peer, and keep recording what a primary peer says ' +
    'about this node, which a later promotion must know',
  may: [],
  guards: [],
  // Stryker disable next-line ArrowFunction,BooleanLiteral: never called: classify() takes local-down before the table
  matches: () => true,
  handle: (t) => {
    const { seen, now } = t;
    const peer = seen.peer.reachable ? 'peer answers' : `peer missed ${t.state.failures} heartbeats in a row`;
    const watched =
      seen.peer.reachable && !seen.peer.inRecovery ? primaryContact(t.state, seen.peer, now) : t.state;
    // Stryker disable next-line StringLiteral: never used: the server is down here; '' is for the type checker
    const error = seen.local.up ? '' : seen.local.error;
    return {
      state: { ...watched, role: 'unknown' },
      actions: [],
      severity: 'error',
      reason: `local server unreachable (${error}); ${peer}; nothing can be done on this node`,
    };
  },
};

const ROWS: Record<Exclude<Situation, 'local-down'>, Row<UpTick>> = {
  'two-primaries': {
    when: 'the local server is a primary and the peer answers as a primary too',
    comment: 'both servers accept writes: never act, and shout at every tick until an operator demotes one',
    may: [],
    guards: [],
    loud: true,
    matches: (t) => primary(t) && peerIsPrimary(t),
    handle: (t) => ({
      state: t.state,
      actions: [],
      severity: 'error',
      reason: 'two primaries: the peer is also a primary; taking no action until one of them is demoted',
    }),
  },
  'primary-restoring-sync': {
    when:
      'primary, replication switched to asynchronous by the keeper, the standby answers heartbeats, streams, ' +
      'replied within stream_timeout and is within sync_restore_max_lag',
    comment:
      'the standby is back and has caught up: put synchronous replication back (never to a standby that is far ' +
      'behind, which would stall every commit, nor to a frozen one that only looks streaming)',
    may: ['restore-sync'],
    guards: ['paused'],
    matches: (t) =>
      primary(t) && peerIsStandby(t) && asynchronous(t) && t.state.savedSyncNames !== null && !!ready(t),
    handle: restoreSync,
  },
  'primary-with-standby': {
    when: 'primary, the standby answers heartbeats',
    comment: 'healthy primary: nothing to do (if it is asynchronous, say why sync is not back yet)',
    may: [],
    guards: [],
    matches: (t) => primary(t) && peerIsStandby(t),
    handle: (t) => {
      const healthy = `primary; standby answers heartbeats (${replicationSummary(t.local)})`;
      if (t.state.savedSyncNames === null || !asynchronous(t))
        return { state: t.state, actions: [], reason: healthy };
      return {
        state: t.state,
        actions: [],
        severity: 'warn',
        reason: `${healthy}; synchronous replication stays off: ${notReady(t)}`,
      };
    },
  },
  'primary-lost-standby': {
    when: 'primary, keepalive_count heartbeats to the standby failed in a row',
    comment:
      'standby gone for the whole window: stop commits from waiting for it, unless it still replies on the ' +
      'replication stream (then only the heartbeat path is broken)',
    may: ['switch-to-async', 'run-hook'],
    guards: ['paused'],
    matches: (t) => primary(t) && !peerAnswers(t) && windowPassed(t),
    handle: primaryLostStandby,
  },
  'primary-missing-standby': {
    when: 'primary, fewer than keepalive_count heartbeats to the standby failed in a row',
    comment: 'a few heartbeats failed: wait for keepalive_count before acting',
    may: [],
    guards: [],
    matches: (t) => primary(t) && !peerAnswers(t),
    handle: (t) => ({
      state: t.state,
      actions: [],
      severity: 'warn',
      reason: `primary; standby missed ${t.state.failures} of ${t.rule.keepaliveCount} heartbeats in a row`,
    }),
  },
  'standby-lost-primary': {
    when: 'standby, keepalive_count heartbeats to the primary failed in a row',
    comment: 'primary gone for the whole window: promote, unless a guard says it would lose data or is wrong',
    may: ['promote', 'run-hook'],
    guards: ['never-saw-primary', 'not-synchronous', 'stream-alive', 'paused'],
    matches: (t) => standby(t) && !peerAnswers(t) && windowPassed(t),
    handle: standbyLostPrimary,
  },
  'standby-missing-primary': {
    when: 'standby, fewer than keepalive_count heartbeats to the primary failed in a row',
    comment: 'a few heartbeats failed: wait for keepalive_count before acting',
    may: [],
    guards: [],
    matches: (t) => standby(t) && !peerAnswers(t),
    handle: (t) => ({
      state: t.state,
      actions: [],
      severity: 'warn',
      reason: `standby; primary missed ${t.state.failures} of ${t.rule.keepaliveCount} heartbeats in a row`,
    }),
  },
  'standby-with-standby': {
    when: 'standby, the peer answers as a standby too',
    comment: 'no primary at all: promoting on this evidence would be a guess',
    may: [],
    guards: [],
    matches: (t) => standby(t) && peerIsStandby(t),
    handle: (t) => ({
      state: t.state,
      actions: [],
      severity: 'warn',
      reason: 'standby; the peer is a standby too, so there is no primary; taking no action',
    }),
  },
  'standby-untuned': {
    when: `standby, the primary answers, wal_retrieve_retry_interval above ${FAST_WAL_RETRIEVE_RETRY_MS} ms`,
    comment:
      'a reload just before a promotion would make it wait out wal_retrieve_retry_interval: shorten it ' +
      '(tune_wal_retrieve_retry_interval), or warn',
    may: ['tune-wal-retrieve-retry-interval'],
    guards: ['paused'],
    matches: (t) =>
      standby(t) &&
      peerIsPrimary(t) &&
      // Stryker disable next-line ConditionalExpression: null > 1000 is false: the check is for the type checker
      t.local.walRetrieveRetryIntervalMs !== null &&
      t.local.walRetrieveRetryIntervalMs > FAST_WAL_RETRIEVE_RETRY_MS,
    handle: standbyUntuned,
  },
  'standby-with-primary': {
    when: 'standby, the primary answers heartbeats',
    comment: 'healthy standby: remember the contact, and whether this node was the synchronous standby',
    may: [],
    guards: [],
    matches: (t) => standby(t) && peerIsPrimary(t),
    handle: (t) => {
      const state = primaryContact(t.state, t.seen.peer as ReachablePeer, t.now);
      return { state, actions: [], reason: `standby; primary answers heartbeats; ${syncSummary(state)}` };
    },
  },
};

/** The table for docs and logs: every situation in classification order. */
export function situationRows(): {
  situation: Situation;
  when: string;
  comment: string;
  may: readonly Action['kind'][];
  guards: readonly VetoReason[];
}[] {
  return SITUATIONS.map((situation) => {
    const { when, comment, may, guards } = rowOf(situation);
    return { situation, when, comment, may, guards };
  });
}

function rowOf(situation: Situation): Row<Tick> | Row<UpTick> {
  return situation === 'local-down' ? LOCAL_DOWN : ROWS[situation];
}

export function commentOf(situation: Situation): string {
  return rowOf(situation).comment;
}

export function isLoud(situation: Situation): boolean {
  return rowOf(situation).loud === true;
}

function classify(t: Tick): { situation: Situation; decision: Handled } {
  const local = t.seen.local;
  if (!local.up) return { situation: 'local-down', decision: LOCAL_DOWN.handle(t) };
  const up: UpTick = { ...t, local };
  for (const situation of SITUATIONS) {
    if (situation === 'local-down') continue;
    const row = ROWS[situation];
    if (row.matches(up)) return { situation, decision: row.handle(up) };
  }
  throw new Error(
    // Stryker disable next-line StringLiteral: unreachable: every tick matches a row (decide.test.ts feeds every combination)
    `the policy does not know this situation: local ${local.inRecovery ? 'standby' : 'primary'}, ` +
      // Stryker disable next-line StringLiteral: unreachable, as above
      `peer ${t.seen.peer.reachable ? (t.seen.peer.inRecovery ? 'standby' : 'primary') : 'unreachable'}`,
  );
}

export function decide(state: KeeperState, seen: Observation, now: number, rule: Rule): Decision {
  const counted = countHeartbeat(state, seen, now);
  const local = seen.local;
  const withRole: KeeperState = !local.up
    ? counted
    : {
        ...counted,
        role: local.inRecovery ? 'standby' : 'primary',
        standbyName: local.inRecovery ? local.standbyName : counted.standbyName,
        // The value to restore exists only while replication is asynchronous.
        savedSyncNames:
          !local.inRecovery && local.syncStandbyNames.trim() !== '' ? null : counted.savedSyncNames,
      };
  const { situation, decision } = classify({ state: withRole, seen, now, rule });
  return { severity: 'info', ...decision, situation };
}

/**
 * What happened to an action, back into the policy: the one place where an outcome
 * changes what the keeper remembers. A failed action changes nothing; the next tick
 * decides again (and so retries).
 */
export function settle(state: KeeperState, outcome: Outcome): KeeperState {
  if (!outcome.ok) return state;
  const done = { ...state.done, [outcome.action.kind]: outcome.at };
  const a = outcome.action;
  switch (a.kind) {
    case 'switch-to-async':
      return { ...state, done, savedSyncNames: a.restore };
    case 'promote':
      return { ...state, done, role: 'primary', savedSyncNames: a.restore };
    case 'restore-sync':
      return { ...state, done, savedSyncNames: null };
    case 'tune-wal-retrieve-retry-interval':
      return { ...state, done };
  }
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
  return { ...state, primarySeenAt: now, syncAtLastContact: sync, contactThisRun: true };
}

function primaryLostStandby(t: UpTick): Handled {
  const { state, local, rule } = t;
  const missed = `standby missed ${state.failures} heartbeats in a row (keepalive_count ${rule.keepaliveCount})`;
  if (asynchronous(t)) {
    const back =
      state.savedSyncNames === null
        ? ''
        : '; synchronous replication comes back once the standby answers again and has caught up';
    return {
      state,
      actions: [],
      severity: 'warn',
      reason: `primary; ${missed}; replication is already asynchronous${back}`,
    };
  }
  const talking = local.standbys.find((s) => replying(s, rule));
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
    state,
    actions: [
      { kind: 'switch-to-async', restore: local.syncStandbyNames },
      { kind: 'run-hook', hook: 'after_async_command', event: 'switch-to-async' },
    ],
    severity: 'warn',
    reason: `${missed}: switching to asynchronous replication so that commits stop waiting`,
  };
}

function standbyLostPrimary(t: UpTick): Handled {
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
  if (rule.failoverRequiresSync && !state.contactThisRun) {
    return vetoed(
      t,
      'not-synchronous',
      `${missed}, but the last contact with the primary was made before this keeper started: ` +
        'this keeper was not watching, and the primary may have gone asynchronous meanwhile; ' +
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
    rx.lastMessageAgeMs < rule.streamTimeoutMs
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
  const restore =
    [local.syncStandbyNames, local.configuredSyncStandbyNames].find((v) => v && v.trim() !== '') ?? null;
  return {
    state,
    actions: [
      { kind: 'promote', restore },
      { kind: 'run-hook', hook: 'after_command', event: 'promote' },
    ],
    severity: 'warn',
    reason: `${missed}: promoting this standby`,
  };
}

function standbyUntuned(t: UpTick): Handled {
  const state = primaryContact(t.state, t.seen.peer as ReachablePeer, t.now);
  const ms = t.local.walRetrieveRetryIntervalMs ?? 0;
  const base = `standby; primary answers heartbeats; ${syncSummary(state)}`;
  if (!t.rule.tuneWalRetrieveRetryInterval || t.rule.paused) {
    const how = t.rule.paused
      ? 'paused: would shorten it'
      : 'set it to 1s, or tune_wal_retrieve_retry_interval: true';
    return {
      state,
      actions: [],
      severity: 'warn',
      reason:
        `${base}; wal_retrieve_retry_interval is ${ms} ms: a configuration reload just before a promotion ` +
        `can delay it by that long (${how})`,
    };
  }
  return {
    state,
    actions: [{ kind: 'tune-wal-retrieve-retry-interval', ms: FAST_WAL_RETRIEVE_RETRY_MS }],
    reason: `${base}; shortening wal_retrieve_retry_interval from ${ms} ms to ${FAST_WAL_RETRIEVE_RETRY_MS} ms`,
  };
}

/** A guard held: say so, and report the veto once per run of failures. */
function vetoed(t: Tick, veto: VetoReason, reason: string): Handled {
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
 * pg_stat_replication keeps 'streaming' for a frozen standby until wal_sender_timeout, so
 * the state alone would turn sync on for a standby that cannot answer, and the next window
 * would turn it off again, over and over: a standby must also have replied recently.
 */
const replying = (s: StandbyView, rule: Rule): boolean =>
  s.replyAgeMs !== null && s.replyAgeMs < rule.streamTimeoutMs;
const caughtUp = (s: StandbyView, rule: Rule): boolean =>
  s.replayLagBytes !== null && s.replayLagBytes <= rule.syncRestoreMaxLagBytes;

function ready(t: UpTick): StandbyView | undefined {
  return t.local.standbys.find((s) => s.state === 'streaming' && replying(s, t.rule) && caughtUp(s, t.rule));
}

function notReady(t: UpTick): string {
  const first = t.local.standbys.find((s) => s.state === 'streaming');
  if (!first) return 'no standby streams';
  if (!replying(first, t.rule))
    return `standby ${first.name} has not replied for ${first.replyAgeMs ?? '?'} ms (stream_timeout ${t.rule.streamTimeoutMs})`;
  return (
    `standby ${first.name} streams but is ${first.replayLagBytes ?? 'an unknown number of'} bytes behind ` +
    `(sync_restore_max_lag ${t.rule.syncRestoreMaxLagBytes})`
  );
}

function restoreSync(t: UpTick): Handled {
  const { state } = t;
  const standbyReady = ready(t) as StandbyView;
  const value = state.savedSyncNames as string;
  if (t.rule.paused) {
    return {
      state,
      actions: [],
      severity: 'warn',
      reason: `paused: would restore synchronous replication (standby ${standbyReady.name} caught up)`,
    };
  }
  return {
    state,
    actions: [{ kind: 'restore-sync', value }],
    reason:
      `standby ${standbyReady.name} streams and is ${standbyReady.replayLagBytes} bytes behind: ` +
      'restoring synchronous replication',
  };
}

function replicationSummary(local: UpLocal): string {
  if (local.syncStandbyNames.trim() === '') return 'replication asynchronous';
  const sync = local.standbys.filter((s) => s.syncState === 'sync' || s.syncState === 'quorum');
  return sync.length > 0
    ? `synchronous standby ${sync.map((s) => s.name).join(', ')}`
    : 'no synchronous standby streams';
}

function syncSummary(state: KeeperState): string {
  return `this standby is ${state.syncAtLastContact ? 'synchronous' : 'asynchronous'}`;
}
