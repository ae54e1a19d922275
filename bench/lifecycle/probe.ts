// Watching the pair from outside while the keepers work: one kept-open connection per node
// (a new connection per poll would cost a SCRAM handshake, and CPU the keepers need), every
// query bounded, a dead connection replaced at the next poll. What the benchmark asks: is a
// node a primary, and does the primary have a synchronous standby named so.

import pg from 'pg';
import type { NodeName } from '../../src/config/config.js';
import type { ConnTarget } from '../../src/local-pair/query.js';
import { sleep } from '../../src/util/wait.js';
import { connect, destroy, wallNow, withDeadline } from '../lib/write-loop.js';

const QUERY_TIMEOUT_MS = 2000;

export interface NodeView {
  inRecovery: boolean;
  /** synchronous_standby_names is set (commits wait for a standby). */
  syncNames: boolean;
  /** application_name of each standby in pg_stat_replication, with its state and sync_state. */
  standbys: { name: string; state: string; syncState: string }[];
}

export class Probe {
  private readonly conns = new Map<NodeName, pg.Client>();

  constructor(private readonly targets: Record<NodeName, ConnTarget>) {}

  /** What `node` says now; null when it does not answer. Never throws. */
  async view(node: NodeName): Promise<NodeView | null> {
    try {
      const client = await this.connection(node);
      const r = await withDeadline(
        client.query<{ r: boolean; names: string; standbys: NodeView['standbys'] | null }>(
          `SELECT pg_is_in_recovery() AS r, current_setting('synchronous_standby_names') AS names,
                  (SELECT json_agg(json_build_object('name', application_name, 'state', state,
                                                     'syncState', sync_state))
                     FROM pg_stat_replication) AS standbys`,
        ),
        QUERY_TIMEOUT_MS,
        () => this.drop(node),
      );
      const row = r.rows[0];
      if (!row) return null;
      return { inRecovery: row.r, syncNames: row.names.trim() !== '', standbys: row.standbys ?? [] };
    } catch {
      this.drop(node);
      return null;
    }
  }

  /**
   * Wall-clock ms at which `primary` first showed `standby` streaming, or (`sync`) as its
   * synchronous standby with synchronous_standby_names set, polling every `everyMs`; null after
   * `timeoutMs`.
   */
  async waitForStandby(
    primary: NodeName,
    standby: NodeName,
    as: 'streaming' | 'sync',
    timeoutMs: number,
    everyMs = 10,
  ): Promise<number | null> {
    const seen = (v: NodeView): boolean =>
      as === 'sync'
        ? v.syncNames && v.standbys.some((s) => s.name === standby && s.syncState === 'sync')
        : v.standbys.some((s) => s.name === standby && s.state === 'streaming');
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const v = await this.view(primary);
      if (v && !v.inRecovery && seen(v)) return wallNow();
      await sleep(everyMs);
    }
    return null;
  }

  close(): void {
    for (const node of [...this.conns.keys()]) this.drop(node);
  }

  private async connection(node: NodeName): Promise<pg.Client> {
    const open = this.conns.get(node);
    if (open) return open;
    const client = await connect(this.targets[node], QUERY_TIMEOUT_MS, 'pg-keeper-bench-probe');
    this.conns.set(node, client);
    return client;
  }

  private drop(node: NodeName): void {
    const client = this.conns.get(node);
    this.conns.delete(node);
    if (client) destroy(client);
  }
}
