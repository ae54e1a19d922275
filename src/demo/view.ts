// What the demo shows: a sample of each keeper (its /status, and its heartbeat counters from /metrics),
// turned either into a screen redrawn in place (a terminal) or into one line per change (a pipe, a log,
// `--once`). Pure functions of the samples, apart from fetching the counters.
import type { NodeName } from '../config/config.js';
import type { Status } from '../http/status.js';
import type { KillRecord } from './workdir.js';

export interface NodeSample {
  node: NodeName;
  /** null when the keeper could not be asked. */
  status: Status | null;
  heartbeats: HeartbeatCounts | null;
  url: string;
}

export interface HeartbeatCounts {
  ok: number;
  failed: number;
}

interface SeenEvent {
  node: string;
  at: number;
  event: string;
  outcome: string;
  detail: string;
}

export interface Promotion {
  node: string;
  at: number;
  /** Since the `demo kill` of the primary, when there was one. */
  afterKillMs: number | null;
}

/** Sums every series of a counter in Prometheus text format; null when the counter is absent. */
export function sumCounter(metrics: string, name: string): number | null {
  let sum: number | null = null;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum = (sum ?? 0) + value;
  }
  return sum;
}

/** The keeper's heartbeat counters, read from its /metrics as Prometheus reads them. */
export async function fetchHeartbeats(url: string): Promise<HeartbeatCounts | null> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(1000) });
    const text = await res.text();
    const sent = sumCounter(text, 'pg_keeper_heartbeats_total');
    const failed = sumCounter(text, 'pg_keeper_heartbeat_failures_total') ?? 0;
    return sent === null ? null : { ok: sent - failed, failed };
  } catch {
    return null;
  }
}

/** Seconds left before the keeper acts if heartbeats keep failing, counting down between ticks. */
export function secondsUntilAction(s: Status, now: number): number | null {
  if (s.seconds_until_action === null) return null;
  // seconds_until_action was computed when the keeper decided.
  const since = s.decided_at ? (now - Date.parse(s.decided_at)) / 1000 : 0;
  return Math.max(0, s.seconds_until_action - Math.max(0, since));
}

export function clock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function eventLine(e: SeenEvent): string {
  return `${clock(e.at)}  ${e.node}  ${e.event.padEnd(16)} ${e.outcome.padEnd(7)} ${e.detail}`;
}

export function killLine(k: KillRecord): string {
  return `KILLED: ${k.node} (the ${k.role}): SIGKILL to ${k.pids.length} PostgreSQL processes (${k.pids.join(' ')})`;
}

export function promotionLine(p: Promotion): string {
  const after = p.afterKillMs === null ? '' : `, ${p.afterKillMs} ms after the kill`;
  return `PROMOTED: ${p.node} is the new primary${after}`;
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
      ]);

/**
 * Follows the samples over time: which events are new, when a node's state changed, the kill and the
 * promotion. update() returns the lines to print for a line-per-change output; the screen uses the
 * accumulated `events` and `notes`.
 */
export class Tracker {
  readonly events: SeenEvent[] = [];
  readonly notes: string[] = [];
  promotion: Promotion | null = null;
  kill: KillRecord | null = null;
  private readonly seen = new Set<string>();
  private readonly lastKey = new Map<string, string>();

  update(samples: NodeSample[], kill: KillRecord | null, now: number): string[] {
    const out: string[] = [];
    if (kill && (this.kill === null || kill.at !== this.kill.at)) {
      this.kill = kill;
      this.promotion = null;
      const line = `${clock(kill.at)}  ${killLine(kill)}`;
      this.notes.push(line);
      out.push(line);
    }
    const fresh: SeenEvent[] = [];
    for (const { status } of samples) {
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
    fresh.sort((a, b) => a.at - b.at);
    for (const ev of fresh) {
      this.events.push(ev);
      out.push(eventLine(ev));
      if (ev.event === 'promote' && ev.outcome === 'ok') {
        const afterKillMs = this.kill && ev.at >= this.kill.at ? ev.at - this.kill.at : null;
        this.promotion = { node: ev.node, at: ev.at, afterKillMs };
        const line = `${clock(ev.at)}  ${promotionLine(this.promotion)}`;
        this.notes.push(line);
        out.push(line);
      }
    }
    // After the events: a state is what the keeper concluded from them.
    for (const sample of samples) {
      const key = changeKey(sample.status);
      if (this.lastKey.get(sample.node) !== key) {
        this.lastKey.set(sample.node, key);
        out.push(stateLine(sample, now));
      }
    }
    return out;
  }
}

// ---- the screen ----

const ESC = '\x1b[';
// eslint-disable-next-line no-control-regex -- matching terminal escape sequences is the point
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export interface Painter {
  bold(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  dim(s: string): string;
}

export function painter(color: boolean): Painter {
  const wrap =
    (code: string) =>
    (s: string): string =>
      color ? `${ESC}${code}m${s}${ESC}0m` : s;
  return { bold: wrap('1'), red: wrap('31'), green: wrap('32'), yellow: wrap('33'), dim: wrap('2') };
}

/** Cuts a line to `width` visible characters, keeping escape sequences whole. */
export function fit(line: string, width: number): string {
  if (line.replace(ANSI, '').length <= width) return line;
  let out = '';
  let visible = 0;
  for (let i = 0; i < line.length;) {
    ANSI.lastIndex = i;
    const m = ANSI.exec(line);
    if (m && m.index === i) {
      out += m[0];
      i += m[0].length;
      continue;
    }
    if (visible >= width - 1) break;
    out += line[i];
    visible += 1;
    i += 1;
  }
  return `${out}…${ESC}0m`;
}

/** Splits text into lines of at most `width` characters at spaces; at most `max` lines. */
function wrap(text: string, width: number, max: number): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of text.split(' ')) {
    if (current && current.length + 1 + word.length > width) {
      lines.push(current);
      current = word;
    } else current = current ? `${current} ${word}` : word;
  }
  if (current) lines.push(current);
  return lines.length > max ? [...lines.slice(0, max - 1), `${lines.slice(max - 1).join(' ')}`] : lines;
}

