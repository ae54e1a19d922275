// The monitoring that pg-keeper ships, proven against a real failover: a real Prometheus scrapes
// both keepers every second with alerts/pg-keeper.rules.yml and sends its alerts to a real
// Alertmanager, which posts them to a webhook of this test. The failover must reach the webhook
// naming the promoted node; every expression of the Grafana dashboard must return data; every
// rule must evaluate without error. Needs Debian's prometheus and prometheus-alertmanager
// (scripts/ensure-deps.sh); fails, rather than skips, without them.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { buildDashboard, dashboardExpressions } from '../../scripts/dashboard.js';
import { waitFor } from '../../src/util/wait.js';
import {
  ALERTMANAGER_BIN,
  Prometheus,
  PROMETHEUS_BIN,
  requireBinary,
  startAlertmanager,
  WebhookReceiver,
  type Daemon,
  type PromAlert,
  type PromSeries,
} from '../support/prometheus-server.js';
import { setUp, tearDown, waitForEvent, type Setup } from '../support/setup.js';
import { makeDir, rmDir } from '../support/temp-dir.js';

const RULES = fileURLToPath(new URL('../../alerts/pg-keeper.rules.yml', import.meta.url));
const JOB = 'pg-keeper';
/** $__rate_interval: at least 4 scrape intervals (1 s), as Grafana computes it. */
const RATE_INTERVAL = '1m';

/**
 * Dashboard expressions that have nothing to show in this scenario, by a metric they read, with
 * why. Asserted empty, so that data appearing there (or a renamed metric) is noticed too.
 */
const EMPTY_IN_THIS_SCENARIO: Record<string, string> = {
  // The "Async switches" annotation. node1, the primary, died with its server: nothing was left
  // to switch. node2's promotion leaves it asynchronous, but that is a promotion, not a switch.
  pg_keeper_last_async_switch_timestamp_seconds: 'no primary switched to asynchronous replication',
};

/**
 * Expressions about past events (rare counters, the duration of a hook run, the annotations):
 * when nothing is there now, looked for over the whole run.
 */
