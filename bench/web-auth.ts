// Benchmark: a flood of wrong passwords against a keeper with TLS and basic authentication
// (web_config_file, bcrypt cost 10, as htpasswd -B -C 10 makes) must not delay its ticks beyond
// their normal jitter. A real pair, real keepers (the built CLI) at keepalive_time 0.2; the
// primary's keeper is measured in two phases of equal length:
//
//   quiet   Prometheus-like scrapes of /metrics with the right password (every 100 ms)
//   flood   the same scrapes, plus wrong passwords at FLOOD_RATE per second over keep-alive
//           connections, FLOOD_CONNECTIONS of them (every one a new password: nothing is cached)
//
// For each phase: the keeper's tick delay (pg_keeper_tick_delay_seconds: how late each tick
// started after its slot), its heartbeats and failures, the /metrics latency of the right
// password, and the flood's answers (401 after a bcrypt comparison, 503 when the comparisons'
// queue is full). It reports; it never fails on a missed target.
//
//   npm run bench:web-auth
//
// Environment: BENCH_SECONDS per phase (default 15), BENCH_FLOOD_RATE (default 400).
// Writes bench/results/web-auth-<timestamp>.json.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { stringify } from 'yaml';
import { sleep } from '../src/util/wait.js';
import { makeCa, makeCert } from '../test/support/certs.js';
import type { KeeperProcess } from '../test/support/keeper-process.js';
import { makeDir } from '../test/support/temp-dir.js';
import { checkBuild, MissingBuild } from './lib/build.js';
import { countPostgresProcesses, machineInfo } from './lib/machine.js';
import { createRig, destroyAll } from './lib/rig.js';
import { round1, summarize } from './lib/stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const FLOOD_RATE = Number(process.env.BENCH_FLOOD_RATE ?? 400);
const FLOOD_CONNECTIONS = 64;
const SCRAPE_EVERY_MS = 100;
const PASSWORD = 'bench-scrape-password';
const COST = 10;
/** Targets: the flood adds at most this much to the p99 tick delay, and /metrics p99 stays under. */
const TARGETS = { tickDelayP99AddedMs: 10, metricsP99Ms: 50 };
const RESULTS_DIR = join(import.meta.dirname, 'results');

