// The hooks a decision asks for (after_command, after_async_command), started beside the
// loop, and their results recorded: counted, timed, logged and kept among the events.

import type { Config } from '../config/config.js';
import { Hooks, hookEnv, type HookDone, type RunHook } from '../hooks/hooks.js';
import type { KeeperMetrics } from '../metrics/metrics.js';
import type { Action } from '../policy/types.js';
import type { Clock } from './clock.js';
import { countHook } from './counts.js';
import type { Journal } from './journal.js';

export class HookRuns {
  private readonly hooks: Hooks;

  constructor(
    private readonly j: Journal,
    run: RunHook,
    private readonly metrics: Pick<KeeperMetrics, 'hookDuration'>,
    private readonly clock: Clock,
    /** True once the keeper stopped: a hook that ends then is counted, not logged. */
    private readonly stopped: () => boolean,
  ) {
    this.hooks = new Hooks(run, (d) => this.done(d));
  }

  /** Hooks still running. */
  get count(): number {
    return this.hooks.count;
  }

  start(action: Extract<Action, { kind: 'run-hook' }>, cfg: Config, reason: string): void {
    const command = action.hook === 'after_command' ? cfg.afterCommand : cfg.afterAsyncCommand;
    if (command === null) return;
    this.j.log.info({ event: 'hook-start', hook: action.hook }, `running ${action.hook}`);
    this.hooks.start(
      action.hook,
      command,
      hookEnv(cfg, action.event, reason, new Date(this.clock.now())),
      cfg.afterCommandTimeoutMs,
    );
  }

  private done(d: HookDone): void {
    this.j.count((c) => countHook(c, d.hook, d.result));
    // The log's destination may be closed once the keeper stopped (the demo closes its files
    // at Ctrl-C).
    if (this.stopped()) return;
    this.metrics.hookDuration.observe({ hook: d.hook }, d.r.durationMs / 1000);
    this.j.log[d.ok ? 'info' : 'error'](
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
    this.j.record({ event: d.hook, outcome: d.ok ? 'ok' : 'failed', detail: d.status }, null);
  }
}
