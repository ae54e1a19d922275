// The monitoring that pg-keeper ships, proven on a small fleet: two real pairs, `orders` (with
// the etcd arbiter) and `billing` (two-node mode), four real servers and four keepers, scraped
// every second by one real Prometheus with alerts/pg-keeper.rules.yml, which sends its alerts to
// a real Alertmanager grouping them as docs/examples/alertmanager.yml does, which posts them to
// a webhook of this test. The dashboard's fleet overview must show one row per pair with the
// right primary, before and after orders fails over; the failover must reach the webhook as one
// notification naming orders and its new primary, and nothing may arrive about billing; every
// expression of the Grafana dashboard must return data, with every pair selected and with one;
// every rule must evaluate without error. The servers are shared by the tests, in order. Needs
// Debian's prometheus, prometheus-alertmanager and etcd-server (scripts/ensure-deps.sh); fails,
// rather than skips, without them.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { buildDashboard, dashboardExpressions } from '../../scripts/dashboard.js';
import { waitFor } from '../../src/util/wait.js';
import { fleetColumns } from '../support/dashboard-model.js';
import { EtcdCluster } from '../support/etcd.js';
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
  type WebhookPayload,
} from '../support/prometheus-server.js';
import { setUp, tearDown, waitForEvent, type Setup } from '../support/setup.js';
import { makeDir, rmDir } from '../support/temp-dir.js';

const RULES = fileURLToPath(new URL('../../alerts/pg-keeper.rules.yml', import.meta.url));
const ALERTMANAGER_EXAMPLE = fileURLToPath(new URL('../../docs/examples/alertmanager.yml', import.meta.url));
const JOB = 'pg-keeper';
/** $__rate_interval: at least 4 scrape intervals (1 s), as Grafana computes it. */
const RATE_INTERVAL = '1m';
const PAIRS = ['billing', 'orders'];

/**
 * Dashboard expressions that have nothing to show in this scenario, by a metric they read, with
 * why. Asserted empty, so that data appearing there (or a renamed metric) is noticed too.
 */
const EMPTY_IN_THIS_SCENARIO: Record<string, string> = {
  // The "Async switches" annotation. orders' node1, the primary, died with its server: nothing
  // was left to switch. node2's promotion leaves it asynchronous, but that is a promotion.
  pg_keeper_last_async_switch_timestamp_seconds: 'no primary switched to asynchronous replication',
};

/** The same, with only billing selected: a healthy two-node pair to which nothing happened. */
const EMPTY_FOR_BILLING: Record<string, string> = {
  ...EMPTY_IN_THIS_SCENARIO,
  pg_keeper_arbiter_: 'billing runs without the etcd arbiter',
  pg_keeper_last_promotion_timestamp_seconds: 'billing never failed over',
  pg_keeper_last_sync_restore_timestamp_seconds: 'billing never lost its standby',
  pg_keeper_after_command_duration_seconds: 'after_command runs after a promotion only',
};

/**
 * Expressions about past events (rare counters, the duration of a hook run, the annotations):
 * when nothing is there now, looked for over the whole run.
 */
