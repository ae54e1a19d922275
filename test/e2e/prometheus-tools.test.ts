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
import {
  dataPanels,
  exprs,
  fleetColumns,
  interpolate,
  queryAnnotations,
} from '../support/dashboard-model.js';
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
      receiver([
        'alertname=PgKeeperFailover',
        'severity=critical',
        'job=pg-keeper',
        'cluster=orders',
        'node=node2',
      ]),
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

  test('the pager’s description lists every firing alert of a group (amtool template render)', (t) => {
    // A group is one pair's alerts of one name: both keepers' PgKeeperDown, say, whose summaries
    // differ, so CommonAnnotations would be empty.
    interface Receiver {
      name: string;
      pagerduty_configs?: { description?: string }[];
    }
    const config = parse(readFileSync(`${ROOT}${ALERTMANAGER}`, 'utf8')) as { receivers: Receiver[] };
    const description = config.receivers.find((r) => r.name === 'pager')?.pagerduty_configs?.[0]?.description;
    assert.ok(description, 'the pager receiver has no description template');
    const dir = makeDir('pg-keeper-amtool-');
    t.after(() => rmDir(dir));
    const alert = (status: string, node: string, summary: string) => ({
      status,
      labels: { alertname: 'PgKeeperDown', cluster: 'orders', node },
      annotations: { summary },
      startsAt: '2026-01-01T00:00:00Z',
      endsAt: status === 'firing' ? '0001-01-01T00:00:00Z' : '2026-01-01T00:01:00Z',
    });
    writeFileSync(join(dir, 'none.tmpl'), '');
    writeFileSync(
      join(dir, 'data.json'),
      JSON.stringify({
        receiver: 'pager',
        status: 'firing',
        alerts: [
          alert('firing', 'node1', 'pair orders: the keeper of node1 is not being scraped'),
          alert('firing', 'node2', 'pair orders: the keeper of node2 is not being scraped'),
          alert('resolved', 'node1', 'an alert of the group that has resolved'),
        ],
        groupLabels: { alertname: 'PgKeeperDown', cluster: 'orders' },
        commonLabels: { alertname: 'PgKeeperDown', cluster: 'orders' },
        commonAnnotations: {},
        externalURL: 'http://alertmanager.invalid',
      }),
    );
    const out = run('amtool', [
      'template',
      'render',
      `--template.glob=${join(dir, 'none.tmpl')}`,
      `--template.data=${join(dir, 'data.json')}`,
      `--template.text=${description}`,
    ]);
    assert.equal(
      out.trim(),
      'pair orders: the keeper of node1 is not being scraped; pair orders: the keeper of node2 is not being scraped',
    );
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

  test('for two pairs, the key panels and the fleet overview show each pair and node by name with the right values (promtool test rules)', (t) => {
    // orders: node1 (pg1) is the synchronous primary and sees its peer; node2 (pg2) is the
    // standby and has missed 2 of 4 heartbeats. billing, with the arbiter: node2 (pg4) was
    // promoted at 30 s, holds the lease and replicates asynchronously; node1 (pg3) is a standby
    // again. Every 5 s, 20 samples.
    const series = (name: string, instance: string, labels: string, values: string) => ({
      series: `${name}{job="pg-keeper",instance="${instance}"${labels ? `,${labels}` : ''}}`,
      values,
    });
    const each = (name: string, values: string, labels = '') =>
      ['pg1:9754', 'pg2:9754', 'pg3:9754', 'pg4:9754'].map((i) => series(name, i, labels, values));
    const role = (instance: string, r: 'primary' | 'standby') =>
      (['primary', 'standby', 'unknown'] as const).map((name) =>
        series('pg_keeper_role', instance, `role="${name}"`, name === r ? '1x20' : '0x20'),
      );
    const input = [
      series('pg_keeper_node_info', 'pg1:9754', 'cluster="orders",node="node1",peer="node2"', '1x20'),
      series('pg_keeper_node_info', 'pg2:9754', 'cluster="orders",node="node2",peer="node1"', '1x20'),
      series('pg_keeper_node_info', 'pg3:9754', 'cluster="billing",node="node1",peer="node2"', '1x20'),
      series('pg_keeper_node_info', 'pg4:9754', 'cluster="billing",node="node2",peer="node1"', '1x20'),
      ...each('up', '1x20'),
      ...role('pg1:9754', 'primary'),
      ...role('pg2:9754', 'standby'),
      ...role('pg3:9754', 'standby'),
      ...role('pg4:9754', 'primary'),
      series('pg_keeper_synchronous_replication', 'pg1:9754', '', '1x20'),
      series('pg_keeper_synchronous_replication', 'pg4:9754', '', '0x20'),
      ...each('pg_keeper_keepalive_threshold', '4x20'),
      ...each('pg_keeper_keepalive_time_seconds', '5x20'),
      series('pg_keeper_heartbeat_consecutive_failures', 'pg1:9754', 'peer="node2"', '0x20'),
      series('pg_keeper_heartbeat_consecutive_failures', 'pg2:9754', 'peer="node1"', '2x20'),
      series('pg_keeper_heartbeat_consecutive_failures', 'pg3:9754', 'peer="node2"', '0x20'),
      series('pg_keeper_heartbeat_consecutive_failures', 'pg4:9754', 'peer="node1"', '0x20'),
      ...each('pg_keeper_heartbeats_total', '0+1x20', 'peer="nodeX"'),
      series('pg_keeper_last_promotion_timestamp_seconds', 'pg1:9754', '', '0x20'),
      series('pg_keeper_last_promotion_timestamp_seconds', 'pg2:9754', '', '0x20'),
      series('pg_keeper_last_promotion_timestamp_seconds', 'pg3:9754', '', '0x20'),
      series('pg_keeper_last_promotion_timestamp_seconds', 'pg4:9754', '', '0 0 0 0 0 0 30x14'),
      series('pg_keeper_arbiter_up', 'pg3:9754', '', '1x20'),
      series('pg_keeper_arbiter_up', 'pg4:9754', '', '1x20'),
      series('pg_keeper_arbiter_lease_holder', 'pg3:9754', 'holder="node2"', '1x20'),
      series('pg_keeper_arbiter_lease_holder', 'pg4:9754', 'holder="node2"', '1x20'),
    ];
    const at = (labels: string, value: number) => ({ labels, value });
    const node = (cluster: string, n: string, extra = '') => `{${extra}cluster="${cluster}",node="${n}"}`;
    const pair = (cluster: string) => `{cluster="${cluster}"}`;
    const promotion = queryAnnotations().find((a) => a.name === 'Promotions')?.expr ?? '';
    const fleet = (header: string): string => {
      const column = fleetColumns().find((c) => c.header === header);
      assert.ok(column, `no fleet column ${header}`);
      return interpolate(column.expr);
    };
    const cases = [
      {
        expr: exprOf('Role'),
        exp_samples: [
          at(node('billing', 'node1'), 2),
          at(node('billing', 'node2'), 1),
          at(node('orders', 'node1'), 1),
          at(node('orders', 'node2'), 2),
        ],
      },
      {
        expr: exprOf('Replication mode'),
        exp_samples: [at(node('billing', 'node2'), 0), at(node('orders', 'node1'), 1)],
      },
      {
        expr: exprOf('Time left before the keeper acts'),
        exp_samples: [
          at(node('orders', 'node1', 'instance="pg1:9754",job="pg-keeper",'), 20),
          at(node('orders', 'node2', 'instance="pg2:9754",job="pg-keeper",'), 10),
          at(node('billing', 'node1', 'instance="pg3:9754",job="pg-keeper",'), 20),
          at(node('billing', 'node2', 'instance="pg4:9754",job="pg-keeper",'), 20),
        ],
      },
      {
        expr: exprOf('Heartbeats and failures'),
        exp_samples: [
          at(node('billing', 'node1'), 0.2),
          at(node('billing', 'node2'), 0.2),
          at(node('orders', 'node1'), 0.2),
          at(node('orders', 'node2'), 0.2),
        ],
      },
      { expr: exprOf('Lease holder over time'), exp_samples: [at(pair('billing'), 2)] },
      {
        expr: interpolate(promotion),
        exp_samples: [at(node('billing', 'node2', 'instance="pg4:9754",job="pg-keeper",'), 30_000)],
      },
      // The fleet overview: one row per pair, every column filled.
      { expr: fleet('Primary'), exp_samples: [at(pair('billing'), 2), at(pair('orders'), 1)] },
      { expr: fleet('Replication'), exp_samples: [at(pair('billing'), 0), at(pair('orders'), 1)] },
      { expr: fleet('Lease holder'), exp_samples: [at(pair('billing'), 2), at(pair('orders'), -1)] },
      { expr: fleet('Since last failover'), exp_samples: [at(pair('billing'), 60), at(pair('orders'), -1)] },
      { expr: fleet('Heartbeats failing'), exp_samples: [at(pair('billing'), 0), at(pair('orders'), 2)] },
      { expr: fleet('Keepers up'), exp_samples: [at(pair('billing'), 2), at(pair('orders'), 2)] },
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

  test('the example Prometheus configurations load, with the shipped alert rules and target files they point at', () => {
    for (const example of [
      '../../docs/examples/prometheus.yml',
      '../../docs/examples/compose/prometheus.yml',
    ]) {
      const file = fileURLToPath(new URL(example, import.meta.url));
      const out = promtool(['check', 'config', file]);
      assert.match(out, /SUCCESS: \S*prometheus\.yml is valid/);
      // A file_sd pattern that matches no file is only a warning.
      assert.doesNotMatch(out, /warn/i);
    }
  });
});
