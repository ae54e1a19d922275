// The shipped monitoring through Prometheus' own tools (Debian's promtool and amtool; scripts/ensure-deps.sh
// installs them, and these tests fail, rather than skip, without them): the alert rules load
// without warnings and their unit tests pass, the Alertmanager example loads and routes as
// documented, every dashboard query parses and the key panels show the right values, and the
// example Prometheus configuration loads. What can be checked without the tools is in
// test/unit/alerts.test.ts and test/unit/dashboard.test.ts.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { dataPanels, exprs, interpolate, queryAnnotations } from '../support/dashboard-model.js';
import { runTool } from '../support/prometheus-tools.js';
import { makeDir, rmDir } from '../support/temp-dir.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RULES = 'alerts/pg-keeper.rules.yml';
const RULE_TESTS = 'alerts/tests/pg-keeper.rules.test.yml';
const ALERTMANAGER = 'docs/examples/alertmanager.yml';

interface RulesFile {
  groups: { name: string; rules: { alert: string; labels?: Record<string, string> }[] }[];
}
const alerts = (parse(readFileSync(`${ROOT}${RULES}`, 'utf8')) as RulesFile).groups.flatMap((g) => g.rules);

const run = (tool: 'promtool' | 'amtool', args: string[]): string => runTool(tool, args, { cwd: ROOT });
const promtool = (args: string[]): string => run('promtool', args);

describe('alerts/', () => {
  test('promtool accepts the rules without warnings', () => {
    const out = run('promtool', ['check', 'rules', RULES]);
    assert.match(out, new RegExp(`SUCCESS: ${alerts.length} rules found`));
    assert.doesNotMatch(out, /warn/i);
  });

  test('alerts/*.yml holds only rule files: `promtool check rules alerts/*.yml` passes', () => {
    const files = readdirSync(`${ROOT}alerts`).filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'));
    assert.deepEqual(files, ['pg-keeper.rules.yml']);
    assert.match(run('promtool', ['check', 'rules', ...files.map((f) => `alerts/${f}`)]), /SUCCESS/);
  });

  test('the promtool unit tests of the rules pass', () => {
    assert.match(run('promtool', ['test', 'rules', RULE_TESTS]), /SUCCESS/);
  });

  test('amtool accepts the Alertmanager example', () => {
    assert.match(run('amtool', ['check-config', ALERTMANAGER]), /SUCCESS/);
  });

  test('the Alertmanager example pages on critical alerts and sends the rest to the team', () => {
    const receiver = (labels: string[]): string =>
      run('amtool', ['config', 'routes', 'test', `--config.file=${ALERTMANAGER}`, ...labels])
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('Warning'))
        .join('\n');
    assert.equal(
      receiver(['alertname=PgKeeperFailover', 'severity=critical', 'job=pg-keeper', 'node=node2']),
      'pager',
    );
    assert.equal(receiver(['alertname=PgKeeperTwoPrimaries', 'severity=critical', 'job=pg-keeper']), 'pager');
    assert.equal(
      receiver(['alertname=PgKeeperHeartbeatsFailing', 'severity=warning', 'job=pg-keeper']),
      'team',
    );
    for (const { alert, labels } of alerts) {
      if (labels?.severity === 'critical') {
        assert.equal(
          receiver([`alertname=${alert}`, 'severity=critical']),
          'pager',
          `${alert} does not page`,
        );
      }
    }
  });
});

