// The rule the policy applies, from the configuration and what this keeper has been given
// (an arbiter, a server to manage): decide() sees settings only through it.

import type { Config } from '../config/config.js';
import type { Rule } from '../policy/types.js';

/** The first wait after a failed rejoin; doubled at each failure in a row. */
export const REJOIN_BACKOFF_MS = 10_000;

export function ruleOf(cfg: Config, has: { arbiter: boolean; server: boolean; paused: boolean }): Rule {
  return {
    keepaliveTimeMs: cfg.keepaliveTimeMs,
    keepaliveCount: cfg.keepaliveCount,
    streamTimeoutMs: cfg.streamTimeoutMs,
    failoverRequiresSync: cfg.failoverRequiresSync,
    maxContactGapMs: 2 * cfg.keepaliveTimeMs + cfg.heartbeatTimeoutMs,
    syncRestoreMaxLagBytes: cfg.syncRestoreMaxLagBytes,
    tuneWalRetrieveRetryInterval: cfg.tuneWalRetrieveRetryInterval,
    arbiter: has.arbiter ? { ttlMs: cfg.etcdLeaseTtlMs, marginMs: arbiterMarginMs(cfg) } : null,
    autoRejoin: cfg.autoRejoin && has.server,
    rejoinBackoffMs: REJOIN_BACKOFF_MS,
    self: cfg.node,
    managesServer: has.server,
    paused: has.paused,
  };
}

/**
 * How much lease a primary must have left to be asynchronous: a tick and a heartbeat
 * timeout (the next chance to go back to sync), at most half the TTL. The arbiter also
 * wakes the loop when a renewal fails, so a long keepalive_time does not wait a whole tick.
 */
export function arbiterMarginMs(cfg: Config): number {
  return Math.min(cfg.keepaliveTimeMs + cfg.heartbeatTimeoutMs, cfg.etcdLeaseTtlMs / 2);
}
