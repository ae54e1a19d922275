// `pg-keeper switchover --url URL [--to nodeN] [--token-file FILE]`: ask a keeper (either
// one) for a planned switchover, then follow it on that keeper's /status until the target
// is a writable primary and the other node streams from it synchronously (exit 0), or the
// switchover is refused or fails (exit 1, with the reason). Progress on stderr.

import { readFileSync } from 'node:fs';
import { keeperRequest, keeperUrl, type ClientOptions } from '../http/client.js';
import type { Status } from '../http/status.js';
import { errorText } from '../util/errors.js';
import { sleep } from '../util/wait.js';

export interface SwitchoverOptions {
  url: string;
  to: string | undefined;
  tokenFile: string | undefined;
  /** TLS and basic authentication, for a keeper with a web_config_file. */
  client?: ClientOptions;
  timeoutMs?: number;
}

export async function switchoverCommand(
  o: SwitchoverOptions,
  say = (line: string): void => void process.stderr.write(`pg-keeper switchover: ${line}\n`),
): Promise<number> {
  if (o.to !== undefined && o.to !== 'node1' && o.to !== 'node2') {
    say(`--to must be node1 or node2, got ${JSON.stringify(o.to)}`);
    return 2;
  }
  let base: URL;
  try {
    base = keeperUrl(o.url);
  } catch (err) {
    say(errorText(err));
    return 2;
  }
  let token: string | null = null;
  if (o.tokenFile !== undefined) {
    try {
      token = readFileSync(o.tokenFile, 'utf8').trim();
    } catch (err) {
      say(`cannot read --token-file ${o.tokenFile}: ${errorText(err)}`);
      return 2;
    }
  }
  const client: ClientOptions = { ...o.client, token };
  const get = async (): Promise<Status> => {
    const r = await keeperRequest(base, '/status', client, 'GET', 3000);
    if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
    return r.body as Status;
  };

  let before: Status;
  try {
    before = await get();
  } catch (err) {
    say(`cannot read ${new URL('/status', base).href}: ${errorText(err)}`);
    return 1;
  }
  const target = o.to ?? (before.role === 'primary' ? before.peer : before.node);
  const started = Date.now();
  let post: { status: number; body: unknown };
  try {
    post = await keeperRequest(base, `/switchover${o.to ? `?to=${o.to}` : ''}`, client, 'POST');
  } catch (err) {
    say(`cannot reach the keeper: ${errorText(err)}`);
    return 1;
  }
  const answer = (post.body ?? {}) as { id?: string; error?: string };
  if (post.status !== 202 || !answer.id) {
    say(`refused (HTTP ${post.status}): ${answer.error ?? 'no reason given'}`);
    return 1;
  }
  const id = answer.id;
  say(`switchover ${id} to ${target} asked of ${before.node}'s keeper`);

  let last = '';
  const deadline = started + (o.timeoutMs ?? 120_000);
  while (Date.now() < deadline) {
    let st: Status;
    try {
      st = await get();
    } catch {
      await sleep(100);
      continue;
    }
    const line = `${st.node}: ${st.role}, ${st.state}${st.switchover?.id === id ? `; switchover ${st.switchover.phase}` : ''}`;
    if (line !== last) say(`${((Date.now() - started) / 1000).toFixed(1)} s  ${line}`);
    last = line;
    if (
      st.switchover?.id === id &&
      (st.switchover.result === 'refused' || st.switchover.result === 'failed')
    ) {
      say(`${st.switchover.result}: ${st.switchover.reason}`);
      return 1;
    }
    if (done(st, target)) {
      say(
        `done in ${((Date.now() - started) / 1000).toFixed(1)} s: ${target} is the primary, and the other node streams from it synchronously`,
      );
      return 0;
    }
    await sleep(100);
  }
  say(`not done after ${(deadline - started) / 1000} s; see both keepers' /status and logs`);
  return 1;
}

/** The target is a writable primary, and the other node streams from it synchronously. */
function done(st: Status, target: string): boolean {
  if (st.node === target)
    return (
      st.role === 'primary' &&
      st.sync_mode === 'sync' &&
      st.local.standbys.some(
        (x) => x.state === 'streaming' && (x.syncState === 'sync' || x.syncState === 'quorum'),
      )
    );
  return (
    st.role === 'standby' &&
    st.peer_role === 'primary' &&
    st.peer_reachable &&
    st.guards.synchronous_at_last_contact
  );
}
