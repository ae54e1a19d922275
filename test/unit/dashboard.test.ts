// The shipped Grafana dashboard: committed JSON in step with its generator, valid against
// Grafana's own dashboard types, and every query on metrics that pg-keeper exports, filtered
// by the dashboard's variables and naming each series' pair; the fleet overview at the top,
// one row per pair, and its link that narrows the dashboard to one. That Prometheus parses
// every query, and what the key panels show, is checked with promtool in
// test/e2e/prometheus-tools.test.ts; against real pairs, in test/e2e/monitoring.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { createGenerator } from 'ts-json-schema-generator';
import { parse } from 'yaml';
import { dataPanels, exprs, fleetPanel, model, queryAnnotations } from '../support/dashboard-model.js';
import { exportedMetricNames } from '../support/prometheus-tools.js';
import { DASHBOARD_FILE, DASHBOARD_UID, renderDashboard } from '../../scripts/dashboard.js';

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

// ---------------------------------------------------------------------------------------
// A small PromQL lexer: enough to find the vector selectors of an expression (metric name
// and label matchers), which is what the checks below need; promtool checks the grammar.

interface Selector {
  name: string;
  matchers: Map<string, string>;
}

const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
// Aggregation operators may put their `by (...)` before the parenthesis: `max by (node) (x)`.
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
]);

/** Index just past the bracket that closes the one at `start`, skipping quoted strings. */
function skipBalanced(s: string, start: number, open: string, close: string): number {
  let depth = 0;
  for (let i = start; i < s.length; i++) {
    const c = s[i];
    if (c === '"' || c === "'") {
      i++;
      while (i < s.length && s[i] !== c) i += s[i] === '\\' ? 2 : 1;
    } else if (c === open) depth++;
    else if (c === close && --depth === 0) return i + 1;
  }
  throw new Error(`unbalanced ${open}${close} in ${s}`);
}

function parseMatchers(body: string): Map<string, string> {
  const matchers = new Map<string, string>();
  for (const m of body.matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
    matchers.set(m[1] ?? '', `${m[2] ?? ''}"${m[3] ?? ''}"`);
  }
  return matchers;
}

function selectors(expr: string): Selector[] {
  const found: Selector[] = [];
  let i = 0;
  const nextNonSpace = (from: number): number => {
    while (from < expr.length && /\s/.test(expr[from] ?? '')) from++;
    return from;
  };
  while (i < expr.length) {
    const c = expr[i] ?? '';
    if (c === '"' || c === "'") {
      i++;
      while (i < expr.length && expr[i] !== c) i += expr[i] === '\\' ? 2 : 1;
      i++;
    } else if (c === '[') {
      i = skipBalanced(expr, i, '[', ']');
    } else if (c === '{') {
      const end = skipBalanced(expr, i, '{', '}');
      found.push({ name: '', matchers: parseMatchers(expr.slice(i + 1, end - 1)) });
      i = end;
    } else if (/[0-9.]/.test(c)) {
      i += /^[0-9.]+(?:e[+-]?\d+)?/i.exec(expr.slice(i))?.[0].length ?? 1;
    } else if (/[a-zA-Z_:]/.test(c)) {
      const word = /^[a-zA-Z_:][\w:]*/.exec(expr.slice(i))?.[0] ?? c;
      const after = nextNonSpace(i + word.length);
      if (expr[after] === '(' && GROUPING.has(word)) {
        i = skipBalanced(expr, after, '(', ')');
      } else if (expr[after] === '(' || GROUPING.has(word) || KEYWORDS.has(word) || AGGREGATIONS.has(word)) {
        i += word.length;
      } else if (expr[after] === '{') {
        const end = skipBalanced(expr, after, '{', '}');
        found.push({ name: word, matchers: parseMatchers(expr.slice(after + 1, end - 1)) });
        i = end;
      } else {
        found.push({ name: word, matchers: new Map() });
        i += word.length;
      }
    } else {
      i++;
    }
  }
  return found;
}

