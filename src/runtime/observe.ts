// One observation per tick: the peer's heartbeat, the local server, and etcd, at once, each
// bounded by heartbeat_timeout; the data directory of a local server that does not answer;
// and, once, the rights the keeper's role lacks.

import type { Observation, ServerView, Signal, SwitchoverRequest, TaskView } from '../policy/types.js';
import { errorText } from '../util/errors.js';
import type { Journal } from './journal.js';
import type { KeeperDeps } from './ports.js';

/** What the keeper itself adds to what it sees: a task running, a request, the signal it holds. */
export interface OwnView {
  task: TaskView | null;
  request: SwitchoverRequest | null;
  held: Signal | null;
}

export async function observe(
  deps: Pick<KeeperDeps, 'peer' | 'local' | 'arbiter' | 'server'>,
  timeoutMs: number,
  own: OwnView,
  j: Journal,
): Promise<Observation> {
  const [peer, local, arbiter] = await Promise.all([
    deps.peer.heartbeat(timeoutMs),
    deps.local.observe(timeoutMs),
    deps.arbiter?.observe(timeoutMs),
  ]);
  // The data directory says what a server that does not answer is (its timeline, its state).
  const server = !local.up && deps.server ? await serverState(deps, timeoutMs, j) : undefined;
  return {
    local,
    peer,
    ...(arbiter ? { arbiter } : {}),
    ...(server ? { server } : {}),
    ...(own.task ? { task: own.task } : {}),
    ...(own.request ? { request: own.request } : {}),
    ...(own.held ? { held: own.held } : {}),
  };
}

async function serverState(
  deps: Pick<KeeperDeps, 'server'>,
  timeoutMs: number,
  j: Journal,
): Promise<ServerView | undefined> {
  try {
    return await deps.server?.state(Math.max(timeoutMs, 2000));
  } catch (err) {
    j.log.debug(
      { event: 'server-state-failed', error: errorText(err) },
      `cannot read the data directory: ${errorText(err)}`,
    );
    return undefined;
  }
}

/**
 * Once, when the local server first answers: the rights the keeper's role lacks, each
 * named with the statement that grants it (a missing one otherwise shows up late, as a
 * failed action or a server that seems down).
 */
export async function checkGrants(
  deps: Pick<KeeperDeps, 'local' | 'server'>,
  timeoutMs: number,
  j: Journal,
): Promise<void> {
  const check = deps.local.missingGrants;
  if (!check) return;
  try {
    const missing = await check.call(deps.local, deps.server !== undefined, timeoutMs);
    j.update({ missingGrants: missing });
    for (const m of missing) j.log.error({ event: 'missing-grant', grant: m }, m);
  } catch (err) {
    j.log.debug(
      { event: 'grant-check-failed', error: errorText(err) },
      `cannot check the role's rights: ${errorText(err)}`,
    );
  }
}
