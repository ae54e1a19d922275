// The operator: what a person on call does between faults to get back to a healthy pair, i.e. one
// primary, synchronous, with a streaming standby, and both keepers agreeing on it.
//
// It looks at both servers and takes one step at a time, then looks again:
//   a server is down          start it; but an old primary (no standby.signal) whose peer is now the
//                             primary is rejoined as a standby of it instead
//   two primaries             record it; rejoin the one on the older timeline (the promoted one is on
//                             the newer), first measuring what it acknowledged that the other lacks
//   no primary (for 10 s)     an anomaly; promote the one that is not behind
//   a standby                 point its WAL receiver at the proxy in front of the primary; rejoin it
//                             if it cannot stream for 20 s (it diverged)
//   replication asynchronous  the primary's keeper must restore sync once the standby caught up; if it
//                             has not within 30 s, that is an anomaly, and the operator does it
//   keepers                   restart any dead one (an anomaly unless the harness killed it); wait until
//                             both report the same roles as the servers and /health is 200
//   arbiter                   every path to etcd restored, every member running and thawed; two
//                             primaries are resolved in favour of the lease holder (and what each
//                             keeper's /primary answered is recorded); healthy means also: the
//                             primary's keeper holds the lease, etcd records "sync", and the standby's
//                             keeper sees both
//   healthy, primary away     (keepers that manage their servers) `pg-keeper switchover --to node1`,
//   from home                 under the running workload, so that every fault starts from node1
//
// To rejoin is, with keepers that manage their servers (Topology.managesServers, the default),
// `pg-keeper rejoin --config <that keeper's file>` as the OS user postgres, with a deadline. When it
// refuses because the server may have acknowledged commits alone (two primaries after a partition,
// an old primary that went async), the operator measures what would be discarded and runs
// `rejoin --force`, saying so. A rejoin that fails is the anomaly `rejoin-failed`, and the operator
// then rebuilds the node by hand (pg_basebackup) so that the run goes on; one that, without --force,
// discarded acknowledged writes is `rejoin-discarded`. A switchover that fails, or is refused three
// times while the pair is healthy, is `switchover-failed`. Without managed servers every rejoin is
// the hand rebuild, and the primary stays where the last failover put it.
//
// auto_rejoin stays off: the fault injector starts servers itself at the end of some faults (a
// restart, a cascade), and a keeper rejoining its server during the fault would race it and change
// what the fault is. The rule a rejoin is refused by is the same for the command and for
// auto_rejoin (the state file's "may have acknowledged alone", the arbiter's key), and the
// end-to-end tests cover auto_rejoin itself.
//
// Everything is bounded by a deadline; failing it is the anomaly `not-healed`.

import { readProcStat } from '../../src/util/procfs.js';
import { NODES, peerOf, type NodeName } from '../../src/config/config.js';
import {
  ackedSince,
  classifyRejoin,
  classifySwitchover,
  formatIds,
  longestAckGap,
  type RejoinOutcome,
} from './lifecycle.js';
import { keeperExited, type ServerView } from './topology.js';
import { anomaly, pause, type RejoinRecord, type RunContext, type TwoPrimaries } from './types.js';

/** Where the primary is brought back to once the pair is healthy (it starts there). */
export const HOME: NodeName = 'node1';
/** A switchover the keepers refuse this many times while the operator sees a healthy pair is an anomaly. */
const SWITCHOVER_ATTEMPTS = 3;
/** How long a switchover may take, from the request to the old primary streaming synchronously. */
const SWITCHOVER_DEADLINE_MS = 60_000;
/** How long to wait for etcd to say who holds the key, when a rejoin is refused for it. */
const ARBITER_REFUSAL_WAIT_MS = 20_000;

export class NotHealed extends Error {
  override name = 'NotHealed';
}

interface Progress {
  bothStandbysSince: number | null;
  notStreamingSince: number | null;
  asyncSince: number | null;
  startFailures: Record<NodeName, number>;
  /** Switchover home: refusals so far, and whether it is over (done, or given up) for this heal. */
  switchoverRefusals: number;
  switchoverOver: boolean;
}

const firstLine = (text: string): string => text.split('\n')[0] ?? '';

