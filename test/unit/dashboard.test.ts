// The shipped Grafana dashboard: committed JSON in step with its generator, valid against
// Grafana's own dashboard types, and every query on metrics that pg-keeper exports, filtered
// by the dashboard's variables. That Prometheus parses every query, and what the key panels
// show, is checked with promtool in test/e2e/prometheus-tools.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { createGenerator } from 'ts-json-schema-generator';
import { parse } from 'yaml';
import { dataPanels, exprs, model, queryAnnotations } from '../support/dashboard-model.js';
import { exportedMetricNames } from '../support/prometheus-tools.js';
import { DASHBOARD_FILE, renderDashboard } from '../../scripts/dashboard.js';

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
  assert.deepEqual([...vars.keys()], ['datasource', 'job', 'instance']);
  assert.equal(vars.get('datasource')?.type, 'datasource');
  assert.equal(vars.get('datasource')?.query, 'prometheus');

  const job = vars.get('job');
  assert.equal(job?.type, 'query');
  assert.equal(job.query, 'label_values(pg_keeper_build_info, job)');
  assert.equal(job.current?.value, 'pg-keeper');
  assert.equal(job.multi, false);
  assert.deepEqual(job.datasource, DATASOURCE);

  const instance = vars.get('instance');
  assert.equal(instance?.type, 'query');
  assert.equal(instance.query, 'label_values(pg_keeper_build_info{job="$job"}, instance)');
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

test('every selector filters on the job and instance variables', () => {
  for (const expr of exprs) {
    const found = selectors(expr);
    assert.ok(found.length > 0, `no selector found in: ${expr}`);
    for (const s of found) {
      assert.ok(s.name, `selector without a metric name in: ${expr}`);
      assert.equal(s.matchers.get('job'), '="$job"', `${s.name} not filtered by job="$job" in: ${expr}`);
      assert.equal(
        s.matchers.get('instance'),
        '=~"$instance"',
        `${s.name} not filtered by instance=~"$instance" in: ${expr}`,
      );
    }
  }
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

test('the example Prometheus configuration scrapes both keepers as job pg-keeper', () => {
  const file = fileURLToPath(new URL('../../docs/examples/prometheus.yml', import.meta.url));
  const config = parse(readFileSync(file, 'utf8')) as {
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  const job = config.scrape_configs.find((c) => c.job_name === 'pg-keeper');
  assert.deepEqual(
    job?.static_configs.flatMap((s) => s.targets),
    ['pg1:9754', 'pg2:9754'],
  );
  // promtool's check of the file: test/e2e/prometheus-tools.test.ts.
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
