// The heartbeat: one query to the other node, bounded by heartbeat_timeout. It also asks
// the peer what it is (primary or standby) and, on a primary, which standbys are
// synchronous, so that a standby knows whether it may promote without losing commits.

import type { PeerObservation } from '../policy/types.js';
import { errorText } from '../util/errors.js';
import type { PgSession } from './session.js';

// On a primary peer, also its timeline: an old primary rejoins only a peer on a newer one.
const HEARTBEAT_SQL = `
WITH r AS (SELECT pg_is_in_recovery() AS in_recovery)
SELECT r.in_recovery,
       coalesce((SELECT array_agg(application_name::text) FROM pg_stat_replication
                  WHERE sync_state IN ('sync', 'quorum')), '{}') AS sync_standbys,
       CASE WHEN NOT r.in_recovery THEN
         ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END AS timeline
  FROM r`;

export async function heartbeat(session: PgSession, timeoutMs: number): Promise<PeerObservation> {
  const started = performance.now();
  try {
    const rows = await session.query<{
      in_recovery: boolean;
      sync_standbys: string[];
      timeline: number | null;
    }>(HEARTBEAT_SQL, [], timeoutMs);
    const row = rows[0];
    if (!row) return { reachable: false, error: 'heartbeat query returned no row' };
    return {
      reachable: true,
      inRecovery: row.in_recovery,
      synchronousStandbys: row.sync_standbys,
      timeline: row.timeline,
      rttMs: performance.now() - started,
    };
  } catch (err) {
    return { reachable: false, error: errorText(err) };
  }
}
