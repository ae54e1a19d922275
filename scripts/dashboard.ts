// Generates the Grafana dashboard shipped in dashboards/pg-keeper.json. The JSON is
// committed so that people can import it without Node; this file is its source, and
// `npm run dashboard` rewrites it (`-- --check` only compares, for CI).
//
// Built with Grafana's foundation SDK (typed builders for the classic dashboard JSON model).
// Every query goes through `q()`, every selector through `sel()`, so that each one filters
// on the $job and $instance variables and reads from the ${datasource} variable, and every
// expression joins pg_keeper_node_info filtered on $cluster (`withNode()`): that names each
// keeper's pair and node, and narrows the dashboard to the selected pairs. Only the fleet
// overview at the top (`fleetSel()`) reads every pair of the job, whatever is selected.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

export const DASHBOARD_FILE = fileURLToPath(new URL('../dashboards/pg-keeper.json', import.meta.url));
export const DASHBOARD_UID = 'pg-keeper';

const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

// ---------------------------------------------------------------------------------------
// PromQL helpers

/** A selector filtered on the dashboard's job and instance variables. */
function sel(metric: string, ...matchers: string[]): string {
  return `${metric}{${['job="$job"', 'instance=~"$instance"', ...matchers].join(', ')}}`;
}

/** The info metric of the selected pairs' keepers: always 1, labels cluster, node, peer. */
const NODE_INFO = sel('pg_keeper_node_info', 'cluster=~"$cluster"');

/** The labels that name a keeper in legends: its pair and its node. */
const NODE = 'cluster, node';

/**
 * Adds the `cluster` and `node` labels from pg_keeper_node_info (for legends), and keeps only
 * the keepers of the selected pairs. pg_keeper_node_info is 1, so values are unchanged.
 */
function withNode(expr: string): string {
  return `(${expr}) * on (instance, job) group_left (${NODE}) ${NODE_INFO}`;
}

/** One value per node: a gauge that has at most one series per keeper. */
function perNode(expr: string): string {
  return `max by (${NODE}) (${withNode(expr)})`;
}

/**
 * pg_keeper_node_info as last seen within the hour: names a keeper that is down now (it
 * exports nothing), as the PgKeeperDown alert does.
 */
const LAST_NODE_INFO = `topk by (instance, job) (1, last_over_time(${NODE_INFO}[1h]))`;

/** One value per pair: `agg` of its keepers' values. */
function perPair(expr: string, agg = 'max'): string {
  return `${agg} by (cluster) (${withNode(expr)})`;
}

/** Per-second rate per node (and the extra labels in `by`). */
function ratePerNode(metric: string, by = NODE): string {
  return `sum by (${by}) (${withNode(`rate(${sel(metric)}[$__rate_interval])`)})`;
}

/** Increase over the rate interval per node (and the extra labels in `by`). */
function increasePerNode(metric: string, by = NODE): string {
  return `sum by (${by}) (${withNode(`increase(${sel(metric)}[$__rate_interval])`)})`;
}

function quantile(q: number, histogram: string, by = NODE): string {
  return `histogram_quantile(${q}, ${ratePerNode(`${histogram}_bucket`, `${by}, le`)})`;
}

/** pg_keeper_role as one number per node: 0 unknown, 1 primary, 2 standby. */
const ROLE_CODE = perNode(
  `(1 * max by (instance, job) (${sel('pg_keeper_role', 'role="primary"')})` +
    ` + 2 * max by (instance, job) (${sel('pg_keeper_role', 'role="standby"')}))`,
);

/**
 * A node's name as a number, for value mappings (node names are always node1 or node2):
 * 1 on node1's keeper, 2 on node2's. `info` is a pg_keeper_node_info selector.
 */
function nodeCode(info: (...matchers: string[]) => string): string {
  return `(${info('node="node1"')} or 2 * ${info('node="node2"')})`;
}

/** The lease holder etcd names, as seen by each keeper: 0 nobody, 1 node1, 2 node2. */
function holderCode(select: (metric: string, ...matchers: string[]) => string): string {
  const holder = (name: string) => select('pg_keeper_arbiter_lease_holder', `holder="${name}"`);
  return `(${holder('node1')} or 2 * ${holder('node2')} or 0 * ${holder('none')})`;
}

/** The lease holder per pair over time (no sample in two-node mode or while etcd does not answer). */
const HOLDER_CODE = perPair(holderCode(sel));

// ---------------------------------------------------------------------------------------
// Panel helpers

interface Query {
  expr: string;
  legend: string;
  /** Instant queries for "now" stats; range queries otherwise. */
  instant?: boolean;
  /** As a table (one row per series, its labels as columns), for the table panel. */
  table?: boolean;
}

interface PanelSpec {
  title: string;
  description: string;
  unit: string;
  queries: Query[];
  w: number;
  h: number;
}

function q(query: Query, index: number): prometheus.DataqueryBuilder {
  const b = new prometheus.DataqueryBuilder()
    .refId(String.fromCharCode(65 + index))
    .datasource(DATASOURCE)
    .editorMode(prometheus.QueryEditorMode.Code)
    .expr(query.expr)
    .legendFormat(query.legend);
  if (query.table) b.format(prometheus.PromQueryFormat.Table);
  return query.instant ? b.instant() : b.range();
}

type Mapping = [value: number, text: string, color: string];

function valueMappings(mappings: Mapping[]): dashboard.ValueMapping[] {
  const options: Record<string, dashboard.ValueMappingResult> = {};
  mappings.forEach(([value, text, color], index) => (options[String(value)] = { text, color, index }));
  return [{ type: dashboard.MappingType.ValueToText, options }];
}

function thresholds(base: string, ...steps: [number, string][]): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps([{ value: null, color: base }, ...steps.map(([value, color]) => ({ value, color }))]);
}

