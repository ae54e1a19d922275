// pg_keeper's rule as a pure function: (state, observation, now, rule) -> decision.
// No I/O, no clock, no logger: every transition is tested with plain values.
//
// The behaviour is the table `ROWS` below. Each tick is classified into exactly one
// situation (the first row, in `SITUATIONS` order, whose `matches` holds), and that row's
// handler says what to do and why. A tick that no row matches is a bug, and says so.
// docs/SITUATIONS.md is generated from this table (`npm run docs:situations`).

import type { NodeName } from '../config/config.js';
import {
  FAST_WAL_RETRIEVE_RETRY_MS,
  SITUATIONS,
  isFailover,
  lsnValue,
  parseSignal,
  signalText,
  type Signal,
  type SwitchoverRequest,
  type TaskView,
  type ArbiterView,
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
/** Switched to async by this keeper (an operator's own async setting is the operator's). */
const keeperAsync = (t: UpTick): boolean => asynchronous(t) && t.state.savedSyncNames !== null;

/** The arbiter's view, when the arbiter is on. */
const arbiter = (t: Tick): ArbiterView | null => (t.rule.arbiter && t.seen.arbiter ? t.seen.arbiter : null);
/** This keeper holds the lease, by its own clock. */
const holdsLease = (a: ArbiterView | null): boolean =>
  // Stryker disable next-line ConditionalExpression,LogicalOperator: every caller has already found a !== null
  a !== null &&
  // Stryker disable next-line ConditionalExpression: null > 0 is false: the check is for the type checker
  a.leaseRemainingMs !== null &&
  a.leaseRemainingMs > 0 &&
  (!a.reachable || a.holder === 'self');
/** ... with enough left to be asynchronous (the margin). */
const holdsLeaseWithMargin = (t: Tick): boolean => {
  const a = arbiter(t);
  // Stryker disable next-line OptionalChaining: holdsLease(a) is false when a is null, and a is null without the arbiter
  return holdsLease(a) && (a?.leaseRemainingMs ?? 0) > (t.rule.arbiter?.marginMs ?? 0);
};
const peerHoldsLease = (t: Tick): boolean => {
  const a = arbiter(t);
  return a !== null && a.reachable && a.holder === 'peer';
};

const LOCAL_DOWN: Row<Tick> = {
  when: 'the local server does not answer',
  comment:
    'nothing can be done on this node but giving up the lease; keep heartbeating the peer, and keep recording ' +
    'what a primary peer says about this node, which a later promotion must know',
  may: ['release-lease'],
  guards: ['paused'],
  matches: (t) => !t.seen.local.up,
  handle: (t) => {
    const { seen, now } = t;
    const peer = seen.peer.reachable ? 'peer answers' : `peer missed ${t.state.failures} heartbeats in a row`;
    const watched =
      seen.peer.reachable && !seen.peer.inRecovery ? primaryContact(t.state, seen.peer, now) : t.state;
    const state: KeeperState = { ...watched, role: 'unknown' };
    // Stryker disable next-line StringLiteral: never used: the server is down here; '' is for the type checker
    const error = seen.local.up ? '' : seen.local.error;
    const reason = `local server unreachable (${error}); ${peer}; nothing can be done on this node`;
    // A crashed server whose keeper lives must cost no lease wait: the standby then fails
    // over in the two-node time. Only the loss of a whole host costs the lease's TTL.
    const a = arbiter(t);
    if (a === null || (a.leaseRemainingMs === null && a.holder !== 'self'))
      return { state, actions: [], severity: 'error', reason };
    if (t.rule.paused)
      return { state, actions: [], severity: 'error', reason: `${reason}; paused: would give up the lease` };
    return {
      state,
      actions: [{ kind: 'release-lease' }],
      severity: 'error',
      reason: `${reason}; giving up the lease, so that the standby need not wait for it`,
    };
  },
};

/** The old primary, down or still a primary, while the peer is the primary on a newer timeline. */
function rejoinWanted(t: Tick): boolean {
  const peer = t.seen.peer;
  if (
    !t.rule.autoRejoin ||
    !peer.reachable ||
    peer.inRecovery ||
    // Stryker disable next-line ConditionalExpression: without it, null <= ours (a timeline, >= 1) is true and returns false too
    peer.timeline === null
  )
    return false;
  const local = t.seen.local;
  const ours = local.up ? (local.inRecovery ? null : local.timeline) : (t.seen.server?.timeline ?? null);
  if (ours === null || peer.timeline <= ours) return false;
  // With the arbiter, the node that holds the primary's key never becomes a standby.
  const a = arbiter(t);
  return a === null || (a.reachable && a.holder !== 'self');
}

/** A standby's switchover request is passed on for this long before it is given up. */
const SWITCHOVER_RELAY_MS = 10_000;

/** The peer's signal of this kind on the local server (for this node), if any. */
function peerSignal(t: Tick, word: Signal['word']): Signal | null {
  const local = t.seen.local;
  // Stryker disable next-line ConditionalExpression: for the type checker: only rows of an answering server read signals
  if (!local.up) return null;
  for (const text of local.signals) {
    const s = parseSignal(text);
    if (
      s &&
      s.from !== t.rule.self &&
      s.word === word &&
      (s.word !== 'switchover' || s.arg === null || s.arg === t.rule.self)
    )
      return s;
  }
  return null;
}

/** A switchover asked of this primary's keeper, directly or by the standby's signal, not answered yet. */
function pendingSwitchover(t: Tick): { id: string; to: NodeName | null } | null {
  const r = t.seen.request;
  if (r && r.id !== t.state.answeredSwitchover) return { id: r.id, to: r.to };
  const signal = peerSignal(t, 'request');
  return signal && signal.id !== t.state.answeredSwitchover ? { id: signal.id, to: signal.from } : null;
}

/**
 * The signal the standby's keeper should hold on the primary's server: "ready" (or
 * "refused", when paused) once the primary's keeper announced a switchover to it, "request"
 * while a switchover asked of it waits to be taken, else none.
 */
function wantedSignal(t: Tick): Signal | null {
  const local = t.seen.local;
  if (!local.up || !local.inRecovery) return null;
  const announce = peerSignal(t, 'switchover') ?? peerSignal(t, 'stopped');
  if (announce)
    return { from: t.rule.self, word: t.rule.paused ? 'refused' : 'ready', id: announce.id, arg: null };
  const r = t.seen.request;
  if (r && (r.to === null || r.to === t.rule.self) && !t.rule.paused)
    return { from: t.rule.self, word: 'request', id: r.id, arg: null };
  return null;
}

const sameSignal = (a: Signal | null, b: Signal | null): boolean =>
  (a === null ? '' : signalText(a)) === (b === null ? '' : signalText(b));

/** After a failed rejoin, the next waits: the backoff doubles each time, up to 10 minutes. */
function rejoinBackoffLeft(t: Tick): number {
  const failedAt = t.state.rejoinFailedAt;
  if (failedAt === null) return 0;
  const wait = Math.min(t.rule.rejoinBackoffMs * 2 ** Math.max(0, t.state.rejoinFailures - 1), 600_000);
  return Math.max(0, failedAt + wait - t.now);
}

/** The rows that apply whether or not the local server answers, in order. */
const EARLY: Record<
  'switching-over' | 'rejoining' | 'rejoin-refused' | 'rejoin-needed' | 'local-down',
  Row<Tick>
> = {
  'switching-over': {
    when: 'this keeper is handing the primary over (announce, clean stop, the standby promotes, rejoin as its standby)',
    comment: 'the switchover owns the local server until it ends: take no other action meanwhile',
    may: [],
    guards: [],
    matches: (t) => t.seen.task?.kind === 'switchover',
    handle: (t) => {
      const task = t.seen.task as TaskView;
      return {
        state: t.state,
        actions: [],
        severity: 'warn',
        reason: `planned switchover: ${task.step} (${task.detail})`,
      };
    },
  },
  rejoining: {
    when: 'a rejoin runs (stopping, rewinding or copying, starting the server as a standby)',
    comment: 'the rejoin owns the local server until it ends: take no other action meanwhile',
    may: [],
    guards: [],
    matches: (t) => t.seen.task?.kind === 'rejoin',
    handle: (t) => {
      const task = t.seen.task as TaskView;
      return {
        state: t.state,
        actions: [],
        severity: 'warn',
        reason: `rejoining the primary as its standby: ${task.step} (${task.detail})`,
      };
    },
  },
  'rejoin-refused': {
    when:
      'auto_rejoin; the peer is the primary on a newer timeline, this node is down or an old primary, and it may ' +
      'have acknowledged commits its standby lacks (it was asynchronous), or cannot tell',
    comment:
      'a rejoin would discard those commits: never silently; say so, and leave it to an operator (pg-keeper rejoin --force)',
    may: [],
    guards: [],
    matches: (t) => rejoinWanted(t) && t.state.mayHaveAckedAlone !== false,
    handle: (t) => ({
      state: t.state,
      actions: [],
      severity: 'error',
      reason:
        t.state.mayHaveAckedAlone === null
          ? 'the peer is the primary on a newer timeline, but this keeper cannot tell whether this server acknowledged ' +
            'commits its standby lacks: not rejoining (pg-keeper rejoin --force rejoins anyway)'
          : 'the peer is the primary on a newer timeline, but this server was asynchronous as a primary and may have ' +
            'acknowledged commits the new primary lacks: a rejoin would discard them; not rejoining (pg-keeper rejoin --force)',
    }),
  },
  'rejoin-needed': {
    when: 'auto_rejoin; the peer is the primary on a newer timeline, this node is down or an old primary, and nothing acknowledged can be lost',
    comment:
      "heal the pair: turn this server into the new primary's standby (pg_rewind, else pg_basebackup), so that sync comes back",
    may: ['rejoin'],
    guards: ['paused'],
    matches: rejoinWanted,
    handle: (t) => {
      const wait = rejoinBackoffLeft(t);
      if (wait > 0)
        return {
          state: t.state,
          actions: [],
          severity: 'error',
          reason: `the last rejoin failed (${t.state.rejoinFailures} in a row); trying again in ${Math.ceil(wait / 1000)} s`,
        };
      if (t.rule.paused)
        return {
          state: t.state,
          actions: [],
          severity: 'warn',
          reason: "paused: would rejoin as the new primary's standby",
        };
      return {
        state: t.state,
        actions: [{ kind: 'rejoin' }],
        severity: 'warn',
        reason: 'the peer is the primary on a newer timeline: rejoining as its standby',
      };
    },
  },
  'local-down': LOCAL_DOWN,
};

const ROWS: Record<Exclude<Situation, keyof typeof EARLY>, Row<UpTick>> = {
  'two-primaries': {
    when: 'the local server is a primary and the peer answers as a primary too',
    comment: 'both servers accept writes: never act, and shout at every tick until an operator demotes one',
    may: [],
    guards: [],
    loud: true,
    matches: (t) => primary(t) && peerIsPrimary(t),
    handle: (t) => {
      const a = arbiter(t);
      const lease = !a?.reachable
        ? ''
        : a.holder === 'self'
          ? '; this node holds the lease: the peer must be demoted'
          : a.holder === 'peer'
            ? '; the peer holds the lease: this node must be demoted'
            : '';
      return {
        state: t.state,
        actions: [],
        severity: 'error',
        reason: `two primaries: the peer is also a primary; taking no action until one of them is demoted${lease}`,
      };
    },
  },
  'switchover-requested': {
    when: "primary; a switchover was asked of this keeper (POST /switchover) or, through a signal, of the standby's keeper",
    comment:
      'hand the primary over, but only to a standby that is synchronous, caught up and replying, and never while paused: ' +
      'no acknowledged commit may be lost, and writes stop only for a clean stop and a promotion',
    may: ['switchover'],
    guards: ['paused'],
    matches: (t) => primary(t) && pendingSwitchover(t) !== null && !t.seen.task,
    handle: (t) => {
      const { id, to } = pendingSwitchover(t) as { id: string; to: NodeName | null };
      const answered = { ...t.state, answeredSwitchover: id };
      const refuse = (why: string): Handled => ({
        state: answered,
        actions: [],
        severity: 'warn',
        reason: `switchover ${id} refused: ${why}`,
        switchover: { id, refused: why },
      });
      if (to === t.rule.self) return refuse(`${t.rule.self} is already the primary`);
      if (!t.rule.managesServer)
        return refuse("the primary's keeper has no data_directory: it cannot stop and restart its server");
      if (t.rule.paused) return refuse('the keeper is paused');
      if (!peerIsStandby(t)) return refuse('the standby does not answer heartbeats');
      const standby = t.local.standbys.find(
        (x) => x.state === 'streaming' && (x.syncState === 'sync' || x.syncState === 'quorum'),
      );
      if (asynchronous(t) || !standby) return refuse('no standby is synchronous now');
      if (!replying(standby, t.rule))
        return refuse(`standby ${standby.name} has not replied for ${standby.replyAgeMs ?? '?'} ms`);
      if (!caughtUp(standby, t.rule))
        return refuse(
          `standby ${standby.name} is ${standby.replayLagBytes ?? 'an unknown number of'} bytes behind ` +
            `(sync_restore_max_lag ${t.rule.syncRestoreMaxLagBytes})`,
        );
      return {
        state: answered,
        actions: [{ kind: 'switchover', id }],
        severity: 'warn',
        reason: `switchover ${id}: handing the primary over to synchronous standby ${standby.name}`,
        switchover: { id, refused: null },
      };
    },
  },
  'primary-fencing': {
    when:
      'arbiter on; primary switched to asynchronous by the keeper, and its lease is not held with more than ' +
      'the margin left (lost, expiring, not renewed)',
    comment:
      'synchronous replication is the fence: a primary without the lease must never acknowledge a commit alone, ' +
      'so it goes back to synchronous replication before its lease could expire (commits then wait)',
    may: ['restore-sync'],
    guards: ['paused'],
    matches: (t) => arbiter(t) !== null && primary(t) && keeperAsync(t) && !holdsLeaseWithMargin(t),
    handle: (t) => {
      // Stryker disable next-line OptionalChaining: this row matches only with the arbiter's view
      const left = arbiter(t)?.leaseRemainingMs ?? null;
      const why =
        left === null ? 'this keeper does not hold the lease' : `its lease has ${Math.round(left)} ms left`;
      if (t.rule.paused)
        return {
          state: t.state,
          actions: [],
          severity: 'error',
          reason: `paused: would go back to synchronous replication (${why})`,
        };
      return {
        state: t.state,
        actions: [{ kind: 'restore-sync', value: t.state.savedSyncNames as string }],
        severity: 'error',
        reason:
          // Stryker disable next-line OptionalChaining: this row matches only with the arbiter on
          `primary; asynchronous, but ${why} (margin ${t.rule.arbiter?.marginMs} ms): going back to synchronous ` +
          'replication, so that it acknowledges no commit its standby lacks',
      };
    },
  },
  'primary-without-lease': {
    when: 'arbiter on; primary, and etcd says the peer holds the lease',
    comment:
      'not a primary to anyone: /primary answers 503 and its commits wait for a standby; it must become the ' +
      "lease holder's standby (an operator, or a rejoin)",
    may: [],
    guards: [],
    matches: (t) => primary(t) && peerHoldsLease(t),
    handle: (t) => ({
      state: t.state,
      actions: [],
      severity: 'error',
      reason:
        'primary, but the peer holds the lease: this server is not the primary to anyone (/primary answers 503) ' +
        "and its commits wait; make it the peer's standby",
    }),
  },
  'primary-claiming-lease': {
    when: 'arbiter on; primary, etcd answers, and neither node holds the lease (or only a key left from before a restart)',
    comment:
      'the primary takes the lease (create-if-absent): without it, it may not switch to asynchronous replication',
    may: ['claim-lease'],
    guards: ['paused'],
    matches: (t) => {
      const a = arbiter(t);
      return (
        a !== null &&
        primary(t) &&
        a.reachable &&
        // Stryker disable next-line ConditionalExpression,StringLiteral: primary-without-lease, the row before, takes a primary whose peer holds the lease
        a.holder !== 'peer' &&
        !holdsLease(a)
      );
    },
    handle: (t) => {
      if (t.rule.paused)
        return {
          state: t.state,
          actions: [],
          severity: 'warn',
          reason: 'paused: would take the lease for this primary',
        };
      return {
        state: t.state,
        actions: [{ kind: 'claim-lease', replicationRevision: null, recordAsync: false }],
        reason: 'primary; taking the lease',
      };
    },
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
  'primary-recording-sync': {
    when:
      'arbiter on; primary holding the lease, synchronous, etcd does not record "sync", and a synchronous ' +
      'standby has flushed past the point where sync came back',
    comment:
      'record in etcd that replication is synchronous, only once no commit acknowledged alone can be missing on ' +
      'the standby: from then on it may promote',
    may: ['record-replication'],
    guards: ['paused'],
    matches: (t) => {
      const a = arbiter(t);
      return (
        a !== null &&
        primary(t) &&
        a.reachable &&
        holdsLease(a) &&
        !asynchronous(t) &&
        // Stryker disable next-line ConditionalExpression: decide() clears savedSyncNames whenever the primary is synchronous, as !asynchronous(t) requires
        t.state.savedSyncNames === null &&
        a.replication !== 'sync' &&
        flushedPastBarrier(t) !== undefined
      );
    },
    handle: (t) => {
      const standby = flushedPastBarrier(t) as StandbyView;
      if (t.rule.paused)
        return {
          state: t.state,
          actions: [],
          severity: 'warn',
          reason: 'paused: would record that replication is synchronous',
        };
      return {
        state: t.state,
        actions: [{ kind: 'record-replication', mode: 'sync' }],
        reason: `standby ${standby.name} is synchronous and has every commit: recording that replication is synchronous`,
      };
    },
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
    may: ['record-replication', 'switch-to-async', 'run-hook'],
    guards: ['paused', 'arbiter-unreachable', 'no-lease'],
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
  'switchover-promoting': {
    when: "standby; the primary's keeper signals that its server stopped cleanly, and this standby has replayed its shutdown checkpoint",
    comment:
      'promote at once, without waiting for the window: the old primary sent every WAL record before it stopped, ' +
      'so nothing acknowledged can be missing here',
    may: ['claim-lease', 'promote', 'run-hook'],
    guards: ['paused'],
    matches: (t) => {
      const stopped = peerSignal(t, 'stopped');
      return (
        standby(t) &&
        stopped !== null &&
        stopped.arg !== null &&
        t.local.replayLsn !== null &&
        lsnValue(t.local.replayLsn) > lsnValue(stopped.arg)
      );
    },
    handle: (t) => {
      const stopped = peerSignal(t, 'stopped') as Signal;
      if (t.rule.paused)
        return {
          state: t.state,
          actions: [],
          severity: 'warn',
          reason: 'paused: would promote for the switchover',
        };
      const a = arbiter(t);
      const restore =
        [t.local.syncStandbyNames, t.local.configuredSyncStandbyNames].find((v) => v && v.trim() !== '') ??
        null;
      return {
        state: t.state,
        actions: [
          ...(a === null
            ? []
            : [
                {
                  kind: 'claim-lease',
                  replicationRevision: a.replicationRevision,
                  recordAsync: true,
                } as const,
              ]),
          { kind: 'promote', restore },
          { kind: 'run-hook', hook: 'after_command', event: 'promote' },
        ],
        severity: 'warn',
        reason: `switchover ${stopped.id}: the primary stopped cleanly at ${stopped.arg}, replayed past it: promoting`,
      };
    },
  },
  'switchover-expected': {
    when: "standby; the primary's keeper announces a switchover to this node (it will stop its server)",
    comment:
      'a planned stop is not a failure: do not fail over while the announcement lasts (it goes with the announcing ' +
      "keeper's session), and promote once the stop is complete",
    may: ['signal'],
    guards: [],
    matches: (t) => standby(t) && (peerSignal(t, 'switchover') !== null || peerSignal(t, 'stopped') !== null),
    handle: (t) => {
      const announce = (peerSignal(t, 'switchover') ?? peerSignal(t, 'stopped')) as Signal;
      const request = t.seen.request;
      return {
        state: t.state,
        actions: [],
        severity: 'warn',
        reason: `switchover ${announce.id}: the primary's keeper is handing over to this node; waiting for its clean stop`,
        ...(request && request.id === announce.id ? { switchover: { id: request.id, refused: null } } : {}),
      };
    },
  },
  'switchover-relaying': {
    when: "standby; a switchover was asked of this keeper: it asks the primary's keeper, through a signal",
    comment: "only the primary's keeper can stop its server: pass the request on, and give up after a while",
    may: ['signal'],
    guards: [],
    matches: (t) => standby(t) && t.seen.request !== undefined,
    handle: (t) => {
      const request = t.seen.request as SwitchoverRequest;
      const refuse = (why: string): Handled => ({
        state: t.state,
        actions: [],
        severity: 'warn',
        reason: `switchover ${request.id} refused: ${why}`,
        switchover: { id: request.id, refused: why },
      });
      if (request.to !== null && request.to !== t.rule.self)
        return refuse(`${request.to} is already the primary`);
      if (t.rule.paused) return refuse('the keeper is paused');
      if (t.now - request.at > SWITCHOVER_RELAY_MS)
        return refuse(
          `the primary's keeper did not take it within ${SWITCHOVER_RELAY_MS / 1000} s (see its log)`,
        );
      return {
        state: t.state,
        actions: [],
        reason: `switchover ${request.id}: asking the primary's keeper to hand over to this node`,
      };
    },
  },
  'standby-lost-primary': {
    when: 'standby, keepalive_count heartbeats to the primary failed in a row',
    comment: 'primary gone for the whole window: promote, unless a guard says it would lose data or is wrong',
    may: ['claim-lease', 'promote', 'run-hook'],
    guards: [
      'never-saw-primary',
      'not-synchronous',
      'stream-alive',
      'paused',
      'arbiter-unreachable',
      'no-lease',
    ],
    // Stryker disable next-line ConditionalExpression,LogicalOperator: every primary is taken by a primary-* row before; a peer that answers leaves failures at 0
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
  'standby-releasing-lease': {
    when: 'arbiter on; standby whose keeper holds the lease while the peer answers as a primary',
    comment:
      'the lease belongs with the primary (a claim whose promotion then failed, or a key from before a restart): give it back',
    may: ['release-lease'],
    guards: ['paused'],
    matches: (t) => {
      const a = arbiter(t);
      return (
        a !== null &&
        standby(t) &&
        peerIsPrimary(t) &&
        (holdsLease(a) || (a.reachable && a.holder === 'self'))
      );
    },
    handle: (t) => {
      const state = primaryContact(t.state, t.seen.peer as ReachablePeer, t.now);
      if (t.rule.paused)
        return {
          state,
          actions: [],
          severity: 'warn',
          reason: 'paused: would give the lease back to the primary',
        };
      return {
        state,
        actions: [{ kind: 'release-lease' }],
        severity: 'warn',
        reason: 'standby holding the lease while the primary answers heartbeats: giving it back',
      };
    },
  },
  'standby-untuned': {
    when: `standby, the primary answers, wal_retrieve_retry_interval above ${FAST_WAL_RETRIEVE_RETRY_MS} ms`,
    comment:
      'a reload just before a promotion would make it wait out wal_retrieve_retry_interval: shorten it ' +
      '(tune_wal_retrieve_retry_interval), or warn',
    may: ['tune-wal-retrieve-retry-interval'],
    guards: ['paused'],
    matches: (t) =>
      // Stryker disable next-line ConditionalExpression,LogicalOperator: the rows before take every primary, and every standby whose peer is not a primary
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
    // Stryker disable next-line ConditionalExpression,LogicalOperator: the rows before take every primary, and every standby whose peer is not a primary
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
  return isEarly(situation) ? EARLY[situation] : ROWS[situation];
}

function isEarly(situation: Situation): situation is keyof typeof EARLY {
  return Object.hasOwn(EARLY, situation);
}

export function commentOf(situation: Situation): string {
  return rowOf(situation).comment;
}

export function isLoud(situation: Situation): boolean {
  return rowOf(situation).loud === true;
}

function classify(t: Tick): { situation: Situation; decision: Handled } {
  for (const situation of SITUATIONS) {
    if (!isEarly(situation)) continue;
    const row = EARLY[situation];
    if (row.matches(t)) return { situation, decision: row.handle(t) };
  }
  const local = t.seen.local;
  // Stryker disable next-line ConditionalExpression: for the type checker: local-down, an early row, matches every down server
  if (!local.up)
    // Stryker disable next-line StringLiteral: unreachable, as above
    throw new Error('the policy does not know this situation: local-down did not match a down server');
  const up: UpTick = { ...t, local };
  for (const situation of SITUATIONS) {
    if (isEarly(situation)) continue;
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
        mayHaveAckedAlone: ackedAlone(counted, local),
      };
  const tick = { state: withRole, seen, now, rule };
  const { situation, decision } = classify(tick);
  // Across rows: the signal a standby's keeper holds on the primary's server follows the
  // switchover's progress (a server that does not answer changes nothing it holds).
  const held = seen.held ?? null;
  const wanted = seen.local.up ? wantedSignal(tick) : held;
  const signal: Action[] = sameSignal(wanted, held) ? [] : [{ kind: 'signal', signal: wanted }];
  return { severity: 'info', ...decision, actions: [...decision.actions, ...signal], situation };
}

/**
 * What happened to an action, back into the policy: the one place where an outcome
 * changes what the keeper remembers. A failed action changes nothing; the next tick
 * decides again (and so retries). `situation`: the row whose decision asked for the action
 * (null for a task's outcome): a promotion is a failover unless it was a switchover's.
 */
export function settle(
  state: KeeperState,
  outcome: Outcome,
  situation: Situation | null = null,
): KeeperState {
  // A failed rejoin is counted, so that the next automatic one waits (backoff).
  if (!outcome.ok && outcome.action.kind === 'rejoin')
    return { ...state, rejoinFailures: state.rejoinFailures + 1, rejoinFailedAt: outcome.at };
  if (!outcome.ok) return state;
  const done = { ...state.done, [outcome.action.kind]: outcome.at };
  const a = outcome.action;
  switch (a.kind) {
    case 'switch-to-async':
      return { ...state, done, savedSyncNames: a.restore };
    case 'promote':
      return {
        ...state,
        done,
        role: 'primary',
        savedSyncNames: a.restore,
        lastFailoverAt: isFailover(situation) ? outcome.at : state.lastFailoverAt,
      };
    case 'restore-sync':
      return { ...state, done, savedSyncNames: null, syncBarrierLsn: outcome.lsn ?? null };
    case 'record-replication':
      return { ...state, done, syncBarrierLsn: a.mode === 'sync' ? null : state.syncBarrierLsn };
    case 'rejoin':
      return { ...state, done, mayHaveAckedAlone: false, rejoinFailures: 0, rejoinFailedAt: null };
    case 'switchover':
    case 'signal':
    case 'tune-wal-retrieve-retry-interval':
    case 'claim-lease':
    case 'release-lease':
      return { ...state, done };
  }
}

/**
 * A primary seen asynchronous may acknowledge commits alone; once synchronous again, those
 * are safe only when a synchronous standby has flushed past the point where sync came back
 * (with no such point recorded, any synchronous standby streaming will do). A standby has no
 * commits of its own: whatever it was before is gone (rewound, or copied afresh).
 */
function ackedAlone(state: KeeperState, local: UpLocal): boolean | null {
  if (local.inRecovery) return false;
  if (local.syncStandbyNames.trim() === '') return true;
  const barrier = state.syncBarrierLsn;
  const flushedPast = local.standbys.some(
    (s) =>
      s.state === 'streaming' &&
      (s.syncState === 'sync' || s.syncState === 'quorum') &&
      (barrier === null || (s.flushLsn !== null && lsnValue(s.flushLsn) >= lsnValue(barrier))),
  );
  if (flushedPast) return false;
  return state.mayHaveAckedAlone ?? false;
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
  // Stryker disable next-line ConditionalExpression: a list of names never includes null; the test is for the type checker
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
  const a = arbiter(t);
  if (a !== null && !a.reachable)
    return vetoed(
      t,
      'arbiter-unreachable',
      `${missed}, but etcd does not answer (${a.error ?? 'no answer'}): a primary may be asynchronous only under ` +
        'the lease, recorded in etcd first; keeping synchronous replication (commits wait)',
    );
  if (a !== null && !holdsLeaseWithMargin(t))
    return vetoed(
      t,
      'no-lease',
      // Stryker disable next-line OptionalChaining: a !== null here, so the arbiter is on
      `${missed}, but this keeper does not hold the lease with more than ${rule.arbiter?.marginMs} ms left; ` +
        'keeping synchronous replication (commits wait)',
    );
  return {
    state,
    actions: [
      // "Replication is asynchronous" goes to etcd before the switch: a standby must never read "sync" then.
      ...(a !== null ? [{ kind: 'record-replication', mode: 'async' } as const] : []),
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
  const a = arbiter(t);
  if (a !== null && !a.reachable)
    return vetoed(
      t,
      'arbiter-unreachable',
      `${missed}, but etcd does not answer (${a.error ?? 'no answer'}): a standby that cannot take the lease ` +
        'never promotes',
    );
  if (a !== null && a.holder === 'peer')
    return vetoed(
      t,
      'no-lease',
      `${missed}, but the primary's keeper still holds the lease: the primary may be alive and only cut from ` +
        'this node; not promoting until its lease expires',
    );
  if (a !== null && rule.failoverRequiresSync && a.replication !== 'sync')
    return vetoed(
      t,
      'not-synchronous',
      `${missed}, but etcd records ${a.replication === 'async' ? 'that replication was asynchronous' : 'no synchronous replication'}: ` +
        'promoting could lose acknowledged commits; not promoting (failover_requires_sync: false allows it)',
    );
  // What to restore once the old primary returns as our standby. A standby cloned while the
  // primary was async carries '' in postgresql.auto.conf: fall back to the configured value.
  const restore =
    [local.syncStandbyNames, local.configuredSyncStandbyNames].find((v) => v && v.trim() !== '') ?? null;
  // With the arbiter: take the key, still checking the record read this tick, and record
  // "async" in the same transaction, for the promoted server stops waiting for a standby.
  const claim: Action[] =
    a === null
      ? []
      : [
          {
            kind: 'claim-lease',
            replicationRevision: rule.failoverRequiresSync ? a.replicationRevision : null,
            recordAsync: true,
          },
        ];
  return {
    state,
    actions: [
      ...claim,
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

/** A synchronous standby that has flushed past the point where sync came back (any, when none is pending). */
function flushedPastBarrier(t: UpTick): StandbyView | undefined {
  const barrier = t.state.syncBarrierLsn;
  return t.local.standbys.find(
    (s) =>
      s.state === 'streaming' &&
      (s.syncState === 'sync' || s.syncState === 'quorum') &&
      (barrier === null || (s.flushLsn !== null && lsnValue(s.flushLsn) >= lsnValue(barrier))),
  );
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