const PAST_EVENT = /increase\(|after_command_duration|last_(promotion|async_switch|sync_restore)_timestamp/;

interface RulesFile {
  groups: { name: string; rules: { alert?: string; record?: string }[] }[];
}

/** The dashboard's variables as Grafana substitutes them: $instance (multi, All) as an escaped regex. */
function substitute(expr: string, instances: string[]): string {
  const instanceRegex = `(${instances.map((i) => i.replace(/\./g, '\\\\.')).join('|')})`;
  return expr
    .replaceAll('$__rate_interval', RATE_INTERVAL)
    .replaceAll('${datasource}', '')
    .replace(/\$\{job\}|\$job\b/g, JOB)
    .replace(/\$\{instance\}|\$instance\b/g, instanceRegex);
}

/** Series that carry at least one finite value (NaN is what Grafana shows as nothing). */
function withValues(series: PromSeries[]): PromSeries[] {
  return series.filter((s) =>
    [...(s.value ? [s.value] : []), ...(s.values ?? [])].some(([, v]) => Number.isFinite(Number(v))),
  );
}

interface PanelLike {
  title?: string;
  targets?: { expr?: unknown }[];
  panels?: PanelLike[];
}

/** Where the dashboard shows each expression (panel titles, rows included; annotation names), for messages. */
function placesOf(model: object): Map<string, string[]> {
  const m = model as { panels?: PanelLike[]; annotations?: { list?: { name?: string; expr?: string }[] } };
  const places = new Map<string, string[]>();
  const add = (expr: unknown, place: string): void => {
    if (typeof expr === 'string') places.set(expr, [...(places.get(expr) ?? []), place]);
  };
  const walk = (panel: PanelLike): void => {
    for (const target of panel.targets ?? []) add(target.expr, `panel "${panel.title ?? '?'}"`);
    for (const inner of panel.panels ?? []) walk(inner);
  };
  for (const panel of m.panels ?? []) walk(panel);
  for (const a of m.annotations?.list ?? []) add(a.expr, `annotation "${a.name ?? '?'}"`);
  return places;
}

describe('Prometheus and Alertmanager watching a real failover', () => {
  let s: Setup | undefined;
  let dir: string | undefined;
  let webhook: WebhookReceiver | undefined;
  let alertmanager: Daemon | undefined;
  let prometheus: Prometheus | undefined;
  let prometheusStartedAt = 0;
  /** Alerts active in Prometheus while the pair was degraded, for test 3's template check. */
  const degradedAlerts: PromAlert[] = [];

  before(
    async () => {
      requireBinary(PROMETHEUS_BIN);
      requireBinary(ALERTMANAGER_BIN);
      dir = makeDir('pgk-mon-');
      s = await setUp({ settings: { after_command: 'true' } });
      webhook = await WebhookReceiver.start();
      alertmanager = await startAlertmanager({ dir, webhookUrl: webhook.url });
      const targets = [s.k1.url, s.k2.url].map((u) => new URL(u).host);
      prometheusStartedAt = Date.now() / 1000;
      prometheus = await Prometheus.start({
        dir,
        job: JOB,
        targets,
        ruleFiles: [RULES],
        alertmanagerUrl: alertmanager.url,
      });
      const p = prometheus;
      await waitFor(
        async () => (await p.query(`up{job="${JOB}"} == 1`)).length === 2,
        'Prometheus to scrape both keepers',
        60_000,
        250,
      );
    },
    { timeout: 150_000 },
  );

  after(
    async () => {
      await Promise.all([prometheus?.stop(), alertmanager?.stop(), webhook?.stop()]);
      await tearDown(s);
      if (dir) rmDir(dir);
    },
    { timeout: 60_000 },
  );

  test(
    'a failover reaches Alertmanager’s webhook, naming the promoted node',
    { timeout: 90_000 },
    async (t) => {
      const { pair, k2 } = s as Setup;
      const hook = webhook as WebhookReceiver;
      const killedAt = Date.now();
      await pair.kill(pair.node1, 'SIGKILL');
      await waitFor(
        async () => (await k2.status()).role === 'primary',
        'node2’s keeper to report primary',
        30_000,
      );
      const failover = await waitFor(
        () =>
          hook
            .alerts()
            .find(
              (a) =>
                a.labels.alertname === 'PgKeeperFailover' &&
                a.status === 'firing' &&
                a.labels.node === 'node2',
            ),
        'a firing PgKeeperFailover for node2 at the webhook',
        60_000,
        100,
      );
      const promotedAt = await waitForEvent(k2, 'promote');
      t.diagnostic(
        `kill → promoted ${promotedAt - killedAt} ms; ` +
          `kill → webhook ${failover.receivedAt - killedAt} ms`,
      );
      assert.equal(failover.labels.severity, 'critical');
      assert.equal(failover.labels.job, JOB);
      assert.equal(failover.labels.instance, new URL(k2.url).host);
      const description = failover.annotations.description ?? '';
      assert.match(description, /\bnode2\b/, `the description names node2: ${description}`);
      assert.doesNotMatch(
        description,
        /<no value>|<error/i,
        `the description expanded fully: ${description}`,
      );
      assert.deepEqual(hook.rejected, [], 'every POST to the webhook was an Alertmanager payload');
      const wrong = hook
        .alerts()
        .filter((a) => a.labels.alertname === 'PgKeeperFailover' && a.labels.node !== 'node2');
      assert.deepEqual(wrong, [], 'no failover alert names another node');
      // Templates are expanded only for active alerts: keep those of the degraded pair.
      await (prometheus as Prometheus).waitScrapes(JOB, 2);
      degradedAlerts.push(...(await (prometheus as Prometheus).alerts()));
    },
  );

  test('every dashboard expression returns data after a failover', { timeout: 90_000 }, async (t) => {
    const { pair, k1, k2 } = s as Setup;
    const prom = prometheus as Prometheus;
    await pair.rebuildAsStandby(pair.node1, pair.node2);
    await waitForEvent(k2, 'restore-sync', 60_000);
    // Prometheus has seen the pair whole again: node1 a standby streaming from node2, sync back.
    await waitFor(
      async () =>
        (await prom.query(`pg_keeper_last_sync_restore_timestamp_seconds{job="${JOB}"} > 0`)).length === 1 &&
        (await prom.query(`pg_keeper_role{job="${JOB}", role="standby"} == 1`)).length === 1 &&
        (await prom.query(`pg_keeper_wal_receiver_last_message_age_seconds{job="${JOB}"}`)).length === 1,
      'Prometheus to scrape the rebuilt pair',
      30_000,
      250,
    );
    await prom.waitScrapes(JOB, 3);

    const instances = [k1.url, k2.url].map((u) => new URL(u).host);
    const model = buildDashboard();
    const exprs = dashboardExpressions(model);
    const places = placesOf(model);
    assert.ok(exprs.length > 20, `the dashboard has its expressions (${exprs.length})`);
    const now = Date.now() / 1000;
    const start = Math.max(prometheusStartedAt, now - 300);
    const empty: string[] = [];
    const unexpected: string[] = [];
    let fromRange = 0;
    for (const expr of exprs) {
      const q = substitute(expr, instances);
      const where = `${(places.get(expr) ?? ['?']).join(', ')}:\n    ${q}`;
      assert.doesNotMatch(q, /\$\{?\w/, `a dashboard variable is left unsubstituted in: ${q}`);
      let found = withValues(await prom.query(q, now));
      if (found.length === 0 && PAST_EVENT.test(q)) {
        found = withValues(await prom.queryRange(q, start, now, 1));
        if (found.length > 0) fromRange++;
      }
      const reason = Object.entries(EMPTY_IN_THIS_SCENARIO).find(([metric]) => q.includes(metric))?.[1];
      if (reason !== undefined) {
        if (found.length > 0)
          unexpected.push(`${where}\n    expected empty (${reason}), got ${JSON.stringify(found)}`);
      } else if (found.length === 0) {
        empty.push(where);
      }
    }
    t.diagnostic(
      `${exprs.length} expressions: ${exprs.length - empty.length - unexpected.length} as expected ` +
        `(${fromRange} found only over the last ${Math.round(now - start)} s)`,
    );
    assert.ok(
      unexpected.length === 0,
      `expressions with data where none was expected:\n${unexpected.join('\n')}`,
    );
    assert.ok(
      empty.length === 0,
      `${empty.length} dashboard expressions returned no data:\n${empty.join('\n')}`,
    );
  });

  test('the alert rules load in Prometheus without errors', { timeout: 60_000 }, async (t) => {
    const prom = prometheus as Prometheus;
    const file = parse(readFileSync(RULES, 'utf8')) as RulesFile;
    // A few more evaluations of every rule, on the rebuilt pair.
    await prom.waitScrapes(JOB, 2);
    const groups = await prom.ruleGroups();
    assert.deepEqual(
      groups.map((g) => ({ name: g.name, rules: g.rules.map((r) => r.name) })),
      file.groups.map((g) => ({ name: g.name, rules: g.rules.map((r) => r.alert ?? r.record) })),
      'Prometheus loaded every group and rule of the file',
    );
    const unhealthy = groups
      .flatMap((g) => g.rules)
      .filter((r) => r.health !== 'ok' || r.lastError || r.lastEvaluation.startsWith('0001-'))
      .map((r) => `${r.name}: health ${r.health}, last evaluation ${r.lastEvaluation}: ${r.lastError ?? ''}`);
    assert.ok(unhealthy.length === 0, `rules that do not evaluate cleanly:\n${unhealthy.join('\n')}`);

    // Templates are expanded only for active alerts: those of the degraded pair, those active
    // now, and every alert sent to the webhook (firing and resolved).
    const active = await prom.alerts();
    const expanded = [...degradedAlerts, ...active, ...(webhook as WebhookReceiver).alerts()];
    t.diagnostic(
      `alerts checked: ${[...new Set(expanded.map((a) => `${a.labels.alertname}{node=${a.labels.node ?? ''}}`))].join(', ')}`,
    );
    const broken = expanded.flatMap((a) =>
      Object.entries({ ...a.labels, ...a.annotations })
        .filter(([, text]) => /<no value>|error expanding template|<error/i.test(text))
        .map(([key, text]) => `${a.labels.alertname} ${key}: ${text}`),
    );
    assert.ok(broken.length === 0, `alert templates that did not expand:\n${broken.join('\n')}`);
    assert.deepEqual((webhook as WebhookReceiver).rejected, [], 'every POST to the webhook was a payload');
    const log = (prometheus as Prometheus).daemon.log();
    const templateErrors = log.split('\n').filter((l) => /template/i.test(l) && /level=(warn|error)/.test(l));
    assert.deepEqual(templateErrors, [], 'Prometheus logged no template error');
  });
});