function statPanel(spec: PanelSpec): stat.PanelBuilder {
  return new stat.PanelBuilder()
    .title(spec.title)
    .description(spec.description)
    .datasource(DATASOURCE)
    .unit(spec.unit)
    .span(spec.w)
    .height(spec.h)
    .targets(spec.queries.map(q))
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .graphMode(common.BigValueGraphMode.None)
    .textMode(common.BigValueTextMode.ValueAndName)
    .colorMode(common.BigValueColorMode.Background)
    .justifyMode(common.BigValueJustifyMode.Center)
    .orientation(common.VizOrientation.Auto);
}

/** A stat whose value is a state: coloured by its mapping. */
function stateStat(spec: Omit<PanelSpec, 'unit'>, mappings: Mapping[]): stat.PanelBuilder {
  return statPanel({ ...spec, unit: 'none' })
    .mappings(valueMappings(mappings))
    .thresholds(thresholds('text'))
    .noValue('no data');
}

function timelinePanel(spec: Omit<PanelSpec, 'unit'>, mappings: Mapping[]): statetimeline.PanelBuilder {
  return new statetimeline.PanelBuilder()
    .title(spec.title)
    .description(spec.description)
    .datasource(DATASOURCE)
    .unit('none')
    .span(spec.w)
    .height(spec.h)
    .targets(spec.queries.map(q))
    .mappings(valueMappings(mappings))
    .thresholds(thresholds('text'))
    .mergeValues(true)
    .showValue(common.VisibilityMode.Auto)
    .rowHeight(0.8)
    .fillOpacity(80)
    .lineWidth(0)
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.List)
        .placement(common.LegendPlacement.Bottom),
    )
    .tooltip(
      new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.None),
    );
}

function graphPanel(spec: PanelSpec): timeseries.PanelBuilder {
  return new timeseries.PanelBuilder()
    .title(spec.title)
    .description(spec.description)
    .datasource(DATASOURCE)
    .unit(spec.unit)
    .span(spec.w)
    .height(spec.h)
    .targets(spec.queries.map(q))
    .lineWidth(1)
    .fillOpacity(10)
    .showPoints(common.VisibilityMode.Never)
    .spanNulls(false)
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.List)
        .placement(common.LegendPlacement.Bottom),
    )
    .tooltip(
      new common.VizTooltipOptionsBuilder()
        .mode(common.TooltipDisplayMode.Multi)
        .sort(common.SortOrder.Descending),
    );
}

/** Counts per interval of things that happen rarely: bars, so that a single event shows. */
function eventsPanel(spec: PanelSpec): timeseries.PanelBuilder {
  return graphPanel(spec)
    .drawStyle(common.GraphDrawStyle.Bars)
    .fillOpacity(80)
    .decimals(0)
    .min(0)
    .stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal));
}

/** Overrides for a series that is a limit, not a measurement: a dashed red line. */
const AS_LIMIT: dashboard.DynamicConfigValue[] = [
  { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
  { id: 'custom.fillOpacity', value: 0 },
  { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } },
];

function row(title: string, collapsed = false): dashboard.RowBuilder {
  return new dashboard.RowBuilder(title).collapsed(collapsed);
}

// ---------------------------------------------------------------------------------------
// Mappings shared by stats and timelines

const ROLE: Mapping[] = [
  [0, 'unknown', 'orange'],
  [1, 'primary', 'blue'],
  [2, 'standby', 'green'],
];
const SYNC: Mapping[] = [
  [1, 'sync', 'green'],
  [0, 'async', 'orange'],
];
const HOLDER: Mapping[] = [
  [0, 'nobody', 'orange'],
  [1, 'node1', 'blue'],
  [2, 'node2', 'purple'],
];

// ---------------------------------------------------------------------------------------
// The fleet overview: every pair of the job, whatever $cluster and $instance select, so that
// it stays the way from one pair to another. One instant query per column, one series per
// pair (label `cluster` only); a pair that has nothing to say for a column gets a negative
// code that the column's mapping names, so that every pair has a full row.

/** A selector on the job only: the fleet overview reads every pair. */
function fleetSel(metric: string, ...matchers: string[]): string {
  return `${metric}{${['job="$job"', ...matchers].join(', ')}}`;
}

const FLEET_INFO = (...matchers: string[]): string => fleetSel('pg_keeper_node_info', ...matchers);

/** Adds the `cluster` label to a per-keeper expression of the fleet overview. */
function inPair(expr: string): string {
  return `(${expr}) * on (instance, job) group_left (cluster) ${FLEET_INFO()}`;
}

/** Every pair whose keepers answered within the hour, at `code`: the column's fallback. */
function orEveryPair(expr: string, code: number): string {
  return `(${expr}) or (${code} * group by (cluster) (last_over_time(${FLEET_INFO()}[1h])))`;
}

interface FleetColumn {
  header: string;
  expr: string;
  unit: string;
  mappings?: Mapping[];
  thresholds?: [base: string, ...steps: [number, string][]];
}

