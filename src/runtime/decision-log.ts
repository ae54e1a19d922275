// When a decision is worth a log line. A keeper decides at every tick (five times a second
// at 0.2 s); its sentence often carries a count that grows at every tick ("missed 20
// heartbeats in a row"), which logged each time is about 35,000 lines a day at the default
// 5 s. So a decision is logged when its sentence changes, numbers aside; when it acts, or a
// guard holds for the first time in a run; at every tick for a loud situation (two
// primaries); and otherwise as a reminder every REMINDER_MS while an unhealthy one lasts.

import type { Logger } from 'pino';
import { commentOf, isLoud } from '../policy/decide.js';
import type { Decision, PeerObservation, Situation } from '../policy/types.js';

export const REMINDER_MS = 60_000;

export class DecisionLog {
  private last: { sentence: string; at: number } | null = null;

  /** Whether to log `d` now, and whether the line is a reminder of an unchanged one. */
  consider(d: Decision, now: number): { log: boolean; reminder: boolean } {
    const sentence = d.reason.replace(/\d+(\.\d+)?/g, '#');
    const same = this.last !== null && sentence === this.last.sentence;
    const reminder = same && d.severity !== 'info' && now - (this.last?.at ?? now) >= REMINDER_MS;
    const log = !same || reminder || d.actions.length > 0 || d.veto !== undefined || isLoud(d.situation);
    if (log) this.last = { sentence, at: now };
    return { log, reminder };
  }

  /** Logs `d` if it is news, with the row's comment and the situation it left. */
  note(d: Decision, previous: Situation | null, now: number, log: Logger): void {
    const { log: news, reminder } = this.consider(d, now);
    if (!news) return;
    log[d.severity](
      {
        event: 'decision',
        situation: d.situation,
        ...(previous !== null && previous !== d.situation ? { previous } : {}),
        comment: commentOf(d.situation),
        reason: d.reason,
        count: d.state.failures,
        ...(reminder ? { reminder: true } : {}),
      },
      d.reason,
    );
  }
}

/**
 * A heartbeat's line: the first failure of a run is news (warn); the count that follows is in
 * /status and the metrics (debug); the first success after failures says how many there were.
 */
export function logHeartbeat(
  log: Logger,
  peer: string,
  seen: PeerObservation,
  before: number,
  failures: number,
): void {
  if (seen.reachable) {
    if (before > 0)
      log.info(
        { event: 'heartbeat-ok', peer, after: before },
        `${peer} answers heartbeats again after ${before} failed`,
      );
    return;
  }
  log[failures === 1 ? 'warn' : 'debug'](
    { event: 'heartbeat-failed', peer, count: failures, error: seen.error },
    `heartbeat to ${peer} failed (${failures} in a row): ${seen.error}`,
  );
}
