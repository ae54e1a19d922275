// A real Prometheus and Alertmanager (Debian's binaries) for end-to-end tests, and a webhook
// receiver that records what Alertmanager posts. Everything listens on 127.0.0.1 only and keeps
// its data in a directory of the caller. Every spawned daemon is stopped by its pid: by stop(),
// and, should a test never get there, when the test process exits or is interrupted.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { onExit } from '../../src/local-pair/exit-hook.js';
import { freePort } from '../../src/local-pair/free-port.js';
import { waitFor } from '../../src/util/wait.js';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';
export const ALERTMANAGER_BIN = '/usr/bin/prometheus-alertmanager';

/** Fails the test, saying how to install it, when a binary is missing. */
export function requireBinary(file: string): void {
  try {
    accessSync(file, constants.X_OK);
  } catch {
    assert.fail(
      `${file} is not installed: run scripts/ensure-deps.sh (Debian packages prometheus, prometheus-alertmanager)`,
    );
  }
}

// ---- daemons, killed by pid whatever happens to the test ----

export class Daemon {
  private readonly exited: Promise<void>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    /** http://127.0.0.1:PORT */
    readonly url: string,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * Spawns `bin` with the arguments `args(port)` for a free port, and waits until it answers
   * /-/ready. A port taken between freePort() and the bind is retried with another one.
   */
  static async start(
    name: string,
    bin: string,
    args: (port: number) => string[],
    logFile: string,
    timeoutMs = 60_000,
  ): Promise<Daemon> {
    requireBinary(bin);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const fd = openSync(logFile, 'w');
      const child = spawn(bin, args(port), { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      child.on('error', () => {}); // seen as an exit below
      const removeExitHook = onExit(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      child.once('exit', removeExitHook);
      const daemon = new Daemon(name, child, `http://127.0.0.1:${port}`, logFile);
      const outcome = await waitFor(
        async () => {
          if (!daemon.running) return 'exited';
          const res = await fetch(`${daemon.url}/-/ready`, { signal: AbortSignal.timeout(2000) });
          return res.ok ? 'ready' : false;
        },
        `${name} to answer /-/ready`,
        timeoutMs,
        100,
      ).catch(async (err: Error) => {
        await daemon.stop();
        throw new Error(`${err.message}\n${name} log:\n${daemon.log().slice(-4000)}`);
      });
      if (outcome === 'ready') return daemon;
      await daemon.stop();
      if (attempt < 3 && /address already in use/i.test(daemon.log())) continue;
      throw new Error(`${name} exited before it was ready:\n${daemon.log().slice(-4000)}`);
    }
  }

  /** SIGTERM by pid, SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

// ---- the webhook receiver ----

/** One alert of Alertmanager's webhook payload (version 4). */
export interface WebhookAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL: string;
  fingerprint: string;
}

export interface WebhookPayload {
  version: string;
  groupKey: string;
  status: 'firing' | 'resolved';
  receiver: string;
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  commonAnnotations: Record<string, string>;
  externalURL: string;
  alerts: WebhookAlert[];
  /** Added here: Date.now() when the POST arrived. */
  receivedAt: number;
}

export class WebhookReceiver {
  readonly payloads: WebhookPayload[] = [];
  /** Requests that were not a JSON payload: kept to fail loudly rather than lose an alert. */
  readonly rejected: string[] = [];
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      try {
        const payload = JSON.parse(body) as WebhookPayload;
        assert.ok(Array.isArray(payload.alerts), 'no alerts array');
        this.payloads.push({ ...payload, receivedAt: Date.now() });
        res.writeHead(200).end();
      } catch (err) {
        this.rejected.push(`${req.method} ${req.url}: ${String(err)}: ${body.slice(0, 500)}`);
        res.writeHead(400).end();
      }
    });
  });
  private port = 0;

  private constructor() {}

  /** Where Alertmanager posts. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/alerts`;
  }

  static async start(): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver();
    const server = receiver.server;
    // Port 0: the kernel picks a free port at the bind itself, so no other process can take it first.
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, resolve);
    });
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    receiver.port = address.port;
    return receiver;
  }

  /** Every alert received so far, each with the time its payload arrived. */
  alerts(): (WebhookAlert & { receivedAt: number })[] {
    return this.payloads.flatMap((p) => p.alerts.map((a) => ({ ...a, receivedAt: p.receivedAt })));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ---- Alertmanager ----

export interface AlertmanagerOptions {
  dir: string;
  webhookUrl: string;
  groupBy?: string[];
  /** Alertmanager's inhibit_rules, as in its configuration file. */
  inhibitRules?: unknown[];
}

/**
 * Alertmanager routing everything to one webhook, grouped by `groupBy` (alertname and node by
 * default), sent within ~1 s: a group's first notification after 1 s, the next ones only when
 * the group changes (an alert joins or resolves), or after an hour.
 */
export async function startAlertmanager(o: AlertmanagerOptions): Promise<Daemon> {
  const home = join(o.dir, 'alertmanager');
  mkdirSync(home, { recursive: true });
  const config = join(home, 'alertmanager.yml');
  writeFileSync(
    config,
    stringify({
      route: {
        receiver: 'webhook',
        group_by: o.groupBy ?? ['alertname', 'node'],
        group_wait: '1s',
        group_interval: '1s',
        repeat_interval: '1h',
      },
      receivers: [{ name: 'webhook', webhook_configs: [{ url: o.webhookUrl, send_resolved: true }] }],
      ...(o.inhibitRules ? { inhibit_rules: o.inhibitRules } : {}),
    }),
  );
  return Daemon.start(
    'alertmanager',
    ALERTMANAGER_BIN,
    (port) => [
      `--config.file=${config}`,
      `--storage.path=${join(home, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=', // no gossip: a lone instance, no port of its own
    ],
    join(home, 'alertmanager.log'),
  );
}

// ---- Prometheus ----

export interface PrometheusOptions {
  dir: string;
  job: string;
  /** host:port of each target. */
  targets: string[];
  /** Absolute paths. */
  ruleFiles: string[];
  alertmanagerUrl?: string;
  /** More of the main job's scrape configuration (scheme, tls_config, basic_auth). */
  scrape?: Record<string, unknown>;
  /** Further scrape configurations, as prometheus.yml spells them. */
  moreJobs?: Record<string, unknown>[];
}

/** A series of an instant (`value`) or range (`values`) query. */
export interface PromSeries {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

export interface PromRule {
  name: string;
  query: string;
  health: string;
  lastError?: string;
  type: string;
  state?: string;
  lastEvaluation: string;
}

export interface PromRuleGroup {
  name: string;
  file: string;
  rules: PromRule[];
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: string;
  activeAt: string;
  value: string;
}

export class Prometheus {
  private constructor(readonly daemon: Daemon) {}

  get url(): string {
    return this.daemon.url;
  }

  /** Prometheus scraping `targets` every second, evaluating `ruleFiles` every second. */
  static async start(o: PrometheusOptions): Promise<Prometheus> {
    const home = join(o.dir, 'prometheus');
    mkdirSync(home, { recursive: true });
    const config = join(home, 'prometheus.yml');
    writeFileSync(
      config,
      stringify({
        global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
        rule_files: o.ruleFiles,
        ...(o.alertmanagerUrl
          ? {
              alerting: {
                alertmanagers: [{ static_configs: [{ targets: [new URL(o.alertmanagerUrl).host] }] }],
              },
            }
          : {}),
        scrape_configs: [
          { job_name: o.job, static_configs: [{ targets: o.targets }], ...o.scrape },
          ...(o.moreJobs ?? []),
        ],
      }),
    );
    const daemon = await Daemon.start(
      'prometheus',
      PROMETHEUS_BIN,
      (port) => [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(home, 'data')}`,
        '--storage.tsdb.retention.time=1h',
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      join(home, 'prometheus.log'),
    );
    return new Prometheus(daemon);
  }

  private async api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
    const res = await fetch(`${this.url}${path}`, {
      method: Object.keys(params).length > 0 ? 'POST' : 'GET',
      ...(Object.keys(params).length > 0 ? { body: new URLSearchParams(params) } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') {
      throw new Error(`Prometheus ${path} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
    }
    return body.data;
  }

  /** Instant query at `time` (seconds; default now). A scalar or string result comes back as one series. */
  async query(expr: string, time?: number): Promise<PromSeries[]> {
    const data = await this.api<{ resultType: string; result: unknown }>('/api/v1/query', {
      query: expr,
      ...(time === undefined ? {} : { time: String(time) }),
    });
    if (data.resultType === 'scalar' || data.resultType === 'string') {
      return [{ metric: {}, value: data.result as [number, string] }];
    }
    return data.result as PromSeries[];
  }

  /** Range query; times in seconds. */
  async queryRange(expr: string, start: number, end: number, stepSeconds: number): Promise<PromSeries[]> {
    const data = await this.api<{ resultType: string; result: PromSeries[] }>('/api/v1/query_range', {
      query: expr,
      start: String(start),
      end: String(end),
      step: String(stepSeconds),
    });
    return data.result;
  }

  /** The scrape targets: their health and the last scrape's error. */
  async targets(): Promise<{ labels: Record<string, string>; health: string; lastError: string }[]> {
    return (
      await this.api<{
        activeTargets: { labels: Record<string, string>; health: string; lastError: string }[];
      }>('/api/v1/targets')
    ).activeTargets;
  }

  async ruleGroups(): Promise<PromRuleGroup[]> {
    return (await this.api<{ groups: PromRuleGroup[] }>('/api/v1/rules')).groups;
  }

  /** Pending and firing alerts, with their annotations expanded. */
  async alerts(): Promise<PromAlert[]> {
    return (await this.api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts;
  }

  /** Waits until every target of `job` has been scraped `n` more times (polled, with a deadline). */
  async waitScrapes(job: string, n: number, timeoutMs = 30_000): Promise<void> {
    const oldest = async (): Promise<number> => {
      const r = await this.query(`min(timestamp(up{job="${job}"}))`);
      return Number(r[0]?.value?.[1] ?? NaN);
    };
    // Before the first scrape there is no `up` yet: wait for one.
    const from = await waitFor(
      async () => {
        const t = await oldest();
        return Number.isNaN(t) ? null : t;
      },
      `a first scrape of job ${job}`,
      timeoutMs,
      200,
    );
    // Scrapes of one target are one interval apart, give or take a few milliseconds.
    await waitFor(
      async () => (await oldest()) >= from + n - 0.5,
      `${n} more scrapes of job ${job}`,
      timeoutMs,
      200,
    );
  }

  stop(): Promise<void> {
    return this.daemon.stop();
  }
}
