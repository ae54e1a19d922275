// The loop: observe both servers, ask the policy, carry out its actions one at a time, and
// record what happened (log, snapshot, state file). Nothing here decides: what to do is
// decide()'s, and what an action's outcome means is settle()'s (src/policy/decide.ts).

import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { reloadedConfig } from '../config/reload.js';
import { Hooks, hookEnv, type HookDone } from '../hooks/hooks.js';
import { decide, settle, commentOf } from '../policy/decide.js';
import {
  assertNever,
  initialState,
  type Action,
  type Decision,
  type KeeperState,
  type LocalAction,
  type Observation,
  type Outcome,
  type PeerObservation,
  type Rule,
  type ServerView,
  type TaskView,
} from '../policy/types.js';
import { errorText } from '../util/errors.js';
import { systemClock, type Clock } from './clock.js';
import { TickSchedule } from './schedule.js';
import { countAction, countHeartbeat, countHook, countRejoin, countReload, countVeto } from './counts.js';
import { DecisionLog } from './decision-log.js';
import { EVENT_HISTORY, initialSnapshot, type KeeperEvent, type Snapshot } from './snapshot.js';
import type { ArbiterPort, KeeperDeps } from './ports.js';
import { StateStore } from './state-file.js';

const PROMOTE_WAIT_S = 30;
/** The first wait after a failed rejoin; doubled at each failure in a row. */
const REJOIN_BACKOFF_MS = 10_000;
const ACTION_TIMEOUT_MS = 10_000;

export class Keeper {
  private cfg: Config;
  private state: KeeperState;
  private snap: Snapshot;
  private readonly clock: Clock;
  private readonly schedule: TickSchedule;
  private readonly hooks: Hooks;
  private readonly store: StateStore;
  private readonly decisions = new DecisionLog();
  private stopped = false;
  private busySince: number | null = null;
  /** A rejoin running beside the loop. */
  private task: TaskView | null = null;

  constructor(private readonly deps: KeeperDeps) {
    this.cfg = deps.config;
    this.clock = deps.clock ?? systemClock;
    this.store = new StateStore(this.cfg.stateFile, deps.logger);
    this.state = { ...initialState(), ...this.store.load() };
    this.snap = initialSnapshot(this.cfg.node, this.state, this.clock.now(), this.cfg.paused);
    this.schedule = new TickSchedule(this.clock, this.cfg.keepaliveTimeMs, () => this.safeTick());
    this.hooks = new Hooks(deps.runHook, (d) => this.hookDone(d));
    // A failed renewal or a lost lease may call for going back to sync before the next tick.
    deps.arbiter?.onChange(() => {
      this.update({ arbiter: deps.arbiter?.status() ?? null });
      this.schedule.soon();
    });
  }

