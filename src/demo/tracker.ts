// What the demo tells: from one sample of everything at a time (both keepers' /status, the network
// between the nodes, the writer), which events are new and what changed, as lines to print and as
// notes for the screen. Pure: no I/O, no clock of its own (the sample carries `now`).
import type { NodeName } from '../config/config.js';
import type { Status } from '../http/status.js';
import type { NetworkState } from './network.js';
import type { KillRecord } from './workdir.js';
import { longestWithin, type Gap, type WriteCheck, type WriterView } from './writer.js';

export interface NodeSample {
  node: NodeName;
  /** null when the keeper did not answer. */
  status: Status | null;
  heartbeats: HeartbeatCounts | null;
  url: string;
}

export interface HeartbeatCounts {
  ok: number;
  failed: number;
}

export interface DemoSample {
  now: number;
  nodes: NodeSample[];
  network: { state: NetworkState; changedAt: number; proxyPorts: Record<NodeName, number> } | null;
  /** etcd's client URL with --arbiter; null in two-node mode. */
  arbiter: string | null;
  writer: (WriterView & { notable: Gap[] }) | null;
  kill: KillRecord | null;
}

export interface SeenEvent {
  node: string;
  at: number;
  event: string;
  outcome: string;
  detail: string;
}

export interface Promotion {
  node: string;
  at: number;
  /** Since the `demo kill` that caused it; null when it followed no kill (a switchover, a partition). */
  afterKillMs: number | null;
  planned: boolean;
}

export function clock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function eventLine(e: SeenEvent): string {
  return `${clock(e.at)}  ${e.node}  ${e.event.padEnd(16)} ${e.outcome.padEnd(7)} ${e.detail}`;
}

export function killLine(k: KillRecord): string {
  return `KILLED: ${k.node} (the ${k.role}): SIGKILL to ${k.pids.length} PostgreSQL processes (${k.pids.join(' ')})`;
}

export function promotionLine(p: Promotion): string {
  const after = p.afterKillMs === null ? '' : `, ${p.afterKillMs} ms after the kill`;
  return `PROMOTED: ${p.node} is the new primary${after}${p.planned ? ' (planned switchover)' : ''}`;
}

export function checkLine(c: WriteCheck): string {
  if (c.missing.length === 0)
    return `WRITES: all ${c.checked} acknowledged writes of the writer are on ${c.node}: none lost`;
  const some = c.missing.slice(0, 5).join(' ');
  return (
    `WRITES: ${c.missing.length} of ${c.checked} acknowledged writes are NOT on ${c.node} ` +
    `(seq ${some}${c.missing.length > 5 ? ' ...' : ''}): acknowledged by the other server alone, lost if ${c.node} is kept`
  );
}

export function gapLine(g: Gap): string {
  return `WRITER: no write acknowledged for ${g.ms} ms (${clock(g.from)} to ${clock(g.to)}); writing to ${g.node} now`;
}

/** What a partition between the nodes leads to, said when it starts. */
export function partitionSentence(arbiter: boolean): string {
  return arbiter
    ? "with the arbiter, the standby cannot take the primary's lease (the primary keeps renewing it), so it does not promote; the primary switches to asynchronous replication under its lease after the window and writes on"
    : 'without an arbiter, the standby cannot tell a cut network from a dead primary: after the window it promotes, and both servers accept writes (two primaries); `pg-keeper demo --arbiter` prevents this';
}

/** The network between the nodes, for the screen. */
export function networkLine(s: DemoSample): string {
  const n = s.network;
  if (!n) return 'network   -';
  if (n.state === 'connected')
    return `network   connected: heartbeats and the WAL stream between the nodes pass through the demo's proxies (:${n.proxyPorts.node1} to node1, :${n.proxyPorts.node2} to node2)`;
  const secs = ((s.now - n.changedAt) / 1000).toFixed(1);
  return `network   PARTITIONED for ${secs} s: nothing passes between node1 and node2; ${partitionSentence(s.arbiter !== null)}`;
}

/** Who holds the primary's lease, as the keepers read it from etcd at their last tick. */
export function leaseHolder(s: DemoSample): string {
  const seen = s.nodes
    .map((n) => n.status?.arbiter)
    .filter((a): a is NonNullable<Status['arbiter']> => a !== null && a !== undefined && a.reachable);
  if (seen.length === 0) return 'unknown';
  const holders = new Set(seen.map((a) => a.holder ?? 'nobody'));
  return holders.size === 1 ? ([...holders][0] ?? 'unknown') : [...holders].join(' or ');
}

