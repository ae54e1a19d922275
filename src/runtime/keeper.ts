// The loop: observe both servers, ask the policy, carry out its actions one at a time, and
// record what happened (log, metrics, snapshot, state file). Ticks follow a monotonic
// schedule: tick n is due at start + n × keepalive_time, whatever the previous tick took,
// so the period does not drift with the poll's own duration (pg_keeper slept, then polled).

import type { Logger } from 'pino';
import { peerOf, type Config } from '../config/config.js';
import { endpointOf } from '../config/conninfo.js';
import type { HookResult } from '../hooks/run.js';
import { hookSucceeded } from '../hooks/run.js';
import type { KeeperMetrics } from '../metrics/metrics.js';
import { decide } from '../policy/decide.js';
import {
  ACTION_KINDS,
  HOOK_NAMES,
  VETO_REASONS,
  assertNever,
  initialState,
  type Action,
  type HookName,
  type KeeperState,
  type LocalObservation,
  type Observation,
  type PeerObservation,
  type Rule,
} from '../policy/types.js';
import { errorText } from '../util/errors.js';
import { EVENT_HISTORY, type KeeperEvent, type Snapshot } from './snapshot.js';
import { readStateFile, remembered, writeStateFile, type Remembered } from './state-file.js';

/** The local server as the loop uses it (postgres/local.ts, or a fake in tests). */
export interface LocalPort {
  observe(timeoutMs: number): Promise<LocalObservation>;
  emitStreamHeartbeat(timeoutMs: number): Promise<void>;
  switchToAsync(timeoutMs: number): Promise<void>;
  restoreSync(value: string, timeoutMs: number): Promise<void>;
  promote(waitSeconds: number, timeoutMs: number): Promise<void>;
  walRetrieveRetryIntervalMs(timeoutMs: number): Promise<number>;
  setWalRetrieveRetryInterval(ms: number, timeoutMs: number): Promise<void>;
  close(): void;
}

export interface PeerPort {
  heartbeat(timeoutMs: number): Promise<PeerObservation>;
  close(): void;
}

export interface KeeperDeps {
  config: Config;
  local: LocalPort;
  peer: PeerPort;
  logger: Logger;
  metrics: KeeperMetrics;
  runHook: (command: string, env: Record<string, string>, timeoutMs: number) => Promise<HookResult>;
}

const PROMOTE_WAIT_S = 30;
/** The `result` label of pg_keeper_after_command_runs_total. */
const HOOK_RESULTS = ['success', 'failure', 'timeout'] as const;
const ACTION_TIMEOUT_MS = 10_000;
/** A standby promotes within a second or two after a reload once this is small. */
const FAST_WAL_RETRIEVE_RETRY_MS = 1000;
/** primarySeenAt is refreshed in the state file at most this often: it only needs to be non-null and recent. */
const SEEN_PERSIST_MS = 60_000;

export class Keeper {
  private cfg: Config;
  private state: KeeperState;
  private snap: Snapshot;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private epoch = 0;
  private slot = 0;
  private persisted: Remembered | null = null;
  private checkedStandbySettings = false;
  private readonly hooks = new Set<Promise<void>>();
  private busySince: number | null = null;

  constructor(private readonly deps: KeeperDeps) {
    this.cfg = deps.config;
    this.state = this.restore();
    this.snap = {
      node: this.cfg.node,
      peer: peerOf(this.cfg.node),
      startedAt: Date.now(),
      lastTickAt: null,
      ticks: 0,
      state: this.state,
      observation: null,
      decision: null,
      paused: this.cfg.paused,
      events: [],
      lastPromotionAt: null,
      lastAsyncSwitchAt: null,
      lastSyncRestoreAt: null,
    };
    this.zeroCounters();
  }

