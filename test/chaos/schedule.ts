// A fault schedule from a seed: the same seed always gives the same faults, targets, modes and
// durations (the servers' own timing is real, so a replay repeats the schedule, not every
// interleaving). The first faults of a schedule are a shuffle of every kind, so any schedule of
// at least FAULT_KINDS.length faults covers every kind once.
//
// Every kind is one fault at a time, healed before the next, except cascade-kill: two failures
// in a row (the standby's server, then the primary's), the classic way a two-node pair loses
// acknowledged commits when the standby that comes back first is promoted although the primary
// had gone on without it.
//
// With the etcd arbiter (`arbiter` option) a schedule also draws the arbiter's own kinds: the
// partitions that involve etcd and etcd's faults. Its first faults are a shuffle of the arbiter's
// kinds (the symmetric partition among them), then a shuffle of the other two-node kinds, so a
// short run covers what the arbiter changes and a long one covers everything. Their durations are
// multiples of the lease's TTL, drawn on both sides of it. Without the option a seed gives exactly
// the schedule it always gave.

export const FAULT_KINDS = [
  'kill-server',
  'freeze-server',
  'restart-server',
  'kill-keeper',
  'partition',
  'hung-hook',
  'cascade-kill',
] as const;
/** Only with the arbiter. */
export const ARBITER_FAULT_KINDS = [
  /** The primary cut from the standby and from etcd (the application still reaches it). */
  'isolate-primary',
  /** The standby's keeper cut from etcd; variant `primary-lost`: the primary's host is lost meanwhile. */
  'cut-standby-etcd',
  /** One etcd member SIGKILLed, started again (with one member: all of etcd). */
  'etcd-kill',
  /** One etcd member SIGSTOPped, then SIGCONT (it accepts connections and never answers). */
  'etcd-freeze',
  /** Every etcd member SIGKILLed for a while, then started again. */
  'etcd-outage',
] as const;
export type ArbiterFaultKind = (typeof ARBITER_FAULT_KINDS)[number];
export type FaultKind = (typeof FAULT_KINDS)[number] | ArbiterFaultKind;

/** Faults are aimed at a role, resolved to a node when injected (roles move with failovers). */
export type TargetRole = 'primary' | 'standby';
export type CutMode = 'blackhole' | 'refuse';
export type CascadeVariant = 'server' | 'host' | 'frozen-host';
/** cut-standby-etcd: the pair is otherwise healthy, or the primary's whole host is lost during the cut. */
export type StandbyCutVariant = 'alone' | 'primary-lost';
/** Which etcd member a member fault hits (3 members); null with one member, or for the others. */
export type EtcdMember = 'leader' | 'follower';

export interface PlannedFault {
  /** 1-based position in the schedule. */
  index: number;
  kind: FaultKind;
  /** Whose server or keeper; for a partition, both (null); for hung-hook the primary is killed. */
  target: TargetRole | null;
  /** How paths are cut: partition, isolate-primary, cut-standby-etcd. */
  mode: CutMode | null;
  /**
   * cascade-kill, what happens to the standby: `server` its server is killed; `host` its keeper
   * too (a host reboot: the keeper comes back with only its state file to go by); `frozen-host`
   * server and keeper are stopped (SIGSTOP) and resumed, as a paused VM is. cut-standby-etcd:
   * a StandbyCutVariant.
   */
  variant: CascadeVariant | StandbyCutVariant | null;
  /** etcd-kill and etcd-freeze on a 3-member etcd: the raft leader or a follower. */
  member: EtcdMember | null;
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
const DURATION: Record<(typeof FAULT_KINDS)[number], [number, number]> = {
  'kill-server': [500, 6000],
  'freeze-server': [300, 6000],
  'restart-server': [0, 1500],
  'kill-keeper': [500, 5000],
  partition: [1000, 6000],
  'hung-hook': [0, 0],
  'cascade-kill': [1000, 5000],
};

/** The arbiter's kinds, in multiples of the lease's TTL: some shorter than it on purpose. */
const DURATION_TTL: Record<ArbiterFaultKind, [number, number]> = {
  'isolate-primary': [0.5, 3],
  'cut-standby-etcd': [0.5, 3],
  'etcd-kill': [0.3, 2],
  'etcd-freeze': [0.3, 2],
  'etcd-outage': [1, 3],
};

export interface ScheduleOptions {
  seed: number;
  faults: number;
  /** Scales every duration (CI uses less than 1 to stay short); default 1. */
  durationScale?: number;
  /** With the etcd arbiter: how many members, and the lease's TTL. */
  arbiter?: { members: 1 | 3; ttlMs: number };
}

export function makeSchedule(o: ScheduleOptions): PlannedFault[] {
  if (o.arbiter) return arbiterSchedule(o, o.arbiter);
  const rng = new Prng(o.seed);
  const scale = o.durationScale ?? 1;
  const kinds: (typeof FAULT_KINDS)[number][] = rng.shuffle(FAULT_KINDS).slice(0, o.faults);
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
      member: null,
    };
  });
}