/** The argument text of every call to one of `functions` in `expr`. */
function callArguments(expr: string, functions: string[]): { fn: string; args: string }[] {
  const calls: { fn: string; args: string }[] = [];
  for (const m of expr.matchAll(new RegExp(`\\b(${functions.join('|')})\\s*\\(`, 'g'))) {
    const open = (m.index ?? 0) + m[0].length - 1;
    const end = skipBalanced(expr, open, '(', ')');
    calls.push({ fn: m[1] ?? '', args: expr.slice(open + 1, end - 1) });
  }
  return calls;
}

// ---------------------------------------------------------------------------------------

test('the committed dashboard JSON is what scripts/dashboard.ts generates', () => {
  const committed = readFileSync(DASHBOARD_FILE, 'utf8');
  assert.equal(committed, renderDashboard(), 'dashboards/pg-keeper.json is stale: run `npm run dashboard`');
});

test("the dashboard validates against Grafana's dashboard schema from @grafana/schema", () => {
  // The JSON Schema is generated from the TypeScript types that Grafana generates from
  // its CUE dashboard schema (the classic JSON model that schemaVersion numbers), so it
  // follows the installed @grafana/schema instead of a hand copy. Objects are closed:
  // a misspelt field fails. One exception: Grafana stores a data source's own annotation
  // fields (expr, titleFormat, useValueForTime, ...) beside the common ones, and the
  // schema types them only for its built-in data source (its own TODO says so).
  const require = createRequire(import.meta.url);
  const schemaPackage = dirname(require.resolve('@grafana/schema/package.json'));
  const schema = createGenerator({
    path: join(schemaPackage, 'dist/types/raw/dashboard/x/types.gen.d.ts'),
    type: 'Dashboard',
    skipTypeCheck: true,
    additionalProperties: false,
  }).createSchema('Dashboard');
  const definitions = schema.definitions as Record<string, { additionalProperties?: boolean }>;
  assert.ok(
    definitions.Dashboard && definitions.Panel && definitions.AnnotationQuery,
    'schema lacks core types',
  );
  definitions.AnnotationQuery.additionalProperties = true;

  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  const valid = validate(model);
  assert.ok(valid, JSON.stringify(validate.errors?.slice(0, 10), null, 2));
});

test('the dashboard has the agreed identity and variables', () => {
  assert.equal(model.title, 'pg-keeper');
  assert.equal(model.uid, 'pg-keeper');
  assert.equal(model.refresh, '10s');
  assert.deepEqual(model.time, { from: 'now-1h', to: 'now' });
  assert.ok(model.tags.includes('pg-keeper'));

  const vars = new Map(model.templating.list.map((v) => [v.name, v]));
  assert.deepEqual([...vars.keys()], ['datasource', 'job', 'cluster', 'instance']);
  assert.equal(vars.get('datasource')?.type, 'datasource');
  assert.equal(vars.get('datasource')?.query, 'prometheus');

  const job = vars.get('job');
  assert.equal(job?.type, 'query');
  assert.equal(job.query, 'label_values(pg_keeper_build_info, job)');
  assert.equal(job.current?.value, 'pg-keeper');
  assert.equal(job.multi, false);
  assert.deepEqual(job.datasource, DATASOURCE);

  // The pairs: all of them by default, as `.*` (no regex of every name).
  const cluster = vars.get('cluster');
  assert.equal(cluster?.type, 'query');
  assert.equal(cluster.query, 'label_values(pg_keeper_node_info{job="$job"}, cluster)');
  assert.equal(cluster.multi, true);
  assert.equal(cluster.includeAll, true);
  assert.equal(cluster.allValue, '.*');
  assert.deepEqual(cluster.current?.value, ['$__all']);
  assert.deepEqual(cluster.datasource, DATASOURCE);

  const instance = vars.get('instance');
  assert.equal(instance?.type, 'query');
  assert.equal(
    instance.query,
    'label_values(pg_keeper_node_info{job="$job", cluster=~"$cluster"}, instance)',
  );
  assert.equal(instance.multi, true);
  assert.equal(instance.includeAll, true);
  assert.deepEqual(instance.datasource, DATASOURCE);
});

