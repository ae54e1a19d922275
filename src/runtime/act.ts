// Carrying out one of the policy's actions on the local server or etcd, with its bound, and
// the sentence that says what it did (the log, /status's events). What an action's outcome
// means for the policy is settle()'s (src/policy/decide.ts).

import type { Config } from '../config/config.js';
import { assertNever, signalText, type LocalAction, type Outcome, type Signal } from '../policy/types.js';
import type { KeeperDeps } from './ports.js';

/** How long pg_promote() may wait for the promotion to complete. */
export const PROMOTE_WAIT_S = 30;
const ACTION_TIMEOUT_MS = 10_000;

/** The actions the loop carries out itself (a rejoin and a switchover are tasks: tasks.ts). */
export type LoopAction = Exclude<LocalAction, { kind: 'rejoin' | 'switchover' }>;

/** Carries out one action; restore-sync returns the WAL position once sync is back. */
export function perform(
  action: LoopAction,
  deps: Pick<KeeperDeps, 'local' | 'arbiter'>,
  cfg: Config,
  hold: (signal: Signal | null) => Promise<void>,
): Promise<string | void> {
  const local = deps.local;
  const arbiterTimeout = cfg.heartbeatTimeoutMs;
  const arbiter = () => {
    if (!deps.arbiter) throw new Error('no arbiter is configured (etcd_endpoints)');
    return deps.arbiter;
  };
  switch (action.kind) {
    case 'switch-to-async':
      return local.switchToAsync(ACTION_TIMEOUT_MS);
    case 'promote':
      return local.promote(PROMOTE_WAIT_S, (PROMOTE_WAIT_S + 5) * 1000);
    case 'restore-sync':
      return local.restoreSync(action.value, ACTION_TIMEOUT_MS);
    case 'tune-wal-retrieve-retry-interval':
      return local.setWalRetrieveRetryInterval(action.ms, ACTION_TIMEOUT_MS);
    case 'claim-lease':
      return arbiter().claim(action.replicationRevision, action.recordAsync, arbiterTimeout);
    case 'release-lease':
      return arbiter().release(arbiterTimeout);
    case 'record-replication':
      return arbiter().record(action.mode, arbiterTimeout);
    case 'signal':
      return hold(action.signal);
    default:
      return assertNever(action);
  }
}

/** What a successful action did, in a sentence. */
export function outcomeDetail(o: Outcome, reason: string): string {
  const a = o.action;
  switch (a.kind) {
    case 'promote':
      return `${reason}; promoted in ${Math.round(o.durationMs)} ms`;
    case 'restore-sync':
      return `synchronous_standby_names = '${a.value}'; ${reason}`;
    case 'tune-wal-retrieve-retry-interval':
      return `wal_retrieve_retry_interval set to ${a.ms} ms (${reason})`;
    case 'switch-to-async':
      return reason;
    case 'claim-lease':
      return a.recordAsync
        ? `took the lease, recorded "async" in etcd (${reason})`
        : `took the lease (${reason})`;
    case 'release-lease':
      return `gave the lease up (${reason})`;
    case 'record-replication':
      return `recorded "${a.mode}" in etcd (${reason})`;
    case 'rejoin':
      return `now a standby of the new primary, by ${o.method ?? '?'}, in ${Math.round(o.durationMs / 100) / 10} s (${reason})`;
    case 'switchover':
      return `handed the primary over in ${Math.round(o.durationMs / 100) / 10} s; this node is a standby again (${reason})`;
    case 'signal':
      return a.signal === null
        ? 'withdrew the signal to the peer'
        : `signalled the peer: ${signalText(a.signal)}`;
    default:
      return assertNever(a);
  }
}