  get config(): Config {
    return this.cfg;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** True while the loop completes ticks (or carries out an action that may take a while). */
  alive(now = this.clock.now()): boolean {
    if (this.stopped) return false;
    if (this.busySince !== null) return now - this.busySince < (PROMOTE_WAIT_S + 15) * 1000;
    const last = this.snap.lastTickAt ?? this.snap.startedAt;
    return now - last < Math.max(5 * this.cfg.keepaliveTimeMs, 3000);
  }

  start(): void {
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
    this.schedule.start();
  }

  /** Stop ticking; wait (at most `graceMs`) for a tick in progress. Hooks already started keep running. */
  async stop(graceMs = 800): Promise<void> {
    this.stopped = true;
    await this.schedule.stop(graceMs);
    this.store.save(this.state, true);
    this.deps.local.close();
    this.deps.peer.close();
    this.deps.arbiter?.close();
    if (this.hooks.count > 0) {
      this.log().warn(
        { event: 'stop', hooks_running: this.hooks.count },
        'stopping while a hook still runs; it is left to finish',
      );
    }
    this.log().info({ event: 'stop' }, 'pg-keeper stopped');
  }

  /** SIGHUP: take the reloadable settings from `next`, keep the rest, and say which is which. */
  reload(next: Config): void {
    const { config, changed, kept } = reloadedConfig(this.cfg, next);
    this.cfg = config;
    this.deps.logger.level = config.logLevel;
    this.setPaused(config.paused, 'configuration');
    this.schedule.setPeriod(config.keepaliveTimeMs);
    this.update({ counts: countReload(this.snap.counts, true) });
    const what = changed.length > 0 ? `changed: ${changed.map((c) => c.text).join(', ')}` : 'nothing changed';
    const restart =
      kept.length > 0 ? `; these need a restart and were kept: ${kept.map((c) => c.text).join(', ')}` : '';
    this.log().info(
      { event: 'reload', changed: changed.map((c) => c.key), ignored: kept.map((c) => c.key) },
      `configuration reloaded: ${what}${restart}`,
    );
  }

  /** SIGHUP with a file that does not load: the running configuration stays. */
  reloadFailed(why: string): void {
    this.update({ counts: countReload(this.snap.counts, false) });
    this.log().error(
      { event: 'reload-failed', file: this.cfg.file, error: why },
      `configuration not reloaded, keeping the old one: ${why}`,
    );
  }

  setPaused(paused: boolean, by: string): void {
    if (this.snap.paused === paused) return;
    this.update({ paused });
    this.record({ event: paused ? 'pause' : 'resume', outcome: 'info', detail: `by ${by}` }, 'warn');
  }

  /** One observe-decide-act-record cycle. Public so tests can drive the loop without a timer. */
  async tick(): Promise<void> {
    const timeout = this.cfg.heartbeatTimeoutMs;
    const [peer, local, arbiter] = await Promise.all([
      this.deps.peer.heartbeat(timeout),
      this.deps.local.observe(timeout),
      this.deps.arbiter?.observe(timeout),
    ]);
    // The data directory says what a server that does not answer is (its timeline, its state).
    const server = !local.up && this.deps.server ? await this.serverState(timeout) : undefined;
    const seen: Observation = {
      local,
      peer,
      ...(arbiter ? { arbiter } : {}),
      ...(server ? { server } : {}),
      ...(this.task ? { task: this.task } : {}),
    };
    const decision = decide(this.state, seen, this.clock.now(), this.rule());
    this.noteHeartbeat(peer, decision.state.failures);
    this.noteDecision(decision, seen);
    await this.act(decision);
    this.store.save(this.state);
    if (this.deps.arbiter) this.update({ arbiter: this.deps.arbiter.status() });
    this.update({ lastTickAt: this.clock.now(), ticks: this.snap.ticks + 1 });
  }

  private async safeTick(): Promise<void> {
    try {
      await this.tick();
    } catch (err) {
      this.log().error({ event: 'tick-failed', error: errorText(err) }, `tick failed: ${errorText(err)}`);
    }
  }

  private noteHeartbeat(peer: PeerObservation, failures: number): void {
    const before = this.state.failures;
    this.update({ counts: countHeartbeat(this.snap.counts, peer.reachable) });
    const name = this.snap.peer;
    if (peer.reachable) {
      this.deps.metrics.heartbeatDuration.observe({ peer: name }, peer.rttMs / 1000);
      if (before > 0)
        this.log().info(
          { event: 'heartbeat-ok', peer: name, after: before },
          `${name} answers heartbeats again after ${before} failed`,
        );
      return;
    }
    // The first failure of a run is news; the count that follows is in /status and the metrics.
    this.log()[failures === 1 ? 'warn' : 'debug'](
      { event: 'heartbeat-failed', peer: name, count: failures, error: peer.error },
      `heartbeat to ${name} failed (${failures} in a row): ${peer.error}`,
    );
  }

  /** The decision becomes the snapshot's, and is logged when it is news (decision-log.ts). */
  private noteDecision(d: Decision, seen: Snapshot['observation']): void {
    const previous = this.snap.decision;
    this.state = d.state;
    const now = this.clock.now();
    this.update({
      state: this.state,
      observation: seen,
      decision: { reason: d.reason, severity: d.severity, situation: d.situation, at: now },
    });
    const { log, reminder } = this.decisions.consider(d, now);
    if (log) {
      this.log()[d.severity](
        {
          event: 'decision',
          situation: d.situation,
          ...(previous && previous.situation !== d.situation ? { previous: previous.situation } : {}),
          comment: commentOf(d.situation),
          reason: d.reason,
          count: d.state.failures,
          ...(reminder ? { reminder: true } : {}),
        },
        d.reason,
      );
    }
    if (d.situation === 'rejoin-refused' && previous?.situation !== 'rejoin-refused')
      this.update({ counts: countRejoin(this.snap.counts, 'refused') });
    if (d.veto) {
      this.update({ counts: countVeto(this.snap.counts, d.veto) });
      this.record({ event: 'veto', outcome: 'vetoed', detail: `${d.veto}: ${d.reason}` }, 'warn');
    }
  }

  /** The actions in order; a failure ends the list (after_command never follows a failed promotion). */
  private async act(d: Decision): Promise<void> {
    for (const action of d.actions) {
      if (action.kind === 'run-hook') {
        this.startHook(action, d.reason);
        continue;
      }
      if (action.kind === 'rejoin') {
        this.startRejoin(d.reason);
        continue;
      }
      const started = this.clock.monotonic();
      this.busySince = this.clock.now();
      let error: string | undefined;
      let lsn: string | undefined;
      try {
        lsn = (await this.perform(action)) ?? undefined;
      } catch (err) {
        error = errorText(err);
      } finally {
        this.busySince = null;
      }
      const outcome: Outcome = {
        action,
        ok: error === undefined,
        at: this.clock.now(),
        durationMs: this.clock.monotonic() - started,
        ...(error === undefined ? {} : { error }),
        ...(lsn === undefined ? {} : { lsn }),
      };
      this.settled(outcome, d.reason);
      if (!outcome.ok) return;
    }
  }

  /** Carries out one action; restore-sync returns the WAL position once sync is back. */
  private perform(action: Exclude<LocalAction, { kind: 'rejoin' }>): Promise<string | void> {
    const local = this.deps.local;
    const arbiterTimeout = this.cfg.heartbeatTimeoutMs;
    switch (action.kind) {
      case 'switch-to-async':
        return local.switchToAsync(ACTION_TIMEOUT_MS);
      case 'promote':
        return local.promote(PROMOTE_WAIT_S, (PROMOTE_WAIT_S + 5) * 1000);
      case 'restore-sync':
        return local.restoreSync(action.value, ACTION_TIMEOUT_MS);
      case 'tune-wal-retrieve-retry-interval':
        return local.setWalRetrieveRetryInterval(action.ms, ACTION_TIMEOUT_MS);
      case 'claim-lease':
        return this.arbiter().claim(action.replicationRevision, action.recordAsync, arbiterTimeout);
      case 'release-lease':
        return this.arbiter().release(arbiterTimeout);
      case 'record-replication':
        return this.arbiter().record(action.mode, arbiterTimeout);
      default:
        return assertNever(action);
    }
  }

  private async serverState(timeoutMs: number): Promise<ServerView | undefined> {
    try {
      return await this.deps.server?.state(Math.max(timeoutMs, 2000));
    } catch (err) {
      this.log().debug(
        { event: 'server-state-failed', error: errorText(err) },
        `cannot read the data directory: ${errorText(err)}`,
      );
      return undefined;
    }
  }

  /**
   * A rejoin runs beside the loop (a base backup may take minutes): the loop goes on
   * heartbeating, its progress is in /status, and its outcome goes back to the policy.
   */
  private startRejoin(reason: string): void {
    const server = this.deps.server;
    if (!server || this.task) return;
    const startedAt = this.clock.now();
    const began = this.clock.monotonic();
    this.setTask({ kind: 'rejoin', step: 'checking', detail: 'starting', startedAt });
    this.record({ event: 'rejoin-start', outcome: 'info', detail: reason }, 'warn');
    const progress = (step: string, detail: string): void => {
      this.setTask({ kind: 'rejoin', step, detail, startedAt });
      this.log().info({ event: 'rejoin-step', step, detail }, `rejoin: ${step}: ${detail}`);
    };
    void server
      .rejoin(progress)
      .then(
        ({ method }): Outcome => ({
          action: { kind: 'rejoin' },
          ok: true,
          at: this.clock.now(),
          durationMs: this.clock.monotonic() - began,
          method,
        }),
        (err: unknown): Outcome => ({
          action: { kind: 'rejoin' },
          ok: false,
          at: this.clock.now(),
          durationMs: this.clock.monotonic() - began,
          error: errorText(err),
        }),
      )
      .then((outcome) => {
        this.setTask(null);
        this.settled(outcome, reason);
        this.store.save(this.state);
        this.schedule.soon();
      });
  }

  private setTask(task: TaskView | null): void {
    this.task = task;
    this.update({ task });
  }

  private arbiter(): ArbiterPort {
    if (!this.deps.arbiter) throw new Error('no arbiter is configured (etcd_endpoints)');
    return this.deps.arbiter;
  }

  /** An action's outcome, recorded once: the policy's state, the counts, the events and the log. */
  private settled(o: Outcome, reason: string): void {
    this.state = settle(this.state, o);
    const counted = countAction(this.snap.counts, o.action.kind, o.ok);
    this.update({ state: this.state, counts: o.ok && o.method ? countRejoin(counted, o.method) : counted });
    const kind = o.action.kind;
    if (!o.ok) {
      this.record(
        { event: kind, outcome: 'failed', detail: `${o.error ?? ''}; will retry at the next tick` },
        'error',
      );
      return;
    }
    this.record(
      { event: kind, outcome: 'ok', detail: outcomeDetail(o, reason) },
      kind === 'promote' || kind === 'switch-to-async' ? 'warn' : 'info',
    );
    // A keeper killed right after acting must come back knowing it acted.
    this.store.save(this.state);
  }

  private startHook(action: Extract<Action, { kind: 'run-hook' }>, reason: string): void {
    const command = action.hook === 'after_command' ? this.cfg.afterCommand : this.cfg.afterAsyncCommand;
    if (command === null) return;
    this.log().info({ event: 'hook-start', hook: action.hook }, `running ${action.hook}`);
    this.hooks.start(
      action.hook,
      command,
      hookEnv(this.cfg, action.event, reason, new Date(this.clock.now())),
      this.cfg.afterCommandTimeoutMs,
    );
  }

  private hookDone(d: HookDone): void {
    this.update({ counts: countHook(this.snap.counts, d.hook, d.result) });
    this.deps.metrics.hookDuration.observe({ hook: d.hook }, d.r.durationMs / 1000);
    this.log()[d.ok ? 'info' : 'error'](
      {
        event: 'hook-done',
        hook: d.hook,
        result: d.result,
        exit_code: d.r.exitCode,
        duration_ms: Math.round(d.r.durationMs),
        output: d.r.output,
      },
      `${d.hook} ${d.ok ? 'succeeded' : 'failed'}: ${d.status}`,
    );
    this.record({ event: d.hook, outcome: d.ok ? 'ok' : 'failed', detail: d.status }, null);
  }

  private rule(): Rule {
    return {
      keepaliveTimeMs: this.cfg.keepaliveTimeMs,
      keepaliveCount: this.cfg.keepaliveCount,
      streamTimeoutMs: this.cfg.streamTimeoutMs,
      failoverRequiresSync: this.cfg.failoverRequiresSync,
      maxContactGapMs: 2 * this.cfg.keepaliveTimeMs + this.cfg.heartbeatTimeoutMs,
      syncRestoreMaxLagBytes: this.cfg.syncRestoreMaxLagBytes,
      tuneWalRetrieveRetryInterval: this.cfg.tuneWalRetrieveRetryInterval,
      arbiter: this.deps.arbiter
        ? { ttlMs: this.cfg.etcdLeaseTtlMs, marginMs: arbiterMarginMs(this.cfg) }
        : null,
      autoRejoin: this.cfg.autoRejoin && this.deps.server !== undefined,
      rejoinBackoffMs: REJOIN_BACKOFF_MS,
      paused: this.snap.paused,
    };
  }

  private update(patch: Partial<Snapshot>): void {
    this.snap = { ...this.snap, ...patch };
  }

  private record(e: Omit<KeeperEvent, 'at'>, level: 'info' | 'warn' | 'error' | null): void {
    const event: KeeperEvent = { at: this.clock.now(), ...e };
    this.update({ events: [...this.snap.events, event].slice(-EVENT_HISTORY) });
    if (level)
      this.log()[level](
        { event: e.event, outcome: e.outcome, reason: e.detail },
        `${e.event}: ${e.outcome}: ${e.detail}`,
      );
  }

  private log(): Logger {
    return this.deps.logger;
  }
}

/**
 * How much lease a primary must have left to be asynchronous: a tick and a heartbeat
 * timeout (the next chance to go back to sync), at most half the TTL. The arbiter also
 * wakes the loop when a renewal fails, so a long keepalive_time does not wait a whole tick.
 */
export function arbiterMarginMs(cfg: Config): number {
  return Math.min(cfg.keepaliveTimeMs + cfg.heartbeatTimeoutMs, cfg.etcdLeaseTtlMs / 2);
}

function outcomeDetail(o: Outcome, reason: string): string {
  const a = o.action;
  switch (a.kind) {
    case 'promote':
      return `${reason}; promoted in ${Math.round(o.durationMs)} ms`;
    case 'restore-sync':
      return `synchronous_standby_names = '${a.value}'; ${reason}`;
    case 'tune-wal-retrieve-retry-interval':
      return `wal_retrieve_retry_interval set to ${a.ms} ms (${reason})`;
    case 'switch-to-async':
      return reason;
    case 'claim-lease':
      return a.recordAsync
        ? `took the lease, recorded "async" in etcd (${reason})`
        : `took the lease (${reason})`;
    case 'release-lease':
      return `gave the lease up (${reason})`;
    case 'record-replication':
      return `recorded "${a.mode}" in etcd (${reason})`;
    case 'rejoin':
      return `now a standby of the new primary, by ${o.method ?? '?'}, in ${Math.round(o.durationMs / 100) / 10} s (${reason})`;
    default:
      return assertNever(a);
  }
}
