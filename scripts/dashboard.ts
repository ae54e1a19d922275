// Generates the Grafana dashboard shipped in dashboards/pg-keeper.json. The JSON is
// committed so that people can import it without Node; this file is its source, and
// `npm run dashboard` rewrites it (`-- --check` only compares, for CI).
//
// Built with Grafana's foundation SDK (typed builders for the classic dashboard JSON model).
// Every query goes through `q()`, every selector through `sel()`, so that each one filters
// on the $job and $instance variables and reads from the ${datasource} variable.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

export const DASHBOARD_FILE = fileURLToPath(new URL('../dashboards/pg-keeper.json', import.meta.url));

const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

// ---------------------------------------------------------------------------------------
// PromQL helpers

/** A selector filtered on the dashboard's job and instance variables. */
function sel(metric: string, ...matchers: string[]): string {
  return `${metric}{${['job="$job"', 'instance=~"$instance"', ...matchers].join(', ')}}`;
}

/** Adds the `node` label (node1/node2) from pg_keeper_node_info, for legends. */
function withNode(expr: string): string {
  return `${expr} * on (instance, job) group_left (node) ${sel('pg_keeper_node_info')}`;
}

/** One value per node: a gauge that has at most one series per keeper. */
function perNode(expr: string): string {
  return `max by (node) (${withNode(expr)})`;
}

/** Per-second rate per node (and the extra labels in `by`). */
function ratePerNode(metric: string, by = 'node'): string {
  return `sum by (${by}) (${withNode(`rate(${sel(metric)}[$__rate_interval])`)})`;
}

/** Increase over the rate interval per node (and the extra labels in `by`). */
function increasePerNode(metric: string, by = 'node'): string {
  return `sum by (${by}) (${withNode(`increase(${sel(metric)}[$__rate_interval])`)})`;
}

function quantile(q: number, histogram: string, by = 'node'): string {
  return `histogram_quantile(${q}, ${ratePerNode(`${histogram}_bucket`, `${by}, le`)})`;
}

/** pg_keeper_role as one number per node: 0 unknown, 1 primary, 2 standby. */
const ROLE_CODE = perNode(
  `(1 * max by (instance, job) (${sel('pg_keeper_role', 'role="primary"')})` +
    ` + 2 * max by (instance, job) (${sel('pg_keeper_role', 'role="standby"')}))`,
);

// ---------------------------------------------------------------------------------------
// Panel helpers