describe('the dashboard', () => {
  function tempDir(t: { after(fn: () => void): void }): string {
    const dir = makeDir('pg-keeper-dashboard-');
    t.after(() => rmDir(dir));
    return dir;
  }

  test('every expression parses as PromQL (promtool check rules)', (t) => {
    const rules = exprs.map((expr, i) => {
      const promql = interpolate(expr);
      assert.doesNotMatch(promql, /\$/, `variable left after interpolation: ${promql}`);
      return { record: `dashboard:expr_${i}`, expr: promql };
    });
    const file = join(tempDir(t), 'dashboard.rules.yml');
    writeFileSync(file, stringify({ groups: [{ name: 'pg-keeper-dashboard', rules }] }));
    assert.match(promtool(['check', 'rules', file]), new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  /** The expression of query `refId` in the panel titled `title`. */
  function exprOf(title: string, refId = 'A'): string {
    const panel = dataPanels().find((p) => p.title === title);
    const expr = panel?.targets?.find((t) => t.refId === refId)?.expr;
    assert.ok(expr, `no query ${refId} in panel "${title}"`);
    return interpolate(expr);
  }

  test('on a healthy pair, the key panels show each node by name with the right values (promtool test rules)', (t) => {
    // node1 (pg1) is the synchronous primary and sees its peer; node2 (pg2) is the standby
    // and has missed 2 of 4 heartbeats, every 5 s. 20 samples 5 s apart.
    const series = (name: string, instance: string, labels: string, values: string) => ({
      series: `${name}{job="pg-keeper",instance="${instance}"${labels ? `,${labels}` : ''}}`,
      values,
    });
    const both = (name: string, values: string, labels = '') => [
      series(name, 'pg1:9754', labels, values),
      series(name, 'pg2:9754', labels, values),
    ];
    const input = [
      series('pg_keeper_node_info', 'pg1:9754', 'node="node1",peer="node2"', '1x20'),
      series('pg_keeper_node_info', 'pg2:9754', 'node="node2",peer="node1"', '1x20'),
      series('pg_keeper_role', 'pg1:9754', 'role="primary"', '1x20'),
      series('pg_keeper_role', 'pg1:9754', 'role="standby"', '0x20'),
      series('pg_keeper_role', 'pg1:9754', 'role="unknown"', '0x20'),
      series('pg_keeper_role', 'pg2:9754', 'role="primary"', '0x20'),
      series('pg_keeper_role', 'pg2:9754', 'role="standby"', '1x20'),
      series('pg_keeper_role', 'pg2:9754', 'role="unknown"', '0x20'),
      series('pg_keeper_synchronous_replication', 'pg1:9754', '', '1x20'),
      ...both('pg_keeper_keepalive_threshold', '4x20'),
      ...both('pg_keeper_keepalive_time_seconds', '5x20'),
      series('pg_keeper_heartbeat_consecutive_failures', 'pg1:9754', 'peer="node2"', '0x20'),
      series('pg_keeper_heartbeat_consecutive_failures', 'pg2:9754', 'peer="node1"', '2x20'),
      series('pg_keeper_heartbeats_total', 'pg1:9754', 'peer="node2"', '0+1x20'),
      series('pg_keeper_heartbeats_total', 'pg2:9754', 'peer="node1"', '0+1x20'),
      series('pg_keeper_last_promotion_timestamp_seconds', 'pg1:9754', '', '0x20'),
      series('pg_keeper_last_promotion_timestamp_seconds', 'pg2:9754', '', '1000x20'),
    ];
    const at = (labels: string, value: number) => ({ labels, value });
    const promotion = queryAnnotations().find((a) => a.name === 'Promotions')?.expr ?? '';
    const cases = [
      { expr: exprOf('Role'), exp_samples: [at('{node="node1"}', 1), at('{node="node2"}', 2)] },
      { expr: exprOf('Replication mode'), exp_samples: [at('{node="node1"}', 1)] },
      {
        expr: exprOf('Time left before the keeper acts'),
        exp_samples: [
          at('{instance="pg1:9754",job="pg-keeper",node="node1"}', 20),
          at('{instance="pg2:9754",job="pg-keeper",node="node2"}', 10),
        ],
      },
      {
        expr: exprOf('Heartbeats and failures'),
        exp_samples: [at('{node="node1"}', 0.2), at('{node="node2"}', 0.2)],
      },
      {
        expr: interpolate(promotion),
        exp_samples: [at('{instance="pg2:9754",job="pg-keeper",node="node2"}', 1_000_000)],
      },
    ];
    const dir = tempDir(t);
    const file = join(dir, 'dashboard.test.yml');
    writeFileSync(
      file,
      stringify({
        rule_files: [],
        evaluation_interval: '5s',
        tests: [
          {
            interval: '5s',
            input_series: input,
            promql_expr_test: cases.map((c) => ({ ...c, eval_time: '90s' })),
          },
        ],
      }),
    );
    assert.match(promtool(['test', 'rules', file]), /SUCCESS/);
  });

  test('the example Prometheus configuration loads, with the shipped alert rules it points at', () => {
    const file = fileURLToPath(new URL('../../docs/examples/prometheus.yml', import.meta.url));
    assert.match(promtool(['check', 'config', file]), /SUCCESS/);
  });
});