  /**
   * Labelled counters and histograms exist only once incremented; a series that starts at
   * 1 is invisible to increase() and rate(), so the first veto, failure or after_command
   * would never alert or chart. Create every known label set at zero.
   */
  private zeroCounters(): void {
    const m = this.deps.metrics;
    const peer = { peer: this.snap.peer };
    m.heartbeats.inc(peer, 0);
    m.heartbeatFailures.inc(peer, 0);
    for (const reason of VETO_REASONS) m.vetoes.inc({ reason }, 0);
    for (const action of ACTION_KINDS) m.actionFailures.inc({ action }, 0);
    m.heartbeatDuration.zero(peer);
    for (const hook of HOOK_NAMES) {
      m.hookDuration.zero({ hook });
      m.hookFailures.inc({ hook }, 0);
      for (const result of HOOK_RESULTS) m.hookRuns.inc({ hook, result }, 0);
    }
    for (const result of ['ok', 'failed']) m.configReloads.inc({ result }, 0);
  }

  get config(): Config {
    return this.cfg;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** True while the loop completes ticks (or carries out an action that may take a while). */
  alive(now = Date.now()): boolean {
    if (this.stopped) return false;
    if (this.busySince !== null) return now - this.busySince < (PROMOTE_WAIT_S + 15) * 1000;
    const last = this.snap.lastTickAt ?? this.snap.startedAt;
    return now - last < Math.max(5 * this.cfg.keepaliveTimeMs, 3000);
  }

  start(): void {
    this.epoch = performance.now();
    this.slot = 0;
    this.log().info(
      {
        event: 'start',
        keepalive_time: this.cfg.keepaliveTimeMs / 1000,
        keepalive_count: this.cfg.keepaliveCount,
        state_file: this.cfg.stateFile,
      },
      `pg-keeper started on ${this.cfg.node}; watching ${this.snap.peer} every ${this.cfg.keepaliveTimeMs / 1000} s`,
    );
    if (this.cfg.stateFile === null) {
      this.log().warn(
        { event: 'no-state-file' },
        'state_file is not set: after a restart the keeper forgets that it saw the primary, and will not promote until it sees it again',
      );
    }
    this.schedule();
  }

  /** Stop ticking; wait (at most `graceMs`) for a tick in progress. Hooks already started keep running. */
  async stop(graceMs = 800): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.running) await Promise.race([this.running, new Promise((r) => setTimeout(r, graceMs))]);
    this.persist(true);
    this.deps.local.close();
    this.deps.peer.close();
    if (this.hooks.size > 0) {
      this.log().warn(
        { event: 'stop', hooks_running: this.hooks.size },
        'stopping while a hook still runs; it is left to finish',
      );
    }
    this.log().info({ event: 'stop' }, 'pg-keeper stopped');
  }

  /** SIGHUP: take the reloadable settings from `next`; the rest needs a restart. */
  reload(next: Config): string[] {
    const fixed: (keyof Config)[] = [
      'node',
      'node1',
      'node2',
      'listen',
      'stateFile',
      'tuneWalRetrieveRetryInterval',
    ];
    const ignored = fixed.filter((k) => JSON.stringify(next[k]) !== JSON.stringify(this.cfg[k]));
    const periodChanged = next.keepaliveTimeMs !== this.cfg.keepaliveTimeMs;
    const pausedChanged = next.paused !== this.cfg.paused;
    this.cfg = { ...next, ...Object.fromEntries(fixed.map((k) => [k, this.cfg[k]])) } as Config;
    if (pausedChanged) this.setPaused(next.paused, 'configuration');
    if (periodChanged && !this.stopped) {
      this.epoch = performance.now();
      this.slot = 0;
      if (this.timer) clearTimeout(this.timer);
      this.schedule();
    }
    return ignored.map(String);
  }

  noteReload(result: 'ok' | 'failed'): void {
    this.deps.metrics.configReloads.inc({ result });
  }

  setPaused(paused: boolean, by: string): void {
    if (this.snap.paused === paused) return;
    this.snap = { ...this.snap, paused };
    this.record({ event: paused ? 'pause' : 'resume', outcome: 'info', detail: `by ${by}` }, 'warn');
  }

  /** One observe-decide-act cycle. Public so tests can drive the loop without a timer. */
  async tick(): Promise<void> {
    const c = this.cfg;
    const [peer, local] = await Promise.all([
      this.deps.peer.heartbeat(c.heartbeatTimeoutMs),
      this.deps.local.observe(c.heartbeatTimeoutMs),
    ]);
    if (local.up && !local.inRecovery) {
      // The replication stream's own heartbeat (see postgres/local.ts).
      await this.deps.local.emitStreamHeartbeat(c.heartbeatTimeoutMs).catch((err: unknown) => {
        this.log().debug(
          { event: 'stream-heartbeat-failed', error: errorText(err) },
          'could not emit the stream heartbeat',
        );
      });
    }
    const seen: Observation = { local, peer };
    this.countHeartbeat(peer);
    const decision = decide(this.state, seen, Date.now(), this.rule());
    const previous = this.snap.decision;
    this.state = decision.state;
    this.snap = {
      ...this.snap,
      state: this.state,
      observation: seen,
      decision: {
        reason: decision.reason,
        severity: decision.severity,
        situation: decision.situation,
        at: Date.now(),
      },
    };
    if (!peer.reachable) {
      this.log().warn(
        { event: 'heartbeat-failed', peer: this.snap.peer, count: this.state.failures, error: peer.error },
        `heartbeat to ${this.snap.peer} failed ${this.state.failures} time(s)`,
      );
    }
    if (decision.severity === 'error' || previous?.reason !== decision.reason) {
      this.log()[decision.severity](
        { event: 'decision', reason: decision.reason, count: this.state.failures },
        decision.reason,
      );
    }
    if (decision.veto) {
      this.deps.metrics.vetoes.inc({ reason: decision.veto });
      this.record(
        { event: 'veto', outcome: 'vetoed', detail: `${decision.veto}: ${decision.reason}` },
        'warn',
      );
    }
    if (local.up && local.inRecovery && !this.checkedStandbySettings) await this.checkStandbySettings();
    await this.act(decision.actions, decision.reason);
    this.persist();
    this.snap = { ...this.snap, state: this.state, lastTickAt: Date.now(), ticks: this.snap.ticks + 1 };
  }

  private async act(actions: Action[], reason: string): Promise<void> {
    for (const action of actions) {
      this.busySince = Date.now();
      try {
        await this.perform(action, reason);
      } catch (err) {
        this.deps.metrics.actionFailures.inc({ action: action.kind });
        this.record(
          { event: action.kind, outcome: 'failed', detail: `${errorText(err)}; will retry at the next tick` },
          'error',
        );
        return;
      } finally {
        this.busySince = null;
      }
    }
  }

  private async perform(action: Action, reason: string): Promise<void> {
    const local = this.deps.local;
    switch (action.kind) {
      case 'switch-to-async':
        await local.switchToAsync(ACTION_TIMEOUT_MS);
        this.deps.metrics.asyncSwitches.inc();
        this.snap = { ...this.snap, lastAsyncSwitchAt: Date.now() };
        this.record({ event: 'switch-to-async', outcome: 'ok', detail: reason }, 'warn');
        return;
      case 'promote': {
        const started = performance.now();
        await local.promote(PROMOTE_WAIT_S, (PROMOTE_WAIT_S + 5) * 1000);
        this.deps.metrics.promotions.inc();
        this.snap = { ...this.snap, lastPromotionAt: Date.now() };
        this.state = { ...this.state, role: 'primary' };
        const ms = Math.round(performance.now() - started);
        this.record({ event: 'promote', outcome: 'ok', detail: `${reason}; promoted in ${ms} ms` }, 'warn');
        return;
      }
      case 'restore-sync':
        await local.restoreSync(action.value, ACTION_TIMEOUT_MS);
        this.deps.metrics.syncRestores.inc();
        this.snap = { ...this.snap, lastSyncRestoreAt: Date.now() };
        this.state = { ...this.state, savedSyncNames: null };
        this.record(
          {
            event: 'restore-sync',
            outcome: 'ok',
            detail: `synchronous_standby_names = '${action.value}'; ${reason}`,
          },
          'info',
        );
        return;
      case 'run-hook':
        this.startHook(action.hook, action.event, reason);
        return;
      default:
        assertNever(action);
    }
  }

  /** Hooks run beside the loop: a slow VIP move must not stop the heartbeats. */
  private startHook(hook: HookName, event: string, reason: string): void {
    const command = hook === 'after_command' ? this.cfg.afterCommand : this.cfg.afterAsyncCommand;
    if (command === null) return;
    const env = this.hookEnv(event, reason);
    this.log().info({ event: 'hook-start', hook }, `running ${hook}`);
    const run = this.deps
      .runHook(command, env, this.cfg.afterCommandTimeoutMs)
      .then((r) => this.hookDone(hook, r))
      .finally(() => this.hooks.delete(run));
    this.hooks.add(run);
  }

  private hookDone(hook: HookName, r: HookResult): void {
    const ok = hookSucceeded(r);
    const result: (typeof HOOK_RESULTS)[number] = ok ? 'success' : r.timedOut ? 'timeout' : 'failure';
    this.deps.metrics.hookRuns.inc({ hook, result });
    this.deps.metrics.hookDuration.observe({ hook }, r.durationMs / 1000);
    if (!ok) this.deps.metrics.hookFailures.inc({ hook });
    const status =
      r.error ??
      (r.timedOut
        ? `timed out after ${this.cfg.afterCommandTimeoutMs / 1000} s`
        : r.signal
          ? `killed by ${r.signal}`
          : `exit status ${r.exitCode}`);
    this.log()[ok ? 'info' : 'error'](
      {
        event: 'hook-done',
        hook,
        result,
        exit_code: r.exitCode,
        duration_ms: Math.round(r.durationMs),
        output: r.output,
      },
      `${hook} ${ok ? 'succeeded' : 'failed'}: ${status}`,
    );
    this.record({ event: hook, outcome: ok ? 'ok' : 'failed', detail: status }, null);
  }

  private hookEnv(event: string, reason: string): Record<string, string> {
    const localCi = this.cfg.node === 'node1' ? this.cfg.node1 : this.cfg.node2;
    const peerCi = this.cfg.node === 'node1' ? this.cfg.node2 : this.cfg.node1;
    const self = endpointOf(localCi);
    const other = endpointOf(peerCi);
    const env: Record<string, string> = {
      PG_KEEPER_EVENT: event,
      PG_KEEPER_NODE: this.cfg.node,
      PG_KEEPER_PEER: this.snap.peer,
      PG_KEEPER_REASON: reason,
      PG_KEEPER_TIME: new Date().toISOString(),
      PG_KEEPER_LOCAL_HOST: self.host,
      PG_KEEPER_LOCAL_PORT: String(self.port),
      PG_KEEPER_PEER_HOST: other.host,
      PG_KEEPER_PEER_PORT: String(other.port),
    };
    if (event === 'promote') {
      Object.assign(env, {
        PG_KEEPER_NEW_PRIMARY_HOST: self.host,
        PG_KEEPER_NEW_PRIMARY_PORT: String(self.port),
        PG_KEEPER_OLD_PRIMARY_HOST: other.host,
        PG_KEEPER_OLD_PRIMARY_PORT: String(other.port),
      });
    } else {
      Object.assign(env, { PG_KEEPER_STANDBY_HOST: other.host, PG_KEEPER_STANDBY_PORT: String(other.port) });
    }
    return env;
  }

  /** A standby with a long wal_retrieve_retry_interval may promote seconds late after a reload. */
  private async checkStandbySettings(): Promise<void> {
    this.checkedStandbySettings = true;
    try {
      const ms = await this.deps.local.walRetrieveRetryIntervalMs(this.cfg.heartbeatTimeoutMs);
      if (ms <= FAST_WAL_RETRIEVE_RETRY_MS) return;
      if (this.cfg.tuneWalRetrieveRetryInterval) {
        await this.deps.local.setWalRetrieveRetryInterval(FAST_WAL_RETRIEVE_RETRY_MS, ACTION_TIMEOUT_MS);
        this.record(
          {
            event: 'tune',
            outcome: 'ok',
            detail: `wal_retrieve_retry_interval ${ms} ms -> ${FAST_WAL_RETRIEVE_RETRY_MS} ms`,
          },
          'info',
        );
      } else {
        this.log().warn(
          { event: 'slow-promotion-risk', wal_retrieve_retry_interval_ms: ms },
          `wal_retrieve_retry_interval is ${ms} ms on this standby: a configuration reload just before a promotion ` +
            'can delay it by that long; set it to 1s, or tune_wal_retrieve_retry_interval: true',
        );
      }
    } catch (err) {
      this.checkedStandbySettings = false;
      this.log().debug(
        { event: 'check-failed', error: errorText(err) },
        'could not read wal_retrieve_retry_interval',
      );
    }
  }

  private countHeartbeat(peer: PeerObservation): void {
    const labels = { peer: this.snap.peer };
    this.deps.metrics.heartbeats.inc(labels);
    if (peer.reachable) this.deps.metrics.heartbeatDuration.observe(labels, peer.rttMs / 1000);
    else this.deps.metrics.heartbeatFailures.inc(labels);
  }

  private rule(): Rule {
    return {
      keepaliveTimeMs: this.cfg.keepaliveTimeMs,
      keepaliveCount: this.cfg.keepaliveCount,
      streamSilenceMs: this.cfg.streamTimeoutMs,
      failoverRequiresSync: this.cfg.failoverRequiresSync,
      maxContactGapMs: 2 * this.cfg.keepaliveTimeMs + this.cfg.heartbeatTimeoutMs,
      syncRestoreMaxLagBytes: this.cfg.syncRestoreMaxLagBytes,
      paused: this.snap.paused,
    };
  }

  private schedule(): void {
    if (this.stopped) return;
    const now = performance.now();
    const period = this.cfg.keepaliveTimeMs;
    // Skip slots that passed while a long action ran rather than firing them in a burst. The
    // millisecond of slack lets slot 0 run at start instead of one period later.
    this.slot = Math.max(this.slot, Math.ceil((now - this.epoch - 1) / period));
    const due = this.epoch + this.slot * period;
    this.slot += 1;
    this.timer = setTimeout(
      () => {
        this.running = this.tick()
          .catch((err: unknown) => {
            this.log().error(
              { event: 'tick-failed', error: errorText(err) },
              `tick failed: ${errorText(err)}`,
            );
          })
          .finally(() => {
            this.running = null;
            this.schedule();
          });
      },
      Math.max(0, due - now),
    );
  }

  private record(e: Omit<KeeperEvent, 'at'>, level: 'info' | 'warn' | 'error' | null): void {
    const event: KeeperEvent = { at: Date.now(), ...e };
    this.snap = { ...this.snap, events: [...this.snap.events, event].slice(-EVENT_HISTORY) };
    if (level)
      this.log()[level](
        { event: e.event, outcome: e.outcome, reason: e.detail },
        `${e.event}: ${e.outcome}: ${e.detail}`,
      );
  }

  private restore(): KeeperState {
    const fresh = initialState();
    if (this.cfg.stateFile === null) return fresh;
    try {
      const saved = readStateFile(this.cfg.stateFile);
      if (saved === null) return fresh;
      this.persisted = saved;
      this.log().info({ event: 'state-restored', ...saved }, `state restored from ${this.cfg.stateFile}`);
      return { ...fresh, ...saved };
    } catch (err) {
      this.log().error(
        { event: 'state-unreadable', error: errorText(err) },
        `cannot read state file ${this.cfg.stateFile}: starting fresh (guards start from "never saw the primary")`,
      );
      return fresh;
    }
  }

  private persist(force = false): void {
    if (this.cfg.stateFile === null) return;
    const next = remembered(this.state);
    const prev = this.persisted;
    const changed =
      force ||
      prev === null ||
      prev.syncAtLastContact !== next.syncAtLastContact ||
      prev.savedSyncNames !== next.savedSyncNames ||
      JSON.stringify(prev.lastAction) !== JSON.stringify(next.lastAction) ||
      (prev.primarySeenAt === null) !== (next.primarySeenAt === null) ||
      (next.primarySeenAt ?? 0) - (prev.primarySeenAt ?? 0) >= SEEN_PERSIST_MS;
    if (!changed) return;
    try {
      writeStateFile(this.cfg.stateFile, next);
      this.persisted = next;
    } catch (err) {
      this.log().error(
        { event: 'state-write-failed', error: errorText(err) },
        `cannot write state file: ${errorText(err)}`,
      );
    }
  }

  private log(): Logger {
    return this.deps.logger;
  }
}
