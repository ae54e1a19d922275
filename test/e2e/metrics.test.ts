// /metrics (docs/METRICS.md) scraped from two real keeper processes on a real pair: every
// family of the reference with its type, labels and label values, promtool's lint, values that
// follow the cluster (healthy, standby killed, standby back), and scrapes that a frozen peer
// cannot slow.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { sleep, waitFor } from '../../src/util/wait.js';
import type { KeeperProcess } from '../support/keeper-process.js';
import { countSeries, documentedSeriesCounts, METRICS_MD } from '../support/metrics-reference.js';
import { usePair, type Setup } from '../support/setup.js';

const SETTLE_MS = 20_000;

// ---- a small parser of the Prometheus text format (version 0.0.4) ----

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string | null;
  type: string | null;
  samples: Sample[];
}

type Exposition = Map<string, Family>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function parseValue(text: string, line: string): number {
  if (/^[+-]?inf$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(text)) return NaN;
  const v = Number(text);
  if (text === '' || Number.isNaN(v)) throw new Error(`bad sample value in: ${line}`);
  return v;
}

function unescape(text: string, quote: boolean): string {
  return text.replace(quote ? /\\(["\\n])/g : /\\([\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Parses `{a="1",b="x\"y"}` from position `i` (at the brace); returns the labels and the position after `}`. */
function parseLabels(line: string, i: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i += 1;
  for (;;) {
    while (line[i] === ' ') i += 1;
    if (line[i] === '}') return [labels, i + 1];
    const eq = line.indexOf('=', i);
    const name = line.slice(i, eq).trim();
    if (eq < 0 || !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name) || line[eq + 1] !== '"') {
      throw new Error(`bad label at ${i} in: ${line}`);
    }
    let j = eq + 2;
    let raw = '';
    while (j < line.length && line[j] !== '"') {
      raw += line[j] === '\\' ? line.slice(j, j + 2) : line[j];
      j += line[j] === '\\' ? 2 : 1;
    }
    if (j >= line.length) throw new Error(`unterminated label value in: ${line}`);
    if (name in labels) throw new Error(`label ${name} given twice in: ${line}`);
    labels[name] = unescape(raw, true);
    i = j + 1;
    if (line[i] === ',') i += 1;
    else if (line[i] !== '}') throw new Error(`expected , or } at ${i} in: ${line}`);
  }
}

/** The family a sample belongs to: its own name, or a histogram/summary/counter base name. */
function familyOf(families: Exposition, sample: string): Family | undefined {
  const own = families.get(sample);
  if (own) return own;
  const m = /^(.*)_(bucket|sum|count|total|created)$/.exec(sample);
  return m ? families.get(m[1] as string) : undefined;
}

function parseExposition(text: string): Exposition {
  const families: Exposition = new Map();
  const family = (name: string): Family => {
    if (!NAME.test(name)) throw new Error(`bad metric name ${name}`);
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, help: null, type: null, samples: [] }));
    return f;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const meta = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest = ''] = meta as unknown as [string, string, string, string?];
      const f = family(name);
      if (kind === 'HELP') {
        if (f.help !== null) throw new Error(`second HELP for ${name}`);
        f.help = unescape(rest, false);
      } else {
        if (f.type !== null) throw new Error(`second TYPE for ${name}`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) {
          throw new Error(`bad TYPE in: ${line}`);
        }
        if (f.samples.length > 0) throw new Error(`TYPE after samples of ${name}`);
        f.type = rest;
      }
      continue;
    }
    if (line.startsWith('#')) continue; // a plain comment
    const nameEnd = line.search(/[{\s]/);
    if (nameEnd <= 0) throw new Error(`bad sample line: ${line}`);
    const name = line.slice(0, nameEnd);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (line[i] === '{') [labels, i] = parseLabels(line, i);
    const [value, timestamp, ...extra] = line.slice(i).trim().split(/\s+/);
    if (value === undefined || extra.length > 0 || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) {
      throw new Error(`bad sample line: ${line}`);
    }
    const f = familyOf(families, name) ?? family(name);
    f.samples.push({ name, labels, value: parseValue(value, line) });
  }
  return families;
}

/** The one sample of `name` whose labels include `labels`; undefined when there is none. */
function value(m: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = (familyOf(m, name)?.samples ?? []).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

// ---- the contract: docs/METRICS.md's tables ----

interface Expected {
  type: 'counter' | 'gauge' | 'histogram';
  labels: string[];
  /** Per label, the values the reference lists (a label listed without values takes any). */
  values: Record<string, string[]>;
}

/**
 * Every `| \`pg_keeper_...\` | type | labels | ...` row of docs/METRICS.md. A labels cell names
 * each label in backquotes, with its values after `=` where they are fixed:
 * "`hook`, `result` = `success`, `failure`, `timeout`".
 */
function documentedFamilies(markdown: string): Record<string, Expected> {
  const families: Record<string, Expected> = {};
  for (const line of markdown.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const name = /^`(pg_keeper_\w+)`$/.exec(cells[1] ?? '')?.[1];
    if (!name) continue;
    const type = cells[2];
    assert.ok(type === 'counter' || type === 'gauge' || type === 'histogram', `type of ${name}: ${type}`);
    assert.ok(!(name in families), `${name} is documented twice`);
    const expected: Expected = { type, labels: [], values: {} };
    for (const m of (cells[3] ?? '').matchAll(/`(\w+)`(?:\s*=\s*(`[^`]+`(?:\s*,\s*`[^`]+`)*))?/g)) {
      const label = m[1] as string;
      expected.labels.push(label);
      if (m[2]) expected.values[label] = [...m[2].matchAll(/`([^`]+)`/g)].map((v) => v[1] as string);
    }
    families[name] = expected;
  }
  return families;
}

const EVERY = documentedFamilies(readFileSync(METRICS_MD, 'utf8'));

test('docs/METRICS.md is read as it is written', () => {
  assert.ok(Object.keys(EVERY).length >= 30, `only ${Object.keys(EVERY).length} families read`);
  assert.deepEqual(EVERY.pg_keeper_after_command_runs_total, {
    type: 'counter',
    labels: ['hook', 'result'],
    values: { result: ['success', 'failure', 'timeout'] },
  });
  assert.deepEqual(EVERY.pg_keeper_keepalive_time_seconds, { type: 'gauge', labels: [], values: {} });
  assert.deepEqual(EVERY.pg_keeper_role?.values, { role: ['primary', 'standby', 'unknown'] });
});

// ---- the cluster ----

async function metricsText(k: KeeperProcess): Promise<string> {
  return (await k.get('/metrics')).text();
}

async function scrape(k: KeeperProcess): Promise<Exposition> {
  const res = await k.get('/metrics');
  assert.equal(res.status, 200);
  return parseExposition(await res.text());
}

/** Scrapes until `check` holds; fails with the last scrape's relevant lines. */
async function waitForMetrics(
  k: KeeperProcess,
  check: (m: Exposition) => boolean,
  what: string,
): Promise<Exposition> {
  let last: Exposition | null = null;
  try {
    return await waitFor(
      async () => {
        last = await scrape(k);
        return check(last) ? last : null;
      },
      what,
      SETTLE_MS,
      100,
    );
  } catch (err) {
    const lines = [...(last ?? new Map<string, Family>()).values()]
      .flatMap((f) => f.samples)
      .filter((x) => !x.name.includes('_bucket') && x.name.startsWith('pg_keeper_'))
      .map((x) => `${x.name}${JSON.stringify(x.labels)} ${x.value}`);
    throw new Error(`${(err as Error).message}\nlast scrape:\n${lines.join('\n')}`, { cause: err });
  }
}

async function waitForHealthy({ k1, k2 }: Setup): Promise<void> {
  await waitForMetrics(
    k1,
    (m) =>
      value(m, 'pg_keeper_role', { role: 'primary' }) === 1 &&
      value(m, 'pg_keeper_synchronous_replication') === 1 &&
      value(m, 'pg_keeper_peer_up') === 1,
    'node1 keeper to export a synchronous primary',
  );
  await waitForMetrics(
    k2,
    (m) =>
      value(m, 'pg_keeper_role', { role: 'standby' }) === 1 &&
      value(m, 'pg_keeper_standby_synchronous') === 1 &&
      value(m, 'pg_keeper_peer_up') === 1,
    'node2 keeper to export the synchronous standby',
  );
}

const nowSeconds = (): number => Date.now() / 1000;

describe('/metrics of running keepers', { timeout: 120_000 }, () => {
  const s = usePair();

  test('every family of docs/METRICS.md, with its type, help, labels and label values, and no other', async () => {
    const { k1, k2 } = s();
    // One reload, so that a labelled counter that is otherwise empty has a sample to check.
    k1.child.kill('SIGHUP');
    await waitFor(() => k1.events('reload').length > 0, 'the reload');

    const res = await k1.get('/metrics');
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    for (const m of [parseExposition(await res.text()), await scrape(k2)]) {
      const ours = [...m.keys()].filter((n) => n.startsWith('pg_keeper_')).sort();
      assert.deepEqual(ours, Object.keys(EVERY).sort(), 'exported pg_keeper_ families = the documented ones');
      for (const [name, want] of Object.entries(EVERY)) {
        const f = m.get(name) as Family;
        // prom-client prints a counter's TYPE line under its full name, `_total` included (text
        // format 0.0.4); only OpenMetrics would drop the suffix there.
        assert.equal(f.type, want.type, `TYPE of ${name}`);
        assert.ok(f.help && f.help.length > 10, `HELP of ${name}`);
        assert.equal(want.type === 'counter', name.endsWith('_total'), `${name}: _total iff a counter`);
        for (const x of f.samples) {
          const names = Object.keys(x.labels).filter((l) => !(want.type === 'histogram' && l === 'le'));
          assert.deepEqual(names.sort(), [...want.labels].sort(), `labels of ${x.name}`);
          assert.ok(Number.isFinite(x.value), `${x.name} is ${x.value}`);
          for (const [label, values] of Object.entries(want.values)) {
            const v = x.labels[label] ?? '';
            assert.ok(
              values.includes(v),
              `${x.name}{${label}="${v}"}: docs/METRICS.md lists ${values.join(', ')}`,
            );
          }
        }
      }
    }
    const m1 = await scrape(k1);
    assert.equal(value(m1, 'pg_keeper_config_reloads_total', { result: 'ok' }), 1);
    assert.equal(value(m1, 'pg_keeper_build_info', { version: '0.1.0' }), 1);
    assert.equal(value(m1, 'pg_keeper_node_info', { node: 'node1', peer: 'node2' }), 1);
    // Node's default metrics are there too.
    assert.ok(m1.has('process_resident_memory_bytes'));
    assert.ok(m1.has('nodejs_eventloop_lag_seconds'));
  });

  test('promtool check metrics finds nothing wrong with the pg_keeper_ families', async (t) => {
    const { k1, k2 } = s();
    for (const k of [k1, k2]) {
      const text = await (await k.get('/metrics')).text();
      const all = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      if (all.error && (all.error as NodeJS.ErrnoException).code === 'ENOENT') {
        assert.fail('promtool not found: run scripts/ensure-deps.sh (Debian package prometheus)');
      }
      assert.ok(all.error === undefined, String(all.error));
      const lines = `${all.stdout}\n${all.stderr}`.split('\n').filter((l) => l.trim() !== '');
      // promtool lints Node's default metrics too (nodejs_active_handles_total is a gauge named
      // like a counter); those are prom-client's, not ours.
      const ours = lines.filter((l) => !/^(nodejs|process)_\w+ /.test(l));
      t.diagnostic(
        `promtool on the whole scrape: exit ${all.status}, ${lines.length - ours.length} default-metric remarks`,
      );
      assert.deepEqual(ours, [], 'promtool remarks on the pg_keeper_ families');
      assert.ok(
        all.status === 0 || all.status === 3,
        `promtool exit status ${all.status} (1: could not parse)`,
      );

      // Only our families: not a single remark, exit status 0.
      const onlyOurs = text
        .split('\n')
        .filter((l) => /^(# (HELP|TYPE) )?pg_keeper_/.test(l))
        .join('\n');
      const strict = spawnSync('promtool', ['check', 'metrics'], {
        input: `${onlyOurs}\n`,
        encoding: 'utf8',
      });
      assert.equal(`${strict.stdout}${strict.stderr}`, '');
      assert.equal(strict.status, 0);
    }
  });

  test('on a healthy pair, each keeper exports as many series as docs/METRICS.md says', async () => {
    const { k1, k2 } = s();
    await waitForHealthy(s());
    const said = documentedSeriesCounts();
    assert.equal(countSeries(await metricsText(k2)), said.standby, 'standby keeper');
    assert.equal(countSeries(await metricsText(k1)), said.primary, 'primary keeper');
  });

  test('values on a healthy pair: primary and standby keepers', async () => {
    const { k1, k2 } = s();
    const m1 = await scrape(k1);
    assert.equal(value(m1, 'pg_keeper_role', { role: 'primary' }), 1);
    assert.equal(value(m1, 'pg_keeper_role', { role: 'standby' }), 0);
    assert.equal(value(m1, 'pg_keeper_role', { role: 'unknown' }), 0);
    assert.equal(value(m1, 'pg_keeper_peer_role', { role: 'standby' }), 1);
    assert.equal(value(m1, 'pg_keeper_synchronous_replication'), 1);
    assert.equal(value(m1, 'pg_keeper_local_up'), 1);
    assert.equal(value(m1, 'pg_keeper_peer_up'), 1);
    assert.equal(value(m1, 'pg_keeper_peer_is_primary'), 0);
    assert.equal(value(m1, 'pg_keeper_paused'), 0);
    assert.equal(value(m1, 'pg_keeper_keepalive_time_seconds'), 0.2);
    assert.equal(value(m1, 'pg_keeper_keepalive_threshold'), 3);
    assert.equal(value(m1, 'pg_keeper_heartbeat_consecutive_failures', { peer: 'node2' }), 0);
    assert.equal(value(m1, 'pg_keeper_streaming_standbys'), 1);
    assert.equal(value(m1, 'pg_keeper_timeline'), 1);
    assert.equal(value(m1, 'pg_keeper_promotions_total'), 0);
    assert.equal(value(m1, 'pg_keeper_async_switches_total'), 0);
    assert.equal(value(m1, 'pg_keeper_last_promotion_timestamp_seconds'), 0);
    assert.ok((value(m1, 'pg_keeper_replication_lag_bytes') ?? -1) >= 0);
    const tick = value(m1, 'pg_keeper_last_tick_timestamp_seconds') ?? 0;
    assert.ok(Math.abs(nowSeconds() - tick) < 10, `last tick ${tick}, now ${nowSeconds()}`);
    // A primary has no WAL receiver and is nobody's standby: no sample at all, rather than a 0.
    assert.equal(value(m1, 'pg_keeper_wal_receiver_last_message_age_seconds'), undefined);
    assert.equal(value(m1, 'pg_keeper_standby_synchronous'), undefined);

    // The heartbeat counter and histogram move between two scrapes.
    const beats = value(m1, 'pg_keeper_heartbeats_total', { peer: 'node2' }) ?? 0;
    assert.ok(beats > 0);
    const m1b = await waitForMetrics(
      k1,
      (m) => (value(m, 'pg_keeper_heartbeats_total', { peer: 'node2' }) ?? 0) > beats,
      'pg_keeper_heartbeats_total{peer="node2"} to increase',
    );
    const count = value(m1b, 'pg_keeper_heartbeat_duration_seconds_count', { peer: 'node2' }) ?? 0;
    assert.ok(count > 0);
    const buckets = (m1b.get('pg_keeper_heartbeat_duration_seconds') as Family).samples.filter(
      (x) => x.name.endsWith('_bucket') && x.labels.peer === 'node2',
    );
    assert.ok(buckets.length >= 2);
    for (let i = 1; i < buckets.length; i++) {
      assert.ok((buckets[i] as Sample).value >= (buckets[i - 1] as Sample).value, 'buckets are cumulative');
    }
    assert.equal(buckets.at(-1)?.labels.le, '+Inf');
    assert.equal(buckets.at(-1)?.value, count);

    const m2 = await scrape(k2);
    assert.equal(value(m2, 'pg_keeper_role', { role: 'standby' }), 1);
    assert.equal(value(m2, 'pg_keeper_peer_role', { role: 'primary' }), 1);
    assert.equal(value(m2, 'pg_keeper_standby_synchronous'), 1);
    assert.equal(value(m2, 'pg_keeper_peer_up'), 1);
    assert.equal(value(m2, 'pg_keeper_local_up'), 1);
    assert.ok((value(m2, 'pg_keeper_wal_receiver_last_message_age_seconds') ?? -1) >= 0);
    assert.ok((value(m2, 'pg_keeper_heartbeats_total', { peer: 'node1' }) ?? 0) > 0);
    // A standby has no replication mode of its own: no sample (a 0 would read as "async").
    assert.equal(value(m2, 'pg_keeper_synchronous_replication'), undefined);
    assert.equal(value(m2, 'pg_keeper_streaming_standbys'), undefined);
    assert.equal(value(m2, 'pg_keeper_replication_lag_bytes'), undefined);
  });

  test('standby killed: async, failures counted, peer down; then back to sync', async () => {
    const x = s();
    const { pair, k1, k2 } = x;
    const killedAt = nowSeconds();
    await pair.kill(pair.node2, 'SIGKILL');
    const m = await waitForMetrics(
      k1,
      (mm) => value(mm, 'pg_keeper_synchronous_replication') === 0,
      'node1 keeper to export pg_keeper_synchronous_replication 0',
    );
    assert.equal(value(m, 'pg_keeper_async_switches_total'), 1);
    assert.ok((value(m, 'pg_keeper_heartbeat_consecutive_failures', { peer: 'node2' }) ?? 0) >= 3);
    assert.ok((value(m, 'pg_keeper_heartbeat_failures_total', { peer: 'node2' }) ?? 0) >= 3);
    assert.equal(value(m, 'pg_keeper_peer_up'), 0);
    assert.equal(value(m, 'pg_keeper_role', { role: 'primary' }), 1);
    assert.equal(value(m, 'pg_keeper_local_up'), 1);
    assert.equal(value(m, 'pg_keeper_streaming_standbys'), 0);
    const switched = value(m, 'pg_keeper_last_async_switch_timestamp_seconds') ?? 0;
    assert.ok(switched >= killedAt - 1 && switched <= nowSeconds() + 1, `switched at ${switched}`);

    // node2's keeper, its server dead: local down, role unknown, no timeline.
    const m2 = await waitForMetrics(
      k2,
      (mm) => value(mm, 'pg_keeper_local_up') === 0,
      'node2 keeper to export pg_keeper_local_up 0',
    );
    assert.equal(value(m2, 'pg_keeper_role', { role: 'unknown' }), 1);
    assert.equal(value(m2, 'pg_keeper_timeline'), undefined);
    assert.equal(value(m2, 'pg_keeper_peer_up'), 1);
    assert.equal(value(m2, 'pg_keeper_promotions_total'), 0);

    // The standby comes back; the primary's keeper restores synchronous replication.
    await pair.start(pair.node2);
    const back = await waitForMetrics(
      k1,
      (mm) => value(mm, 'pg_keeper_synchronous_replication') === 1 && value(mm, 'pg_keeper_peer_up') === 1,
      'node1 keeper to export synchronous replication again',
    );
    assert.equal(value(back, 'pg_keeper_sync_restores_total'), 1);
    assert.equal(value(back, 'pg_keeper_async_switches_total'), 1);
    assert.equal(value(back, 'pg_keeper_heartbeat_consecutive_failures', { peer: 'node2' }), 0);
    assert.ok((value(back, 'pg_keeper_last_sync_restore_timestamp_seconds') ?? 0) >= switched);
    await waitForHealthy(x);
  });

  test('a frozen peer does not slow scrapes down while its heartbeats time out', async (t) => {
    const { pair, k1 } = s();
    const before = await scrape(k1);
    const switches = value(before, 'pg_keeper_async_switches_total') ?? 0;
    // Thawed by the next test (or by the teardown).
    await pair.kill(pair.node2, 'SIGSTOP');
    const frozenAt = Date.now();
    // Every scrape, kept to be checked once the wait is over: a check that asserted would be
    // retried, and a failed scrape would hide behind the next good one.
    const scrapes: { ms: number; status: number; text: string; error?: string }[] = [];
    const countedOut = (text: string): boolean => {
      try {
        const m = parseExposition(text);
        return (
          (value(m, 'pg_keeper_heartbeat_consecutive_failures', { peer: 'node2' }) ?? 0) >= 3 &&
          (value(m, 'pg_keeper_async_switches_total') ?? 0) > switches
        );
      } catch {
        return false; // a bad exposition: reported below
      }
    };
    // Scrape back to back for at least 3 s, until the keeper has counted the peer out and acted.
    await waitFor(
      async () => {
        const started = performance.now();
        try {
          const res = await k1.get('/metrics');
          scrapes.push({ ms: performance.now() - started, status: res.status, text: await res.text() });
        } catch (err) {
          scrapes.push({ ms: performance.now() - started, status: 0, text: '', error: String(err) });
          return false;
        }
        const last = scrapes.at(-1);
        return Date.now() - frozenAt > 3000 && last?.status === 200 && countedOut(last.text);
      },
      'node1 keeper to count the frozen peer out and switch to async',
      SETTLE_MS,
      20,
    );
    const failed = scrapes.filter((x) => x.status !== 200).map((x) => `${x.status} ${x.error ?? ''}`);
    assert.deepEqual(failed, [], 'every scrape answered 200');
    for (const x of scrapes) parseExposition(x.text);
    const last = parseExposition(scrapes.at(-1)?.text ?? '');
    assert.equal(value(last, 'pg_keeper_peer_up'), 0);
    // The heartbeats did time out (a frozen server accepts TCP connections and never answers).
    assert.match(String((await k1.status()).peer_error), /did not answer within \d+ ms/);
    const timings = scrapes.map((x) => x.ms);
    const sorted = [...timings].sort((a, b) => a - b);
    const p50 = sorted[Math.floor(sorted.length / 2)] ?? 0;
    const worst = sorted.at(-1) ?? 0;
    t.diagnostic(
      `${timings.length} scrapes while frozen: p50 ${p50.toFixed(1)} ms, max ${worst.toFixed(1)} ms`,
    );
    assert.ok(timings.length >= 10, `only ${timings.length} scrapes`);
    assert.ok(worst < 1000, `a scrape took ${worst.toFixed(0)} ms`);
  });

  // A frozen standby stays `streaming` in pg_stat_replication until wal_sender_timeout: the
  // restore must also require a recent reply, or the keeper flaps every other tick.
  test('while the standby stays frozen, the primary stays asynchronous: no restore, no second switch', async () => {
    const { pair, k1 } = s();
    try {
      const first = await waitForMetrics(
        k1,
        (m) => value(m, 'pg_keeper_synchronous_replication') === 0,
        'node1 keeper to export asynchronous replication',
      );
      const switches = value(first, 'pg_keeper_async_switches_total');
      const restores = value(first, 'pg_keeper_sync_restores_total');
      // Two seconds of ticks (ten windows' worth of chances to flap), scraped every 100 ms.
      for (const until = Date.now() + 2000; Date.now() < until; await sleep(100)) {
        const m = await scrape(k1);
        assert.equal(value(m, 'pg_keeper_synchronous_replication'), 0, 'synchronous again');
        assert.equal(value(m, 'pg_keeper_sync_restores_total'), restores, 'restored');
        assert.equal(value(m, 'pg_keeper_async_switches_total'), switches, 'switched again');
      }
    } finally {
      await pair.kill(pair.node2, 'SIGCONT');
    }
  });
});