export async function heal(ctx: RunContext, deadlineMs = 150_000): Promise<void> {
  const { topo } = ctx;
  const act = (msg: string): void => {
    ctx.fault?.operatorActions.push(msg);
    ctx.log(`  operator: ${msg}`);
  };
  for (const k of [...topo.frozenOnPurpose]) {
    k.child.kill('SIGCONT');
    topo.frozenOnPurpose.delete(k);
    act('resumed a stopped keeper');
  }
  if (topo.arbiter) {
    for (const n of NODES) {
      for (const proxy of topo.arbiter.proxiesOf[n]) {
        if (proxy.state !== 'open') {
          await proxy.restore();
          act(`restored ${n}'s path to etcd`);
        }
      }
    }
    // Idempotent: SIGCONT to running members, start the dead ones, wait until every one is healthy.
    topo.arbiter.etcd.freeze(false);
    await topo.arbiter.etcd.restart();
  }
  for (const n of NODES) {
    const proxy = topo.proxyTo[n];
    if (proxy.state !== 'open') {
      await proxy.restore();
      act(`restored the network path to ${n}`);
    }
    const pids = topo.pair.pids(topo.node(n));
    if (pids.some((pid) => readProcStat(pid)?.state === 'T')) {
      await topo.pair.kill(topo.node(n), 'SIGCONT');
      act(`thawed ${n}`);
    }
  }
  const p: Progress = {
    bothStandbysSince: null,
    notStreamingSince: null,
    asyncSince: null,
    startFailures: { node1: 0, node2: 0 },
    switchoverRefusals: 0,
    switchoverOver: false,
  };
  const deadline = Date.now() + deadlineMs;
  let why = 'not looked yet';
  for (;;) {
    ctx.signal.throwIfAborted();
    if (Date.now() > deadline) {
      anomaly(ctx, 'not-healed', `no healthy pair after ${deadlineMs / 1000} s: ${why}`);
      throw new NotHealed(why);
    }
    await ensureKeepers(ctx, act);
    const step = await healStep(ctx, p, act).catch(
      (err: unknown) => `step failed: ${firstLine(String(err))}`,
    );
    if (step === null) return;
    if (step !== why) ctx.log(`  operator: waiting: ${step}`);
    why = step;
    await pause(250, ctx.signal);
  }
}

/** Restarts keepers that are not running; one that exited without being killed is an anomaly. */
async function ensureKeepers(ctx: RunContext, act: (msg: string) => void): Promise<void> {
  const { topo } = ctx;
  for (const n of NODES) {
    const k = topo.keepers[n];
    if (!keeperExited(k)) continue;
    if (!topo.killedOnPurpose.has(k)) {
      anomaly(
        ctx,
        'keeper-died',
        `${n}'s keeper exited by itself (code ${k.exitCode}, signal ${k.child.signalCode}): ${k.raw.slice(-600)}`,
      );
      topo.killedOnPurpose.add(k); // reported once
    }
    await topo.startKeeper(n);
    act(`restarted ${n}'s keeper`);
  }
}