export function arbiterLine(s: DemoSample): string {
  if (s.arbiter === null)
    return 'arbiter   none (two-node mode): a partition between the nodes makes two primaries; `pg-keeper demo --arbiter` prevents it';
  const holder = leaseHolder(s);
  const own = s.nodes.map((n) => n.status?.arbiter).find((a) => a?.lease_held);
  const left = own?.lease_remaining_seconds;
  const recorded = s.nodes.map((n) => n.status?.arbiter?.replication).find((r) => r) ?? '?';
  const lease =
    holder === 'nobody'
      ? "nobody holds the primary's lease"
      : `${holder} holds the primary's lease${left !== undefined && left !== null ? ` (${left.toFixed(1)} s left, renewed all the time)` : ''}`;
  return `arbiter   etcd ${s.arbiter}: ${lease}; replication recorded as "${recorded}"`;
}

export function writerLine(s: DemoSample): string {
  const w = s.writer;
  if (!w) return 'writer    -';
  const longest = w.longest
    ? `longest gap ${w.longest.ms} ms (at ${clock(w.longest.to).slice(0, 8)})`
    : 'no gap yet';
  const now =
    w.waitingMs !== null
      ? `NOW WAITING ${(w.waitingMs / 1000).toFixed(1)} s${w.lastError ? ` (${w.lastError})` : ''}`
      : `writing to ${w.target}`;
  return `writer    ${w.acked} writes acknowledged (node1 ${w.ackedBy.node1}, node2 ${w.ackedBy.node2}), 10 a second; ${longest}; ${now}`;
}

/** A primary with a streaming synchronous standby: the pair is whole. */
function wholePrimary(s: Status | null): boolean {
  return (
    s !== null &&
    s.role === 'primary' &&
    s.sync_mode === 'sync' &&
    s.local.standbys.some((x) => x.state === 'streaming' && x.syncState === 'sync')
  );
}

/** One line describing a node, for the line-per-change output. */
export function stateLine(sample: NodeSample, now: number): string {
  const s = sample.status;
  if (!s) return `${clock(now)}  ${sample.node}  keeper not answering`;
  const hb = sample.heartbeats;
  const left = secondsUntilAction(s, now);
  return [
    `${clock(now)}  ${s.node}  ${s.role.padEnd(7)}`,
    `replication ${s.sync_mode === 'unknown' ? '-' : s.sync_mode}`.padEnd(17),
    `server ${s.local.up ? 'up' : 'DOWN'}`,
    `peer ${s.peer_reachable ? s.peer_role : 'UNREACHABLE'}`,
    `heartbeats ok ${hb?.ok ?? '?'} failed ${hb?.failed ?? '?'}, ${s.consecutive_failures}/${s.keepalive_count} in a row`,
    `action in ${left === null ? '-' : `${left.toFixed(1)} s`}`,
    `| ${s.reason ?? '-'}`,
  ].join('  ');
}

/** Seconds left before the keeper acts if heartbeats keep failing, counting down between ticks. */
export function secondsUntilAction(s: Status, now: number): number | null {
  if (s.seconds_until_action === null) return null;
  // seconds_until_action was computed when the keeper decided.
  const since = s.decided_at ? (now - Date.parse(s.decided_at)) / 1000 : 0;
  return Math.max(0, s.seconds_until_action - Math.max(0, since));
}

const changeKey = (s: Status | null): string =>
  s === null
    ? 'down'
    : JSON.stringify([
        s.role,
        s.sync_mode,
        s.local.up,
        s.peer_reachable,
        s.peer_role,
        // Counts past keepalive_count, and numbers in the reason, change at every tick of a long outage.
        Math.min(s.consecutive_failures, s.keepalive_count),
        (s.reason ?? '').replace(/\d+/g, '#'),
        s.paused,
        s.task?.step ?? null,
      ]);

/**
 * Follows the samples over time. update() returns the lines to print for a line-per-change output;
 * the screen uses the accumulated `events` and `notes`. A promotion asks for a check of the writer's
 * acknowledged writes on the new primary (`checks`, run by the caller, whose result comes back
 * through noteCheck()).
 */
