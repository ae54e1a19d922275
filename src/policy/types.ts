// The vocabulary of the policy: what the keeper remembers, what it sees at each tick,
// and what it may do. Pure data: nothing here performs I/O or reads a clock.

import type { NodeName } from '../config/config.js';

export type Role = 'primary' | 'standby' | 'unknown';
export const ROLES: readonly Role[] = ['primary', 'standby', 'unknown'];
export type SyncMode = 'sync' | 'async' | 'unknown';

/** The part of the configuration that the rule needs. Times in milliseconds. */
export interface Rule {
  keepaliveTimeMs: number;
  keepaliveCount: number;
  /** How long the replication stream must have been silent before a standby may promote
   *  (or a primary may give up on its synchronous standby): `stream_timeout`. */
  streamTimeoutMs: number;
  /** Promote only a standby that was synchronous at last contact with the primary. */
  failoverRequiresSync: boolean;
  /**
   * The longest gap between the last contact with the primary and the first failed
   * heartbeat that still means "watched without a break" (two ticks plus a heartbeat's
   * timeout). Longer, and the primary may have gone async unseen.
   */
  maxContactGapMs: number;
  /** Restore synchronous replication once the standby's replay is within this many bytes. */
  syncRestoreMaxLagBytes: number;
  /** Shorten a standby's wal_retrieve_retry_interval when it would delay a promotion. */
  tuneWalRetrieveRetryInterval: boolean;
  /** The etcd arbiter, when configured; null: two-node mode. */
  arbiter: ArbiterRule | null;
  /** Rejoin the old primary as the new primary's standby by itself (needs data_directory). */
  autoRejoin: boolean;
  /** After a rejoin failed, wait this long before the next attempt (doubled each time, at most 10 min). */
  rejoinBackoffMs: number;
  /** This keeper's node: a switchover request names the node to become the primary. */
  self: NodeName;
  /** data_directory is set: the keeper can stop and start its server (a switchover needs it). */
  managesServer: boolean;
  /** Observe and export, but take no action. */
  paused: boolean;
}

export interface ArbiterRule {
  /** etcd_lease_ttl. */
  ttlMs: number;
  /**
   * A primary may be asynchronous only while its lease has more than this left, by its own
   * clock; with less, it goes back to synchronous replication (the fence).
   */
  marginMs: number;
}

/**
 * A standby promotes within a second or two after a configuration reload only when its
 * wal_retrieve_retry_interval is this short; longer, and a reload just before the
 * promotion makes the startup process sit it out (measured: 5.04 s in 6 of 8 runs at 5 s).
 */
export const FAST_WAL_RETRIEVE_RETRY_MS = 1000;

/** A standby as the local primary sees it in pg_stat_replication. */
export interface StandbyView {
  name: string;
  state: string;
  syncState: string;
  /** pg_current_wal_lsn() - replay_lsn; null while unknown. */
  replayLagBytes: number | null;
  replayLagSeconds: number | null;
  /** Time since the standby's last reply on the replication stream; null if never. */
  replyAgeMs: number | null;
  /** The WAL position the standby has flushed (pg_lsn text, e.g. 0/3000060); null while unknown. */
  flushLsn: string | null;
}

/** The local standby's WAL receiver, from pg_stat_wal_receiver. */
export interface WalReceiverView {
  status: string;
  /** Time since it last heard anything from the primary; null if never. */
  lastMessageAgeMs: number | null;
}

export interface UpLocal {
  up: true;
  inRecovery: boolean;
  syncStandbyNames: string;
  /**
   * On a standby: synchronous_standby_names as the configuration files give it without
   * postgresql.auto.conf, where a keeper's switch to async (copied by pg_basebackup) lives.
   */
  configuredSyncStandbyNames: string | null;
  timeline: number | null;
  /** Name under which this server streams from its primary (application_name). */
  standbyName: string | null;
  /** Present on a standby whose WAL receiver is running. */
  walReceiver: WalReceiverView | null;
  /** On a standby: its wal_retrieve_retry_interval; null on a primary. */
  walRetrieveRetryIntervalMs: number | null;
  /** On a primary: its standbys. */
  standbys: StandbyView[];
  /** On a standby: the WAL position it has replayed (pg_lsn text). */
  replayLsn: string | null;
  /** application_name of the sessions on this server that carry a keeper's signal (pg-keeper:...). */
  signals: string[];
}

