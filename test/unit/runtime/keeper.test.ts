// The loop with fake ports: what it does with the policy's actions when they fail, hang
// or succeed. The real servers are in test/e2e; this covers what they cannot force.

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
import { Keeper, type LocalPort } from '../../../src/runtime/keeper.js';
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

class FakeLocal implements LocalPort {
  calls: string[] = [];
  failPromote = 0;
  constructor(public seen: LocalObservation) {}
  observe = async (): Promise<LocalObservation> => this.seen;
  emitStreamHeartbeat = async (): Promise<void> => {
    this.calls.push('emit');
  };
  switchToAsync = async (): Promise<void> => {
    this.calls.push('switch-to-async');
  };
  restoreSync = async (v: string): Promise<void> => {
    this.calls.push(`restore-sync ${v}`);
  };
  promote = async (): Promise<void> => {
    this.calls.push('promote');
    if (this.failPromote-- > 0) throw new Error('pg_promote() did not complete within 30 s');
    this.seen = primaryLocal({ syncStandbyNames: '', standbys: [] });
  };
  walRetrieveRetryIntervalMs = async (): Promise<number> => 1000;
  setWalRetrieveRetryInterval = async (): Promise<void> => {};
  close = (): void => {};
}

function keeper(
  local: FakeLocal,
  peer: { seen: PeerObservation },
  cfg = config(),
  hook?: () => Promise<HookResult>,
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
  );
  const hooks: string[] = [];
  k = new Keeper({
    config: cfg,
    local,
    peer: { heartbeat: async () => peer.seen, close: () => {} },
    logger: pino({ level: 'debug' }, stream),
    metrics,
    runHook: (command) => {
      hooks.push(command);
      return hook
        ? hook()
        : Promise.resolve({ exitCode: 0, signal: null, timedOut: false, durationMs: 1, output: '' });
    },
  });
  return { k, lines, metrics, hooks };
}

const syncStandby = (): { local: FakeLocal; peer: { seen: PeerObservation } } => ({
  local: new FakeLocal(standbyLocal()),
  peer: { seen: peerPrimary(['node2']) },
});

test('a failed promotion is logged, counted, and retried at the next tick', async () => {
  const { local, peer } = syncStandby();
  local.failPromote = 1;
  const { k, lines, metrics } = keeper(local, peer);
  await k.tick(); // sees the primary, as its synchronous standby
  peer.seen = peerDown;
  local.seen = standbyLocal({ walReceiver: silentReceiver });
  await k.tick();
  await k.tick(); // 2nd failure: promote, which fails
  assert.deepEqual(local.calls, ['promote']);
  const failed = lines.find((l) => l.event === 'promote' && l.outcome === 'failed');
  assert.match(String(failed?.reason), /did not complete.*will retry at the next tick/);
  assert.equal(
    (await metrics.actionFailures.get()).values.find((v) => v.labels.action === 'promote')?.value,
    1,
  );
  await k.tick(); // retried, succeeds
  assert.deepEqual(local.calls, ['promote', 'promote']);
  assert.equal(k.snapshot().state.role, 'primary');
  assert.equal((await metrics.promotions.get()).values[0]?.value, 1);
});

test('after_command does not run when the promotion failed, and runs once when it succeeded', async () => {
  const { local, peer } = syncStandby();
  local.failPromote = 1;
  const { k, hooks } = keeper(local, peer, config('after_command: "move-vip"\n'));
  await k.tick();
  peer.seen = peerDown;
  local.seen = standbyLocal({ walReceiver: null });
  for (let i = 0; i < 6; i++) await k.tick();
  assert.deepEqual(hooks, ['move-vip']);
});

test('a hook that never ends does not hold up the loop', async () => {
  const { local, peer } = syncStandby();
  const { k, hooks } = keeper(
    local,
    peer,
    config('after_command: "sleep forever"\n'),
    () => new Promise(() => {}),
  );
  await k.tick();
  peer.seen = peerDown;
  local.seen = standbyLocal({ walReceiver: null });
  for (let i = 0; i < 5; i++) await k.tick();
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
  const { k, lines, metrics } = keeper(local, peer, config('after_command: "false"\n'), failing);
  await k.tick();
  peer.seen = peerDown;
  local.seen = standbyLocal({ walReceiver: null });
  await k.tick();
  await k.tick();
  await new Promise((r) => setImmediate(r));
  const done = lines.find((l) => l.event === 'hook-done');
  assert.equal(done?.result, 'failure');
  assert.match(String(done?.msg), /exit status 3/);
  assert.equal(
    (await metrics.hookFailures.get()).values.find((v) => v.labels.hook === 'after_command')?.value,
    1,
  );
  await k.tick();
  assert.equal(k.snapshot().ticks, 4);
});

test('the state file is written on change and read back by the next keeper', async () => {
  const dir = stateDir();
  const cfg = config(`state_file: ${join(dir, 'node2.state.json')}\n`);
  const { local, peer } = syncStandby();
  const first = keeper(local, peer, cfg);
  await first.k.tick();
  const saved = JSON.parse(readFileSync(join(dir, 'node2.state.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(saved.version, 1);
  assert.equal(saved.syncAtLastContact, true);
  assert.equal(typeof saved.primarySeenAt, 'number');
  const second = keeper(new FakeLocal(standbyLocal({ walReceiver: null })), { seen: peerDown }, cfg);
  assert.equal(second.k.snapshot().state.syncAtLastContact, true);
  await second.k.tick();
  await second.k.tick();
  assert.equal(
    second.k.snapshot().state.lastAction?.kind,
    'promote',
    'the remembered contact lets it promote',
  );
});

test('a corrupt state file is reported and the keeper starts from the safe side', () => {
  const dir = stateDir();
  writeFileSync(join(dir, 'node2.state.json'), '{ not json');
  const { local, peer } = syncStandby();
  const { k, lines } = keeper(local, peer, config(`state_file: ${join(dir, 'node2.state.json')}\n`));
  assert.equal(k.snapshot().state.primarySeenAt, null);
  assert.ok(lines.some((l) => l.event === 'state-unreadable'));
});

test('the primary writes its stream heartbeat at every tick; a standby does not', async () => {
  const primary = new FakeLocal(primaryLocal());
  const { k } = keeper(primary, { seen: peerDown });
  await k.tick();
  await k.tick();
  assert.deepEqual(primary.calls, ['emit', 'emit']);
  const { local, peer } = syncStandby();
  await keeper(local, peer).k.tick();
  assert.deepEqual(local.calls, []);
});

test('no log line carries the password of a conninfo', async () => {
  const { local, peer } = syncStandby();
  const { k, lines } = keeper(local, peer);
  peer.seen = peerDown;
  for (let i = 0; i < 4; i++) await k.tick();
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