function step(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

interface Histogram {
  /** Upper bound (seconds) -> cumulative count. */
  buckets: Map<number, number>;
  count: number;
  sum: number;
}

function parseHistogram(text: string, name: string): Histogram {
  const buckets = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    const b = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`).exec(line);
    if (b) buckets.set(b[1] === '+Inf' ? Infinity : Number(b[1]), Number(b[2]));
    if (line.startsWith(`${name}_count `)) count = Number(line.split(' ')[1]);
    if (line.startsWith(`${name}_sum `)) sum = Number(line.split(' ')[1]);
  }
  return { buckets, count, sum };
}

/** What a phase added to a histogram: its ticks, mean, p99 (as histogram_quantile does) and slowest bucket. */
function phaseOf(
  a: Histogram,
  b: Histogram,
): { ticks: number; meanMs: number; p99Ms: number; maxBucketMs: number } {
  const bounds = [...b.buckets.keys()].sort((x, y) => x - y);
  const delta = bounds.map((le) => [le, (b.buckets.get(le) ?? 0) - (a.buckets.get(le) ?? 0)] as const);
  const n = b.count - a.count;
  const rank = 0.99 * n;
  let p99 = NaN;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, c] of delta) {
    if (c >= rank) {
      p99 =
        le === Infinity ? prevLe : prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1, c - prevCount);
      break;
    }
    prevLe = le;
    prevCount = c;
  }
  let maxBucket = 0;
  let below = 0;
  for (const [le, c] of delta) {
    if (c > below) maxBucket = le;
    below = c;
  }
  return {
    ticks: n,
    meanMs: round1(((b.sum - a.sum) / Math.max(1, n)) * 1000),
    p99Ms: round1(p99 * 1000),
    maxBucketMs: maxBucket === Infinity ? Infinity : round1(maxBucket * 1000),
  };
}

function request(
  agent: https.Agent,
  url: URL,
  auth: string,
  ca: Buffer,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent, ca, headers: { authorization: auth }, timeout: 10_000 }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 10 s')));
    req.on('error', reject);
  });
}

const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

interface Phase {
  name: string;
  tickDelay: ReturnType<typeof phaseOf>;
  heartbeats: number;
  heartbeatFailures: number;
  metricsLatency: { n: number; p50Ms: number; p99Ms: number; maxMs: number; errors: number };
  flood: { sent: number; perSecond: number; unauthorized: number; busy: number; other: number } | null;
}

async function runPhase(k: KeeperProcess, ca: Buffer, name: string, flood: boolean): Promise<Phase> {
  const url = new URL('/metrics', k.url);
  const right = basic('prometheus', PASSWORD);
  const scrapeAgent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const floodAgent = new https.Agent({ keepAlive: true, maxSockets: FLOOD_CONNECTIONS });
  const first = await request(scrapeAgent, url, right, ca);
  const h0 = parseHistogram(first.text, 'pg_keeper_tick_delay_seconds');
  const beats0 = Number(/^pg_keeper_heartbeats_total\{[^}]*\} (\S+)$/m.exec(first.text)?.[1] ?? 0);
  const fails0 = Number(/^pg_keeper_heartbeat_failures_total\{[^}]*\} (\S+)$/m.exec(first.text)?.[1] ?? 0);
  const until = performance.now() + SECONDS * 1000;
  const latencies: number[] = [];
  let scrapeErrors = 0;
  const scraper = (async () => {
    while (performance.now() < until) {
      const started = performance.now();
      try {
        const r = await request(scrapeAgent, url, right, ca);
        if (r.status !== 200) scrapeErrors += 1;
      } catch {
        scrapeErrors += 1;
      }
      latencies.push(performance.now() - started);
      await sleep(Math.max(0, SCRAPE_EVERY_MS - (performance.now() - started)));
    }
  })();
  const f = { sent: 0, unauthorized: 0, busy: 0, other: 0 };
  const flooder = flood
    ? (async () => {
        // Paced: FLOOD_RATE requests a second, whatever the answers take, at most 256 in flight.
        const inFlight = new Set<Promise<void>>();
        const t0 = performance.now();
        while (performance.now() < until) {
          const owed = Math.floor(((performance.now() - t0) / 1000) * FLOOD_RATE) - f.sent;
          for (let i = 0; i < owed && inFlight.size < 256; i++) {
            f.sent += 1;
            const p = request(floodAgent, url, basic('prometheus', `wrong-${f.sent}`), ca).then(
              (r) => {
                if (r.status === 401) f.unauthorized += 1;
                else if (r.status === 503) f.busy += 1;
                else f.other += 1;
              },
              () => {
                f.other += 1;
              },
            );
            inFlight.add(p);
            void p.finally(() => inFlight.delete(p));
          }
          await sleep(5);
        }
        await Promise.all(inFlight);
      })()
    : Promise.resolve();
  await Promise.all([scraper, flooder]);
  const last = await request(scrapeAgent, url, right, ca);
  scrapeAgent.destroy();
  floodAgent.destroy();
  const h1 = parseHistogram(last.text, 'pg_keeper_tick_delay_seconds');
  const beats1 = Number(/^pg_keeper_heartbeats_total\{[^}]*\} (\S+)$/m.exec(last.text)?.[1] ?? 0);
  const fails1 = Number(/^pg_keeper_heartbeat_failures_total\{[^}]*\} (\S+)$/m.exec(last.text)?.[1] ?? 0);
  const s = summarize(latencies);
  return {
    name,
    tickDelay: phaseOf(h0, h1),
    heartbeats: beats1 - beats0,
    heartbeatFailures: fails1 - fails0,
    metricsLatency: {
      n: latencies.length,
      p50Ms: round1(s?.median ?? NaN),
      p99Ms: round1(s?.p99 ?? NaN),
      maxMs: round1(s?.max ?? NaN),
      errors: scrapeErrors,
    },
    flood: flood ? { ...f, perSecond: round1(f.sent / SECONDS) } : null,
  };
}

async function main(): Promise<void> {
  checkBuild();
  const foreign = countPostgresProcesses();
  const dir = makeDir('pgk-bench-web-');
  const ca = makeCa(dir, 'ca');
  const cert = makeCert(dir, ca, 'server', 'server');
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, PASSWORD);
  const web = join(dir, 'web.yml');
  writeFileSync(
    web,
    stringify({
      tls_server_config: { cert_file: cert.cert, key_file: cert.key },
      basic_auth_users: { prometheus: bcrypt.hashSync(PASSWORD, COST) },
    }),
  );
  step(`a pair and two keepers with TLS and basic auth (bcrypt cost ${COST}), keepalive_time 0.2`);
  const rig = await createRig(
    { keepalive_time: 0.2, keepalive_count: 3, web_config_file: web },
    { tls: true, cacert: ca.cert, user: 'prometheus', passwordFile },
  );
  const caPem = readFileSync(ca.cert);
  await sleep(2000);
  step(`quiet: ${SECONDS} s of scrapes every ${SCRAPE_EVERY_MS} ms`);
  const quiet = await runPhase(rig.k1, caPem, 'quiet', false);
  step(`flood: the same, plus ${FLOOD_RATE} wrong passwords a second for ${SECONDS} s`);
  const flooded = await runPhase(rig.k1, caPem, 'flood', true);
  await destroyAll();

  const added = flooded.tickDelay.p99Ms - quiet.tickDelay.p99Ms;
  const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  const rows = [quiet, flooded].map(
    (p) =>
      `${p.name.padEnd(6)} ticks ${String(p.tickDelay.ticks).padStart(4)}  tick delay mean ${p.tickDelay.meanMs} ms p99 ${p.tickDelay.p99Ms} ms (slowest bucket ≤ ${p.tickDelay.maxBucketMs} ms)  ` +
      `heartbeats ${p.heartbeats} failed ${p.heartbeatFailures}  /metrics p50 ${p.metricsLatency.p50Ms} ms p99 ${p.metricsLatency.p99Ms} ms max ${p.metricsLatency.maxMs} ms errors ${p.metricsLatency.errors}` +
      (p.flood
        ? `\n       flood: ${p.flood.sent} wrong passwords (${p.flood.perSecond}/s): 401 ${p.flood.unauthorized}, 503 busy ${p.flood.busy}, other ${p.flood.other}`
        : ''),
  );
  process.stdout.write(
    `\nweb_config_file under a wrong-password flood (bcrypt cost ${COST}, ${SECONDS} s per phase)\n${rows.join('\n')}\n` +
      `tick delay p99 added by the flood: ${round1(added)} ms (target ≤ ${TARGETS.tickDelayP99AddedMs} ms: ${verdict(added <= TARGETS.tickDelayP99AddedMs)}); ` +
      `/metrics p99 under flood ${flooded.metricsLatency.p99Ms} ms (target ≤ ${TARGETS.metricsP99Ms} ms: ${verdict(flooded.metricsLatency.p99Ms <= TARGETS.metricsP99Ms)}); ` +
      `ratio flood/quiet tick p99 ${round1(flooded.tickDelay.p99Ms / Math.max(0.1, quiet.tickDelay.p99Ms))}\n`,
  );
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `web-auth-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ machine: machineInfo(foreign), cost: COST, seconds: SECONDS, floodRate: FLOOD_RATE, targets: TARGETS, quiet, flood: flooded }, null, 2)}\n`,
  );
  step(`results in ${file}`);
}

main().catch(async (err: unknown) => {
  await destroyAll();
  process.stderr.write(
    `${err instanceof MissingBuild ? err.message : String((err as Error).stack ?? err)}\n`,
  );
  process.exit(1);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    void destroyAll().then(() => process.exit(130));
  });
