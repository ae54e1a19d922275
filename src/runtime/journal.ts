// What the keeper has seen and done, in one place: the snapshot (which /status, the metrics
// and the health checks read), its recent events, and the log lines that say them. The loop
// and its helpers (switchovers.ts, hook-runs.ts) all write here, and nowhere else.

import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { Counts } from './counts.js';
import { EVENT_HISTORY, type KeeperEvent, type Snapshot } from './snapshot.js';

export type Level = 'info' | 'warn' | 'error';

export class Journal {
  constructor(
    private snap: Snapshot,
    private readonly clock: Clock,
    readonly log: Logger,
  ) {}

  get snapshot(): Snapshot {
    return this.snap;
  }

  update(patch: Partial<Snapshot>): void {
    this.snap = { ...this.snap, ...patch };
  }

  count(how: (c: Counts) => Counts): void {
    this.update({ counts: how(this.snap.counts) });
  }

  /** An event for /status; logged at `level` (null: kept, not logged). */
  record(e: Omit<KeeperEvent, 'at'>, level: Level | null): void {
    const event: KeeperEvent = { at: this.clock.now(), ...e };
    this.update({ events: [...this.snap.events, event].slice(-EVENT_HISTORY) });
    if (level)
      this.log[level](
        { event: e.event, outcome: e.outcome, reason: e.detail },
        `${e.event}: ${e.outcome}: ${e.detail}`,
      );
  }
}