interface Query {
  expr: string;
  legend: string;
  /** Instant queries for "now" stats; range queries otherwise. */
  instant?: boolean;
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

// ---------------------------------------------------------------------------------------
// Rows

function overview(d: dashboard.DashboardBuilder): void {
  d.withRow(row('Overview'))
    .withPanel(
      stateStat(
        {
          title: 'Role',
          description:
            'Role of each node now, as its keeper last saw it (pg_keeper_role). Exactly one primary and one standby is the healthy state; unknown means the keeper could not reach its local server.',
          queries: [{ expr: ROLE_CODE, legend: '{{node}}', instant: true }],
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
            { expr: perNode(sel('pg_keeper_synchronous_replication')), legend: '{{node}}', instant: true },
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
            { expr: `max(${sel('pg_keeper_peer_is_primary')})`, legend: 'two primaries', instant: true },
          ],
          w: 6,
          h: 4,
        },
        [
          [0, 'no', 'green'],
          [1, 'TWO PRIMARIES', 'red'],
        ],
      ).textMode(common.BigValueTextMode.Value),
    )
    .withPanel(
      stateStat(
        {
          title: 'Paused',
          description:
            'A paused keeper keeps observing and exporting but takes no action: no async switch, no promotion.',
          queries: [{ expr: perNode(sel('pg_keeper_paused')), legend: '{{node}}', instant: true }],
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
            { expr: perNode(sel('pg_keeper_peer_up')), legend: '{{node}} → peer', instant: true },
            { expr: perNode(sel('pg_keeper_local_up')), legend: '{{node}} → local server', instant: true },
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
            "Prometheus' own up metric for each keeper's /metrics endpoint. A keeper that is down cannot act: its node has no failover.",
          queries: [{ expr: sel('up'), legend: '{{instance}}', instant: true }],
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
            legend: '{{node}}',
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
          queries: [{ expr: ROLE_CODE, legend: '{{node}}' }],
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
          queries: [{ expr: perNode(sel('pg_keeper_synchronous_replication')), legend: '{{node}}' }],
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
          { expr: ratePerNode('pg_keeper_heartbeats_total'), legend: '{{node}} sent' },
          { expr: ratePerNode('pg_keeper_heartbeat_failures_total'), legend: '{{node}} failed' },
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
            legend: '{{node}} failures in a row',
          },
          { expr: `max(${sel('pg_keeper_keepalive_threshold')})`, legend: 'keepalive_count' },
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
            legend: '{{node}}',
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
          { expr: quantile(0.5, 'pg_keeper_heartbeat_duration_seconds'), legend: '{{node}} p50' },
          { expr: quantile(0.99, 'pg_keeper_heartbeat_duration_seconds'), legend: '{{node}} p99' },
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
          { expr: perNode(sel('pg_keeper_promotions_total')), legend: '{{node}} promotions', instant: true },
          {
            expr: perNode(sel('pg_keeper_async_switches_total')),
            legend: '{{node}} async switches',
            instant: true,
          },
          {
            expr: perNode(sel('pg_keeper_sync_restores_total')),
            legend: '{{node}} sync restores',
            instant: true,
          },
          {
            expr: `sum by (node) (${withNode(sel('pg_keeper_promotion_vetoes_total'))})`,
            legend: '{{node}} vetoes',
            instant: true,
          },
          {
            expr: `sum by (node) (${withNode(sel('pg_keeper_action_failures_total'))})`,
            legend: '{{node}} failed actions',
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
          { expr: increasePerNode('pg_keeper_promotions_total'), legend: '{{node}} promotion' },
          { expr: increasePerNode('pg_keeper_async_switches_total'), legend: '{{node}} async switch' },
          { expr: increasePerNode('pg_keeper_sync_restores_total'), legend: '{{node}} sync restore' },
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
            expr: increasePerNode('pg_keeper_promotion_vetoes_total', 'node, reason'),
            legend: '{{node}} veto: {{reason}}',
          },
          {
            expr: increasePerNode('pg_keeper_action_failures_total', 'node, action'),
            legend: '{{node}} failed: {{action}}',
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
            expr: increasePerNode('pg_keeper_after_command_runs_total', 'node, hook, result'),
            legend: '{{node}} {{hook}}: {{result}}',
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
            expr: increasePerNode('pg_keeper_after_command_failures_total', 'node, hook'),
            legend: '{{node}} {{hook}}',
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
            expr: `${increasePerNode('pg_keeper_after_command_duration_seconds_sum', 'node, hook')} / (${increasePerNode('pg_keeper_after_command_duration_seconds_count', 'node, hook')} > 0)`,
            legend: '{{node}} {{hook}} mean',
          },
          {
            expr: quantile(0.99, 'pg_keeper_after_command_duration_seconds', 'node, hook'),
            legend: '{{node}} {{hook}} p99',
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
          { expr: perNode(sel('pg_keeper_replication_lag_bytes')), legend: '{{node}} (primary) → standby' },
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
          { expr: perNode(sel('pg_keeper_replication_lag_seconds')), legend: '{{node}} (primary) → standby' },
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
            legend: '{{node}} (standby)',
          },
          { expr: `max(${sel('pg_keeper_stream_timeout_seconds')})`, legend: 'stream_timeout' },
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
        queries: [{ expr: perNode(sel('pg_keeper_timeline')), legend: '{{node}}' }],
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
        queries: [{ expr: perNode(sel('pg_keeper_streaming_standbys')), legend: '{{node}} (primary)' }],
        w: 8,
        h: 8,
      })
        .decimals(0)
        .min(0)
        .lineInterpolation(common.LineInterpolation.StepAfter),
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
          queries: [{ expr: withNode(sel('process_resident_memory_bytes')), legend: '{{node}}' }],
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
              legend: '{{node}}',
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
          queries: [{ expr: withNode(sel('nodejs_eventloop_lag_p99_seconds')), legend: '{{node}}' }],
          w: 8,
          h: 8,
        }).min(0),
      )
      .withPanel(
        graphPanel({
          title: 'Uptime',
          description: 'Time since each keeper process started: a drop is a restart.',
          unit: 's',
          queries: [{ expr: withNode(`time() - ${sel('process_start_time_seconds')}`), legend: '{{node}}' }],
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
              expr: increasePerNode('pg_keeper_config_reloads_total', 'node, result'),
              legend: '{{node}} {{result}}',
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
            { expr: withNode(sel('pg_keeper_build_info')), legend: '{{node}}: {{version}}', instant: true },
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
    .tagKeys('node');
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
      new dashboard.QueryVariableBuilder('instance')
        .label('Instance')
        .datasource(DATASOURCE)
        .query('label_values(pg_keeper_build_info{job="$job"}, instance)')
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
    .uid('pg-keeper')
    .description(
      'pg-keeper: roles, heartbeats, failover actions and replication of a two-node PostgreSQL pair',
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
        '{{node}} promoted its server to primary',
      ),
    )
    .annotation(
      actionAnnotation(
        'Async switches',
        'Async switch',
        'pg_keeper_last_async_switch_timestamp_seconds',
        'orange',
        '{{node}} switched to asynchronous replication',
      ),
    )
    .annotation(
      actionAnnotation(
        'Sync restores',
        'Sync restore',
        'pg_keeper_last_sync_restore_timestamp_seconds',
        'green',
        '{{node}} restored synchronous replication',
      ),
    );
  variables(d);
  overview(d);
  stateOverTime(d);
  heartbeats(d);
  actions(d);
  afterCommand(d);
  replication(d);
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