/** One look and at most one action. Returns null when healthy, else what it is waiting for. */
async function healStep(ctx: RunContext, p: Progress, act: (msg: string) => void): Promise<string | null> {
  const { topo } = ctx;
  // A keeper stopping, rewinding or starting its own server is not to be interfered with.
  const busy = await keeperTask(ctx);
  if (busy) return busy;
  const [v1, v2] = await Promise.all(NODES.map((n) => topo.inspect(n)));
  const views: Record<NodeName, ServerView> = { node1: v1 as ServerView, node2: v2 as ServerView };

  for (const n of NODES) {
    const v = views[n];
    if (v.running) continue;
    const o = views[peerOf(n)];
    if (o.up && o.inRecovery === false && (!v.standbySignal || p.startFailures[n] >= 2)) {
      act(`${n} is down and ${o.node} is the primary: turning ${n} into its standby`);
      await rejoinNode(ctx, p, n, o.node, v.standbySignal ? 'start-failed' : 'old-primary-down', act);
      return `${n} rejoined`;
    }
    try {
      await topo.pair.start(topo.node(n));
      act(`started ${n}`);
    } catch (err) {
      p.startFailures[n] += 1;
      act(`starting ${n} failed: ${firstLine(String(err))}`);
    }
    return `${n} was down`;
  }
  for (const v of [v1, v2]) if (v && !v.up) return `${v.node} does not answer yet (${v.error ?? ''})`;

  if (v1?.inRecovery === false && v2?.inRecovery === false) {
    await resolveTwoPrimaries(ctx, p, views, act);
    return 'two primaries';
  }
  if (v1?.inRecovery && v2?.inRecovery) {
    p.bothStandbysSince ??= Date.now();
    if (Date.now() - p.bothStandbysSince < 10_000) return 'both servers are standbys';
    anomaly(ctx, 'no-primary', 'both servers have been standbys for 10 s');
    const lsn = async (n: NodeName): Promise<number> => {
      const [r] = await topo.pair.query<{ b: number }>(
        topo.node(n),
        "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8 AS b",
      );
      return r?.b ?? 0;
    };
    const ahead = (await lsn('node1')) >= (await lsn('node2')) ? 'node1' : 'node2';
    await topo.pair.query(topo.node(ahead), 'SELECT pg_promote(true, 30)', [], { timeoutMs: 40_000 });
    act(`promoted ${ahead} by hand (it had replayed the most WAL)`);
    p.bothStandbysSince = null;
    return 'no primary';
  }
  p.bothStandbysSince = null;

  const primary: NodeName = v1?.inRecovery === false ? 'node1' : 'node2';
  const standby = peerOf(primary);
  if ((await topo.primaryConninfoPort(standby)) !== topo.proxyTo[primary].port) {
    await topo.repoint(standby, primary);
    act(`pointed ${standby}'s WAL receiver at the proxy in front of ${primary}`);
    return 're-pointed';
  }
  const rep = await topo.replicationOf(standby, primary);
  if (rep?.state !== 'streaming') {
    p.notStreamingSince ??= Date.now();
    if (Date.now() - p.notStreamingSince > 20_000) {
      act(
        `${standby} has not streamed from ${primary} for 20 s (it diverged): turning it into a standby again`,
      );
      await rejoinNode(ctx, p, standby, primary, 'not-streaming', act);
      p.notStreamingSince = null;
    }
    return `${standby} does not stream from ${primary} (${rep ? rep.state : 'not connected'})`;
  }
  p.notStreamingSince = null;
  if (rep.syncState !== 'sync') {
    p.asyncSince ??= Date.now();
    if (Date.now() - p.asyncSince > 30_000) {
      anomaly(
        ctx,
        'sync-not-restored',
        `${primary} kept replication asynchronous for 30 s while ${standby} streamed ${rep.lagBytes} bytes behind`,
      );
      await topo.pair.query(topo.node(primary), 'ALTER SYSTEM RESET synchronous_standby_names');
      await topo.pair.query(topo.node(primary), 'SELECT pg_reload_conf()');
      act(`restored synchronous replication on ${primary} by hand`);
      p.asyncSince = null;
    }
    return `${standby} streams asynchronously (${rep.lagBytes} bytes behind)`;
  }
  p.asyncSince = null;
  const disagree = await keepersAgree(ctx, primary);
  if (disagree !== null || !ctx.topo.managesServers || primary === HOME || p.switchoverOver) return disagree;
  return switchoverHome(ctx, p, primary, act);
}

/** With managed servers: a keeper in the middle of a rejoin or a switchover is waited for. */
async function keeperTask(ctx: RunContext): Promise<string | null> {
  if (!ctx.topo.managesServers) return null;
  for (const n of NODES) {
    const task = await ctx.topo.keepers[n].status().then(
      (s) => s.task,
      () => null, // one that does not answer is found by keepersAgree
    );
    if (task) return `${n}'s keeper is busy: ${task.kind}, ${task.step} (${task.detail})`;
  }
  return null;
}

/**
 * The pair is healthy with the primary away from HOME: `pg-keeper switchover --to HOME` under the
 * running workload, asked of the primary's keeper or (odd faults) of the standby's, which relays
 * it. Returns what the heal waits for next (it looks again; healthy at HOME ends it).
 */
