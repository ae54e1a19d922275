// The vocabulary of the policy: what the keeper remembers, what it sees at each tick,
// and what it may do. Pure data: nothing here performs I/O or reads a clock.

export type Role = 'primary' | 'standby' | 'unknown';
export type SyncMode = 'sync' | 'async' | 'unknown';

/** The part of the configuration that the rule needs. Times in milliseconds. */
export interface Rule {
  keepaliveTimeMs: number;
  keepaliveCount: number;
  /** How long the replication stream must have been silent before a standby may promote
   *  (or a primary may give up on its synchronous standby). Defaults to the window. */
  streamSilenceMs: number;
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
  /** Observe and export, but take no action. */
  paused: boolean;
}

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
}

/** The local standby's WAL receiver, from pg_stat_wal_receiver. */
export interface WalReceiverView {
  status: string;
  /** Time since it last heard anything from the primary; null if never. */
  lastMessageAgeMs: number | null;
}

export type LocalObservation =
  | {
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
      /** On a primary: its standbys. */
      standbys: StandbyView[];
    }
  | { up: false; error: string };

export type PeerObservation =
  | {
      reachable: true;
      inRecovery: boolean;
      /** On a primary peer: names of its standbys whose sync_state is sync or quorum. */
      synchronousStandbys: string[];
      rttMs: number;
    }
  | { reachable: false; error: string };

export interface Observation {
  local: LocalObservation;
  peer: PeerObservation;
}

export const VETO_REASONS = ['paused', 'never-saw-primary', 'not-synchronous', 'stream-alive'] as const;
export type VetoReason = (typeof VETO_REASONS)[number];

export const HOOK_NAMES = ['after_command', 'after_async_command'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

/** Every action kind, for metrics that must exist before the first action (checked against Action). */
export const ACTION_KINDS = [
  'switch-to-async',
  'promote',
  'restore-sync',
  'run-hook',
] as const satisfies readonly Action['kind'][];

export type Action =
  | { kind: 'switch-to-async' }
  | { kind: 'promote' }
  | { kind: 'restore-sync'; value: string }
  | { kind: 'run-hook'; hook: HookName; event: 'promote' | 'switch-to-async' };

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
  /** synchronous_standby_names to put back once the standby has caught up; null: nothing to restore. */
  savedSyncNames: string | null;
  /** Vetoes already reported during the current run of failures, so each is counted once. */
  vetoed: VetoReason[];
  lastAction: { kind: Action['kind']; at: number } | null;
}

export interface Decision {
  state: KeeperState;
  actions: Action[];
  /** One sentence a person can read: logged when it changes, shown in /status. */
  reason: string;
  /** A guard that stopped an action this tick, reported once per run of failures. */
  veto?: VetoReason;
  /** error: something an operator must look at now (two primaries). */
  severity: 'info' | 'warn' | 'error';
  /** Which row of the policy's table applied (decide.ts `Situation`). */
  situation: string;
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
    savedSyncNames: null,
    vetoed: [],
    lastAction: null,
  };
}

export function syncModeOf(local: LocalObservation): SyncMode {
  if (!local.up || local.inRecovery) return 'unknown';
  return local.syncStandbyNames.trim() === '' ? 'async' : 'sync';
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(x)}`);
}
