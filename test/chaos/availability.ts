// When must the standby have been promoted? From the keepers' own configuration (as their /status
// reports it), never from fixed durations: a check that waited for a primary "gone 4 s" was never
// applied by seeds whose kills were shorter, and a check with a fixed deadline breaks when the
// window or the lease changes.
//
// How the primary was lost decides what the standby's keeper must wait for:
//   server-killed  connections refused at once: keepalive_count failed ticks (the window W), one
//                  heartbeat_timeout for the tick in flight; with the arbiter one more tick (the
//                  primary's keeper gives the lease up at its next tick, which may fall just after
//                  the standby's N-th)
//   server-frozen  heartbeats time out, and the WAL receiver still says 'streaming': also
//                  stream_timeout of silence (plus a tick to see it)
//   host-lost      arbiter only, the primary's keeper gone or cut off with it: the lease must also
//                  run out in etcd (TTL after the last renewal, which was before the loss), and etcd
//                  revokes expired leases only every 500 ms; then the standby's next tick
// and then the promotion itself. SLACK_MS is what a busy two-core machine adds.

/** The keepers' timing, in ms. */
export interface Timing {
  keepaliveMs: number;
  count: number;
  heartbeatTimeoutMs: number;
  streamTimeoutMs: number;
  /** The lease's TTL; null in two-node mode. */
  ttlMs: number | null;
}

export type Loss = 'server-killed' | 'server-frozen' | 'host-lost';

/** Decision to promoted and writable: measured 18-110 ms (bench/failover); a margin on top. */
export const PROMOTE_MS = 300;
/** etcd 3.4 checks for expired leases every 500 ms (lessor's revoke loop). */
export const ETCD_REVOKE_MS = 500;
/** What two shared, busy cores add to any of these (ticks late, a promotion slow). */
export const SLACK_MS = 1000;

/** The window: keepalive_count ticks of keepalive_time. */
export const windowMs = (t: Timing): number => t.keepaliveMs * t.count;

/** From the loss of the primary to the standby's promotion, at the latest, without SLACK_MS. */
export function failoverBoundMs(t: Timing, loss: Loss): number {
  const arbiterTick = t.ttlMs === null ? 0 : t.keepaliveMs;
  const killed = windowMs(t) + t.heartbeatTimeoutMs;
  const frozen = Math.max(killed, t.streamTimeoutMs + t.keepaliveMs);
  switch (loss) {
    case 'server-killed':
      return killed + arbiterTick + PROMOTE_MS;
    case 'server-frozen':
      return frozen + t.heartbeatTimeoutMs + arbiterTick + PROMOTE_MS;
    case 'host-lost': {
      if (t.ttlMs === null) throw new Error('a lost host is only waited for with the arbiter');
      const lease = t.ttlMs + ETCD_REVOKE_MS + t.keepaliveMs;
      return Math.max(frozen, lease) + PROMOTE_MS;
    }
  }
}

/**
 * A standby cut from etcd while the primary's host was lost: it may promote only once it reaches
 * etcd again and the lease has run out; ms after the loss, `reconnectMs` after the loss.
 */
export function failoverAfterReconnectMs(t: Timing, reconnectMs: number): number {
  const afterReconnect = reconnectMs + t.keepaliveMs + t.heartbeatTimeoutMs + PROMOTE_MS;
  return Math.max(failoverBoundMs(t, 'host-lost'), afterReconnect);
}

/** What one availability check saw: recorded on every fault where a promotion was owed. */
export interface AvailabilityCheck {
  loss: Loss | 'host-lost-then-reconnect';
  /** The promotion was owed by this long after the loss (bound + SLACK_MS). */
  deadlineMs: number;
  /** The loss lasted this long (a shorter one owes nothing, and is not checked). */
  lostForMs: number;
  checked: boolean;
  /** The first promotion of the other node after the loss, ms after it; null: none. */
  promotedAfterMs: number | null;
  ok: boolean;
}

/**
 * The check itself, on plain values: a loss shorter than the deadline owes nothing; a longer one
 * owes a promotion within it.
 */
export function judgeAvailability(
  loss: AvailabilityCheck['loss'],
  boundMs: number,
  lostForMs: number,
  promotedAfterMs: number | null,
): AvailabilityCheck {
  const deadlineMs = boundMs + SLACK_MS;
  const checked = lostForMs >= deadlineMs;
  const inTime = promotedAfterMs !== null && promotedAfterMs <= deadlineMs;
  return { loss, deadlineMs, lostForMs, checked, promotedAfterMs, ok: !checked || inTime };
}

/** The effective timing, from a keeper's /status `config` (seconds, as the keeper shows them). */
export function timingFromConfig(config: Record<string, unknown>): Timing {
  const n = (key: string): number => {
    const v = config[key];
    if (typeof v !== 'number')
      throw new Error(`the keeper's /status config has no number ${key}: ${String(v)}`);
    return v;
  };
  const s = (key: string): number => Math.round(n(key) * 1000);
  const arbiter = Array.isArray(config.etcd_endpoints)
    ? config.etcd_endpoints.length > 0
    : typeof config.etcd_endpoints === 'string' && config.etcd_endpoints !== '';
  return {
    keepaliveMs: s('keepalive_time'),
    count: n('keepalive_count'),
    heartbeatTimeoutMs: s('heartbeat_timeout'),
    streamTimeoutMs: s('stream_timeout'),
    ttlMs: arbiter ? s('etcd_lease_ttl') : null,
  };
}
