// A fault schedule from a seed: the same seed always gives the same faults, targets, modes and
// durations (the servers' own timing is real, so a replay repeats the schedule, not every
// interleaving). The first faults of a schedule are a shuffle of every kind, so any schedule of
// at least FAULT_KINDS.length faults covers every kind once.
//
// Every kind is one fault at a time, healed before the next, except cascade-kill: two failures
// in a row (the standby's server, then the primary's), the classic way a two-node pair loses
// acknowledged commits when the standby that comes back first is promoted although the primary
// had gone on without it.

export const FAULT_KINDS = [
  'kill-server',
  'freeze-server',
  'restart-server',
  'kill-keeper',
  'partition',
  'hung-hook',
  'cascade-kill',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults are aimed at a role, resolved to a node when injected (roles move with failovers). */
export type TargetRole = 'primary' | 'standby';
export type CutMode = 'blackhole' | 'refuse';
export type CascadeVariant = 'server' | 'host' | 'frozen-host';

export interface PlannedFault {
  /** 1-based position in the schedule. */
  index: number;
  kind: FaultKind;
  /** Whose server or keeper; for a partition, both (null); for hung-hook the primary is killed. */
  target: TargetRole | null;
  /** Partition only. */
  mode: CutMode | null;
  /**
   * cascade-kill only, what happens to the standby: `server` its server is killed; `host` its keeper
   * too (a host reboot: the keeper comes back with only its state file to go by); `frozen-host`
   * server and keeper are stopped (SIGSTOP) and resumed, as a paused VM is.
   */
  variant: CascadeVariant | null;
  /** How long the fault lasts (server dead or frozen, keeper dead, network cut, pause before start). */
  durationMs: number;
  /** Workload-only time after the pair is healthy again, before the next fault. */
  quietMs: number;
}

/** mulberry32: small, fast, and good enough to spread faults; the state is one 32-bit integer. */
export class Prng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }
}

/** Duration ranges (ms). Some freezes are shorter than the failover window on purpose: the guards decide. */
const DURATION: Record<FaultKind, [number, number]> = {
  'kill-server': [500, 6000],
  'freeze-server': [300, 6000],
  'restart-server': [0, 1500],
  'kill-keeper': [500, 5000],
  partition: [1000, 6000],
  'hung-hook': [0, 0],
  'cascade-kill': [1000, 5000],
};

export interface ScheduleOptions {
  seed: number;
  faults: number;
  /** Scales every duration (CI uses less than 1 to stay short); default 1. */
  durationScale?: number;
}

export function makeSchedule(o: ScheduleOptions): PlannedFault[] {
  const rng = new Prng(o.seed);
  const scale = o.durationScale ?? 1;
  const kinds: FaultKind[] = rng.shuffle(FAULT_KINDS).slice(0, o.faults);
  while (kinds.length < o.faults) kinds.push(rng.pick(FAULT_KINDS));
  return kinds.map((kind, i) => {
    const [lo, hi] = DURATION[kind];
    const target: TargetRole | null =
      kind === 'partition' || kind === 'cascade-kill'
        ? null
        : kind === 'hung-hook'
          ? 'primary'
          : rng.pick(['primary', 'standby'] as const);
    return {
      index: i + 1,
      kind,
      target,
      mode: kind === 'partition' ? rng.pick(['blackhole', 'refuse'] as const) : null,
      durationMs: Math.round(rng.int(lo, hi) * scale),
      quietMs: Math.round(rng.int(500, 2500) * scale),
      // From its own stream, so that adding it left every other draw (and older seeds) unchanged.
      variant: kind === 'cascade-kill' ? cascadeVariant(new Prng(o.seed * 31 + i + 0x5eed)) : null,
    };
  });
}

function cascadeVariant(rng: Prng): CascadeVariant {
  if (rng.pick(['server', 'host'] as const) === 'server') return 'server';
  return rng.pick(['host', 'frozen-host'] as const);
}

export function describeFault(f: PlannedFault, node?: string): string {
  const secs = `${(f.durationMs / 1000).toFixed(1)} s`;
  const who = f.target ? `${f.target}${node ? ` (${node})` : ''}` : '';
  switch (f.kind) {
    case 'kill-server':
      return `SIGKILL the ${who} server, start it again after ${secs}`;
    case 'freeze-server':
      return `SIGSTOP the ${who} server, SIGCONT after ${secs}`;
    case 'restart-server':
      return `fast restart of the ${who} server (${secs} between stop and start)`;
    case 'kill-keeper':
      return `SIGKILL the ${who} keeper, restart it after ${secs}`;
    case 'partition':
      return `cut the network between the nodes (${f.mode}), heal after ${secs}`;
    case 'hung-hook':
      return `after_command hangs (sleep 3600), then SIGKILL the ${who} server`;
    case 'cascade-kill': {
      const what =
        f.variant === 'host'
          ? 'SIGKILL the standby server and keeper (its host)'
          : f.variant === 'frozen-host'
            ? 'SIGSTOP the standby server and keeper (its host)'
            : 'SIGKILL the standby server';
      return (
        `${what}; once the primary went async and acknowledged writes alone, SIGKILL the primary; ` +
        `bring the standby back first, the primary ${secs} later`
      );
    }
  }
}