async function switchoverHome(
  ctx: RunContext,
  p: Progress,
  primary: NodeName,
  act: (msg: string) => void,
): Promise<string> {
  const { topo } = ctx;
  const to = peerOf(primary);
  const via = (ctx.fault?.planned.index ?? 0) % 2 === 1 ? to : primary;
  const at = Date.now();
  const run = await topo.pgKeeper(
    ['switchover', '--url', topo.keepers[via].url, '--to', to, '--token-file', topo.tokenFile],
    SWITCHOVER_DEADLINE_MS,
    ctx.signal,
  );
  ctx.signal.throwIfAborted();
  const outcome = classifySwitchover(run);
  const detail = outcome.kind === 'ok' ? '' : outcome.reason;
  const writeGapMs = longestAckGap(ctx.workload.records, at, Date.now());
  ctx.fault?.switchovers.push({
    from: primary,
    to,
    via,
    at,
    ms: run.ms,
    outcome: outcome.kind,
    detail,
    writeGapMs,
  });
  const what = `pg-keeper switchover --to ${to} (asked of ${via}'s keeper)`;
  const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  if (outcome.kind === 'ok') {
    p.switchoverOver = true;
    ctx.rejoinedAt[primary] = Date.now();
    act(
      `${what}: done in ${secs(run.ms)}; longest stretch without an acknowledged write ${secs(writeGapMs)}`,
    );
    return `switched over to ${to}`;
  }
  if (outcome.kind === 'refused' && ++p.switchoverRefusals < SWITCHOVER_ATTEMPTS) {
    act(`${what} refused (${outcome.reason}); asking again`);
    await pause(1000, ctx.signal);
    return `switchover refused: ${outcome.reason}`;
  }
  p.switchoverOver = true;
  anomaly(
    ctx,
    'switchover-failed',
    `${what} ${outcome.kind === 'refused' ? `refused ${p.switchoverRefusals} times although the pair was healthy` : 'failed'}: ` +
      `${outcome.reason}; the primary stays on ${primary} for now`,
  );
  act(`${what} ${outcome.kind}: ${outcome.reason}`);
  return `switchover ${outcome.kind}`;
}

/** Null when both keepers report what the servers are, with sync replication and nobody in doubt. */
async function keepersAgree(ctx: RunContext, primary: NodeName): Promise<string | null> {
  const { topo } = ctx;
  const standby = peerOf(primary);
  const kp = topo.keepers[primary];
  const ks = topo.keepers[standby];
  for (const k of [kp, ks]) {
    const res = await k.get('/health');
    if (res.status !== 200) return `a keeper answers /health with ${res.status}`;
  }
  const [sp, ss] = await Promise.all([kp.status(), ks.status()]);
  if (sp.role !== 'primary' || sp.sync_mode !== 'sync' || sp.peer_is_primary || !sp.peer_reachable)
    return `${primary}'s keeper sees role=${sp.role} sync=${sp.sync_mode} peer_reachable=${sp.peer_reachable}`;
  if (ss.role !== 'standby' || !ss.guards.synchronous_at_last_contact || !ss.peer_reachable)
    return `${standby}'s keeper sees role=${ss.role} sync_at_last_contact=${ss.guards.synchronous_at_last_contact} peer_reachable=${ss.peer_reachable}`;
  if (topo.arbiter) {
    const ap = sp.arbiter;
    const as = ss.arbiter;
    if (!ap?.lease_held || ap.holder !== primary || ap.replication !== 'sync')
      return `${primary}'s keeper: lease_held=${ap?.lease_held} holder=${ap?.holder} replication=${ap?.replication}`;
    if (as?.holder !== primary || as.replication !== 'sync')
      return `${standby}'s keeper sees holder=${as?.holder} replication=${as?.replication}`;
  }
  return null;
}

/** Arbiter: who etcd says holds the lease, as either keeper read it at its last tick (null: nobody, unknown). */
async function leaseHolder(ctx: RunContext): Promise<NodeName | null> {
  for (const n of NODES) {
    try {
      const a = (await ctx.topo.keepers[n].status()).arbiter;
      if (a?.reachable) return a.holder;
    } catch {
      // ask the other
    }
  }
  return null;
}

/** Ids `n` acknowledged since its last rejoin that `from` lacks: what turning `n` into its standby discards. */
async function missingOn(ctx: RunContext, n: NodeName, from: NodeName, since: number): Promise<number[]> {
  const candidates = ackedSince(ctx.workload.records, n, since);
  if (candidates.length === 0) return [];
  const rows = await ctx.topo.pair.query<{ id: string }>(
    ctx.topo.node(from),
    'SELECT id FROM chaos_writes WHERE id = ANY($1::bigint[])',
    [candidates],
    { timeoutMs: 30_000 },
  );
  const present = new Set(rows.map((r) => Number(r.id)));
  return candidates.filter((id) => !present.has(id));
}

/**
 * Turns `n` into a standby of `from`: `pg-keeper rejoin` (with managed servers), forced where it
 * refuses for commits the server may have acknowledged alone, after measuring them; by hand where
 * it fails (the anomaly rejoin-failed) and without managed servers.
 */
