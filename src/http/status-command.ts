// `pg-keeper status`: a running keeper's /status as a person reads it at 3 a.m.
//
// Laid out like what operators of the other failover tools already read: a table of the
// members first (patronictl list: member, host, role, state, timeline, lag; pg_autoctl show
// state: reported state per node), then this keeper's own view: what it decided and why,
// its heartbeats against keepalive_count, and the guards of the role it has now (a primary
// has no "last contact with the primary"; a standby has no synchronous_standby_names).

import { parseConninfo } from '../config/conninfo.js';
import { describeEndpoint } from '../postgres/client-config.js';
import { errorText } from '../util/errors.js';
import { keeperRequest, keeperUrl, type ClientOptions } from './client.js';
import type { Status } from './status.js';

export const DEFAULT_STATUS_URL = 'http://127.0.0.1:9754';

/** Where /status is, from --url (see keeperUrl for what is accepted). */
export function statusUrl(given: string): URL {
  return new URL('/status', keeperUrl(given));
}

export async function statusCommand(url: string, json: boolean, client: ClientOptions = {}): Promise<number> {
  let target: URL;
  let status: Status;
  try {
    target = keeperUrl(url);
  } catch (err) {
    process.stderr.write(`pg-keeper: ${errorText(err)}\n`);
    return 2;
  }
  try {
    const res = await keeperRequest(target, '/status', client);
    if (res.status !== 200)
      throw new Error(
        `HTTP ${res.status}${res.status === 401 ? ' (this keeper wants --user and --password-file)' : ''}`,
      );
    status = res.body as Status;
  } catch (err) {
    process.stderr.write(`pg-keeper: cannot read ${new URL('/status', target).href}: ${errorText(err)}\n`);
    return 1;
  }
  process.stdout.write(json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
  return 0;
}

/** "127.0.0.1:5432" of a node, from the masked conninfo in /status; "?" when it cannot be read. */
function endpoint(s: Status, node: string): string {
  const ci = s.config[`${node}_conninfo`];
  if (typeof ci !== 'string') return '?';
  try {
    return describeEndpoint(parseConninfo(ci)).replace(/\/.*$/, '');
  } catch {
    return '?';
  }
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function ago(iso: string | null, now: number): string {
  if (iso === null) return 'never';
  const ms = now - Date.parse(iso);
  return ms >= 0 ? `${iso} (${seconds(ms)} ago)` : iso;
}

type Row = [member: string, hostPort: string, role: string, state: string, timeline: string, lag: string];

/** The members table: this node, then the peer (and any other standby its primary streams to). */
function members(s: Status): Row[] {
  const local = s.local;
  let localState: string;
  if (!local.up) localState = `DOWN: ${local.error ?? 'no answer'}`;
  else if (s.role === 'primary')
    localState = `running, replication ${s.sync_mode === 'sync' ? 'synchronous' : 'ASYNCHRONOUS'}`;
  else if (local.wal_receiver) {
    const rx = local.wal_receiver;
    const heard =
      rx.lastMessageAgeMs === null ? 'nothing heard' : `WAL heard ${seconds(rx.lastMessageAgeMs)} ago`;
    localState = `${rx.status}, ${s.guards.synchronous_at_last_contact ? 'sync' : 'async'} (${heard})`;
  } else localState = 'running, NOT streaming (no WAL receiver)';
  const rows: Row[] = [
    [`${s.node} (this keeper)`, endpoint(s, s.node), s.role, localState, String(local.timeline ?? '-'), ''],
  ];

  // A primary sees its standbys in pg_stat_replication; the peer is the one that streams under
  // its node name, or the only one there is.
  const streams = s.role === 'primary' && local.up ? local.standbys : [];
  const peerStream =
    streams.find((x) => x.name === s.peer) ?? (streams.length === 1 ? streams[0] : undefined);
  const lag = (x: (typeof streams)[number]): string =>
    x.replayLagBytes === null
      ? '?'
      : `${bytes(x.replayLagBytes)}${x.replayLagSeconds === null ? '' : `, ${seconds(x.replayLagSeconds * 1000)}`}`;
  let peerState: string;
  if (!s.peer_reachable) peerState = `UNREACHABLE: ${s.peer_error ?? 'no answer'}`;
  else if (peerStream) peerState = `${peerStream.state}, ${peerStream.syncState}`;
  else if (s.peer_role === 'standby' && s.role === 'primary')
    peerState = 'answers, NOT streaming from this primary';
  else peerState = 'running';
  rows.push([
    s.peer,
    endpoint(s, s.peer),
    s.peer_reachable ? s.peer_role : '?',
    peerState,
    '-',
    peerStream ? lag(peerStream) : '',
  ]);
  for (const x of streams) {
    if (x === peerStream) continue;
    rows.push([x.name, '?', 'standby', `${x.state}, ${x.syncState}`, '-', lag(x)]);
  }
  return rows;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}

function heartbeats(s: Status): string {
  const rule = `every ${s.keepalive_time} s; acts after ${s.keepalive_count} failed in a row`;
  const n = s.consecutive_failures;
  if (n === 0) return `the peer answers (${rule})`;
  if (n < s.keepalive_count) {
    const when =
      s.seconds_until_action === null ? '' : `; acts in ${s.seconds_until_action.toFixed(1)} s if they go on`;
    return `${n} of ${s.keepalive_count} failed in a row${when} (every ${s.keepalive_time} s)`;
  }
  return `${n} failed in a row, keepalive_count (${s.keepalive_count}) reached (every ${s.keepalive_time} s)`;
}

/** What guards the next action in this role. */
function roleLines(s: Status, now: number): [string, string][] {
  const g = s.guards;
  if (s.role === 'primary') {
    const sync = s.local.standbys.filter((x) => x.syncState === 'sync' || x.syncState === 'quorum');
    const mode =
      s.sync_mode === 'sync'
        ? sync.length > 0
          ? `synchronous to ${sync.map((x) => x.name).join(', ')}`
          : 'synchronous, but NO synchronous standby streams: commits wait'
        : 'ASYNCHRONOUS: commits do not wait for a standby';
    const rows: [string, string][] = [['replication', mode]];
    if (g.saved_synchronous_standby_names !== null) {
      rows.push([
        'sync comes back',
        `synchronous_standby_names = '${g.saved_synchronous_standby_names}' once the standby streams ` +
          'and has caught up',
      ]);
    }
    return rows;
  }
  if (s.role === 'standby') {
    const contact =
      g.primary_seen_at === null
        ? 'never: this standby will not promote until it has reached the primary'
        : `${ago(g.primary_seen_at, now)}, as its ${g.synchronous_at_last_contact ? 'synchronous' : 'ASYNCHRONOUS'} standby`;
    const rows: [string, string][] = [['primary last seen', contact]];
    if (g.failover_requires_sync && g.primary_seen_at !== null && !g.synchronous_at_last_contact) {
      rows.push(['promotion', 'vetoed while asynchronous (failover_requires_sync: true)']);
    }
    return rows;
  }
  return [];
}

/** The etcd arbiter as Patroni shows its leader lock: who holds it, and for how long yet. */
function arbiterLine(a: NonNullable<Status['arbiter']>): string {
  const lease = a.holder === null ? 'nobody holds the lease' : `lease held by ${a.holder}`;
  const left =
    a.lease_held && a.lease_remaining_seconds !== null ? ` (${a.lease_remaining_seconds} s left)` : '';
  const state = a.up ? 'up' : `DOWN${a.error ? `: ${a.error}` : ''}`;
  return `etcd ${a.endpoint} ${state}; ${lease}${left}`;
}

/** The last planned switchover: where it is, or how it ended. */
function switchoverLine(w: NonNullable<Status['switchover']>): string {
  const when = w.ended_at ? `ended ${w.ended_at}` : `since ${w.started_at}`;
  return `${w.id} ${w.result} (${w.phase}) ${when}${w.reason ? `: ${w.reason}` : ''}`;
}

export function formatStatus(s: Status, now: number = Date.now()): string {
  const head =
    `pg-keeper ${s.version}, cluster ${s.cluster}, on ${s.node}: ${s.state}` +
    (s.severity && s.severity !== 'info' ? ` (${s.severity})` : '') +
    (s.alive ? '' : ', LOOP STALLED');
  const out: string[] = [];
  if (s.peer_is_primary)
    out.push('!!! TWO PRIMARIES: both servers accept writes; no keeper acts until one is demoted');
  if (s.paused) out.push('!!! PAUSED: observing only, no action will be taken');
  out.push(head, '');
  out.push(...table([['Member', 'Host:Port', 'Role', 'State', 'TL', 'Lag'], ...members(s)]), '');
  const rows: [string, string][] = [
    ['reason', s.reason ?? '-'],
    ['heartbeats', heartbeats(s)],
    ...roleLines(s, now),
    ...(s.arbiter ? ([['arbiter', arbiterLine(s.arbiter)]] as [string, string][]) : []),
    ...(s.task
      ? ([['task', `${s.task.kind}: ${s.task.step} since ${s.task.started_at} (${s.task.detail})`]] as [
          string,
          string,
        ][])
      : []),
    ['last action', s.last_action ? `${s.last_action.kind} at ${s.last_action.at}` : '-'],
    ...(s.switchover ? ([['switchover', switchoverLine(s.switchover)]] as [string, string][]) : []),
    ...(s.last_rejoin_at ? ([['last rejoin', s.last_rejoin_at]] as [string, string][]) : []),
    ...(s.guards.may_have_acknowledged_alone
      ? ([
          ['rejoin', 'REFUSED: this node may have acknowledged commits alone (rejoin --force loses them)'],
        ] as [string, string][])
      : []),
    ...(s.grants_missing && s.grants_missing.length > 0
      ? ([['MISSING GRANTS', s.grants_missing.join('; ')]] as [string, string][])
      : []),
    ['last tick', ago(s.last_tick_at, now)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  out.push(...rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`));
  const events = s.events
    .slice(-10)
    .map((e) => `  ${e.at}  ${e.event.padEnd(16)} ${e.outcome.padEnd(7)} ${e.detail}`);
  if (events.length > 0) out.push('', 'last events:', ...events);
  return `${out.join('\n')}\n`;
}