const FLEET_COLUMNS: FleetColumn[] = [
  {
    header: 'Primary',
    // 0: neither keeper says primary; 3: both do.
    expr: orEveryPair(
      `sum by (cluster) (${fleetSel('pg_keeper_role', 'role="primary"')} * on (instance, job) group_left (cluster) ${nodeCode(FLEET_INFO)})`,
      -1,
    ),
    unit: 'none',
    mappings: [
      [-1, 'no keeper answers', 'red'],
      [0, 'NONE', 'red'],
      [1, 'node1', 'blue'],
      [2, 'node2', 'blue'],
      [3, 'TWO PRIMARIES', 'red'],
    ],
  },
  {
    header: 'Replication',
    // The primary's keeper alone exports it; min: an async primary shows even beside a sync one.
    expr: orEveryPair(`min by (cluster) (${inPair(fleetSel('pg_keeper_synchronous_replication'))})`, -1),
    unit: 'none',
    mappings: [[-1, 'no primary', 'text'], ...SYNC],
  },
  {
    header: 'Lease holder',
    expr: orEveryPair(
      `max by (cluster) (${inPair(holderCode(fleetSel))}) or (-2 * group by (cluster) (${inPair(fleetSel('pg_keeper_arbiter_up'))}))`,
      -1,
    ),
    unit: 'none',
    mappings: [
      [-2, 'etcd unreachable', 'red'],
      [-1, 'no arbiter', 'text'],
      [0, 'nobody', 'orange'],
      [1, 'node1', 'blue'],
      [2, 'node2', 'blue'],
    ],
  },
  {
    header: 'Since last failover',
    // pg_keeper_last_promotion_timestamp_seconds is kept across restarts of the keeper.
    expr: orEveryPair(
      `time() - max by (cluster) (${inPair(`${fleetSel('pg_keeper_last_promotion_timestamp_seconds')} > 0`)})`,
      -1,
    ),
    unit: 's',
    mappings: [[-1, 'never', 'text']],
    thresholds: ['text', [0, 'red'], [600, 'orange'], [86400, 'text']],
  },
  {
    header: 'Heartbeats failing',
    // Failed in a row, the worse of the two keepers: 0 while every heartbeat succeeds.
    expr: orEveryPair(
      `max by (cluster) (${inPair(fleetSel('pg_keeper_heartbeat_consecutive_failures'))})`,
      -1,
    ),
    unit: 'none',
    mappings: [[-1, 'no keeper answers', 'red']],
    thresholds: ['red', [0, 'green'], [1, 'orange']],
  },
  {
    header: 'Keepers up',
    expr: orEveryPair(
      `sum by (cluster) (${fleetSel('up')} * on (instance, job) group_left (cluster) topk by (instance, job) (1, last_over_time(${FLEET_INFO()}[1h])))`,
      0,
    ),
    unit: 'none',
    thresholds: ['red', [1, 'orange'], [2, 'green']],
  },
];

/** The dashboard itself, narrowed to one pair: the fleet overview's link. */
const PAIR_LINK =
  `/d/${DASHBOARD_UID}/pg-keeper?\${datasource:queryparam}&\${job:queryparam}` +
  '&var-cluster=${__value.raw}&${__url_time_range}';

// ---------------------------------------------------------------------------------------
// Rows

/** The fleet overview's column of query `index` after Grafana's merge: `Value #A`, `Value #B`... */
function fleetField(index: number): string {
  return `Value #${String.fromCharCode(65 + index)}`;
}

function fleet(d: dashboard.DashboardBuilder): void {
  const panel = new table.PanelBuilder()
    .title('Pairs')
    .description(
      'One row per pair of the job, whatever the variables select: its primary, the replication mode on that primary, who holds the etcd lease (with the arbiter), how long ago a keeper last promoted its server, the most heartbeats failed in a row by one of its keepers now, and how many of its keepers Prometheus scrapes. Click a pair to narrow the rest of the dashboard to it.',
    )
    .datasource(DATASOURCE)
    .unit('none')
    .span(24)
    .height(7)
    .targets(
      FLEET_COLUMNS.map((c, i) => q({ expr: c.expr, legend: c.header, instant: true, table: true }, i)),
    )
    // One frame per query (Time, cluster, Value #X): merged on cluster into one row per pair.
    .transformations([
      { id: 'merge', options: {} },
      {
        id: 'organize',
        options: {
          excludeByName: { Time: true },
          indexByName: Object.fromEntries([
            ['cluster', 0],
            ...FLEET_COLUMNS.map((_, i) => [fleetField(i), i + 1] as const),
          ]),
          renameByName: {},
        },
      },
    ])
    .showHeader(true)
    .cellHeight(common.TableCellHeight.Sm)
    .sortBy([new common.TableSortByFieldStateBuilder().displayName('Pair').desc(false)])
    .overrideByName('cluster', [
      { id: 'displayName', value: 'Pair' },
      { id: 'links', value: [{ title: 'Show only pair ${__value.raw}', url: PAIR_LINK }] },
    ]);
  FLEET_COLUMNS.forEach((c, i) => {
    const [base, ...steps] = c.thresholds ?? ['text'];
    panel.overrideByName(fleetField(i), [
      { id: 'displayName', value: c.header },
      { id: 'unit', value: c.unit },
      { id: 'decimals', value: 0 },
      ...(c.mappings ? [{ id: 'mappings', value: valueMappings(c.mappings) }] : []),
      { id: 'thresholds', value: thresholds(base, ...steps).build() },
      { id: 'color', value: { mode: dashboard.FieldColorModeId.Thresholds } },
      { id: 'custom.cellOptions', value: { type: common.TableCellDisplayMode.ColorText } },
    ]);
  });
  d.withRow(row('Fleet')).withPanel(panel);
}

