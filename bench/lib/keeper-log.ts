// Reading a keeper's own JSON log lines (pino, `time` = ISO wall clock, millisecond resolution).

import { waitFor } from '../../src/util/wait.js';
import type { KeeperProcess, LogLine } from '../../test/support/keeper-process.js';

export function lineTime(l: LogLine): number {
  return Date.parse(String(l.time));
}

/**
 * The first line matching `pred` logged at or after `after` (wall-clock ms). Log times are truncated
 * to the millisecond, so a line written during the same millisecond as `after` still counts.
 */
export function firstLine(
  k: KeeperProcess,
  pred: (l: LogLine) => boolean,
  after: number,
  before = Number.POSITIVE_INFINITY,
): LogLine | undefined {
  return k.lines.find((l) => {
    const t = lineTime(l);
    return t >= Math.floor(after) && t <= before && pred(l);
  });
}

/** Waits for the first successful `event` logged at or after `after`, polling every 10 ms. */
export function waitForOkEvent(
  k: KeeperProcess,
  event: string,
  after: number,
  what: string,
  timeoutMs: number,
): Promise<LogLine> {
  return waitFor(() => firstLine(k, okEvent(event), after), what, timeoutMs, 10);
}

/** A successful action event ('promote', 'switch-to-async', 'restore-sync'). */
export const okEvent =
  (event: string) =>
  (l: LogLine): boolean =>
    l.event === event && l.outcome === 'ok';

/** A decision line whose reason contains `text`. */
export const decision =
  (text: string) =>
  (l: LogLine): boolean =>
    l.event === 'decision' && typeof l.reason === 'string' && l.reason.includes(text);

export const heartbeatFailed = (l: LogLine): boolean => l.event === 'heartbeat-failed';

/**
 * Intervals between consecutive ticks that logged a failed heartbeat inside [from, to]: only pairs
 * of lines whose consecutive-failure count goes up by exactly one, i.e. adjacent ticks of one run
 * of failures.
 */
export function heartbeatIntervals(k: KeeperProcess, from: number, to: number): number[] {
  const lines = k.lines.filter((l) => {
    const t = lineTime(l);
    return heartbeatFailed(l) && t >= from && t <= to;
  });
  const out: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const a = lines[i - 1];
    const b = lines[i];
    if (!a || !b) continue;
    if (typeof a.count === 'number' && typeof b.count === 'number' && b.count === a.count + 1) {
      out.push(lineTime(b) - lineTime(a));
    }
  }
  return out;
}

/** One sample of a counter from the keeper's /metrics, or null. */
export async function scrape(k: KeeperProcess, name: string, labels: string): Promise<number | null> {
  const text = await (await k.get('/metrics')).text();
  const prefix = `${name}{${labels}} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line ? Number(line.slice(prefix.length)) : null;
}
