// The keeper's current view, as the HTTP server and the metrics read it. The runtime
// replaces it (a new object) at each tick and at each change, such as a pause; readers
// never touch a database. Every counter the metrics export is read from `counts` here,
// and every "last time" from the policy's state: one record of each outcome.

import type { ArbiterStatus } from '../arbiter/etcd.js';
import { peerOf, type NodeName } from '../config/config.js';
import type { Decision, KeeperState, Observation, TaskView } from '../policy/types.js';
import { zeroCounts, type Counts } from './counts.js';

export interface KeeperEvent {
  /** Wall-clock ms. */
  at: number;
  event: string;
  outcome: 'ok' | 'failed' | 'vetoed' | 'info';
  detail: string;
}

export interface Snapshot {
  node: NodeName;
  peer: NodeName;
  startedAt: number;
  /** Wall-clock ms at the end of the last completed tick. */
  lastTickAt: number | null;
  ticks: number;
  state: KeeperState;
  observation: Observation | null;
  decision: (Pick<Decision, 'reason' | 'severity' | 'situation'> & { at: number }) | null;
  paused: boolean;
  events: KeeperEvent[];
  counts: Counts;
  /** The arbiter as its adapter last reported it; null in two-node mode. */
  arbiter: ArbiterStatus | null;
  /** A rejoin or switchover running beside the loop, with its current step. */
  task: TaskView | null;
  /** The last switchover this keeper took part in, for /status and `pg-keeper switchover`. */
  switchover: SwitchoverReport | null;
  /** The rights the keeper's role lacks on its server, once checked (null: not yet). */
  missingGrants: string[] | null;
}

export interface SwitchoverReport {
  id: string;
  /** requested, taken, announcing, stopping, stopped, waiting-for-promotion, rejoining, done, failed, refused */
  phase: string;
  result: 'running' | 'ok' | 'failed' | 'refused';
  reason: string;
  startedAt: number;
  endedAt: number | null;
}

export const EVENT_HISTORY = 50;

/** A keeper's view before its first tick. */
export function initialSnapshot(node: NodeName, state: KeeperState, now: number, paused: boolean): Snapshot {
  return {
    node,
    peer: peerOf(node),
    startedAt: now,
    lastTickAt: null,
    ticks: 0,
    state,
    observation: null,
    decision: null,
    paused,
    events: [],
    counts: zeroCounts(),
    arbiter: null,
    task: null,
    switchover: null,
    missingGrants: null,
  };
}

/** The node whose lease holds the primary's key, as read at the last tick; null: nobody, or not read. */
export function holderName(snap: Snapshot): NodeName | null {
  const holder = snap.observation?.arbiter?.reachable ? snap.observation.arbiter.holder : null;
  return holder === 'self' ? snap.node : holder === 'peer' ? snap.peer : null;
}
