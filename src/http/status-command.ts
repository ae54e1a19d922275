// `pg-keeper status`: a running keeper's /status as a table a person reads at 3 a.m.

import { errorText } from '../util/errors.js';
import { keeperRequest, keeperUrl, type ClientOptions } from './client.js';
import type { Status } from './status.js';

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

export function formatStatus(s: Status): string {
  const rows: [string, string][] = [
    ['node', `${s.node} (peer ${s.peer})`],
    ['role', s.role + (s.paused ? '  [PAUSED: no action will be taken]' : '')],
    ['state', s.state],
    ['sync mode', s.sync_mode],
    ['local server', s.local.up ? `up, timeline ${s.local.timeline ?? '?'}` : `DOWN: ${s.local.error ?? ''}`],
    ['peer', s.peer_reachable ? `reachable, ${s.peer_role}` : `UNREACHABLE: ${s.peer_error ?? ''}`],
    [
      'heartbeats failed',
      `${s.consecutive_failures} of ${s.keepalive_count} in a row (every ${s.keepalive_time} s)`,
    ],
    [
      'action in',
      s.seconds_until_action === null ? '-' : `${s.seconds_until_action.toFixed(1)} s if failures go on`,
    ],
    ['reason', s.reason ?? '-'],
    ['primary seen at', s.guards.primary_seen_at ?? 'never'],
    ['sync at last contact', String(s.guards.synchronous_at_last_contact)],
    ['last action', s.last_action ? `${s.last_action.kind} at ${s.last_action.at}` : '-'],
  ];
  if (s.peer_is_primary) rows.unshift(['!!!', 'TWO PRIMARIES: both servers accept writes']);
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  const events = s.events
    .slice(-10)
    .map((e) => `  ${e.at}  ${e.event.padEnd(16)} ${e.outcome.padEnd(7)} ${e.detail}`);
  return `${lines.join('\n')}\n${events.length > 0 ? `\nlast events:\n${events.join('\n')}\n` : ''}`;
}
