// The shipped alerting: every alert complete (severity, summary, description, a runbook that
// exists), naming its pair, tested where it fires and where it does not, built only on metrics
// that pg-keeper exports, and the Alertmanager example's grouping by pair and inhibitions. That
// promtool and amtool accept the files, run the rules' unit tests and route as documented:
// test/e2e/prometheus-tools.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { exportedMetricNames } from '../support/prometheus-tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RULES = 'alerts/pg-keeper.rules.yml';
const RULE_TESTS = 'alerts/tests/pg-keeper.rules.test.yml';
const ALERTMANAGER = 'docs/examples/alertmanager.yml';
const RUNBOOKS = 'docs/runbooks';
const RUNBOOK_BASE = 'https://github.com/pg-keeper/pg-keeper/blob/main/docs/runbooks/';
const SEVERITIES = new Set(['critical', 'warning', 'info']);

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesFile {
  groups: { name: string; rules: AlertRule[] }[];
}
interface RuleTestsFile {
  tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
}

const rulesFile = parse(readFileSync(`${ROOT}${RULES}`, 'utf8')) as RulesFile;
const alerts = rulesFile.groups.flatMap((g) => g.rules);

/** PgKeeperTwoPrimaries -> pg-keeper-two-primaries */
function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'bool',
  'inf',
  'nan',
  'atan2',
]);

/** Metric names in a PromQL expression: identifiers that are not functions, keywords,
 *  label names, strings, durations or numbers. */
