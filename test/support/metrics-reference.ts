// What docs/METRICS.md promises about the series a keeper exports, for the tests that hold it
// to its word.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const METRICS_MD = fileURLToPath(new URL('../../docs/METRICS.md', import.meta.url));

/** The `pg_keeper_` series counts the reference gives: before the first tick, and after it. */
export function documentedSeriesCounts(): { beforeFirstTick: number; standby: number; primary: number } {
  const said =
    /(\d+) `pg_keeper_` series\s+per keeper before its first tick, (\d+) on a standby keeper and (\d+) on a primary keeper/.exec(
      readFileSync(METRICS_MD, 'utf8'),
    );
  assert.ok(said, 'docs/METRICS.md no longer says how many series a keeper exports');
  return { beforeFirstTick: Number(said[1]), standby: Number(said[2]), primary: Number(said[3]) };
}

/** The `pg_keeper_` samples of a scrape's text. */
export function countSeries(exposition: string): number {
  return exposition.split('\n').filter((l) => l.startsWith('pg_keeper_')).length;
}
