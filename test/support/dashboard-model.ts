// The shipped Grafana dashboard as its tests read it: the JSON model scripts/dashboard.ts builds,
// typed as far as the tests look, its query expressions, and those expressions as Grafana would
// send them to Prometheus.

import { buildDashboard, dashboardExpressions } from '../../scripts/dashboard.js';

export interface Target {
  refId?: string;
  expr?: string;
  legendFormat?: string;
  instant?: boolean;
  format?: string;
  datasource?: { type?: string; uid?: string };
}
export interface OverrideJson {
  matcher: { id: string; options?: unknown };
  properties: { id: string; value?: unknown }[];
}
export interface PanelJson {
  id?: number;
  type: string;
  title?: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  fieldConfig?: { defaults?: { unit?: string }; overrides?: OverrideJson[] };
  targets?: Target[];
  transformations?: { id: string; options?: unknown }[];
  gridPos?: { x: number; y: number; w: number; h: number };
  panels?: PanelJson[];
  collapsed?: boolean;
}
export interface AnnotationJson {
  name: string;
  builtIn?: number;
  expr?: string;
  textFormat?: string;
  tagKeys?: string;
  datasource?: { type?: string; uid?: string };
}
export interface VariableJson {
  type: string;
  name: string;
  query?: unknown;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string;
  current?: { value?: unknown };
  datasource?: { type?: string; uid?: string };
}
export interface DashboardJson {
  title: string;
  uid: string;
  tags: string[];
  refresh: string;
  time: { from: string; to: string };
  schemaVersion: number;
  panels: PanelJson[];
  annotations: { list: AnnotationJson[] };
  templating: { list: VariableJson[] };
}

export const model = JSON.parse(JSON.stringify(buildDashboard())) as DashboardJson;
export const exprs = dashboardExpressions(model);

/** Panels that show data: rows excluded, panels inside collapsed rows included. */
export function dataPanels(): PanelJson[] {
  return model.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

/** The fleet overview: the table at the top, which reads every pair whatever is selected. */
export function fleetPanel(): PanelJson {
  const panel = dataPanels().find((p) => p.type === 'table');
  if (!panel) throw new Error('the dashboard has no table panel (the fleet overview)');
  return panel;
}

/** The fleet overview's columns: each header (the override of `Value #<refId>`) and its query. */
export function fleetColumns(): { header: string; expr: string }[] {
  const panel = fleetPanel();
  const overrides = panel.fieldConfig?.overrides ?? [];
  return (panel.targets ?? []).map((t) => {
    const header = overrides
      .find((o) => o.matcher.id === 'byName' && o.matcher.options === `Value #${t.refId ?? ''}`)
      ?.properties.find((p) => p.id === 'displayName')?.value;
    if (typeof header !== 'string' || !t.expr)
      throw new Error(`fleet overview: query ${t.refId} has no header`);
    return { header, expr: t.expr };
  });
}

export function queryAnnotations(): AnnotationJson[] {
  return model.annotations.list.filter((a) => !a.builtIn);
}

/** What Grafana would send Prometheus, with the variables set to plausible values. */
export function interpolate(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$job', 'pg-keeper')
    .replaceAll('$cluster', '.*')
    .replaceAll('$instance', 'pg1:9754|pg2:9754|pg3:9754|pg4:9754');
}