function metricNames(expr: string): string[] {
  const s = expr
    .replace(/#.*$/gm, '')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  const names: string[] = [];
  for (const m of s.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*/g)) {
    const isCall = /^\s*\(/.test(s.slice(m.index + m[0].length));
    if (!isCall && !KEYWORDS.has(m[0].toLowerCase())) names.push(m[0]);
  }
  return names;
}

const ruleTests = parse(readFileSync(`${ROOT}${RULE_TESTS}`, 'utf8')) as RuleTestsFile;

test('every alert has unit tests where it fires and where it does not', () => {
  const cases = ruleTests.tests.flatMap((t) => t.alert_rule_test ?? []);
  for (const { alert } of alerts) {
    const own = cases.filter((c) => c.alertname === alert);
    assert.ok(
      own.some((c) => (c.exp_alerts ?? []).length > 0),
      `${alert}: no test where it fires`,
    );
    assert.ok(
      own.some((c) => (c.exp_alerts ?? []).length === 0),
      `${alert}: no test where it stays quiet`,
    );
  }
});

test('the rules are one group named pg-keeper', () => {
  assert.deepEqual(
    rulesFile.groups.map((g) => g.name),
    ['pg-keeper'],
  );
  assert.ok(alerts.length > 0);
  for (const rule of alerts) assert.ok(rule.alert, `not an alerting rule: ${JSON.stringify(rule)}`);
});

test('every alert has a severity, a summary, a description and a runbook that exists', () => {
  for (const { alert, labels, annotations } of alerts) {
    // A templated severity may only ever produce one of the known values.
    const severity = (labels?.severity ?? '').split(/\{\{.*?\}\}/).filter((s) => s !== '');
    assert.ok(severity.length > 0, `${alert}: no severity label`);
    for (const s of severity)
      assert.ok(SEVERITIES.has(s), `${alert}: severity ${s} is not critical|warning|info`);
    assert.ok(annotations?.summary?.trim(), `${alert}: no summary`);
    assert.match(
      annotations?.description ?? '',
      /\{\{.*\$labels\.(node|job|instance).*\}\}/,
      `${alert}: description names no node`,
    );
    const page = `${kebab(alert)}.md`;
    assert.equal(annotations?.runbook_url, `${RUNBOOK_BASE}${page}`, `${alert}: runbook_url`);
    assert.ok(existsSync(`${ROOT}${RUNBOOKS}/${page}`), `${alert}: ${RUNBOOKS}/${page} does not exist`);
  }
});

test('every runbook belongs to an alert, and the index links them all', () => {
  const pages = new Set(alerts.map((a) => `${kebab(a.alert)}.md`));
  const files = readdirSync(`${ROOT}${RUNBOOKS}`).filter((f) => f !== 'README.md');
  assert.deepEqual(
    files.filter((f) => !pages.has(f)),
    [],
    'runbooks without an alert',
  );
  const index = readFileSync(`${ROOT}${RUNBOOKS}/README.md`, 'utf8');
  for (const page of pages) assert.ok(index.includes(`(${page})`), `README.md does not link ${page}`);
});

test('metricNames finds metric names and nothing else', () => {
  assert.deepEqual(
    metricNames(
      'sum by (job) (rate(foo_total{a="b",c=~"d"}[5m] offset 15m)) > on(job) group_left(node) bar * 1e9 and up',
    ),
    ['foo_total', 'bar', 'up'],
  );
});

test('alerts use only metrics that pg-keeper exports', async () => {
  const exported = await exportedMetricNames();
  assert.ok(
    exported.has('pg_keeper_role') && exported.has('process_start_time_seconds'),
    'registry looks empty',
  );
  const unknown = new Set<string>();
  for (const { alert, expr, labels, annotations } of alerts) {
    const used = metricNames(expr);
    assert.ok(used.length > 0, `${alert}: no metric found in its expression`);
    // Templates may query Prometheus too.
    const templates = Object.values({ ...labels, ...annotations }).join('\n');
    used.push(...(templates.match(/\b(?:pg_keeper|process|nodejs)_[a-z_]+/g) ?? []));
    for (const name of used) if (!exported.has(name)) unknown.add(`${alert}: ${name}`);
  }
  assert.deepEqual([...unknown], [], 'metrics that pg-keeper does not export');
});

interface AlertmanagerConfig {
  route: { group_by?: string[] };
  inhibit_rules?: { source_matchers?: string[]; target_matchers?: string[]; equal?: string[] }[];
}
const alertmanager = parse(readFileSync(`${ROOT}${ALERTMANAGER}`, 'utf8')) as AlertmanagerConfig;

test('two primaries, no primary or a failover inhibit the heartbeat warnings of the same pair only', () => {
  const rules = (alertmanager.inhibit_rules ?? []).filter((r) =>
    (r.target_matchers ?? []).some((m) => m.includes('PgKeeperHeartbeatsFailing')),
  );
  const sources = rules.flatMap((r) => r.source_matchers ?? []).join(' ');
  for (const alert of ['PgKeeperTwoPrimaries', 'PgKeeperNoPrimary', 'PgKeeperFailover'])
    assert.match(sources, new RegExp(alert), `${alert} does not inhibit PgKeeperHeartbeatsFailing`);
  for (const rule of rules) assert.deepEqual(rule.equal, ['job', 'cluster']);
});

test('every alert about a pair names it: in its summary, and as the cluster label it fires with', () => {
  // PgKeeperAbsent is about the whole job; every other alert joins pg_keeper_node_info.
  const PAIR_WIDE = new Set(['PgKeeperTwoPrimaries', 'PgKeeperNoPrimary']);
  for (const { alert, expr, annotations } of alerts) {
    if (alert === 'PgKeeperAbsent') continue;
    assert.match(annotations?.summary ?? '', /\$labels\.cluster/, `${alert}: summary does not name the pair`);
    assert.match(expr, /pg_keeper_node_info/, `${alert}: not joined with pg_keeper_node_info`);
    assert.match(expr, /\bcluster\b/, `${alert}: does not take cluster from pg_keeper_node_info`);
  }
  // What promtool checks the alerts fire with: a node's alert, or a pair-wide one, has its pair.
  const cases = ruleTests.tests.flatMap((t) => t.alert_rule_test ?? []);
  let checked = 0;
  for (const c of cases) {
    for (const exp of (c.exp_alerts ?? []) as { exp_labels?: Record<string, string> }[]) {
      const labels = exp.exp_labels ?? {};
      if (!('node' in labels) && !PAIR_WIDE.has(c.alertname)) continue;
      checked++;
      assert.ok(
        labels.cluster,
        `${c.alertname}: an expected alert without cluster: ${JSON.stringify(labels)}`,
      );
    }
  }
  assert.ok(checked > 20, `only ${checked} expected alerts checked`);
});

test('the Alertmanager example groups notifications by pair, not by node', () => {
  const groupBy = alertmanager.route.group_by ?? [];
  assert.ok(groupBy.includes('cluster'), `group_by ${groupBy.join(', ')} lacks cluster`);
  assert.ok(!groupBy.includes('node'), 'group_by node would split one pair into one notification per keeper');
  // How a real Alertmanager groups a failover: test/e2e/monitoring.test.ts.
});