export class Tracker {
  readonly events: SeenEvent[] = [];
  readonly notes: string[] = [];
  promotion: Promotion | null = null;
  /** When the old primary last rejoined, and when the pair was last whole again after being broken. */
  rejoinedAt: number | null = null;
  syncBackAt: number | null = null;
  /** Nodes whose acknowledged writes must be checked (the newly promoted ones). */
  readonly checks: NodeName[] = [];
  lastCheck: WriteCheck | null = null;
  kill: KillRecord | null = null;
  private killPromoted = false;
  private killRejoined = false;
  private killSynced = false;
  private whole = false;
  private twoPrimaries = false;
  private network: NetworkState | null = null;
  private networkChangedAt = 0;
  private lease: string | null = null;
  private lastGapTo = 0;
  private readonly switchovers = new Map<string, string>();
  private readonly seen = new Set<string>();
  private readonly lastKey = new Map<string, string>();

  update(sample: DemoSample): string[] {
    const out: string[] = [];
    const note = (at: number, line: string): void => {
      const text = `${clock(at)}  ${line}`;
      this.notes.push(text);
      out.push(text);
    };
    const { now } = sample;
    const kill = sample.kill;
    if (kill && (this.kill === null || kill.at !== this.kill.at)) {
      this.kill = kill;
      this.killPromoted = false;
      this.killRejoined = false;
      this.killSynced = false;
      note(kill.at, killLine(kill));
    }
    if (sample.network && sample.network.state !== this.network) {
      if (this.network !== null) {
        const healed = sample.network.state === 'connected';
        note(
          sample.network.changedAt,
          healed
            ? 'HEALED: the nodes reach each other again; the WAL stream resumes and the primary restores synchronous replication once its standby has caught up'
            : `PARTITIONED: nothing passes between node1 and node2 any more (heartbeats, the WAL stream); ${partitionSentence(sample.arbiter !== null)}`,
        );
        // A server promoted during the partition: what the other one acknowledged alone meanwhile shows now.
        const p = this.promotion;
        if (healed && p && p.at >= this.networkChangedAt && (p.node === 'node1' || p.node === 'node2'))
          this.checks.push(p.node);
      }
      this.network = sample.network.state;
      this.networkChangedAt = sample.network.changedAt;
    }

    for (const ev of this.freshEvents(sample.nodes)) {
      this.events.push(ev);
      out.push(eventLine(ev));
      if (ev.event === 'promote' && ev.outcome === 'ok') {
        const planned = /^switchover /.test(ev.detail);
        const afterKill = !planned && this.kill && !this.killPromoted && ev.at >= this.kill.at;
        if (afterKill) this.killPromoted = true;
        this.promotion = {
          node: ev.node,
          at: ev.at,
          afterKillMs: afterKill && this.kill ? ev.at - this.kill.at : null,
          planned,
        };
        note(ev.at, promotionLine(this.promotion));
        if (ev.node === 'node1' || ev.node === 'node2') this.checks.push(ev.node);
      }
      if (ev.event === 'rejoin' && ev.outcome === 'ok') {
        this.rejoinedAt = ev.at;
        const afterKill = this.kill && !this.killRejoined && ev.at >= this.kill.at;
        if (afterKill) this.killRejoined = true;
        const since = afterKill && this.kill ? `, ${ev.at - this.kill.at} ms after the kill` : '';
        const how = /by (rewind|basebackup)/.exec(ev.detail)?.[1];
        note(
          ev.at,
          `REJOINED: ${ev.node}'s server rejoined by itself as the new primary's standby${how ? ` (${how})` : ''}${since}`,
        );
      }
    }

    this.followSwitchovers(sample, note);
    this.followPair(sample, note);
    this.followLease(sample, note);
    for (const g of sample.writer?.notable ?? []) {
      if (g.to <= this.lastGapTo) continue;
      this.lastGapTo = g.to;
      note(g.to, gapLine(g));
    }

    // After the events: a state is what the keeper concluded from them.
    for (const n of sample.nodes) {
      const key = changeKey(n.status);
      if (this.lastKey.get(n.node) !== key) {
        this.lastKey.set(n.node, key);
        out.push(stateLine(n, now));
      }
    }
    return out;
  }