test('every panel, in rows too, has a title, a description, a unit, and reads ${datasource}', () => {
  const panels = dataPanels();
  assert.ok(panels.length >= 20, `only ${panels.length} panels`);
  assert.ok(
    model.panels.some((p) => p.type === 'row' && p.collapsed && (p.panels ?? []).length > 0),
    'expected a collapsed row',
  );
  for (const panel of panels) {
    const name = panel.title ?? `panel ${panel.id}`;
    assert.ok(panel.title?.trim(), `panel ${panel.id} has no title`);
    assert.ok(panel.description?.trim(), `${name}: no description`);
    assert.ok(panel.fieldConfig?.defaults?.unit?.trim(), `${name}: no unit`);
    assert.deepEqual(panel.datasource, DATASOURCE, `${name}: panel datasource`);
    assert.ok((panel.targets ?? []).length > 0, `${name}: no query`);
    for (const target of panel.targets ?? []) {
      assert.deepEqual(target.datasource, DATASOURCE, `${name}: query ${target.refId} datasource`);
      assert.ok(target.expr?.trim(), `${name}: query ${target.refId} has no expr`);
    }
    const refIds = (panel.targets ?? []).map((t) => t.refId);
    assert.equal(new Set(refIds).size, refIds.length, `${name}: duplicate refIds`);
  }
  for (const row of model.panels.filter((p) => p.type === 'row'))
    assert.ok(row.title?.trim(), 'row without title');
  for (const annotation of queryAnnotations()) {
    assert.deepEqual(annotation.datasource, DATASOURCE, `annotation ${annotation.name}: datasource`);
  }
});