function overview(d: dashboard.DashboardBuilder): void {
  d.withRow(row('Nodes now'))
    .withPanel(
      stateStat(
        {
          title: 'Role',
          description:
            'Role of each node now, as its keeper last saw it (pg_keeper_role). Exactly one primary and one standby is the healthy state; unknown means the keeper could not reach its local server.',
          queries: [{ expr: ROLE_CODE, legend: '{{cluster}} {{node}}', instant: true }],
          w: 6,
          h: 4,
        },
        ROLE,
      ),
    )
    .withPanel(
      stateStat(
        {
          title: 'Replication mode',
          description:
            'On the primary: synchronous (commits wait for the standby) or asynchronous (the keeper switched to async after the standby missed keepalive_count heartbeats). A standby exports nothing here.',
          queries: [
            {
              expr: perNode(sel('pg_keeper_synchronous_replication')),
              legend: '{{cluster}} {{node}}',
              instant: true,
            },
          ],
          w: 6,
          h: 4,
        },
        SYNC,
      ).noValue('no primary'),
    )
    .withPanel(
      stateStat(
        {
          title: 'Two primaries',
          description:
            'Whether a keeper sees its local server and its peer both as primaries (pg_keeper_peer_is_primary): split brain, to resolve by hand now.',
          queries: [
            { expr: perPair(sel('pg_keeper_peer_is_primary')), legend: '{{cluster}}', instant: true },
          ],
          w: 6,
          h: 4,
        },
        [
          [0, 'no', 'green'],
          [1, 'TWO PRIMARIES', 'red'],
        ],
      ),
    )
    .withPanel(
      stateStat(
        {
          title: 'Paused',
          description:
            'A paused keeper keeps observing and exporting but takes no action: no async switch, no promotion.',
          queries: [
            { expr: perNode(sel('pg_keeper_paused')), legend: '{{cluster}} {{node}}', instant: true },
          ],
          w: 6,
          h: 4,
        },
        [
          [0, 'active', 'green'],
          [1, 'paused', 'orange'],
        ],
      ),
    )
    .withPanel(
      stateStat(
        {
          title: 'Reachability',
          description:
            "Whether each keeper's last heartbeat to the other node succeeded (pg_keeper_peer_up), and whether its local server answered (pg_keeper_local_up).",
          queries: [
            { expr: perNode(sel('pg_keeper_peer_up')), legend: '{{cluster}} {{node}} → peer', instant: true },
            {
              expr: perNode(sel('pg_keeper_local_up')),
              legend: '{{cluster}} {{node}} → local server',
              instant: true,
            },
          ],
          w: 8,
          h: 4,
        },
        [
          [1, 'up', 'green'],
          [0, 'down', 'red'],
        ],
      ),
    )
    .withPanel(
      stateStat(
        {
          title: 'Keeper up',
          description:
            "Prometheus' own up metric for each keeper's /metrics endpoint. A keeper that is down cannot act: its node has no failover. A keeper is named by the pair and node it last exported within the hour; one not seen for longer is left out (PgKeeperDown still names it by its instance).",
          queries: [
            {
              expr: `${sel('up')} * on (instance, job) group_left (${NODE}) ${LAST_NODE_INFO}`,
              legend: '{{cluster}} {{node}} ({{instance}})',
              instant: true,
            },
          ],
          w: 8,
          h: 4,
        },
        [
          [1, 'up', 'green'],
          [0, 'DOWN', 'red'],
        ],
      ),
    )
    .withPanel(
      statPanel({
        title: 'Time since last tick',
        description:
          "Seconds since each keeper's loop last completed a tick. It should stay near keepalive_time; a growing value means the loop is stuck (a hung database call, an overloaded host).",
        unit: 's',
        queries: [
          {
            expr: perNode(`time() - (${sel('pg_keeper_last_tick_timestamp_seconds')} > 0)`),
            legend: '{{cluster}} {{node}}',
            instant: true,
          },
        ],
        w: 8,
        h: 4,
      })
        .decimals(1)
        .thresholds(thresholds('green', [15, 'orange'], [60, 'red'])),
    );
}

function stateOverTime(d: dashboard.DashboardBuilder): void {
  d.withRow(row('Roles and replication mode over time'))
    .withPanel(
      timelinePanel(
        {
          title: 'Role of each node over time',
          description:
            'Role of each node over time (pg_keeper_role). A failover shows as the standby turning primary; the old primary comes back as standby once it is rebuilt.',
          queries: [{ expr: ROLE_CODE, legend: '{{cluster}} {{node}}' }],
          w: 12,
          h: 6,
        },
        ROLE,
      ),
    )
    .withPanel(
      timelinePanel(
        {
          title: 'Replication mode over time',
          description:
            "The primary's replication mode over time: async from the moment its keeper gave up on the standby, sync again once the standby streamed and caught up.",
          queries: [
            { expr: perNode(sel('pg_keeper_synchronous_replication')), legend: '{{cluster}} {{node}}' },
          ],
          w: 12,
          h: 6,
        },
        SYNC,
      ),
    );
}

