// What the alert, dashboard and exporter tests share: the list of metric names pg-keeper
// exports, and the Prometheus command-line tools from Debian's packages.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { Config } from '../../src/config/config.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { initialState } from '../../src/policy/types.js';
import { initialSnapshot, type Snapshot } from '../../src/runtime/snapshot.js';

/** Every series name pg-keeper can export (histograms expanded), plus Prometheus' own `up`. */
export async function exportedMetricNames(): Promise<Set<string>> {
  const snapshot = (): Snapshot => initialSnapshot('node1', initialState(), 0, false);
  const config = (): Config =>
    ({ keepaliveTimeMs: 5000, keepaliveCount: 4, streamTimeoutMs: 20000 }) as Config;
  const { registry } = createMetrics(snapshot, config, 'node2');
  const names = new Set(['up']);
  for (const metric of await registry.getMetricsAsJSON()) {
    // prom-client types `type` as a numeric enum, but at run time it is the text type.
    const type = String(metric.type);
    if (type === 'histogram') {
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
    } else if (type === 'summary') {
      for (const suffix of ['', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
    } else {
      names.add(metric.name);
    }
  }
  return names;
}

/** Runs promtool or amtool; a missing tool fails the test with what to do about it. */
export function runTool(
  tool: 'promtool' | 'amtool',
  args: string[],
  opts: { cwd?: string; input?: string } = {},
): string {
  const r = spawnSync(tool, args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8', timeout: 120_000 });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.fail(
      `${tool} is not installed: run scripts/ensure-deps.sh (Debian packages prometheus, prometheus-alertmanager)`,
    );
  }
  const output = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, `${tool} ${args.join(' ')} failed:\n${output}`);
  return output;
}
