// The loop: observe both servers, ask the policy, carry out its actions one at a time, and
// record what happened (log, snapshot, state file). Nothing here decides: what to do is
// decide()'s, and what an action's outcome means is settle()'s (src/policy/decide.ts).

import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { reloadedConfig } from '../config/reload.js';
import { Hooks, hookEnv, type HookDone, type RunHook } from '../hooks/hooks.js';
import type { KeeperMetrics } from '../metrics/metrics.js';
import { decide, settle, commentOf, isLoud } from '../policy/decide.js';
import {
  assertNever,
  initialState,
  type Action,
  type Decision,
  type KeeperState,
  type LocalAction,
  type LocalObservation,
  type Outcome,
  type PeerObservation,
  type Rule,
} from '../policy/types.js';
import { errorText } from '../util/errors.js';
import { systemClock, type Clock } from './clock.js';
import { TickSchedule } from './schedule.js';
import { EVENT_HISTORY, initialSnapshot, type KeeperEvent, type Snapshot } from './snapshot.js';
import { readStateFile, remembered, worthWriting, writeStateFile, type Remembered } from './state-file.js';

/** The local server as the loop uses it (postgres/local.ts, or a fake in tests). */
export interface LocalPort {
  observe(timeoutMs: number): Promise<LocalObservation>;
  switchToAsync(timeoutMs: number): Promise<void>;
  restoreSync(value: string, timeoutMs: number): Promise<void>;
  promote(waitSeconds: number, timeoutMs: number): Promise<void>;
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
  runHook: RunHook;
  clock?: Clock;
}

const PROMOTE_WAIT_S = 30;
const ACTION_TIMEOUT_MS = 10_000;
/** A situation other than a healthy one is logged again this often while it lasts. */
export const REMINDER_MS = 60_000;

export class Keeper {
  private cfg: Config;
  private state: KeeperState;
  private snap: Snapshot;
  private readonly clock: Clock;
  private readonly schedule: TickSchedule;
  private readonly hooks: Hooks;
  private stopped = false;
  private persisted: Remembered | null = null;
  private busySince: number | null = null;
  /** The last decision line logged: what it said (numbers aside), and when. */
  private logged: { sentence: string; at: number } | null = null;

  constructor(private readonly deps: KeeperDeps) {
    this.cfg = deps.config;
    this.clock = deps.clock ?? systemClock;
    this.state = this.restore();
    this.snap = initialSnapshot(this.cfg.node, this.state, this.clock.now(), this.cfg.paused);
    this.schedule = new TickSchedule(this.clock, this.cfg.keepaliveTimeMs, () => this.safeTick());
    this.hooks = new Hooks(deps.runHook, (d) => this.hookDone(d));
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
    this.persist(true);
    this.deps.local.close();
    this.deps.peer.close();
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
    this.update({
      counts: {
        ...this.snap.counts,
        reloads: { ...this.snap.counts.reloads, ok: this.snap.counts.reloads.ok + 1 },
      },
    });
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
    this.update({
      counts: {
        ...this.snap.counts,
        reloads: { ...this.snap.counts.reloads, failed: this.snap.counts.reloads.failed + 1 },
      },
    });
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
    const [peer, local] = await Promise.all([
      this.deps.peer.heartbeat(timeout),
      this.deps.local.observe(timeout),
    ]);
    const decision = decide(this.state, { local, peer }, this.clock.now(), this.rule());
    this.noteHeartbeat(peer, decision.state.failures);
    this.noteDecision(decision, { local, peer });
    await this.act(decision);
    this.persist();
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
    const c = this.snap.counts;
    const before = this.state.failures;
    this.update({
      counts: {
        ...c,
        heartbeats: c.heartbeats + 1,
        heartbeatFailures: c.heartbeatFailures + (peer.reachable ? 0 : 1),
      },
    });
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

  /**
   * The decision becomes the snapshot's; it is logged when its sentence changes (numbers
   * aside: a count that grows at every tick is not news), when it acts, when a guard holds
   * for the first time in a run, at every tick for a loud situation (two primaries), and
   * otherwise as a reminder every REMINDER_MS while a situation that is not healthy lasts.
   */
  private noteDecision(d: Decision, seen: Snapshot['observation']): void {
    const previous = this.snap.decision;
    this.state = d.state;
    const now = this.clock.now();
    this.update({
      state: this.state,
      observation: seen,
      decision: { reason: d.reason, severity: d.severity, situation: d.situation, at: now },
    });
    const sentence = d.reason.replace(/\d+(\.\d+)?/g, '#');
    const reminder =
      this.logged !== null &&
      d.severity !== 'info' &&
      now - this.logged.at >= REMINDER_MS &&
      sentence === this.logged.sentence;
    if (
      sentence !== this.logged?.sentence ||
      d.actions.length > 0 ||
      d.veto ||
      isLoud(d.situation) ||
      reminder
    ) {
      this.logged = { sentence, at: now };
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
    if (d.veto) {
      const c = this.snap.counts;
      this.update({ counts: { ...c, vetoes: { ...c.vetoes, [d.veto]: c.vetoes[d.veto] + 1 } } });
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
      const started = this.clock.monotonic();
      this.busySince = this.clock.now();
      let error: string | undefined;
      try {
        await this.perform(action);
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
      };
      this.settled(outcome, d.reason);
      if (!outcome.ok) return;
    }
  }

  private perform(action: LocalAction): Promise<void> {
    const local = this.deps.local;
    switch (action.kind) {
      case 'switch-to-async':
        return local.switchToAsync(ACTION_TIMEOUT_MS);
      case 'promote':
        return local.promote(PROMOTE_WAIT_S, (PROMOTE_WAIT_S + 5) * 1000);
      case 'restore-sync':
        return local.restoreSync(action.value, ACTION_TIMEOUT_MS);
      case 'tune-wal-retrieve-retry-interval':
        return local.setWalRetrieveRetryInterval(action.ms, ACTION_TIMEOUT_MS);
      default:
        return assertNever(action);
    }
  }

  /** An action's outcome, recorded once: the policy's state, the counts, the events and the log. */
  private settled(o: Outcome, reason: string): void {
    this.state = settle(this.state, o);
    const c = this.snap.counts;
    const kind = o.action.kind;
    const tally = c.actions[kind];
    this.update({
      state: this.state,
      counts: {
        ...c,
        actions: {
          ...c.actions,
          [kind]: { ok: tally.ok + (o.ok ? 1 : 0), failed: tally.failed + (o.ok ? 0 : 1) },
        },
      },
    });
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
    this.persist();
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
    const c = this.snap.counts;
    const runs = c.hooks[d.hook];
    this.update({
      counts: { ...c, hooks: { ...c.hooks, [d.hook]: { ...runs, [d.result]: runs[d.result] + 1 } } },
    });
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
    if (!force && !worthWriting(this.persisted, next)) return;
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
    default:
      return assertNever(a);
  }
}