test('panel ids and titles are unique and every panel fits the 24-column grid', () => {
  const all = model.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const titles = all.map((p) => p.title);
  assert.equal(new Set(titles).size, titles.length, 'duplicate panel titles');
  const ids = all.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'duplicate panel ids');
  for (const p of all) {
    assert.ok(p.gridPos, `${p.title}: no gridPos`);
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title}: wider than the grid`);
  }
});

test('promotions and async switches are dashboard annotations', () => {
  const annotations = queryAnnotations();
  const uses = (metric: string): boolean => annotations.some((a) => a.expr?.includes(metric));
  assert.ok(uses('pg_keeper_last_promotion_timestamp_seconds'), 'no promotion annotation');
  assert.ok(uses('pg_keeper_last_async_switch_timestamp_seconds'), 'no async switch annotation');
});

test('every expression covers panels and annotations', () => {
  const fromPanels = dataPanels().flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const fromAnnotations = queryAnnotations().map((a) => a.expr);
  assert.deepEqual(exprs, [...fromPanels, ...fromAnnotations]);
});

test('every rate(), irate() and increase() uses $__rate_interval', () => {
  let calls = 0;
  for (const expr of exprs) {
    for (const { fn, args } of callArguments(expr, ['rate', 'irate', 'increase'])) {
      calls++;
      const ranges = [...args.matchAll(/\[([^\]]*)\]/g)].map((m) => m[1]);
      assert.deepEqual(ranges, ['$__rate_interval'], `${fn}() without [$__rate_interval] in: ${expr}`);
    }
  }
  assert.ok(calls > 10, `only ${calls} rate/increase calls found: is the lexer broken?`);
});

const fleetExprs = new Set((fleetPanel().targets ?? []).map((t) => t.expr));

test('every selector filters on the job and instance variables (the fleet overview: on the job only)', () => {
  for (const expr of exprs) {
    const found = selectors(expr);
    assert.ok(found.length > 0, `no selector found in: ${expr}`);
    const fleet = fleetExprs.has(expr);
    for (const s of found) {
      assert.ok(s.name, `selector without a metric name in: ${expr}`);
      assert.equal(s.matchers.get('job'), '="$job"', `${s.name} not filtered by job="$job" in: ${expr}`);
      if (fleet) {
        // Every pair of the job, whatever is selected: the way from one pair to another.
        assert.ok(
          !s.matchers.has('instance') && !s.matchers.has('cluster'),
          `fleet overview narrowed in: ${expr}`,
        );
        continue;
      }
      assert.equal(
        s.matchers.get('instance'),
        '=~"$instance"',
        `${s.name} not filtered by instance=~"$instance" in: ${expr}`,
      );
    }
  }
});

test('every expression but the fleet overview joins pg_keeper_node_info of the selected pairs', () => {
  for (const expr of exprs) {
    if (fleetExprs.has(expr)) continue;
    const info = selectors(expr).filter((s) => s.name === 'pg_keeper_node_info');
    assert.ok(info.length > 0, `not joined with pg_keeper_node_info: ${expr}`);
    for (const s of info)
      assert.equal(
        s.matchers.get('cluster'),
        '=~"$cluster"',
        `pg_keeper_node_info not filtered by $cluster in: ${expr}`,
      );
    assert.match(expr, /group_left \(cluster, node\)/, `the join does not bring cluster and node: ${expr}`);
  }
});

test('every legend, annotation text and tag names the pair', () => {
  for (const panel of dataPanels()) {
    if (panel.type === 'table') continue; // columns, not legends: the pair is the first column
    for (const target of panel.targets ?? [])
      assert.match(
        target.legendFormat ?? '',
        /\{\{cluster\}\}/,
        `${panel.title}: legend ${target.legendFormat}`,
      );
  }
  for (const a of queryAnnotations()) {
    assert.match(a.textFormat ?? '', /\{\{cluster\}\}/, `annotation ${a.name}: text ${a.textFormat}`);
    assert.deepEqual(a.tagKeys?.split(/,\s*/), ['cluster', 'node'], `annotation ${a.name}: tags`);
  }
});

test('the fleet overview is a table at the top, one instant query per column, one row per pair', () => {
  const first = model.panels[0];
  assert.equal(first?.type, 'row');
  assert.equal(first.title, 'Fleet');
  const fleet = fleetPanel();
  assert.equal(model.panels[1]?.id, fleet.id, 'the fleet table is the first panel, under its row');
  assert.equal(fleet.gridPos?.w, 24);
  const targets = fleet.targets ?? [];
  assert.ok(targets.length >= 5, `only ${targets.length} columns`);
  for (const t of targets) {
    assert.equal(t.instant, true, `query ${t.refId} is not instant`);
    assert.equal(t.format, 'table', `query ${t.refId} is not a table`);
    // One series per pair, labelled cluster alone (the merge joins the columns on it), and a
    // row for every pair seen within the hour, even when it has nothing to say for a column.
    assert.match(t.expr ?? '', / by \(cluster\) /, `query ${t.refId} is not per pair`);
    assert.match(
      t.expr ?? '',
      /or \(-?\d+ \* group by \(cluster\) \(last_over_time\(pg_keeper_node_info\{job="\$job"\}\[1h\]\)\)\)$/,
      `query ${t.refId} leaves out the pairs it has no value for`,
    );
  }
  assert.deepEqual(
    (fleet.transformations ?? []).map((t) => t.id),
    ['merge', 'organize'],
  );
  // Every column has a header: Grafana names the merged values `Value #<refId>`.
  const overrides = fleet.fieldConfig?.overrides ?? [];
  const property = (field: string, id: string): unknown =>
    overrides
      .find((o) => o.matcher.id === 'byName' && o.matcher.options === field)
      ?.properties.find((p) => p.id === id)?.value;
  for (const t of targets)
    assert.ok(property(`Value #${t.refId}`, 'displayName'), `column ${t.refId} has no header`);
  assert.equal(property('cluster', 'displayName'), 'Pair');
});