function heartbeats(d: dashboard.DashboardBuilder): void {
  d.withRow(row('Heartbeats'))
    .withPanel(
      graphPanel({
        title: 'Heartbeats and failures',
        description:
          'Heartbeats each keeper sends to its peer per second, and how many of them failed or timed out.',
        unit: 'reqps',
        queries: [
          { expr: ratePerNode('pg_keeper_heartbeats_total'), legend: '{{cluster}} {{node}} sent' },
          { expr: ratePerNode('pg_keeper_heartbeat_failures_total'), legend: '{{cluster}} {{node}} failed' },
        ],
        w: 12,
        h: 8,
      }).overrideByRegexp('.* failed', [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }]),
    )
    .withPanel(
      graphPanel({
        title: 'Consecutive failures against keepalive_count',
        description:
          'Heartbeats that failed in a row, per keeper. When the count reaches keepalive_count (the dashed line), the primary switches to async and the standby promotes, unless a guard vetoes.',
        unit: 'short',
        queries: [
          {
            expr: perNode(sel('pg_keeper_heartbeat_consecutive_failures')),
            legend: '{{cluster}} {{node}} failures in a row',
          },
          { expr: perPair(sel('pg_keeper_keepalive_threshold')), legend: '{{cluster}} keepalive_count' },
        ],
        w: 12,
        h: 8,
      })
        .decimals(0)
        .min(0)
        .lineInterpolation(common.LineInterpolation.StepAfter)
        .overrideByQuery('B', AS_LIMIT),
    )
    .withPanel(
      graphPanel({
        title: 'Time left before the keeper acts',
        description:
          '(keepalive_count - consecutive failures) × keepalive_time: how long the peer may stay silent before this keeper switches to async (primary) or promotes (standby). Equal to the full window while heartbeats succeed.',
        unit: 's',
        queries: [
          {
            expr: withNode(
              `clamp_min((${sel('pg_keeper_keepalive_threshold')} - on (instance, job) ${sel('pg_keeper_heartbeat_consecutive_failures')}) * on (instance, job) ${sel('pg_keeper_keepalive_time_seconds')}, 0)`,
            ),
            legend: '{{cluster}} {{node}}',
          },
        ],
        w: 12,
        h: 8,
      })
        .min(0)
        .lineInterpolation(common.LineInterpolation.StepAfter)
        .thresholds(thresholds('red', [5, 'orange'], [10, 'green']))
        .thresholdsStyle(
          new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Off),
        ),
    )
    .withPanel(
      graphPanel({
        title: 'Heartbeat round trip',
        description:
          'Round trip of successful heartbeats (connect, query, answer), p50 and p99. It must stay well below keepalive_time: the heartbeat timeout is below it.',
        unit: 's',
        queries: [
          { expr: quantile(0.5, 'pg_keeper_heartbeat_duration_seconds'), legend: '{{cluster}} {{node}} p50' },
          {
            expr: quantile(0.99, 'pg_keeper_heartbeat_duration_seconds'),
            legend: '{{cluster}} {{node}} p99',
          },
        ],
        w: 12,
        h: 8,
      }).min(0),
    );
}

function actions(d: dashboard.DashboardBuilder): void {
  d.withRow(row('Actions'))
    .withPanel(
      statPanel({
        title: 'Actions since keeper start',
        description:
          'What each keeper has done since it started (counters reset when a keeper restarts). Promotions and async switches are also drawn as annotations on every graph.',
        unit: 'short',
        queries: [
          {
            expr: perNode(sel('pg_keeper_promotions_total')),
            legend: '{{cluster}} {{node}} promotions',
            instant: true,
          },
          {
            expr: perNode(sel('pg_keeper_async_switches_total')),
            legend: '{{cluster}} {{node}} async switches',
            instant: true,
          },
          {
            expr: perNode(sel('pg_keeper_sync_restores_total')),
            legend: '{{cluster}} {{node}} sync restores',
            instant: true,
          },
          {
            expr: `sum by (cluster, node) (${withNode(sel('pg_keeper_promotion_vetoes_total'))})`,
            legend: '{{cluster}} {{node}} vetoes',
            instant: true,
          },
          {
            expr: `sum by (cluster, node) (${withNode(sel('pg_keeper_action_failures_total'))})`,
            legend: '{{cluster}} {{node}} failed actions',
            instant: true,
          },
        ],
        w: 8,
        h: 8,
      })
        .colorMode(common.BigValueColorMode.None)
        .orientation(common.VizOrientation.Horizontal)
        .decimals(0),
    )
    .withPanel(
      eventsPanel({
        title: 'Actions over time',
        description:
          'Promotions, async switches and sync restores per interval, per node. A failover is one promotion on the standby and, if the old primary was still alive, one async switch on it.',
        unit: 'short',
        queries: [
          { expr: increasePerNode('pg_keeper_promotions_total'), legend: '{{cluster}} {{node}} promotion' },
          {
            expr: increasePerNode('pg_keeper_async_switches_total'),
            legend: '{{cluster}} {{node}} async switch',
          },
          {
            expr: increasePerNode('pg_keeper_sync_restores_total'),
            legend: '{{cluster}} {{node}} sync restore',
          },
        ],
        w: 8,
        h: 8,
      }),
    )
    .withPanel(
      eventsPanel({
        title: 'Vetoes and failed actions',
        description:
          'Actions a guard refused, by reason (counted once per run of failed heartbeats), and actions on the local server that failed (retried at the next tick), by action.',
        unit: 'short',
        queries: [
          {
            expr: increasePerNode('pg_keeper_promotion_vetoes_total', 'cluster, node, reason'),
            legend: '{{cluster}} {{node}} veto: {{reason}}',
          },
          {
            expr: increasePerNode('pg_keeper_action_failures_total', 'cluster, node, action'),
            legend: '{{cluster}} {{node}} failed: {{action}}',
          },
        ],
        w: 8,
        h: 8,
      }),
    );
}

function afterCommand(d: dashboard.DashboardBuilder): void {
  d.withRow(row('after_command'))
    .withPanel(
      eventsPanel({
        title: 'after_command runs by result',
        description:
          'Runs of after_command (after a promotion) and after_async_command (after an async switch), by result.',
        unit: 'short',
        queries: [
          {
            expr: increasePerNode('pg_keeper_after_command_runs_total', 'cluster, node, hook, result'),
            legend: '{{cluster}} {{node}} {{hook}}: {{result}}',
          },
        ],
        w: 8,
        h: 8,
      }),
    )
    .withPanel(
      eventsPanel({
        title: 'after_command failures',
        description:
          'Runs that exited non-zero, could not start, or timed out. After a promotion this usually means the virtual IP did not move or the old primary was not fenced: look at the keeper log.',
        unit: 'short',
        queries: [
          {
            expr: increasePerNode('pg_keeper_after_command_failures_total', 'cluster, node, hook'),
            legend: '{{cluster}} {{node}} {{hook}}',
          },
        ],
        w: 8,
        h: 8,
      }).colorScheme(
        new dashboard.FieldColorBuilder().mode(dashboard.FieldColorModeId.Fixed).fixedColor('red'),
      ),
    )
    .withPanel(
      graphPanel({
        title: 'after_command duration',
        description:
          'Mean duration of the runs that ended in each interval, and the p99 from the histogram. Compare with after_command_timeout.',
        unit: 's',
        queries: [
          {
            expr: `${increasePerNode('pg_keeper_after_command_duration_seconds_sum', 'cluster, node, hook')} / (${increasePerNode('pg_keeper_after_command_duration_seconds_count', 'cluster, node, hook')} > 0)`,
            legend: '{{cluster}} {{node}} {{hook}} mean',
          },
          {
            expr: quantile(0.99, 'pg_keeper_after_command_duration_seconds', 'cluster, node, hook'),
            legend: '{{cluster}} {{node}} {{hook}} p99',
          },
        ],
        w: 8,
        h: 8,
      })
        .min(0)
        .showPoints(common.VisibilityMode.Always),
    );
}

