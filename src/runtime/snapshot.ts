// The keeper's current view, as the HTTP server and the metrics read it. The runtime
// replaces it (a new object) at each tick and at each change, such as a pause; readers
// never touch a database. Every counter the metrics export is read from `counts` here,
// and every "last time" from the policy's state: one record of each outcome.

import { peerOf, type NodeName } from '../config/config.js';
import { HOOK_RESULTS, type HookResultLabel } from '../hooks/hooks.js';
import {
  HOOK_NAMES,
  LOCAL_ACTION_KINDS,
  VETO_REASONS,
  type Decision,
  type HookName,
  type KeeperState,
  type LocalActionKind,
  type Observation,
  type VetoReason,
} from '../policy/types.js';

export interface KeeperEvent {
  /** Wall-clock ms. */
  at: number;
  event: string;
  outcome: 'ok' | 'failed' | 'vetoed' | 'info';
  detail: string;
}

/** What happened since the keeper started, counted once where it happened. */
export interface Counts {
  heartbeats: number;
  heartbeatFailures: number;
  actions: Record<LocalActionKind, { ok: number; failed: number }>;
  vetoes: Record<VetoReason, number>;
  hooks: Record<HookName, Record<HookResultLabel, number>>;
  reloads: { ok: number; failed: number };
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
    counts: {
      heartbeats: 0,
      heartbeatFailures: 0,
      actions: record(LOCAL_ACTION_KINDS, () => ({ ok: 0, failed: 0 })),
      vetoes: record(VETO_REASONS, () => 0),
      hooks: record(HOOK_NAMES, () => record(HOOK_RESULTS, () => 0)),
      reloads: { ok: 0, failed: 0 },
    },
  };
}

function record<K extends string, V>(keys: readonly K[], value: () => V): Record<K, V> {
  return Object.fromEntries(keys.map((k) => [k, value()])) as Record<K, V>;
}
