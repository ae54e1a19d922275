// A planned switchover as this keeper takes part in it: the request POST /switchover makes
// (for the policy to take or refuse at the next tick), and the report /status shows
// (`switchover`: its phase, and how it ended). What to do is the policy's; this is the record.

import { randomBytes } from 'node:crypto';
import type { NodeName } from '../config/config.js';
import type { Decision, Outcome, Situation, SwitchoverRequest } from '../policy/types.js';
import type { Clock } from './clock.js';
import { countSwitchover } from './counts.js';
import type { Journal } from './journal.js';
import type { SwitchoverReport } from './snapshot.js';

/** Where a standby's keeper is while the primary's keeper hands over to it. */
const RELAYED_SITUATIONS: readonly Situation[] = ['switchover-expected', 'switchover-promoting'];

export interface Report {
  id: string;
  phase: string;
  result: SwitchoverReport['result'];
  reason: string;
  ended?: boolean;
}

export class Switchovers {
  /** A switchover asked of this keeper, until the policy takes or refuses it. */
  request: SwitchoverRequest | null = null;
  /**
   * A switchover this keeper took as the standby (the primary's keeper does the work): its
   * report ends when this node is promoted for it, or when it stops being under way.
   */
  private relayed: string | null = null;

  constructor(
    private readonly j: Journal,
    private readonly clock: Clock,
  ) {}

  /** POST /switchover. `busy`: a switchover task runs already. */
  ask(to: NodeName | null, busy: boolean): { id: string } | { refused: string } {
    if (this.request || busy || this.j.snapshot.switchover?.result === 'running')
      return { refused: 'a switchover is already in progress' };
    const id = randomBytes(4).toString('hex');
    this.request = { id, to, at: this.clock.now() };
    this.report({ id, phase: 'requested', result: 'running', reason: `to ${to ?? 'the other node'}` });
    this.j.record(
      { event: 'switchover-request', outcome: 'info', detail: `${id}, to ${to ?? 'the peer'}` },
      'warn',
    );
    return { id };
  }

  /** What a decision said of a switchover: taken (`taskRunning`: already under way), or refused. */
  decided(d: Decision, taskRunning: boolean): void {
    if (this.relayed !== null && !RELAYED_SITUATIONS.includes(d.situation)) {
      // The primary's keeper stopped handing over (it died, or withdrew its announcement).
      this.report({ id: this.relayed, phase: 'failed', result: 'failed', reason: d.reason, ended: true });
      this.relayed = null;
    }
    if (!d.switchover) return;
    const { id, refused } = d.switchover;
    if (this.request?.id === id) {
      this.request = null;
      if (refused !== null) {
        this.report({ id, phase: 'refused', result: 'refused', reason: refused, ended: true });
        this.refused(refused);
      } else if (!taskRunning) {
        this.report({ id, phase: 'taken', result: 'running', reason: d.reason });
        // Without a switchover action of its own, this keeper is the standby's: it waits.
        if (!d.actions.some((a) => a.kind === 'switchover')) this.relayed = id;
      }
    } else if (refused !== null) {
      // A request signalled by the standby's keeper: it learns of the refusal by its timeout.
      this.refused(refused);
    }
  }

  /** An action's outcome: the promotion that ends a switchover this keeper took as the standby. */
  settled(o: Outcome): void {
    if (this.relayed === null || o.action.kind !== 'promote' || !o.ok) return;
    this.report({
      id: this.relayed,
      phase: 'done',
      result: 'ok',
      reason: 'this node is the primary; the old primary becomes its standby',
      ended: true,
    });
    this.relayed = null;
  }

  /** The switchover task ended. */
  ended(o: Outcome, peer: NodeName): void {
    if (o.action.kind !== 'switchover') return;
    this.report({
      id: o.action.id,
      phase: o.ok ? 'done' : 'failed',
      result: o.ok ? 'ok' : 'failed',
      reason: o.error ?? `${peer} is the primary; this node is its standby`,
      ended: true,
    });
  }

  report(r: Report): void {
    const now = this.clock.now();
    const prev = this.j.snapshot.switchover?.id === r.id ? this.j.snapshot.switchover : null;
    this.j.update({
      switchover: {
        id: r.id,
        phase: r.phase,
        result: r.result,
        reason: r.reason,
        startedAt: prev?.startedAt ?? now,
        endedAt: r.ended ? now : null,
      },
    });
  }

  private refused(why: string): void {
    this.j.count((c) => countSwitchover(c, 'refused'));
    this.j.record({ event: 'switchover', outcome: 'failed', detail: `refused: ${why}` }, 'warn');
  }
}