export type LocalObservation = UpLocal | { up: false; error: string };

export interface ReachablePeer {
  reachable: true;
  inRecovery: boolean;
  /** On a primary peer: the timeline it writes on. */
  timeline: number | null;
  /** On a primary peer: names of its standbys whose sync_state is sync or quorum. */
  synchronousStandbys: string[];
  rttMs: number;
}

export type PeerObservation = ReachablePeer | { reachable: false; error: string };

export type ReplicationRecord = 'sync' | 'async';

/** What the keeper knows from etcd at this tick (src/arbiter/etcd.ts). */
export interface ArbiterView {
  /** This tick's read of etcd succeeded. */
  reachable: boolean;
  /** Why it did not; null when it did. */
  error: string | null;
  /** Whose lease holds the primary's key, as read this tick; null: nobody, or not read. */
  holder: 'self' | 'peer' | null;
  /**
   * This keeper holds the key under a lease it renews, with this much left by its own
   * monotonic clock, counted from the send time of the last renewal that succeeded (not
   * from what an etcd client would report, which learns of a lost lease late). null: not held.
   */
  leaseRemainingMs: number | null;
  /** What etcd records about replication: written before a switch to async, cleared after sync is back. */
  replication: ReplicationRecord | null;
  /** mod_revision of that record (0: never written): a promotion's claim compares against it. */
  replicationRevision: number;
}

/** The local server's data directory, read while the server does not answer (data_directory set). */
export interface ServerView {
  running: boolean;
  /** pg_controldata's "Database cluster state". */
  clusterState: string;
  timeline: number | null;
}

/** A long piece of work running beside the loop (a rejoin, a switchover): its progress. */
export interface TaskView {
  kind: 'rejoin' | 'switchover';
  step: string;
  detail: string;
  startedAt: number;
}

export interface SwitchoverRequest {
  id: string;
  /** The node to become the primary; null: the other one. */
  to: NodeName | null;
  at: number;
}

export const SIGNAL_WORDS = ['request', 'switchover', 'ready', 'refused', 'stopped'] as const;
export type SignalWord = (typeof SIGNAL_WORDS)[number];

/**
 * What one keeper tells the other, only through PostgreSQL: a session it holds on the
 * peer's server whose application_name is `pg-keeper:<from>:<word>:<id>[:<arg>]`.
 *   request     the standby's keeper asks the primary's for a switchover to it
 *   switchover  the primary's keeper announces it: it will stop its server
 *   ready       the standby's keeper has seen it and will promote, not fail over
 *   refused     ... will not (paused): the primary's keeper gives up
 *   stopped     the primary stopped cleanly; arg: its shutdown checkpoint's LSN
 */
export interface Signal {
  from: NodeName;
  word: SignalWord;
  id: string;
  arg: string | null;
}

export function signalText(s: Signal): string {
  return ['pg-keeper', s.from, s.word, s.id, ...(s.arg === null ? [] : [s.arg])].join(':');
}

export function parseSignal(text: string): Signal | null {
  const [tag, from, word, id, ...rest] = text.split(':');
  if (tag !== 'pg-keeper' || (from !== 'node1' && from !== 'node2') || !id || !/^[a-z0-9]{1,16}$/.test(id))
    return null;
  const w = SIGNAL_WORDS.find((x) => x === word);
  return w ? { from, word: w, id, arg: rest.length > 0 ? rest.join(':') : null } : null;
}

export interface Observation {
  local: LocalObservation;
  peer: PeerObservation;
  /** With data_directory, while the local server does not answer. */
  server?: ServerView;
  /** A rejoin or a switchover running now. */
  task?: TaskView;
  /** A planned switchover asked of this keeper (POST /switchover), not yet taken or refused. */
  request?: SwitchoverRequest;
  /** The signal this keeper holds on the peer's server now, if any. */
  held?: Signal;
  /** Absent in two-node mode. */
  arbiter?: ArbiterView;
}

export const VETO_REASONS = [
  'paused',
  'never-saw-primary',
  'not-synchronous',
  'stream-alive',
  /** The arbiter: the other node holds the primary's key. */
  'no-lease',
  /** The arbiter: etcd does not answer, so nothing that needs the lease can be done. */
  'arbiter-unreachable',
] as const;
export type VetoReason = (typeof VETO_REASONS)[number];

