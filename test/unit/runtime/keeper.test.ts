// The loop with fake ports and a fake clock: what it does with the policy's actions when
// they fail, hang or succeed, and what it remembers across a restart. The real servers
// are in test/e2e; this covers what they cannot force, deterministically.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { pino } from 'pino';
import type { Config } from '../../../src/config/config.js';
import { parseConfig } from '../../../src/config/load.js';
import type { HookResult } from '../../../src/hooks/run.js';
import { createMetrics } from '../../../src/metrics/metrics.js';
import type { LocalObservation, PeerObservation } from '../../../src/policy/types.js';
import type { Clock } from '../../../src/runtime/clock.js';
import { REMINDER_MS } from '../../../src/runtime/decision-log.js';
import { Keeper } from '../../../src/runtime/keeper.js';
import type { LocalPort } from '../../../src/runtime/ports.js';
import { peerDown, peerPrimary, primaryLocal, standbyLocal, silentReceiver } from '../policy/fixtures.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'pgk-state-'));
  dirs.push(d);
  return d;
}

function config(extra = ''): Config {
  return parseConfig(
    `node1_conninfo: "host=127.0.0.1 port=5551 password=pw-in-conninfo"\nnode2_conninfo: "host=127.0.0.1 port=5552"\nnode: node2\nkeepalive_time: 0.2\nkeepalive_count: 2\n${extra}`,
    'test.yml',
    {},
    {},
  );
}

/** Time that moves only when a test says so; a tick advances it by keepalive_time. */
class FakeClock implements Clock {
  constructor(public ms = 1_700_000_000_000) {}
  now = (): number => this.ms;
  monotonic = (): number => this.ms;
}

class FakeLocal implements LocalPort {
  calls: string[] = [];
  failPromote = 0;
  constructor(public seen: LocalObservation) {}
  observe = async (): Promise<LocalObservation> => this.seen;
  switchToAsync = async (): Promise<void> => {
    this.calls.push('switch-to-async');
  };
  restoreSync = async (v: string): Promise<string> => {
    this.calls.push(`restore-sync ${v}`);
    return '0/3000000';
  };
  promote = async (): Promise<void> => {
    this.calls.push('promote');
    if (this.failPromote-- > 0) throw new Error('pg_promote() did not complete within 30 s');
    this.seen = primaryLocal({ syncStandbyNames: '', standbys: [] });
  };
  setWalRetrieveRetryInterval = async (ms: number): Promise<void> => {
    this.calls.push(`tune ${ms}`);
  };
  close = (): void => {};
}

function keeper(
  local: FakeLocal,
  peer: { seen: PeerObservation },
  cfg = config(),
  hook?: () => Promise<HookResult>,
  clock = new FakeClock(),
) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  let k: Keeper | null = null;
  const metrics = createMetrics(
    () => (k as Keeper).snapshot(),
    () => cfg,
    'node1',
  );
  const hooks: string[] = [];
  k = new Keeper({
    config: cfg,
    local,
    peer: { heartbeat: async () => peer.seen, close: () => {} },
    logger: pino({ level: 'info' }, stream),
    metrics,
    clock,
    runHook: (command) => {
      hooks.push(command);
      return hook
        ? hook()
        : Promise.resolve({ exitCode: 0, signal: null, timedOut: false, durationMs: 1, output: '' });
    },
  });
  const keeperRef = k;
  /** One tick, then the clock moves on by one period. */
  const tick = async (): Promise<void> => {
    await keeperRef.tick();
    clock.ms += cfg.keepaliveTimeMs;
  };
  return { k: keeperRef, tick, clock, lines, metrics, hooks };
}

/** A sample of one of the keeper's metric families, as a scrape shows it. */
async function sample(
  m: ReturnType<typeof createMetrics>,
  name: string,
  labels: Record<string, string> = {},
) {
  const family = m.registry.getSingleMetric(name);
  assert.ok(family, `no metric ${name}`);
  const { values } = await family.get();
  return values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
}

const syncStandby = (): { local: FakeLocal; peer: { seen: PeerObservation } } => ({
  local: new FakeLocal(standbyLocal()),
  peer: { seen: peerPrimary(['node2']) },
});

test('a failed promotion is logged, counted, retried at the next tick, and never the last action', async () => {
  const { local, peer } = syncStandby();
  local.failPromote = 1;
  const { k, tick, lines, metrics } = keeper(local, peer);
  await tick(); // sees the primary, as its synchronous standby
  peer.seen = peerDown;
  local.seen = standbyLocal({ walReceiver: silentReceiver });
  await tick();
  await tick(); // 2nd failure: promote, which fails
  assert.deepEqual(local.calls, ['promote']);
  const failed = lines.find((l) => l.event === 'promote' && l.outcome === 'failed');
  assert.match(String(failed?.reason), /did not complete.*will retry at the next tick/);
  assert.equal(await sample(metrics, 'pg_keeper_action_failures_total', { action: 'promote' }), 1);
  assert.equal(await sample(metrics, 'pg_keeper_promotions_total'), 0);
  assert.equal(k.snapshot().state.done.promote, undefined, 'a failed promotion is not the last action');
  assert.equal(await sample(metrics, 'pg_keeper_last_promotion_timestamp_seconds'), 0);
  await tick(); // retried, succeeds
  assert.deepEqual(local.calls, ['promote', 'promote']);
  assert.equal(k.snapshot().state.role, 'primary');
  assert.equal(await sample(metrics, 'pg_keeper_promotions_total'), 1);
  const at = k.snapshot().state.done.promote ?? 0;
  assert.equal(await sample(metrics, 'pg_keeper_last_promotion_timestamp_seconds'), at / 1000);
  assert.equal(
    k
      .snapshot()
      .events.filter((e) => e.event === 'promote')
      .map((e) => e.outcome)
      .join(','),
    'failed,ok',
    'the events, the counters and the last action tell one story',
  );
});