async function rejoinNode(
  ctx: RunContext,
  p: Progress,
  n: NodeName,
  from: NodeName,
  why: RejoinRecord['why'],
  act: (msg: string) => void,
): Promise<void> {
  const { topo } = ctx;
  const at = Date.now();
  const since = ctx.rejoinedAt[n];
  const rec: RejoinRecord = {
    node: n,
    from,
    why,
    at,
    ms: 0,
    method: null,
    refused: null,
    forced: false,
    wouldDiscard: null,
    lostIds: [],
    discarded: null,
    discardedIds: null,
    keeperSaidAckedAlone: null,
    failed: null,
  };
  ctx.fault?.rejoins.push(rec);
  try {
    if (topo.managesServers) await rejoinByPgKeeper(ctx, p, rec, act);
    else {
      await rebuild(ctx, p, n, from, act);
      rec.method = 'by-hand';
    }
  } catch (err) {
    rec.failed ??= `error: ${firstLine(String(err))}`;
    throw err;
  } finally {
    rec.ms = Date.now() - at;
  }
  // What it acknowledged alone is gone now, whichever way it rejoined: measured on the primary.
  const discarded = await missingOn(ctx, n, from, since).catch(() => null);
  rec.discarded = discarded?.length ?? null;
  rec.discardedIds = discarded;
  if (rec.forced && discarded && discarded.length > rec.lostIds.length)
    act(
      `${n} went on acknowledging writes until the rejoin stopped it: ${discarded.length} discarded in all, ` +
        `${discarded.length - rec.lostIds.length} more than measured (ids ${formatIds(discarded)})`,
    );
  ctx.rejoinedAt[n] = Date.now();
  if (discarded && discarded.length > 0 && !rec.forced && rec.method !== 'by-hand' && rec.method !== null)
    anomaly(
      ctx,
      'rejoin-discarded',
      `pg-keeper rejoin of ${n}, without --force, discarded ${discarded.length} writes it had acknowledged ` +
        `(its keeper said may_have_acknowledged_alone=${rec.keeperSaidAckedAlone}): ${discarded.slice(0, 15).join(', ')}`,
    );
}

/** `pg-keeper rejoin` as the operator runs it: see rejoinNode. */
async function rejoinByPgKeeper(
  ctx: RunContext,
  p: Progress,
  rec: RejoinRecord,
  act: (msg: string) => void,
): Promise<void> {
  const { topo } = ctx;
  const { node: n, from, why, at } = rec;
  const since = ctx.rejoinedAt[n];
  const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  rec.keeperSaidAckedAlone = await topo.keepers[n].status().then(
    (s) => s.guards.may_have_acknowledged_alone,
    () => null,
  );
  const config = topo.keepers[n].configFile;
  const attempt = async (force: boolean): Promise<RejoinOutcome> => {
    const run = await topo.pgKeeper(
      ['rejoin', '--config', config, ...(force ? ['--force'] : [])],
      undefined,
      ctx.signal,
    );
    ctx.signal.throwIfAborted();
    return classifyRejoin(run);
  };
  let outcome = await attempt(false);
  // With the arbiter the key may still be on its way to the new primary, or etcd just back.
  const waitUntil = Date.now() + ARBITER_REFUSAL_WAIT_MS;
  while (outcome.kind === 'refused-arbiter' && Date.now() < waitUntil) {
    act(`pg-keeper rejoin of ${n} refused (${outcome.reason}): asking again`);
    await pause(1000, ctx.signal);
    outcome = await attempt(false);
  }
  if (outcome.kind === 'refused-unsafe') {
    rec.refused = outcome.reason;
    rec.forced = true;
    const would = await missingOn(ctx, n, from, since);
    rec.wouldDiscard = would.length;
    rec.lostIds = would;
    act(
      `pg-keeper rejoin of ${n} refused (${outcome.reason}); ${would.length} writes acknowledged by ${n} ` +
        `are not on ${from} and will be discarded${would.length > 0 ? ` (ids ${formatIds(would)})` : ''}: pg-keeper rejoin --force`,
    );
    outcome = await attempt(true);
  }
  const command = `pg-keeper rejoin${rec.forced ? ' --force' : ''} of ${n}`;
  if (outcome.kind === 'ok') {
    rec.method = outcome.method;
    act(`${command}: ${n} streams from ${from} (${outcome.method}) after ${secs(Date.now() - at)}`);
  } else {
    rec.failed = `${outcome.kind}: ${outcome.reason}`;
    // rejoin() takes old primaries: a standby on its primary's timeline that cannot start or
    // stream is refused as no old primary, rightly; anything else should have worked.
    if (outcome.kind === 'refused' && why !== 'old-primary-down' && why !== 'two-primaries')
      act(`${command} refused (${outcome.reason}): it is no old primary; rebuilding it by hand`);
    else
      anomaly(
        ctx,
        'rejoin-failed',
        `${command} (${why}, from ${from}) ${outcome.kind}: ${outcome.reason}; the operator rebuilds it by hand`,
      );
    await rebuild(ctx, p, n, from, act);
    rec.method = 'by-hand';
  }
}