const PAST_EVENT = /increase\(|after_command_duration|last_(promotion|async_switch|sync_restore)_timestamp/;

interface RulesFile {
  groups: { name: string; rules: { alert?: string; record?: string }[] }[];
}

interface AlertmanagerExample {
  route: { group_by: string[] };
  inhibit_rules?: unknown[];
}

/**
 * The dashboard's variables as Grafana substitutes them: $cluster (multi, All is `.*`) and
 * $instance (multi, All: the keepers of the selected pairs, as an escaped regex).
 */
function substitute(expr: string, instances: string[], cluster = '.*'): string {
  const instanceRegex = `(${instances.map((i) => i.replace(/\./g, '\\\\.')).join('|')})`;
  return expr
    .replaceAll('$__rate_interval', RATE_INTERVAL)
    .replaceAll('${datasource}', '')
    .replace(/\$\{job\}|\$job\b/g, JOB)
    .replace(/\$\{cluster\}|\$cluster\b/g, cluster)
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

type Row = Record<string, number>;

/**
 * The fleet overview as Grafana builds it: every column's instant query, merged on `cluster`.
 * Each query must return one series per pair, labelled with `cluster` alone.
 */
async function fleetRows(prom: Prometheus, instances: string[]): Promise<Map<string, Row>> {
  const rows = new Map<string, Row>();
  for (const { header, expr } of fleetColumns()) {
    const series = await prom.query(substitute(expr, instances));
    const clusters = series.map((s) => {
      assert.deepEqual(
        Object.keys(s.metric),
        ['cluster'],
        `${header}: a series is not one pair's: ${JSON.stringify(s)}`,
      );
      return s.metric.cluster ?? '';
    });
    assert.deepEqual([...clusters].sort(), PAIRS, `${header}: one series per pair`);
    for (const s of series) {
      const row = rows.get(s.metric.cluster ?? '') ?? {};
      row[header] = Number(s.value?.[1]);
      rows.set(s.metric.cluster ?? '', row);
    }
  }
  return rows;
}

/**
 * Waits until the fleet overview reads as `expected` says (a message for each difference, none
 * when it does), and returns its rows. On a busy machine a heartbeat may time out now and then:
 * the rows are read again until they agree, within the deadline.
 */
async function waitForFleet(
  prom: Prometheus,
  instances: string[],
  what: string,
  expected: (rows: Map<string, Row>) => string[],
): Promise<Map<string, Row>> {
  let last: { rows: Map<string, Row>; wrong: string[] } | undefined;
  try {
    return await waitFor(
      async () => {
        const rows = await fleetRows(prom, instances);
        last = { rows, wrong: expected(rows) };
        return last.wrong.length === 0 ? rows : null;
      },
      what,
      30_000,
      250,
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}\n${last?.wrong.join('\n') ?? ''}\n${JSON.stringify(Object.fromEntries(last?.rows ?? []))}`,
      { cause: err },
    );
  }
}

/** Differences between a row and the values it must have (a function: a range, say). */
function differs(
  pair: string,
  row: Row | undefined,
  want: Record<string, number | ((v: number) => boolean)>,
): string[] {
  return Object.entries(want).flatMap(([header, w]) => {
    const v = row?.[header];
    const ok = v !== undefined && (typeof w === 'function' ? w(v) : v === w);
    return ok ? [] : [`${pair} ${header}: ${v} (expected ${typeof w === 'function' ? w.toString() : w})`];
  });
}

/** Every notification of a group of PgKeeperFailover that came firing. */
function failoverNotifications(hook: WebhookReceiver): WebhookPayload[] {
  return hook.payloads.filter((p) => p.groupLabels.alertname === 'PgKeeperFailover' && p.status === 'firing');
}

/** What the webhook received about billing: nothing is to be. */
function aboutBilling(hook: WebhookReceiver): string[] {
  return hook
    .alerts()
    .filter((a) => a.labels.cluster === 'billing')
    .map((a) => `${a.labels.alertname} ${a.status}: ${a.annotations.summary ?? ''}`);
}

describe('Prometheus and Alertmanager watching two pairs, one of which fails over', () => {
  let orders: Setup | undefined;
  let billing: Setup | undefined;
  let etcd: EtcdCluster | undefined;
  let dir: string | undefined;
  let webhook: WebhookReceiver | undefined;
  let alertmanager: Daemon | undefined;
  let prometheus: Prometheus | undefined;
  let prometheusStartedAt = 0;
  /** Every keeper's host:port, orders' first. */
  let instances: string[] = [];
  /** Alerts active in Prometheus while orders was degraded, for the last test's template check. */
  const degradedAlerts: PromAlert[] = [];

  before(
    async () => {
      requireBinary(PROMETHEUS_BIN);
      requireBinary(ALERTMANAGER_BIN);
      dir = makeDir('pgk-mon-');
      etcd = await EtcdCluster.start({ members: 1 });
      // Both pairs at once: two cores build them faster together than one after the other.
      const [o, b] = await Promise.allSettled([
        setUp({
          settings: {
            cluster_name: 'orders',
            after_command: 'true',
            etcd_endpoints: etcd.endpoints,
            etcd_prefix: '/pg-keeper/orders',
          },
        }),
        setUp({ settings: { cluster_name: 'billing', after_command: 'true' } }),
      ]);
      if (o.status === 'fulfilled') orders = o.value;
      if (b.status === 'fulfilled') billing = b.value;
      if (o.status === 'rejected') throw o.reason;
      if (b.status === 'rejected') throw b.reason;
      const { k1, k2 } = orders as Setup;
      await waitFor(async () => {
        const [s1, s2] = await Promise.all([k1.status(), k2.status()]);
        return s1.arbiter?.lease_held && s1.arbiter.replication === 'sync' && s2.arbiter?.holder === 'node1';
      }, 'orders: node1 to hold the lease with "sync" recorded, and node2 to see it');

      const example = parse(readFileSync(ALERTMANAGER_EXAMPLE, 'utf8')) as AlertmanagerExample;
      webhook = await WebhookReceiver.start();
      alertmanager = await startAlertmanager({
        dir,
        webhookUrl: webhook.url,
        groupBy: example.route.group_by,
        inhibitRules: example.inhibit_rules,
      });
      const keepers = [orders as Setup, billing as Setup].flatMap((s) => [s.k1, s.k2]);
      instances = keepers.map((k) => new URL(k.url).host);
      prometheusStartedAt = Date.now() / 1000;
      prometheus = await Prometheus.start({
        dir,
        job: JOB,
        targets: instances,
        ruleFiles: [RULES],
        alertmanagerUrl: alertmanager.url,
      });
      const p = prometheus;
      await waitFor(
        async () => (await p.query(`count(up{job="${JOB}"} == 1)`))[0]?.value?.[1] === '4',
        'Prometheus to scrape the four keepers',
        60_000,
        250,
      );
    },
    { timeout: 180_000 },
  );

  after(
    async () => {
      await Promise.all([prometheus?.stop(), alertmanager?.stop(), webhook?.stop()]);
      await Promise.all([tearDown(orders), tearDown(billing)]);
      await etcd?.destroy();
      if (dir) rmDir(dir);
    },
    { timeout: 60_000 },
  );

  test('the fleet overview shows one row per pair, each with its primary', { timeout: 60_000 }, async () => {
    const prom = prometheus as Prometheus;
    const healthy = {
      Primary: 1,
      Replication: 1,
      'Since last failover': -1,
      'Heartbeats failing': 0,
      'Keepers up': 2,
    };
    await waitForFleet(prom, instances, 'the fleet overview to show both pairs healthy', (rows) => [
      // node1 the primary of each; orders' lease held by node1, billing without the arbiter.
      ...differs('orders', rows.get('orders'), { ...healthy, 'Lease holder': 1 }),
      ...differs('billing', rows.get('billing'), { ...healthy, 'Lease holder': -1 }),
    ]);
  });

  test(
    'a failover of orders is one notification naming orders and its new primary, and nothing about billing',
    { timeout: 90_000 },
    async (t) => {
      const { pair, k2 } = orders as Setup;
      const hook = webhook as WebhookReceiver;
      const prom = prometheus as Prometheus;
      const killedAt = Date.now();
      await pair.kill(pair.node1, 'SIGKILL');
      await waitFor(
        async () => (await k2.status()).role === 'primary',
        'orders’ node2 keeper to report primary',
        30_000,
      );
      const first = await waitFor(
        () => failoverNotifications(hook)[0],
        'a PgKeeperFailover notification at the webhook',
        60_000,
        100,
      );
      const promotedAt = await waitForEvent(k2, 'promote');
      t.diagnostic(
        `kill → promoted ${promotedAt - killedAt} ms; kill → notification ${first.receivedAt - killedAt} ms`,
      );

      // One group per pair and alert name, as alertmanager.example.yml's group_by makes them.
      assert.deepEqual(first.groupLabels, { alertname: 'PgKeeperFailover', job: JOB, cluster: 'orders' });
      assert.equal(first.alerts.length, 1, 'one failover alert for the pair');
      const failover = first.alerts[0];
      assert.ok(failover);
      assert.equal(failover.labels.cluster, 'orders');
      assert.equal(failover.labels.node, 'node2');
      assert.equal(failover.labels.severity, 'critical');
      assert.equal(failover.labels.instance, new URL(k2.url).host);
      assert.equal(failover.annotations.summary, 'pair orders: node2 promoted (failover)');
      const description = failover.annotations.description ?? '';
      assert.match(
        description,
        /\bnode2\b.*\borders\b/,
        `the description names node2 and orders: ${description}`,
      );
      assert.doesNotMatch(
        description,
        /<no value>|<error/i,
        `the description expanded fully: ${description}`,
      );

      // What Prometheus holds: one failover alert, for orders.
      const active = await prom.query('ALERTS{alertname="PgKeeperFailover", alertstate="firing"}');
      assert.deepEqual(
        active.map((s) => `${s.metric.cluster ?? ''}/${s.metric.node ?? ''}`),
        ['orders/node2'],
      );

      // The overview, degraded: orders' primary is node2, async, holding the lease, promoted just
      // now, its heartbeats to the dead node1 failing; billing as it was.
      const limit = (Date.now() - killedAt) / 1000 + 5;
      await waitForFleet(prom, instances, 'the fleet overview to show orders failed over', (rows) => [
        ...differs('orders', rows.get('orders'), {
          Primary: 2,
          Replication: 0,
          'Lease holder': 2,
          'Since last failover': (v) => v >= 0 && v <= limit,
          'Heartbeats failing': (v) => v >= 1,
          'Keepers up': 2,
        }),
        ...differs('billing', rows.get('billing'), {
          Primary: 1,
          Replication: 1,
          'Lease holder': -1,
          'Since last failover': -1,
          'Keepers up': 2,
        }),
      ]);
      assert.deepEqual(aboutBilling(hook), [], 'nothing reached the webhook about billing');
      assert.deepEqual(hook.rejected, [], 'every POST to the webhook was an Alertmanager payload');
      // Templates are expanded only for active alerts: keep those of the degraded pair.
      await prom.waitScrapes(JOB, 2);
      degradedAlerts.push(...(await prom.alerts()));
    },
  );

  test(
    'every dashboard expression returns data, for both pairs and for one',
    { timeout: 120_000 },
    async (t) => {
      const { pair, k2 } = orders as Setup;
      const prom = prometheus as Prometheus;
      await pair.rebuildAsStandby(pair.node1, pair.node2);
      await waitForEvent(k2, 'restore-sync', 60_000);
      // Prometheus has seen orders whole again: node1 a standby streaming from node2, sync back.
      await waitFor(
        async () =>
          (await prom.query(`pg_keeper_last_sync_restore_timestamp_seconds{job="${JOB}"} > 0`)).length ===
            1 &&
          (await prom.query(`pg_keeper_role{job="${JOB}", role="standby"} == 1`)).length === 2 &&
          (await prom.query(`pg_keeper_wal_receiver_last_message_age_seconds{job="${JOB}"}`)).length === 2,
        'Prometheus to scrape the rebuilt pair',
        30_000,
        250,
      );
      await prom.waitScrapes(JOB, 3);

      const model = buildDashboard();
      const exprs = dashboardExpressions(model);
      const fleet = new Set(fleetColumns().map((c) => c.expr));
      const places = placesOf(model);
      assert.ok(exprs.length > 20, `the dashboard has its expressions (${exprs.length})`);
      const now = Date.now() / 1000;
      const start = Math.max(prometheusStartedAt, now - 300);
      const billingInstances = [(billing as Setup).k1, (billing as Setup).k2].map((k) => new URL(k.url).host);
      const problems: string[] = [];
      let fromRange = 0;

      /** Runs every expression with $cluster and $instance set so; says what is wrong. */
      const check = async (
        cluster: string,
        selected: string[],
        emptyHere: Record<string, string>,
      ): Promise<void> => {
        const allowed = cluster === '.*' ? PAIRS : [cluster];
        for (const expr of exprs) {
          // The fleet overview reads every pair whatever is selected (checked row by row above).
          if (cluster !== '.*' && fleet.has(expr)) continue;
          const q = substitute(expr, selected, cluster);
          const where = `[$cluster=${cluster}] ${(places.get(expr) ?? ['?']).join(', ')}:\n    ${q}`;
          assert.doesNotMatch(q, /\$\{?\w/, `a dashboard variable is left unsubstituted in: ${q}`);
          let found = withValues(await prom.query(q, now));
          if (found.length === 0 && PAST_EVENT.test(q)) {
            found = withValues(await prom.queryRange(q, start, now, 1));
            if (found.length > 0) fromRange++;
          }
          const strangers = found.filter((s) => !allowed.includes(s.metric.cluster ?? ''));
          if (strangers.length > 0)
            problems.push(
              `${where}\n    series of another pair, or of none: ${JSON.stringify(strangers[0]?.metric)}`,
            );
          const reason = Object.entries(emptyHere).find(([metric]) => q.includes(metric))?.[1];
          if (reason !== undefined) {
            if (found.length > 0)
              problems.push(`${where}\n    expected empty (${reason}), got ${JSON.stringify(found)}`);
          } else if (found.length === 0) {
            problems.push(`${where}\n    no data`);
          }
        }
      };
      await check('.*', instances, EMPTY_IN_THIS_SCENARIO);
      await check('billing', billingInstances, EMPTY_FOR_BILLING);
      t.diagnostic(
        `${exprs.length} expressions, for both pairs and for billing alone: ${problems.length} problems ` +
          `(${fromRange} found only over the last ${Math.round(now - start)} s)`,
      );
      assert.ok(
        problems.length === 0,
        `${problems.length} dashboard expressions are wrong:\n${problems.join('\n')}`,
      );
    },
  );

  test(
    'the alert rules load in Prometheus without errors, and the failover stayed one notification',
    { timeout: 60_000 },
    async (t) => {
      const prom = prometheus as Prometheus;
      const hook = webhook as WebhookReceiver;
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
        .map(
          (r) => `${r.name}: health ${r.health}, last evaluation ${r.lastEvaluation}: ${r.lastError ?? ''}`,
        );
      assert.ok(unhealthy.length === 0, `rules that do not evaluate cleanly:\n${unhealthy.join('\n')}`);

      // Templates are expanded only for active alerts: those of the degraded pair, those active
      // now, and every alert sent to the webhook (firing and resolved).
      const active = await prom.alerts();
      const expanded = [...degradedAlerts, ...active, ...hook.alerts()];
      t.diagnostic(
        `alerts checked: ${[...new Set(expanded.map((a) => `${a.labels.alertname}{cluster=${a.labels.cluster ?? ''},node=${a.labels.node ?? ''}}`))].join(', ')}`,
      );
      const broken = expanded.flatMap((a) =>
        Object.entries({ ...a.labels, ...a.annotations })
          .filter(([, text]) => /<no value>|error expanding template|<error/i.test(text))
          .map(([key, text]) => `${a.labels.alertname} ${key}: ${text}`),
      );
      assert.ok(broken.length === 0, `alert templates that did not expand:\n${broken.join('\n')}`);
      const unnamed = expanded.filter((a) => a.labels.alertname !== 'PgKeeperAbsent' && !a.labels.cluster);
      assert.deepEqual(
        unnamed.map((a) => a.labels.alertname),
        [],
        'every alert names its pair',
      );

      // The failover alert has been firing all along (Alertmanager groups every second): still
      // one notification for orders, and still nothing about billing.
      assert.equal(
        failoverNotifications(hook).length,
        1,
        JSON.stringify(failoverNotifications(hook), null, 2),
      );
      assert.deepEqual(aboutBilling(hook), [], 'nothing reached the webhook about billing');
      assert.deepEqual(hook.rejected, [], 'every POST to the webhook was a payload');
      const log = prom.daemon.log();
      const templateErrors = log
        .split('\n')
        .filter((l) => /template/i.test(l) && /level=(warn|error)/.test(l));
      assert.deepEqual(templateErrors, [], 'Prometheus logged no template error');
    },
  );
});