test('after_command does not run when the promotion failed, and runs once when it succeeded', async () => {
  const { local, peer } = syncStandby();
  local.failPromote = 1;
  const { tick, hooks } = keeper(local, peer, config('after_command: "move-vip"\n'));
  await tick();
  peer.seen = peerDown;
  local.seen = standbyLocal({ walReceiver: null });
  for (let i = 0; i < 6; i++) await tick();
  assert.deepEqual(hooks, ['move-vip']);
});

test('a hook that never ends does not hold up the loop', async () => {
  const { local, peer } = syncStandby();
  const { k, tick, hooks } = keeper(
    local,
    peer,
    config('after_command: "sleep forever"\n'),
    () => new Promise(() => {}),
  );
  await tick();
  peer.seen = peerDown;
  local.seen = standbyLocal({ walReceiver: null });
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(hooks.length, 1);
  assert.equal(k.snapshot().ticks, 6);
});

test('a hook that fails is reported, counted, and the keeper goes on', async () => {
  const { local, peer } = syncStandby();
  const failing = async (): Promise<HookResult> => ({
    exitCode: 3,
    signal: null,
    timedOut: false,
    durationMs: 5,
    output: 'no route',
  });
  const { k, tick, lines, metrics } = keeper(local, peer, config('after_command: "false"\n'), failing);
  await tick();
  peer.seen = peerDown;
  local.seen = standbyLocal({ walReceiver: null });
  await tick();
  await tick();
  await new Promise((r) => setImmediate(r));
  const done = lines.find((l) => l.event === 'hook-done');
  assert.equal(done?.result, 'failure');
  assert.match(String(done?.msg), /exit status 3/);
  assert.equal(await sample(metrics, 'pg_keeper_after_command_failures_total', { hook: 'after_command' }), 1);
  assert.equal(
    await sample(metrics, 'pg_keeper_after_command_runs_total', { hook: 'after_command', result: 'failure' }),
    1,
  );
  await tick();
  assert.equal(k.snapshot().ticks, 4);
});

