// Server-side timestamps from a node's postgres.log (the pair's log_line_prefix starts with %m:
// "2026-01-02 03:04:05.678 UTC [pid] ..."), to split a keeper phase into what the server did and
// what the keeper waited for. Only UTC/GMT timestamps are understood; other lines are skipped.

import { readFileSync } from 'node:fs';

const STAMP = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) (UTC|GMT) /;

export interface PgLogLine {
  at: number;
  text: string;
}

export function readPgLog(file: string): PgLogLine[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: PgLogLine[] = [];
  for (const line of text.split('\n')) {
    const m = STAMP.exec(line);
    if (m) out.push({ at: Date.parse(`${m[1]}T${m[2]}Z`), text: line });
  }
  return out;
}

/** Wall-clock ms of the first line at or after `after` containing `needle`, or null. */
export function firstPgLog(lines: readonly PgLogLine[], needle: string, after: number): number | null {
  return lines.find((l) => l.at >= Math.floor(after) && l.text.includes(needle))?.at ?? null;
}
