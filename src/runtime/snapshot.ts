// The keeper's current view, as the HTTP server and the metrics read it. The runtime
// replaces it at each tick; readers never touch a database.

import type { NodeName } from '../config/config.js';
import type { KeeperState, Observation } from '../policy/types.js';

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
  decision: { reason: string; severity: string; situation: string; at: number } | null;
  paused: boolean;
  events: KeeperEvent[];
  lastPromotionAt: number | null;
  lastAsyncSwitchAt: number | null;
  lastSyncRestoreAt: number | null;
}

export const EVENT_HISTORY = 50;