function replication(d: dashboard.DashboardBuilder): void {
  d.withRow(row('Replication'))
    .withPanel(
      graphPanel({
        title: 'Replication lag (bytes)',
        description:
          'On the primary: WAL not yet replayed by its most lagging standby. Synchronous replication is restored only once this is small enough (sync_restore_max_lag_bytes).',
        unit: 'bytes',
        queries: [
          {
            expr: perNode(sel('pg_keeper_replication_lag_bytes')),
            legend: '{{cluster}} {{node}} (primary) → standby',
          },
        ],
        w: 12,
        h: 8,
      }).min(0),
    )
    .withPanel(
      graphPanel({
        title: 'Replication lag (time)',
        description: 'On the primary: replay_lag of its most lagging standby, from pg_stat_replication.',
        unit: 's',
        queries: [
          {
            expr: perNode(sel('pg_keeper_replication_lag_seconds')),
            legend: '{{cluster}} {{node}} (primary) → standby',
          },
        ],
        w: 12,
        h: 8,
      }).min(0),
    )
    .withPanel(
      graphPanel({
        title: 'WAL receiver silence',
        description:
          "On the standby: time since its WAL receiver last heard from the primary. While it stays below stream_timeout (the dashed line) the standby will not promote: the primary is alive, only the keeper's path to it is broken.",
        unit: 's',
        queries: [
          {
            expr: perNode(sel('pg_keeper_wal_receiver_last_message_age_seconds')),
            legend: '{{cluster}} {{node}} (standby)',
          },
          { expr: perPair(sel('pg_keeper_stream_timeout_seconds')), legend: '{{cluster}} stream_timeout' },
        ],
        w: 8,
        h: 8,
      })
        .min(0)
        .overrideByQuery('B', AS_LIMIT),
    )
    .withPanel(
      graphPanel({
        title: 'Timeline',
        description:
          'Timeline of each local server. A promotion starts a new timeline; after a failover both nodes should end up on the same one.',
        unit: 'none',
        queries: [{ expr: perNode(sel('pg_keeper_timeline')), legend: '{{cluster}} {{node}}' }],
        w: 8,
        h: 8,
      })
        .decimals(0)
        .lineInterpolation(common.LineInterpolation.StepAfter),
    )
    .withPanel(
      graphPanel({
        title: 'Streaming standbys',
        description:
          'On the primary: standbys in state streaming in pg_stat_replication. 0 means the pair has no replica right now.',
        unit: 'none',
        queries: [
          { expr: perNode(sel('pg_keeper_streaming_standbys')), legend: '{{cluster}} {{node}} (primary)' },
        ],
        w: 8,
        h: 8,
      })
        .decimals(0)
        .min(0)
        .lineInterpolation(common.LineInterpolation.StepAfter),
    );
}

function arbiter(d: dashboard.DashboardBuilder): void {
  d.withRow(row('etcd arbiter'))
    .withPanel(
      timelinePanel(
        {
          title: 'Lease holder over time',
          description:
            "Which node's keeper holds the pair's lease in etcd (the primary's key), as its keepers read it at every tick: it must be the primary. A failover shows as the holder changing. Empty in two-node mode, and while no keeper reaches etcd.",
          queries: [{ expr: HOLDER_CODE, legend: '{{cluster}}' }],
          w: 12,
          h: 6,
        },
        HOLDER,
      ),
    )
    .withPanel(
      timelinePanel(
        {
          title: 'Replication recorded in etcd over time',
          description:
            'What etcd records about the pair\'s replication (pg_keeper_arbiter_replication_synchronous): "async" is written before the primary switches, "sync" only once the standby has everything the primary acknowledged alone. A standby promotes only while "sync" is recorded.',
          queries: [
            { expr: perPair(sel('pg_keeper_arbiter_replication_synchronous'), 'min'), legend: '{{cluster}}' },
          ],
          w: 12,
          h: 6,
        },
        SYNC,
      ),
    )
    .withPanel(
      timelinePanel(
        {
          title: 'etcd reachable',
          description:
            "Whether each keeper's last call to etcd succeeded within the lease TTL (pg_keeper_arbiter_up). Without etcd nothing changes, but a standby may not promote and a primary may not switch to async.",
          queries: [{ expr: perNode(sel('pg_keeper_arbiter_up')), legend: '{{cluster}} {{node}}' }],
          w: 6,
          h: 8,
        },
        [
          [1, 'up', 'green'],
          [0, 'DOWN', 'red'],
        ],
      ),
    )
    .withPanel(
      graphPanel({
        title: 'Lease time left',
        description:
          "Time left on the holder's lease by its keeper's own clock, from the send time of the last renewal that succeeded, against etcd_lease_ttl (the dashed line). Renewals every quarter of the TTL keep it near the top; a fall towards 0 means renewals are failing.",
        unit: 's',
        queries: [
          { expr: perNode(sel('pg_keeper_arbiter_lease_remaining_seconds')), legend: '{{cluster}} {{node}}' },
          { expr: perPair(sel('pg_keeper_arbiter_lease_ttl_seconds')), legend: '{{cluster}} etcd_lease_ttl' },
        ],
        w: 6,
        h: 8,
      })
        .min(0)
        .overrideByQuery('B', AS_LIMIT),
    )
    .withPanel(
      graphPanel({
        title: 'Lease renewals',
        description:
          'Lease renewals per second that etcd acknowledged, and those that failed or timed out (only the holder renews).',
        unit: 'reqps',
        queries: [
          {
            expr: ratePerNode('pg_keeper_arbiter_lease_renewals_total'),
            legend: '{{cluster}} {{node}} renewed',
          },
          {
            expr: ratePerNode('pg_keeper_arbiter_lease_renewal_failures_total'),
            legend: '{{cluster}} {{node}} failed',
          },
        ],
        w: 6,
        h: 8,
      })
        .min(0)
        .overrideByRegexp('.* failed', [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }]),
    )
    .withPanel(
      eventsPanel({
        title: 'Leases lost',
        description:
          'Leases a keeper lost without giving them up: not renewed in time, or expired in etcd. A primary without its lease keeps synchronous replication, and its peer may take the lease and promote.',
        unit: 'short',
        queries: [
          { expr: increasePerNode('pg_keeper_arbiter_leases_lost_total'), legend: '{{cluster}} {{node}}' },
        ],
        w: 6,
        h: 8,
      }).colorScheme(
        new dashboard.FieldColorBuilder().mode(dashboard.FieldColorModeId.Fixed).fixedColor('red'),
      ),
    );
}