export interface Screen {
  title: string;
  samples: NodeSample[];
  tracker: Tracker;
  footer: string[];
  now: number;
}

function nodeBlock(sample: NodeSample, now: number, width: number, p: Painter): string[] {
  const s = sample.status;
  const links = `${sample.url}/status   ${sample.url}/metrics`;
  if (!s) return [`${p.bold(sample.node)}  ${p.red('keeper not answering')}`, `  http        ${links}`];
  const role =
    s.role === 'primary' ? p.green('PRIMARY') : s.role === 'standby' ? p.yellow('STANDBY') : p.red('UNKNOWN');
  const server = s.local.up
    ? `server up${s.local.timeline !== null ? `, timeline ${s.local.timeline}` : ''}`
    : p.red('server DOWN');
  const peer = s.peer_reachable
    ? `peer ${s.peer} reachable (${s.peer_role})`
    : p.red(`peer ${s.peer} UNREACHABLE`);
  const hb = sample.heartbeats;
  const bar = '#'.repeat(Math.min(s.consecutive_failures, s.keepalive_count)).padEnd(s.keepalive_count, '.');
  const inRow = `[${bar}] ${s.consecutive_failures}/${s.keepalive_count} in a row`;
  const left = secondsUntilAction(s, now);
  const action = left === null ? '-' : p.red(`${left.toFixed(1)} s if failures go on`);
  const lines = [
    `${p.bold(s.node)}  ${role}  replication ${s.sync_mode === 'unknown' ? '-' : s.sync_mode}   ${server}   ${peer}${s.paused ? p.red('   PAUSED') : ''}`,
    `  heartbeats  ok ${hb?.ok ?? '?'}  failed ${hb?.failed ?? '?'}   ${s.consecutive_failures > 0 ? p.red(inRow) : inRow}   action in ${action}`,
  ];
  const reason = wrap(s.reason ?? '-', Math.max(20, width - 14), 2);
  reason.forEach((line, i) => lines.push(`  ${i === 0 ? 'reason' : ''}`.padEnd(14) + line));
  lines.push(`  http        ${p.dim(links)}`);
  if (s.peer_is_primary) lines.push(p.red('  TWO PRIMARIES: both servers accept writes'));
  return lines;
}

/** The whole screen as text: redrawn in place about 4 times a second. */
export function renderScreen(screen: Screen, width: number, height: number, p: Painter): string {
  const lines: string[] = [p.bold(screen.title), ''];
  for (const sample of screen.samples) lines.push(...nodeBlock(sample, screen.now, width, p), '');
  const notes = screen.tracker.notes.slice(-3).map((n) => (n.includes('PROMOTED') ? p.green(n) : p.red(n)));
  const room = Math.max(3, height - lines.length - screen.footer.length - notes.length - 3);
  lines.push(p.bold('events'));
  const events = screen.tracker.events.slice(-room);
  if (events.length === 0) lines.push(p.dim('  (none yet)'));
  for (const e of events) {
    const line = `  ${eventLine(e)}`;
    lines.push(e.outcome === 'failed' ? p.red(line) : e.outcome === 'vetoed' ? p.yellow(line) : line);
  }
  if (notes.length > 0) lines.push('', ...notes);
  lines.push('', ...screen.footer);
  return lines.map((l) => fit(l, width)).join('\n');
}

/** Cursor home, the frame with each line cleared to its end, the rest of the screen cleared. */
export function frame(text: string): string {
  return `${ESC}H${text.split('\n').join(`${ESC}K\n`)}${ESC}K${ESC}J`;
}

export const HIDE_CURSOR = `${ESC}?25l`;
export const SHOW_CURSOR = `${ESC}?25h`;
export const CLEAR_SCREEN = `${ESC}2J${ESC}H`;
