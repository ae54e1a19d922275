// The loop: observe both servers, ask the policy, carry out its actions one at a time, and
// record what happened (log, snapshot, state file). Nothing here decides: what to do is
// decide()'s, and what an action's outcome means is settle()'s (src/policy/decide.ts).

import type { Config, NodeName } from '../config/config.js';
import { reloadedConfig } from '../config/reload.js';
import { decide, settle } from '../policy/decide.js';
import {
  initialState,
  type Action,
  type Decision,
  type KeeperState,
  type Outcome,
  type PeerObservation,
  type Signal,
} from '../policy/types.js';
import { errorText } from '../util/errors.js';
import { outcomeDetail, perform, PROMOTE_WAIT_S, type LoopAction } from './act.js';
import { systemClock, type Clock } from './clock.js';
import { countAction, countHeartbeat, countRejoin, countReload, countVeto } from './counts.js';
import { DecisionLog, logHeartbeat } from './decision-log.js';
import { HookRuns } from './hook-runs.js';
import { Journal } from './journal.js';
import { checkGrants, observe } from './observe.js';
import type { KeeperDeps } from './ports.js';
import { ruleOf } from './rule.js';
import { TickSchedule } from './schedule.js';
import { initialSnapshot, type Snapshot } from './snapshot.js';
import { StateStore } from './state-file.js';
import { Switchovers } from './switchovers.js';
import { Tasks } from './tasks.js';

export class Keeper {
  private cfg: Config;
  private state: KeeperState;
  private readonly j: Journal;
  private readonly clock: Clock;
  private readonly schedule: TickSchedule;
  private readonly hooks: HookRuns;
  private readonly store: StateStore;
  private readonly decisions = new DecisionLog();
  private stopped = false;
  private busySince: number | null = null;
  /** A rejoin or switchover running beside the loop, and the decision's reason that started it. */
  private readonly tasks: Tasks;
  private taskReason = '';
  private readonly switchovers: Switchovers;
  /** The signal this keeper holds on the peer's server. */
  private held: Signal | null = null;

  constructor(private readonly deps: KeeperDeps) {
    this.cfg = deps.config;
    this.clock = deps.clock ?? systemClock;
    this.store = new StateStore(this.cfg.stateFile, deps.logger);
    this.state = { ...initialState(), ...this.store.load() };
    this.j = new Journal(
      initialSnapshot(this.cfg.node, this.state, this.clock.now(), this.cfg.paused),
      this.clock,
      deps.logger,
    );
    this.schedule = new TickSchedule(
      this.clock,
      this.cfg.keepaliveTimeMs,
      () => this.safeTick(),
      (ms) => deps.metrics.tickDelay.observe(ms / 1000),
    );
    this.hooks = new HookRuns(this.j, deps.runHook, deps.metrics, this.clock, () => this.stopped);
    this.switchovers = new Switchovers(this.j, this.clock);
    this.tasks = new Tasks({
      server: deps.server,
      clock: this.clock,
      log: deps.logger,
      changed: (task) => this.j.update({ task }),
      ended: (o) => this.taskEnded(o),
    });
    // A failed renewal or a lost lease may call for going back to sync before the next tick.
    deps.arbiter?.onChange(() => {
      this.j.update({ arbiter: deps.arbiter?.status() ?? null });
      this.schedule.soon();
    });
  }

  get config(): Config {
    return this.cfg;
  }

  snapshot(): Snapshot {
    return this.j.snapshot;
  }

  /** True while the loop completes ticks (or carries out an action that may take a while). */
  alive(now = this.clock.now()): boolean {
    if (this.stopped) return false;
    if (this.busySince !== null) return now - this.busySince < (PROMOTE_WAIT_S + 15) * 1000;
    const last = this.j.snapshot.lastTickAt ?? this.j.snapshot.startedAt;
    return now - last < Math.max(5 * this.cfg.keepaliveTimeMs, 3000);
  }