test('the state file is written on change and read back by the next keeper', async () => {
  const dir = stateDir();
  const cfg = config(`state_file: ${join(dir, 'node2.state.json')}\n`);
  const { local, peer } = syncStandby();
  const first = keeper(local, peer, cfg);
  await first.tick();
  const saved = JSON.parse(readFileSync(join(dir, 'node2.state.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(saved.version, 2);
  assert.equal(saved.syncAtLastContact, true);
  assert.equal(saved.primarySeenAt, first.clock.ms - 200);
  const second = keeper(new FakeLocal(standbyLocal()), { seen: peerPrimary(['node2']) }, cfg);
  assert.equal(second.k.snapshot().state.syncAtLastContact, true);
  assert.equal(second.k.snapshot().state.primarySeenAt, saved.primarySeenAt);
});

test('a contact from before a restart does not let the restarted keeper promote (docs/SAFETY.md)', async () => {
  const dir = stateDir();
  const cfg = config(`state_file: ${join(dir, 'node2.state.json')}\n`);
  const clock = new FakeClock();
  const { local, peer } = syncStandby();
  await keeper(local, peer, cfg, undefined, clock).tick(); // the contact, remembered in the file
  // The keeper is down for a while; its primary dies meanwhile. However short the restart,
  // the contact predates it: the primary may have gone async unseen.
  for (const downMs of [250, 10_000]) {
    clock.ms += downMs;
    const restarted = keeper(
      new FakeLocal(standbyLocal({ walReceiver: null })),
      { seen: peerDown },
      cfg,
      undefined,
      clock,
    );
    for (let i = 0; i < 6; i++) await restarted.tick();
    const st = restarted.k.snapshot();
    assert.equal(st.state.role, 'standby', `promoted after a ${downMs} ms restart`);
    assert.equal(st.state.done.promote, undefined);
    assert.equal(st.decision?.situation, 'standby-lost-primary');
    assert.match(st.decision?.reason ?? '', /this keeper was not watching/);
    assert.equal(
      await sample(restarted.metrics, 'pg_keeper_promotion_vetoes_total', { reason: 'not-synchronous' }),
      1,
    );
  }
});

test('a keeper that watched without a break promotes', async () => {
  const { local, peer } = syncStandby();
  const { k, tick } = keeper(local, peer);
  await tick();
  peer.seen = peerDown;
  local.seen = standbyLocal({ walReceiver: null });
  await tick();
  await tick();
  assert.equal(k.snapshot().state.role, 'primary');
});

test('a corrupt state file is reported and the keeper starts from the safe side', () => {
  const dir = stateDir();
  writeFileSync(join(dir, 'node2.state.json'), '{ not json');
  const { local, peer } = syncStandby();
  const { k, lines } = keeper(local, peer, config(`state_file: ${join(dir, 'node2.state.json')}\n`));
  assert.equal(k.snapshot().state.primarySeenAt, null);
  assert.ok(lines.some((l) => l.event === 'state-unreadable'));
});

test('no log line carries the password of a conninfo', async () => {
  const { local, peer } = syncStandby();
  const { k, tick, lines } = keeper(local, peer);
  peer.seen = peerDown;
  for (let i = 0; i < 4; i++) await tick();
  await k.stop();
  assert.doesNotMatch(JSON.stringify(lines), /pw-in-conninfo/);
});

test('the loop counts as alive while ticks complete, and as stalled after several missed ones', async () => {
  const { local, peer } = syncStandby();
  const { k } = keeper(local, peer);
  const started = k.snapshot().startedAt;
  assert.equal(k.alive(started + 500), true, 'just started');
  assert.equal(k.alive(started + 3500), false, 'no tick for 3.5 s at keepalive_time 0.2');
  await k.tick();
  const ticked = k.snapshot().lastTickAt ?? 0;
  assert.equal(k.alive(ticked + 2000), true);
  assert.equal(k.alive(ticked + 3500), false);
  await k.stop();
  assert.equal(k.alive(ticked + 1), false, 'a stopped keeper is not alive');
});

test('a lasting failure is logged when it begins and as a reminder, not at every tick', async () => {
  const primary = new FakeLocal(primaryLocal({ standbys: [] }));
  const peer = { seen: peerPrimary() as PeerObservation };
  peer.seen = { reachable: true, inRecovery: true, synchronousStandbys: [], timeline: null, rttMs: 1 };
  const { tick, clock, lines } = keeper(primary, peer);
  await tick();
  peer.seen = peerDown;
  const from = lines.length;
  const ticks = Math.round(REMINDER_MS / 200) + 5; // a minute and a second at 0.2 s
  for (let i = 0; i < ticks; i++) {
    await tick();
    if (primary.calls.includes('switch-to-async'))
      primary.seen = primaryLocal({ syncStandbyNames: '', standbys: [] });
  }
  const written = lines.slice(from);
  assert.ok(clock.ms > 0);
  assert.ok(
    written.length <= 8,
    `${written.length} lines in ${ticks} ticks:\n${written.map((l) => l.msg).join('\n')}`,
  );
  assert.equal(written.filter((l) => l.event === 'heartbeat-failed').length, 1, 'the first failure only');
  assert.equal(written.filter((l) => l.reminder === true).length, 1, 'one reminder after a minute');
  assert.ok(written.some((l) => l.event === 'switch-to-async' && l.outcome === 'ok'));
});

test('a situation change logs the row it entered, with its comment', async () => {
  const { local, peer } = syncStandby();
  const { tick, lines } = keeper(local, peer);
  await tick();
  peer.seen = peerDown;
  await tick();
  const entered = lines.find((l) => l.event === 'decision' && l.situation === 'standby-missing-primary');
  assert.equal(entered?.previous, 'standby-with-primary');
  assert.match(String(entered?.comment), /wait for keepalive_count/);
});

test('a reload names the keys that changed and the restart-only keys it kept', async () => {
  const { local, peer } = syncStandby();
  const { k, lines, metrics } = keeper(local, peer);
  k.reload(
    parseConfig(
      `node1_conninfo: "host=127.0.0.1 port=5551"\nnode2_conninfo: "host=127.0.0.1 port=5552"\nnode: node2\n` +
        `keepalive_time: 0.5\nkeepalive_count: 2\nstate_file: /tmp/elsewhere.json\nlisten: "127.0.0.1:1"\n`,
      'test.yml',
      {},
      {},
    ),
  );
  const line = lines.find((l) => l.event === 'reload');
  assert.deepEqual(
    line?.changed,
    ['keepalive_time', 'heartbeat_timeout', 'stream_timeout'],
    'derived defaults too',
  );
  assert.deepEqual(line?.ignored, ['node1_conninfo', 'listen', 'state_file']);
  assert.match(
    String(line?.msg),
    /changed: keepalive_time 0\.2 -> 0\.5, .*; these need a restart and were kept: node1_conninfo .*listen 0\.0\.0\.0:9754 -> 127\.0\.0\.1:1, state_file null -> \/tmp\/elsewhere\.json$/,
  );
  assert.doesNotMatch(String(line?.msg), /pw-in-conninfo/);
  assert.equal(k.config.keepaliveTimeMs, 500);
  assert.equal(k.config.stateFile, null, 'a restart-only key keeps its running value');
  assert.equal(await sample(metrics, 'pg_keeper_config_reloads_total', { result: 'ok' }), 1);
});