function keeperProcess(d: dashboard.DashboardBuilder): void {
  // Collapsed: the process is rarely the story. Collapsed rows carry their panels inside.
  d.withRow(
    row('Keeper process', true)
      .withPanel(
        graphPanel({
          title: 'Resident memory',
          description: 'Resident set size of each keeper process.',
          unit: 'bytes',
          queries: [{ expr: withNode(sel('process_resident_memory_bytes')), legend: '{{cluster}} {{node}}' }],
          w: 8,
          h: 8,
        }).min(0),
      )
      .withPanel(
        graphPanel({
          title: 'CPU',
          description: 'CPU time each keeper process uses, as a fraction of one core.',
          unit: 'percentunit',
          queries: [
            {
              expr: withNode(`rate(${sel('process_cpu_seconds_total')}[$__rate_interval])`),
              legend: '{{cluster}} {{node}}',
            },
          ],
          w: 8,
          h: 8,
        }).min(0),
      )
      .withPanel(
        graphPanel({
          title: 'Event loop lag (p99)',
          description:
            'Node.js event loop delay of each keeper. Heartbeats are scheduled on the event loop: a lag near keepalive_time delays them.',
          unit: 's',
          queries: [
            { expr: withNode(sel('nodejs_eventloop_lag_p99_seconds')), legend: '{{cluster}} {{node}}' },
          ],
          w: 8,
          h: 8,
        }).min(0),
      )
      .withPanel(
        graphPanel({
          title: 'Uptime',
          description: 'Time since each keeper process started: a drop is a restart.',
          unit: 's',
          queries: [
            {
              expr: withNode(`time() - ${sel('process_start_time_seconds')}`),
              legend: '{{cluster}} {{node}}',
            },
          ],
          w: 8,
          h: 8,
        }).min(0),
      )
      .withPanel(
        eventsPanel({
          title: 'Configuration reloads',
          description:
            'SIGHUP reloads of the configuration, by result. A failed reload keeps the previous settings.',
          unit: 'short',
          queries: [
            {
              expr: increasePerNode('pg_keeper_config_reloads_total', 'cluster, node, result'),
              legend: '{{cluster}} {{node}} {{result}}',
            },
          ],
          w: 8,
          h: 8,
        }),
      )
      .withPanel(
        statPanel({
          title: 'Version',
          description:
            'pg-keeper version of each keeper (pg_keeper_build_info). Both should match outside an upgrade.',
          unit: 'none',
          queries: [
            {
              expr: withNode(sel('pg_keeper_build_info')),
              legend: '{{cluster}} {{node}}: {{version}}',
              instant: true,
            },
          ],
          w: 8,
          h: 8,
        })
          .textMode(common.BigValueTextMode.Name)
          .colorMode(common.BigValueColorMode.None),
      ),
  );
}

// ---------------------------------------------------------------------------------------
// Annotations: a point at the exact time of each action. The *_timestamp_seconds gauges
// hold when it last happened; with useValueForTime Grafana takes the value (in ms) as the
// event's time and merges equal ones, so each action is one mark at its exact time whatever
// the step, and a keeper restart (counters back to 0) adds no false event.

function actionAnnotation(
  name: string,
  title: string,
  metric: string,
  color: string,
  text: string,
): dashboard.AnnotationQueryBuilder {
  return new dashboard.AnnotationQueryBuilder()
    .name(name)
    .datasource(DATASOURCE)
    .enable(true)
    .iconColor(color)
    .expr(withNode(`(${sel(metric)} > 0) * 1000`))
    .useValueForTime(true)
    .titleFormat(title)
    .textFormat(text)
    .tagKeys(NODE);
}

function builtInAnnotation(): dashboard.AnnotationQueryBuilder {
  return new dashboard.AnnotationQueryBuilder()
    .name('Annotations & Alerts')
    .builtIn(1)
    .datasource({ type: 'grafana', uid: '-- Grafana --' })
    .enable(true)
    .hide(true)
    .iconColor('rgba(0, 211, 255, 1)')
    .type('dashboard');
}

// ---------------------------------------------------------------------------------------
// Variables

