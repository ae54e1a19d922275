// What happened since the keeper started, counted once where it happened: the metrics'
// counters are read from here at scrape time (src/metrics/metrics.ts), so a counter can
// never disagree with /status. Each function returns a new object: the snapshot that
// holds it is replaced, never mutated (scrapes share a rendering while it is the same).

import { HOOK_RESULTS, type HookResultLabel } from '../hooks/hooks.js';
import {
  HOOK_NAMES,
  LOCAL_ACTION_KINDS,
  VETO_REASONS,
  type HookName,
  type LocalActionKind,
  type VetoReason,
} from '../policy/types.js';

export interface Counts {
  heartbeats: number;
  heartbeatFailures: number;
  actions: Record<LocalActionKind, { ok: number; failed: number }>;
  vetoes: Record<VetoReason, number>;
  hooks: Record<HookName, Record<HookResultLabel, number>>;
  reloads: { ok: number; failed: number };
  /** Rejoins that succeeded, by how; and the times one was refused (it could have discarded acknowledged commits). */
  rejoins: { rewind: number; basebackup: number; restart: number; refused: number };
  /** Switchovers refused (the ones carried out are the switchover action's ok and failed). */
  switchoversRefused: number;
}

export function zeroCounts(): Counts {
  return {
    heartbeats: 0,
    heartbeatFailures: 0,
    actions: table(LOCAL_ACTION_KINDS, () => ({ ok: 0, failed: 0 })),
    vetoes: table(VETO_REASONS, () => 0),
    hooks: table(HOOK_NAMES, () => table(HOOK_RESULTS, () => 0)),
    reloads: { ok: 0, failed: 0 },
    rejoins: { rewind: 0, basebackup: 0, restart: 0, refused: 0 },
    switchoversRefused: 0,
  };
}

export const countHeartbeat = (c: Counts, ok: boolean): Counts => ({
  ...c,
  heartbeats: c.heartbeats + 1,
  heartbeatFailures: c.heartbeatFailures + (ok ? 0 : 1),
});

export const countAction = (c: Counts, kind: LocalActionKind, ok: boolean): Counts => {
  const was = c.actions[kind];
  const now = ok ? { ...was, ok: was.ok + 1 } : { ...was, failed: was.failed + 1 };
  return { ...c, actions: { ...c.actions, [kind]: now } };
};

export const countVeto = (c: Counts, veto: VetoReason): Counts => ({
  ...c,
  vetoes: { ...c.vetoes, [veto]: c.vetoes[veto] + 1 },
});

export const countHook = (c: Counts, hook: HookName, result: HookResultLabel): Counts => ({
  ...c,
  hooks: { ...c.hooks, [hook]: { ...c.hooks[hook], [result]: c.hooks[hook][result] + 1 } },
});

export const countReload = (c: Counts, ok: boolean): Counts => ({
  ...c,
  reloads: ok ? { ...c.reloads, ok: c.reloads.ok + 1 } : { ...c.reloads, failed: c.reloads.failed + 1 },
});

function table<K extends string, V>(keys: readonly K[], value: () => V): Record<K, V> {
  return Object.fromEntries(keys.map((k) => [k, value()])) as Record<K, V>;
}

export const countRejoin = (c: Counts, how: keyof Counts['rejoins']): Counts => ({
  ...c,
  rejoins: { ...c.rejoins, [how]: c.rejoins[how] + 1 },
});

export const countSwitchover = (c: Counts, how: 'refused'): Counts => ({
  ...c,
  switchoversRefused: c.switchoversRefused + (how === 'refused' ? 1 : 0),
});
