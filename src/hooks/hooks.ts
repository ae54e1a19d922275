// after_command and after_async_command as the keeper uses them: the event's environment,
// started beside the loop (a slow VIP move must not stop the heartbeats), and the result
// described once for the log, the events and the metrics.

import { conninfoOf, peerOf, type Config } from '../config/config.js';
import type { HookName } from '../policy/types.js';
import { endpointOf } from '../postgres/client-config.js';
import { hookSucceeded, type HookResult } from './run.js';

/** The `result` label of pg_keeper_after_command_runs_total. */
export const HOOK_RESULTS = ['success', 'failure', 'timeout'] as const;
export type HookResultLabel = (typeof HOOK_RESULTS)[number];

export type HookEvent = 'promote' | 'switch-to-async';

export type RunHook = (
  command: string,
  env: Record<string, string>,
  timeoutMs: number,
) => Promise<HookResult>;

export interface HookDone {
  hook: HookName;
  ok: boolean;
  result: HookResultLabel;
  /** "exit status 3", "timed out after 30 s", ... */
  status: string;
  r: HookResult;
}

/** The PG_KEEPER_* variables a hook receives (README, "after_command"). */
export function hookEnv(cfg: Config, event: HookEvent, reason: string, at: Date): Record<string, string> {
  const self = endpointOf(conninfoOf(cfg, cfg.node));
  const other = endpointOf(conninfoOf(cfg, peerOf(cfg.node)));
  const env: Record<string, string> = {
    PG_KEEPER_EVENT: event,
    PG_KEEPER_NODE: cfg.node,
    PG_KEEPER_PEER: peerOf(cfg.node),
    PG_KEEPER_REASON: reason,
    PG_KEEPER_TIME: at.toISOString(),
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

export function describeHook(hook: HookName, r: HookResult, timeoutMs: number): HookDone {
  const ok = hookSucceeded(r);
  const result: HookResultLabel = ok ? 'success' : r.timedOut ? 'timeout' : 'failure';
  const status =
    r.error ??
    (r.timedOut
      ? `timed out after ${timeoutMs / 1000} s`
      : r.signal
        ? `killed by ${r.signal}`
        : `exit status ${r.exitCode}`);
  return { hook, ok, result, status, r };
}

/** The hooks running now; each reports once through `done`. */
export class Hooks {
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly run: RunHook,
    private readonly done: (d: HookDone) => void,
  ) {}

  get count(): number {
    return this.running.size;
  }

  start(hook: HookName, command: string, env: Record<string, string>, timeoutMs: number): void {
    const p = this.run(command, env, timeoutMs)
      .then((r) => this.done(describeHook(hook, r, timeoutMs)))
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }
}
