// The shipped Grafana dashboard as its tests read it: the JSON model scripts/dashboard.ts builds,
// typed as far as the tests look, its query expressions, and those expressions as Grafana would
// send them to Prometheus.

import { buildDashboard, dashboardExpressions } from '../../scripts/dashboard.js';

export interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
export interface PanelJson {
  id?: number;
  type: string;
  title?: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Target[];
  gridPos?: { x: number; y: number; w: number; h: number };
  panels?: PanelJson[];
  collapsed?: boolean;
}
export interface AnnotationJson {
  name: string;
  builtIn?: number;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
export interface VariableJson {
  type: string;
  name: string;
  query?: unknown;
  multi?: boolean;
  includeAll?: boolean;
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

export function queryAnnotations(): AnnotationJson[] {
  return model.annotations.list.filter((a) => !a.builtIn);
}

/** What Grafana would send Prometheus, with the variables set to plausible values. */
export function interpolate(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$job', 'pg-keeper')
    .replaceAll('$instance', 'pg1:9754|pg2:9754');
}