test("the fleet overview's pair links to this dashboard narrowed to that pair", () => {
  const override = (fleetPanel().fieldConfig?.overrides ?? []).find((o) => o.matcher.options === 'cluster');
  const links = override?.properties.find((p) => p.id === 'links')?.value as { url: string }[] | undefined;
  assert.equal(links?.length, 1, 'one link on the pair column');
  const url = new URL(links[0]?.url ?? '', 'http://grafana.invalid');
  assert.equal(url.pathname, `/d/${DASHBOARD_UID}/pg-keeper`);
  assert.equal(url.searchParams.get('var-cluster'), '${__value.raw}');
  // The data source, the job and the time range stay; $instance goes back to all.
  for (const kept of ['${datasource:queryparam}', '${job:queryparam}', '${__url_time_range}'])
    assert.ok(url.search.includes(kept), `the link drops ${kept}`);
  assert.ok(!url.search.includes('instance'), 'the link keeps $instance, which may belong to another pair');
});

test('every metric the dashboard reads is one pg-keeper exports', async () => {
  const exported = await exportedMetricNames();
  assert.ok(
    exported.has('pg_keeper_role') && exported.has('process_cpu_seconds_total'),
    'registry looks empty',
  );
  const used = new Set(exprs.flatMap((e) => selectors(e).map((s) => s.name)));
  const unknown = [...used].filter((name) => !exported.has(name));
  assert.deepEqual(unknown, [], `not exported by pg-keeper: ${unknown.join(', ')}`);
});

test('the example Prometheus configuration scrapes many pairs in one job pg-keeper, two keepers a pair', () => {
  interface TargetGroup {
    targets: string[];
    labels?: Record<string, string>;
  }
  const examples = new URL('../../docs/examples/', import.meta.url);
  const read = (name: string): unknown => parse(readFileSync(fileURLToPath(new URL(name, examples)), 'utf8'));
  const config = read('prometheus.yml') as {
    scrape_configs: {
      job_name: string;
      static_configs: TargetGroup[];
      file_sd_configs: { files: string[] }[];
    }[];
  };
  assert.deepEqual(
    config.scrape_configs.map((c) => c.job_name),
    ['pg-keeper'],
  );
  const job = config.scrape_configs[0];
  // Static: the pair of the compose example, whose keepers keep the default cluster_name.
  assert.deepEqual(job?.static_configs, [
    { targets: ['pg1:9754', 'pg2:9754'], labels: { cluster: 'default' } },
  ]);
  // Files: one per pair, named as the pattern says, each with both keepers and its pair's name.
  const patterns = job.file_sd_configs.flatMap((f) => f.files);
  assert.deepEqual(patterns, ['pg-keeper-*.targets.yml']);
  const files = readdirSync(fileURLToPath(examples)).filter((f) => /^pg-keeper-.*\.targets\.yml$/.test(f));
  assert.deepEqual(files.sort(), ['pg-keeper-billing.targets.yml', 'pg-keeper-orders.targets.yml']);
  for (const f of files) {
    const groups = read(f) as TargetGroup[];
    const pair = /^pg-keeper-(.*)\.targets\.yml$/.exec(f)?.[1];
    assert.equal(groups.length, 1, `${f}: one pair`);
    assert.equal(groups[0]?.targets.length, 2, `${f}: both keepers`);
    assert.deepEqual(groups[0]?.labels, { cluster: pair }, `${f}: labelled with its pair`);
  }
  // promtool's check of the files: test/e2e/prometheus-tools.test.ts.
});

test('the example Grafana provisioning loads a Prometheus data source and the dashboard folder', () => {
  const read = (path: string): unknown =>
    parse(
      readFileSync(
        fileURLToPath(new URL(`../../docs/examples/grafana-provisioning/${path}`, import.meta.url)),
        'utf8',
      ),
    );
  const ds = read('datasources/prometheus.yml') as {
    datasources: { type: string; jsonData?: { timeInterval?: string } }[];
  };
  assert.equal(ds.datasources[0]?.type, 'prometheus');
  assert.equal(ds.datasources[0]?.jsonData?.timeInterval, '5s');
  const dashboards = read('dashboards/pg-keeper.yml') as {
    providers: { type: string; options: { path: string } }[];
  };
  assert.equal(dashboards.providers[0]?.type, 'file');
  assert.ok(dashboards.providers[0]?.options.path);
});