/** The hand rebuild: pg_basebackup, as the operator did before pg-keeper could. */
async function rebuild(
  ctx: RunContext,
  p: Progress,
  n: NodeName,
  from: NodeName,
  act: (msg: string) => void,
): Promise<void> {
  const { topo } = ctx;
  const t0 = Date.now();
  try {
    await topo.pair.rebuildAsStandby(topo.node(n), topo.node(from));
    act(`rebuilt ${n} from ${from} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } catch (err) {
    // Usually: it streams but the primary has not made it synchronous (rebuildAsStandby waited 30 s
    // for that): the time already waited counts towards sync-not-restored.
    act(`rebuild of ${n}: ${firstLine(String(err))}`);
    if (/stream synchronously/.test(String(err))) p.asyncSince = t0;
  }
  if ((await topo.inspect(n)).up) await topo.repoint(n, from);
}

async function resolveTwoPrimaries(
  ctx: RunContext,
  p: Progress,
  views: Record<NodeName, ServerView>,
  act: (msg: string) => void,
): Promise<void> {
  const { topo, workload } = ctx;
  const detectedAt = Date.now();
  const t1 = views.node1.timeline ?? 0;
  const t2 = views.node2.timeline ?? 0;
  let loser: NodeName;
  if (t1 !== t2) loser = t1 < t2 ? 'node1' : 'node2';
  else {
    // Cannot happen with two nodes (a promotion always moves to a new timeline); keep the busier one.
    const since = ctx.fault?.startedAt ?? 0;
    const count = (n: NodeName): number =>
      workload.records.filter((r) => r.node === n && r.ackAt !== null && r.sentAt >= since).length;
    loser = count('node1') < count('node2') ? 'node1' : 'node2';
  }
  // With the arbiter the lease holder is the primary; /primary must say so, and only there.
  let arbiterView: Pick<TwoPrimaries, 'leaseHolder' | 'primaryCheck'> = {};
  if (topo.arbiter) {
    // Both keepers read etcd at their next tick after the network healed: give them two.
    await pause(2 * ctx.timing.keepaliveMs + ctx.timing.heartbeatTimeoutMs, ctx.signal);
    const holder = await leaseHolder(ctx);
    const primaryCheck = { node1: 0, node2: 0 } as Record<NodeName, number | string>;
    for (const n of NODES) {
      primaryCheck[n] = await topo.keepers[n].get('/primary').then(
        (r) => r.status,
        (err: Error) => err.message,
      );
    }
    arbiterView = { leaseHolder: holder, primaryCheck };
    if (holder !== null && holder === loser) {
      anomaly(
        ctx,
        'roles-inconsistent',
        `two primaries: ${holder} holds the lease but is on the older timeline (${views[holder].timeline}); ` +
          `following the lease, ${peerOf(holder)} is rebuilt`,
      );
      loser = peerOf(holder);
    }
    if (primaryCheck.node1 === 200 && primaryCheck.node2 === 200)
      anomaly(ctx, 'roles-inconsistent', 'two primaries, and both keepers answer /primary with 200');
  }
  const winner = peerOf(loser);
  const loserTl = views[loser].timeline;
  const ackedOnLoser = workload.records
    .filter((r) => r.node === loser && r.ackAt !== null && r.timeline === loserTl)
    .map((r) => r.id);
  const present = new Set(
    (
      await topo.pair.query<{ id: string }>(
        topo.node(winner),
        'SELECT id FROM chaos_writes WHERE id = ANY($1::bigint[])',
        [ackedOnLoser],
        { timeoutMs: 30_000 },
      )
    ).map((r) => Number(r.id)),
  );
  const lostIds = ackedOnLoser.filter((id) => !present.has(id));
  ctx.fault?.twoPrimaries.push({
    detectedAt,
    winner,
    loser,
    winnerTimeline: views[winner].timeline,
    loserTimeline: loserTl,
    lostIds,
    ...arbiterView,
  });
  act(
    `two primaries: ${loser} (timeline ${loserTl}) and ${winner} (timeline ${views[winner].timeline}); ` +
      `${lostIds.length} writes acknowledged by ${loser} are not on ${winner}; turning ${loser} into its standby`,
  );
  await rejoinNode(ctx, p, loser, winner, 'two-primaries', act);
}