export const HOOK_NAMES = ['after_command', 'after_async_command'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

export type Action =
  /** `restore`: the synchronous_standby_names to put back once the standby has caught up. */
  | { kind: 'switch-to-async'; restore: string }
  /** `restore`: what to put back once the old primary streams again as this node's standby. */
  | { kind: 'promote'; restore: string | null }
  | { kind: 'restore-sync'; value: string }
  | { kind: 'tune-wal-retrieve-retry-interval'; ms: number }
  /**
   * Take the primary's key under a new lease (create-if-absent; or re-bind a key this node
   * still holds from before a restart). For a promotion, `replicationRevision` must still be
   * the record's revision (it said sync), and `recordAsync` writes "async" in the same
   * transaction: the promoted server stops waiting for a standby at once.
   */
  | { kind: 'claim-lease'; replicationRevision: number | null; recordAsync: boolean }
  /** Revoke this keeper's lease: the key goes with it, for the peer to take. */
  | { kind: 'release-lease' }
  /** Write what replication is in etcd, under the lease. */
  | { kind: 'record-replication'; mode: ReplicationRecord }
  /** Turn the local server into the peer's standby (stop, rewind or copy, start): runs beside the loop. */
  | { kind: 'rejoin' }
  /** Hand the primary over to the peer (announce, stop cleanly, wait for its promotion, rejoin it): beside the loop. */
  | { kind: 'switchover'; id: string }
  /** Hold this signal on the peer's server (null: hold none). */
  | { kind: 'signal'; signal: Signal | null }
  | { kind: 'run-hook'; hook: HookName; event: 'promote' | 'switch-to-async' };

/** The actions the keeper carries out itself (on its server or in etcd): their outcome goes back into the policy. */
export type LocalAction = Exclude<Action, { kind: 'run-hook' }>;
export type LocalActionKind = LocalAction['kind'];

/** Every local action kind, for metrics that must exist before the first action (checked against Action). */
export const LOCAL_ACTION_KINDS = [
  'switch-to-async',
  'promote',
  'restore-sync',
  'tune-wal-retrieve-retry-interval',
  'claim-lease',
  'release-lease',
  'record-replication',
  'rejoin',
  'switchover',
  'signal',
] as const satisfies readonly LocalActionKind[];

/** What happened to an action: the runtime hands it back to the policy (`settle`). */
export interface Outcome {
  action: LocalAction;
  ok: boolean;
  /** Wall-clock ms when it ended. */
  at: number;
  durationMs: number;
  /** Why it failed; absent when ok. */
  error?: string;
  /** restore-sync: the primary's WAL position once sync was back (pg_lsn text). */
  lsn?: string;
  /** rejoin: how (pg_rewind, a fresh base backup, or only a restart as a standby). */
  method?: 'rewind' | 'basebackup' | 'restart';
}

/**
 * Each row of the policy's table, in the order a tick is classified (first match wins).
 * `decide.ts` holds what each row does; `docs/SITUATIONS.md` is generated from it.
 */
export const SITUATIONS = [
  'switching-over',
  'rejoining',
  'rejoin-refused',
  'rejoin-needed',
  'local-down',
  'two-primaries',
  'switchover-requested',
  'primary-fencing',
  'primary-without-lease',
  'primary-claiming-lease',
  'primary-restoring-sync',
  'primary-recording-sync',
  'primary-with-standby',
  'primary-lost-standby',
  'primary-missing-standby',
  'switchover-promoting',
  'switchover-expected',
  'switchover-relaying',
  'standby-lost-primary',
  'standby-missing-primary',
  'standby-with-standby',
  'standby-releasing-lease',
  'standby-untuned',
  'standby-with-primary',
] as const;
export type Situation = (typeof SITUATIONS)[number];

/** What the keeper remembers between ticks (and, through the state file, across restarts). */
export interface KeeperState {
  role: Role;
  peerRole: Role;
  /** Consecutive failed heartbeats: the count the rule compares with keepalive_count. */
  failures: number;
  /** Wall-clock ms of the first failed heartbeat of the current run; null after a success. */
  failingSince: number | null;
  /** The name this node streams under when it is a standby, as last seen (kept while its server is down). */
  standbyName: string | null;
  /** Wall-clock ms of the last heartbeat that found the peer as a primary (standby side). */
  primarySeenAt: number | null;
  /** Whether this node was the primary's synchronous standby at that last contact. */
  syncAtLastContact: boolean;
  /**
   * Whether that contact was made by this run of the keeper. One remembered from the state
   * file satisfies never-saw-primary, but proves nothing about what the primary did while
   * this keeper was not running.
   */
  contactThisRun: boolean;
  /** synchronous_standby_names to put back once the standby has caught up; null: nothing to restore. */
  savedSyncNames: string | null;
  /**
   * Arbiter: the WAL position at which synchronous replication came back. Commits before it
   * may have been acknowledged alone; etcd's record says "sync" again only once a
   * synchronous standby has flushed past it. null: no such point pending.
   */
  syncBarrierLsn: string | null;
  /**
   * Whether the local server, as a primary, may have acknowledged commits its standby lacks
   * (it was seen asynchronous, and no synchronous standby has flushed past the point where
   * sync came back since). A rejoin would discard them: it is refused. null: unknown (never
   * seen as a primary, nor remembered).
   */
  mayHaveAckedAlone: boolean | null;
  /** Rejoins that failed in a row, and when the last did: the next automatic one waits (backoff). */
  rejoinFailures: number;
  rejoinFailedAt: number | null;
  /** The last switchover request this keeper answered (taken or refused): a request is answered once. */
  answeredSwitchover: string | null;
  /** Vetoes already reported during the current run of failures, so each is counted once. */
  vetoed: VetoReason[];
  /** Wall-clock ms at which each kind of local action last succeeded: the one record of outcomes. */
  done: Partial<Record<LocalActionKind, number>>;
  /**
   * Wall-clock ms of this node's last promotion that was a failover: one decided in any
   * situation but a planned switchover's (isFailover). null: never.
   */
  lastFailoverAt: number | null;
}

export interface Decision {
  state: KeeperState;
  actions: Action[];
  /** One sentence a person can read: shown in /status, logged when the situation changes. */
  reason: string;
  /** A guard that stopped an action this tick, reported once per run of failures. */
  veto?: VetoReason;
  /** error: something an operator must look at now (two primaries). */
  severity: 'info' | 'warn' | 'error';
  /** Which row of the policy's table applied. */
  situation: Situation;
  /** The answer to the pending switchover request: taken (refused null), or refused, and why. */
  switchover?: { id: string; refused: string | null };
}

export function initialState(): KeeperState {
  return {
    role: 'unknown',
    peerRole: 'unknown',
    failures: 0,
    failingSince: null,
    standbyName: null,
    primarySeenAt: null,
    syncAtLastContact: false,
    contactThisRun: false,
    savedSyncNames: null,
    syncBarrierLsn: null,
    mayHaveAckedAlone: null,
    rejoinFailures: 0,
    rejoinFailedAt: null,
    answeredSwitchover: null,
    vetoed: [],
    done: {},
    lastFailoverAt: null,
  };
}

/**
 * Whether a promotion decided in this situation is a failover. Only a planned switchover's
 * (the primary stopped cleanly and handed over) is not; a situation of null (an outcome
 * from outside the loop's decisions) counts as a failover, the side that pages.
 */
export function isFailover(situation: Situation | null): boolean {
  return situation !== 'switchover-promoting';
}

/** The most recent successful local action, if any. */
export function lastAction(state: KeeperState): { kind: LocalActionKind; at: number } | null {
  let last: { kind: LocalActionKind; at: number } | null = null;
  for (const kind of LOCAL_ACTION_KINDS) {
    const at = state.done[kind];
    if (at !== undefined && (last === null || at > last.at)) last = { kind, at };
  }
  return last;
}

export function syncModeOf(local: LocalObservation): SyncMode {
  if (!local.up || local.inRecovery) return 'unknown';
  return local.syncStandbyNames.trim() === '' ? 'async' : 'sync';
}

/** Both servers accept writes: the local one and the peer are primaries. */
export function peerIsAlsoPrimary(seen: Observation | null): boolean {
  return !!seen && seen.local.up && !seen.local.inRecovery && seen.peer.reachable && !seen.peer.inRecovery;
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(x)}`);
}

/** LSNs as PostgreSQL prints them (hi/lo in hex), comparable. */
export function lsnValue(lsn: string): bigint {
  // split() always yields a first part; a second only when there is a '/'.
  const [hi, lo] = lsn.split('/') as [string, string | undefined];
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo ?? '0'}`);
}