const isArbiterKind = (k: FaultKind): k is ArbiterFaultKind =>
  (ARBITER_FAULT_KINDS as readonly string[]).includes(k);

/** Every kind the arbiter mode draws: the two-node ones and the arbiter's own. */
export const ALL_FAULT_KINDS: readonly FaultKind[] = [...FAULT_KINDS, ...ARBITER_FAULT_KINDS];

function arbiterSchedule(o: ScheduleOptions, a: { members: 1 | 3; ttlMs: number }): PlannedFault[] {
  // A stream of its own: two-node seeds keep their schedules, and an arbiter seed its own.
  const rng = new Prng(o.seed ^ 0xa4b17e2);
  const scale = o.durationScale ?? 1;
  const first: FaultKind[] = [
    ...rng.shuffle(['partition', ...ARBITER_FAULT_KINDS] as const),
    ...rng.shuffle(FAULT_KINDS.filter((k) => k !== 'partition')),
  ];
  const kinds = first.slice(0, o.faults);
  while (kinds.length < o.faults) kinds.push(rng.pick(ALL_FAULT_KINDS));
  return kinds.map((kind, i): PlannedFault => {
    const duration = (): number => {
      if (!isArbiterKind(kind)) return rng.int(...DURATION[kind]) * scale;
      const [lo, hi] = DURATION_TTL[kind];
      return rng.int(Math.round(lo * a.ttlMs), Math.round(hi * a.ttlMs)) * scale;
    };
    const target: TargetRole | null =
      kind === 'isolate-primary' || kind === 'hung-hook'
        ? 'primary'
        : kind === 'cut-standby-etcd'
          ? 'standby'
          : kind === 'kill-server' ||
              kind === 'freeze-server' ||
              kind === 'restart-server' ||
              kind === 'kill-keeper'
            ? rng.pick(['primary', 'standby'] as const)
            : null;
    const cuts = kind === 'partition' || kind === 'isolate-primary' || kind === 'cut-standby-etcd';
    return {
      index: i + 1,
      kind,
      target,
      mode: cuts ? rng.pick(['blackhole', 'refuse'] as const) : null,
      durationMs: Math.round(duration()),
      quietMs: Math.round(rng.int(500, 2500) * scale),
      variant:
        kind === 'cascade-kill'
          ? cascadeVariant(rng)
          : kind === 'cut-standby-etcd'
            ? rng.pick(['alone', 'primary-lost'] as const)
            : null,
      member:
        a.members === 3 && (kind === 'etcd-kill' || kind === 'etcd-freeze')
          ? rng.pick(['leader', 'follower'] as const)
          : null,
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
    case 'isolate-primary':
      return `cut the ${who} from the standby and from etcd (${f.mode}), heal after ${secs}`;
    case 'cut-standby-etcd':
      return f.variant === 'primary-lost'
        ? `cut the ${who}'s keeper from etcd (${f.mode}) and SIGKILL the primary's server and keeper (its host); ` +
            `reconnect the standby after ${secs}, then wait for its failover`
        : `cut the ${who}'s keeper from etcd (${f.mode}), reconnect it after ${secs}`;
    case 'etcd-kill':
      return `SIGKILL ${f.member ? `the etcd ${f.member}` : 'the etcd member'}, start it again after ${secs}`;
    case 'etcd-freeze':
      return `SIGSTOP ${f.member ? `the etcd ${f.member}` : 'the etcd member'}, SIGCONT after ${secs}`;
    case 'etcd-outage':
      return `SIGKILL every etcd member, start them again after ${secs}`;
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