  start(): void {
    this.j.log.info(
      {
        event: 'start',
        keepalive_time: this.cfg.keepaliveTimeMs / 1000,
        keepalive_count: this.cfg.keepaliveCount,
        state_file: this.cfg.stateFile,
      },
      `pg-keeper started on ${this.cfg.node}; watching ${this.j.snapshot.peer} every ${this.cfg.keepaliveTimeMs / 1000} s`,
    );
    if (this.cfg.stateFile === null) {
      this.j.log.warn(
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
    this.deps.signals?.close();
    if (this.hooks.count > 0) {
      this.j.log.warn(
        { event: 'stop', hooks_running: this.hooks.count },
        'stopping while a hook still runs; it is left to finish',
      );
    }
    this.j.log.info({ event: 'stop' }, 'pg-keeper stopped');
  }

  /** SIGHUP: take the reloadable settings from `next`, keep the rest, and say which is which. */
  reload(next: Config): void {
    const { config, changed, kept } = reloadedConfig(this.cfg, next);
    this.cfg = config;
    this.deps.logger.level = config.logLevel;
    this.setPaused(config.paused, 'configuration');
    this.schedule.setPeriod(config.keepaliveTimeMs);
    this.j.count((c) => countReload(c, true));
    const what = changed.length > 0 ? `changed: ${changed.map((c) => c.text).join(', ')}` : 'nothing changed';
    const restart =
      kept.length > 0 ? `; these need a restart and were kept: ${kept.map((c) => c.text).join(', ')}` : '';
    this.j.log.info(
      { event: 'reload', changed: changed.map((c) => c.key), ignored: kept.map((c) => c.key) },
      `configuration reloaded: ${what}${restart}`,
    );
  }

  /** SIGHUP with a file that does not load: the running configuration stays. */
  reloadFailed(why: string): void {
    this.j.count((c) => countReload(c, false));
    this.j.log.error(
      { event: 'reload-failed', file: this.cfg.file, error: why },
      `configuration not reloaded, keeping the old one: ${why}`,
    );
  }

  setPaused(paused: boolean, by: string): void {
    if (this.j.snapshot.paused === paused) return;
    this.j.update({ paused });
    this.j.record({ event: paused ? 'pause' : 'resume', outcome: 'info', detail: `by ${by}` }, 'warn');
  }

  /**
   * POST /switchover: a request for the policy to take or refuse at the next tick (it checks
   * that the standby is synchronous and caught up). The answer is in /status (`switchover`).
   */
  requestSwitchover(to: NodeName | null): { id: string } | { refused: string } {
    const answer = this.switchovers.ask(to, this.tasks.running?.kind === 'switchover');
    if ('id' in answer) this.schedule.soon();
    return answer;
  }

  /** One observe-decide-act-record cycle. Public so tests can drive the loop without a timer. */
  async tick(): Promise<void> {
    const own = { task: this.tasks.running, request: this.switchovers.request, held: this.held };
    const seen = await observe(this.deps, this.cfg.heartbeatTimeoutMs, own, this.j);
    const decision = decide(this.state, seen, this.clock.now(), this.rule());
    this.noteHeartbeat(seen.peer, decision.state.failures);
    this.noteDecision(decision, seen);
    await this.act(decision);
    this.store.save(this.state);
    if (seen.local.up && this.j.snapshot.missingGrants === null)
      await checkGrants(this.deps, this.cfg.heartbeatTimeoutMs * 4, this.j);
    if (this.deps.arbiter) this.j.update({ arbiter: this.deps.arbiter.status() });
    this.j.update({ lastTickAt: this.clock.now(), ticks: this.j.snapshot.ticks + 1 });
  }

  private async safeTick(): Promise<void> {
    try {
      await this.tick();
    } catch (err) {
      this.j.log.error({ event: 'tick-failed', error: errorText(err) }, `tick failed: ${errorText(err)}`);
    }
  }

  private noteHeartbeat(peer: PeerObservation, failures: number): void {
    this.j.count((c) => countHeartbeat(c, peer.reachable));
    const name = this.j.snapshot.peer;
    if (peer.reachable) this.deps.metrics.heartbeatDuration.observe({ peer: name }, peer.rttMs / 1000);
    logHeartbeat(this.j.log, name, peer, this.state.failures, failures);
  }

  /** The decision becomes the snapshot's, and is logged when it is news (decision-log.ts). */
  private noteDecision(d: Decision, seen: Snapshot['observation']): void {
    const previous = this.j.snapshot.decision?.situation ?? null;
    this.state = d.state;
    const now = this.clock.now();
    this.j.update({
      state: this.state,
      observation: seen,
      decision: { reason: d.reason, severity: d.severity, situation: d.situation, at: now },
    });
    this.decisions.note(d, previous, now, this.j.log);
    this.switchovers.decided(d, this.tasks.running !== null);
    if (d.situation === 'rejoin-refused' && previous !== 'rejoin-refused')
      this.j.count((c) => countRejoin(c, 'refused'));
    if (d.veto) {
      const veto = d.veto;
      this.j.count((c) => countVeto(c, veto));
      this.j.record({ event: 'veto', outcome: 'vetoed', detail: `${veto}: ${d.reason}` }, 'warn');
    }
  }

  /** The actions in order; a failure ends the list (after_command never follows a failed promotion). */
  private async act(d: Decision): Promise<void> {
    for (const action of d.actions) {
      if (action.kind === 'run-hook') {
        this.hooks.start(action, this.cfg, d.reason);
        continue;
      }
      if (action.kind === 'rejoin' || action.kind === 'switchover') {
        this.startTask(action, d.reason);
        continue;
      }
      const outcome = await this.carryOut(action);
      this.settled(outcome, d.reason);
      if (!outcome.ok) return;
    }
  }

  private async carryOut(action: LoopAction): Promise<Outcome> {
    const started = this.clock.monotonic();
    this.busySince = this.clock.now();
    let error: string | undefined;
    let lsn: string | undefined;
    try {
      lsn = (await perform(action, this.deps, this.cfg, (s) => this.hold(s))) ?? undefined;
    } catch (err) {
      error = errorText(err);
    } finally {
      this.busySince = null;
    }
    return {
      action,
      ok: error === undefined,
      at: this.clock.now(),
      durationMs: this.clock.monotonic() - started,
      ...(error === undefined ? {} : { error }),
      ...(lsn === undefined ? {} : { lsn }),
    };
  }

  private async hold(signal: Signal | null): Promise<void> {
    const signals = this.deps.signals;
    if (!signals) throw new Error('no signals to the peer in this keeper');
    await signals.hold(signal);
    this.held = signal;
  }

  private startTask(action: Extract<Action, { kind: 'rejoin' | 'switchover' }>, reason: string): void {
    this.taskReason = reason;
    const started =
      action.kind === 'rejoin'
        ? this.tasks.rejoin()
        : this.tasks.switchover(action.id, (phase, detail) =>
            this.switchovers.report({ id: action.id, phase, result: 'running', reason: detail }),
          );
    if (started) this.j.record({ event: `${action.kind}-start`, outcome: 'info', detail: reason }, 'warn');
  }

  /** A task ended: its outcome goes back to the policy, and a switchover's report says how it went. */
  private taskEnded(o: Outcome): void {
    this.settled(o, this.taskReason);
    this.switchovers.ended(o, this.j.snapshot.peer);
    this.store.save(this.state);
    this.schedule.soon();
  }

  /** An action's outcome, recorded once: the policy's state, the counts, the events and the log. */
  private settled(o: Outcome, reason: string): void {
    this.state = settle(this.state, o);
    this.switchovers.settled(o);
    const counted = countAction(this.j.snapshot.counts, o.action.kind, o.ok);
    this.j.update({ state: this.state, counts: o.ok && o.method ? countRejoin(counted, o.method) : counted });
    const kind = o.action.kind;
    if (!o.ok) {
      this.j.record(
        { event: kind, outcome: 'failed', detail: `${o.error ?? ''}; will retry at the next tick` },
        'error',
      );
      return;
    }
    this.j.record(
      { event: kind, outcome: 'ok', detail: outcomeDetail(o, reason) },
      kind === 'promote' || kind === 'switch-to-async' ? 'warn' : 'info',
    );
    // A keeper killed right after acting must come back knowing it acted.
    this.store.save(this.state);
  }

  private rule() {
    return ruleOf(this.cfg, {
      arbiter: this.deps.arbiter !== undefined,
      server: this.deps.server !== undefined,
      paused: this.j.snapshot.paused,
    });
  }
}