function variables(d: dashboard.DashboardBuilder): void {
  d.withVariable(
    new dashboard.DatasourceVariableBuilder('datasource').label('Data source').type('prometheus'),
  )
    .withVariable(
      new dashboard.QueryVariableBuilder('job')
        .label('Job')
        .datasource(DATASOURCE)
        .query('label_values(pg_keeper_build_info, job)')
        .current({ selected: true, text: 'pg-keeper', value: 'pg-keeper' })
        .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
        .sort(dashboard.VariableSort.AlphabeticalAsc)
        .multi(false)
        .includeAll(false),
    )
    .withVariable(
      // The pairs (cluster_name): all by default. `.*` rather than a list of every name, so
      // that a long fleet makes no long regex, and a keeper without the label still shows.
      new dashboard.QueryVariableBuilder('cluster')
        .label('Pair')
        .datasource(DATASOURCE)
        .query('label_values(pg_keeper_node_info{job="$job"}, cluster)')
        .current({ selected: true, text: ['All'], value: ['$__all'] })
        .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
        .sort(dashboard.VariableSort.AlphabeticalAsc)
        .multi(true)
        .includeAll(true)
        .allValue('.*'),
    )
    .withVariable(
      new dashboard.QueryVariableBuilder('instance')
        .label('Instance')
        .datasource(DATASOURCE)
        .query('label_values(pg_keeper_node_info{job="$job", cluster=~"$cluster"}, instance)')
        .current({ selected: true, text: ['All'], value: ['$__all'] })
        .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
        .sort(dashboard.VariableSort.AlphabeticalAsc)
        .multi(true)
        .includeAll(true),
    );
}

// ---------------------------------------------------------------------------------------

export function buildDashboard(): dashboard.Dashboard {
  const d = new dashboard.DashboardBuilder('pg-keeper')
    .uid(DASHBOARD_UID)
    .description(
      'pg-keeper: roles, heartbeats, failover actions and replication of two-node PostgreSQL pairs, one pair or a fleet',
    )
    .tags(['pg-keeper', 'postgresql', 'failover'])
    .refresh('10s')
    .time({ from: 'now-1h', to: 'now' })
    .timezone('browser')
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .editable()
    .annotation(builtInAnnotation())
    .annotation(
      actionAnnotation(
        'Promotions',
        'Promotion',
        'pg_keeper_last_promotion_timestamp_seconds',
        'red',
        '{{cluster}}: {{node}} promoted its server to primary',
      ),
    )
    .annotation(
      actionAnnotation(
        'Async switches',
        'Async switch',
        'pg_keeper_last_async_switch_timestamp_seconds',
        'orange',
        '{{cluster}}: {{node}} switched to asynchronous replication',
      ),
    )
    .annotation(
      actionAnnotation(
        'Sync restores',
        'Sync restore',
        'pg_keeper_last_sync_restore_timestamp_seconds',
        'green',
        '{{cluster}}: {{node}} restored synchronous replication',
      ),
    );
  variables(d);
  fleet(d);
  overview(d);
  stateOverTime(d);
  heartbeats(d);
  actions(d);
  afterCommand(d);
  replication(d);
  arbiter(d);
  keeperProcess(d);
  const model = d.build();
  numberPanels(model);
  showAnnotationToggles(model);
  dropIntervalDefaults(model);
  return model;
}

/** The builder leaves panel ids unset (rows at 0); Grafana links and repeats need unique ones. */
function numberPanels(model: dashboard.Dashboard): void {
  let id = 0;
  for (const panel of model.panels ?? []) {
    panel.id = ++id;
    if (panel.type === 'row') for (const inner of (panel as dashboard.RowPanel).panels) inner.id = ++id;
  }
}

/** The SDK defaults annotations to Grafana 12's controls menu; keep the toggles in sight. */
function showAnnotationToggles(model: dashboard.Dashboard): void {
  for (const annotation of model.annotations.list ?? []) delete annotation.placement;
}

/** The SDK gives every variable the interval variable's auto* fields; only interval ones use them. */
function dropIntervalDefaults(model: dashboard.Dashboard): void {
  for (const variable of model.templating.list ?? []) {
    if (variable.type === dashboard.VariableType.Interval) continue;
    delete variable.auto;
    delete variable.auto_min;
    delete variable.auto_count;
  }
}

/** Every PromQL expression of the dashboard: panel targets (rows included) and annotations. */
export function dashboardExpressions(model: object): string[] {
  const m = model as dashboard.Dashboard;
  const exprs: string[] = [];
  const fromPanel = (panel: { targets?: unknown[] }): void => {
    for (const target of panel.targets ?? []) {
      const expr = (target as { expr?: unknown }).expr;
      if (typeof expr === 'string') exprs.push(expr);
    }
  };
  for (const panel of m.panels ?? []) {
    fromPanel(panel as dashboard.Panel);
    if (panel.type === 'row') for (const inner of (panel as dashboard.RowPanel).panels) fromPanel(inner);
  }
  for (const annotation of m.annotations.list ?? []) if (annotation.expr) exprs.push(annotation.expr);
  return exprs;
}

export function renderDashboard(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}

function main(argv: string[]): number {
  const rendered = renderDashboard();
  if (argv.includes('--check')) {
    let committed = '';
    try {
      committed = readFileSync(DASHBOARD_FILE, 'utf8');
    } catch {
      // A missing file differs like any other.
    }
    if (committed !== rendered) {
      console.error(`${DASHBOARD_FILE} is out of date with scripts/dashboard.ts: run \`npm run dashboard\``);
      return 1;
    }
    console.log(`${DASHBOARD_FILE} is up to date`);
    return 0;
  }
  writeFileSync(DASHBOARD_FILE, rendered);
  console.log(`wrote ${DASHBOARD_FILE}`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