  /** The result of a check asked for in `checks`. */
  noteCheck(c: WriteCheck): string {
    this.lastCheck = c;
    const text = `${clock(c.at)}  ${checkLine(c)}`;
    this.notes.push(text);
    return text;
  }

  private freshEvents(nodes: NodeSample[]): SeenEvent[] {
    const fresh: SeenEvent[] = [];
    for (const { status } of nodes) {
      for (const e of status?.events ?? []) {
        const ev = {
          node: status?.node ?? '?',
          at: Date.parse(e.at),
          event: e.event,
          outcome: e.outcome,
          detail: e.detail,
        };
        const id = `${ev.node}|${e.at}|${ev.event}|${ev.detail}`;
        if (this.seen.has(id)) continue;
        this.seen.add(id);
        fresh.push(ev);
      }
    }
    return fresh.sort((a, b) => a.at - b.at);
  }

  private followSwitchovers(sample: DemoSample, note: (at: number, line: string) => void): void {
    for (const { status } of sample.nodes) {
      const sw = status?.switchover;
      if (!status || !sw || this.switchovers.get(sw.id) === sw.result) continue;
      const before = this.switchovers.get(sw.id);
      this.switchovers.set(sw.id, sw.result);
      const started = Date.parse(sw.started_at);
      if (sw.result === 'running') {
        if (before === undefined)
          note(started, `SWITCHOVER ${sw.id}: ${sw.reason || 'the primary hands over to its standby'}`);
        continue;
      }
      const ended = sw.ended_at ? Date.parse(sw.ended_at) : sample.now;
      if (sw.result !== 'ok') {
        note(ended, `SWITCHOVER ${sw.id} ${sw.result}: ${sw.reason}`);
        continue;
      }
      const gap = sample.writer ? longestWithin(sample.writer.notable, started, ended) : null;
      const gapText = sample.writer
        ? `; the writer's longest gap during it: ${gap ? `${gap.ms} ms` : 'under 0.5 s'}`
        : '';
      // The report that ends "ok" is the old primary's keeper's: its peer is the primary now.
      note(
        ended,
        `SWITCHED OVER in ${((ended - started) / 1000).toFixed(1)} s: ${status.peer} is the primary, ${status.node} its standby${gapText}`,
      );
    }
  }

  /** The pair whole again (a primary with a synchronous standby), and two primaries. */
  private followPair(sample: DemoSample, note: (at: number, line: string) => void): void {
    const statuses = sample.nodes.map((n) => n.status);
    const primary = statuses.find((s) => wholePrimary(s));
    const whole = primary !== undefined;
    if (whole && !this.whole && primary && this.lastKey.size > 0) {
      this.syncBackAt = sample.now;
      const afterKill = this.kill !== null && this.killRejoined && !this.killSynced;
      if (afterKill) this.killSynced = true;
      const since = afterKill && this.kill ? `, ${sample.now - this.kill.at} ms after the kill` : '';
      note(
        sample.now,
        `SYNC: ${primary.node} replicates synchronously to ${primary.peer} again: the pair is whole${since}`,
      );
    }
    this.whole = whole;
    // Both servers out of recovery, whether or not their keepers can see each other (a partition).
    const two = statuses.every((s) => s?.role === 'primary');
    if (two && !this.twoPrimaries) {
      note(
        sample.now,
        sample.arbiter === null
          ? 'TWO PRIMARIES: node1 and node2 both accept writes. Without an arbiter a partition ends like this: ' +
              'once the nodes see each other again no keeper acts, and the old primary refuses to rejoin (it acknowledged writes alone). ' +
              'Ctrl-C, and try `pg-keeper demo --arbiter`'
          : 'TWO PRIMARIES: both servers are out of recovery; only the lease holder answers /primary',
      );
    }
    this.twoPrimaries = two;
  }

  private followLease(sample: DemoSample, note: (at: number, line: string) => void): void {
    if (sample.arbiter === null) return;
    const holder = leaseHolder(sample);
    // The keepers read etcd at their own ticks: a change is news once they agree on it.
    if (holder === 'unknown' || holder.includes(' or ') || holder === this.lease) return;
    this.lease = holder;
    note(
      sample.now,
      holder === 'nobody'
        ? "LEASE: nobody holds the primary's lease in etcd"
        : `LEASE: ${holder} holds the primary's lease in etcd`,
    );
  }
}
