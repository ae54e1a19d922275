// Order statistics for small benchmark samples (10 runs is typical).
//
// Quantiles interpolate linearly between the two nearest ranks (the usual "type 7" definition, as
// numpy and R use by default), so the p90 of 10 samples lies between the 9th and the 10th.

export interface Summary {
  n: number;
  min: number;
  median: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  stddev: number;
}

/** The q-quantile (0..1) of an ascending array; NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] ?? Number.NaN;
  const b = sorted[hi] ?? Number.NaN;
  return a + (b - a) * (pos - lo);
}

/** min / median / p90 / p99 / max / mean / stddev of the finite values; null when there are none. */
export function summarize(values: readonly number[]): Summary | null {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
  const variance = xs.length > 1 ? xs.reduce((s, v) => s + (v - mean) ** 2, 0) / (xs.length - 1) : 0;
  return {
    n: xs.length,
    min: xs[0] ?? Number.NaN,
    median: quantile(xs, 0.5),
    p90: quantile(xs, 0.9),
    p99: quantile(xs, 0.99),
    max: xs[xs.length - 1] ?? Number.NaN,
    mean,
    stddev: Math.sqrt(variance),
  };
}

/** Rounds for JSON and tables: 0.1 ms is below anything these measurements resolve. */
export function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

/** A measure in a report: whole ms from 100 up, else to 0.1; '-' when there is none. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return '-';
  return Math.abs(v) >= 100 ? String(Math.round(v)) : v.toFixed(1);
}

/** One line of a report's table: a measure and its samples. */
export interface TableRow {
  label: string;
  values: number[];
}

/**
 * A report's table: under `title`, a line per row with n, min, median, p90 and max of its
 * samples, the label padded to `labelWidth`; `more` adds columns after the max (its header and
 * each row's cells).
 */
export function summaryTable<R extends TableRow>(
  title: string,
  rows: R[],
  labelWidth: number,
  more?: { head: string; cells: (s: Summary, row: R) => string },
): string {
  const head = `${'  ms'.padEnd(labelWidth + 2)}${['n', 'min', 'median', 'p90', 'max'].map((h) => h.padStart(8)).join('')}${more?.head ?? ''}`;
  const lines = [title, head];
  for (const row of rows) {
    const s = summarize(row.values);
    if (!s) {
      lines.push(`  ${row.label.padEnd(labelWidth)}${'0'.padStart(8)}   (no samples)`);
      continue;
    }
    const cells = [String(s.n), fmt(s.min), fmt(s.median), fmt(s.p90), fmt(s.max)]
      .map((c) => c.padStart(8))
      .join('');
    lines.push(`  ${row.label.padEnd(labelWidth)}${cells}${more?.cells(s, row) ?? ''}`);
  }
  return lines.join('\n');
}
