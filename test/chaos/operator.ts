// The operator: what a person on call does between faults to get back to a healthy pair, i.e. one
// primary, synchronous, with a streaming standby, and both keepers agreeing on it.
//
// It looks at both servers and takes one step at a time, then looks again:
//   a server is down          start it; but an old primary (no standby.signal) whose peer is now the
//                             primary is rebuilt as a standby of it instead (pg_basebackup)
//   two primaries             record it; rebuild the one on the older timeline (the promoted one is on
//                             the newer), first measuring what it acknowledged that the other lacks
//   no primary (for 10 s)     an anomaly; promote the one that is not behind
//   a standby                 point its WAL receiver at the proxy in front of the primary; rebuild it
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
//
// Everything is bounded by a deadline; failing it is the anomaly `not-healed`.

import { readProcStat } from '../../src/util/procfs.js';
import { NODES, peerOf, type NodeName } from '../../src/config/config.js';
import { keeperExited, type ServerView } from './topology.js';
import { anomaly, pause, type RunContext, type TwoPrimaries } from './types.js';

export class NotHealed extends Error {
  override name = 'NotHealed';
}

interface Progress {
  bothStandbysSince: number | null;
  notStreamingSince: number | null;
  asyncSince: number | null;
  startFailures: Record<NodeName, number>;
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
  const [v1, v2] = await Promise.all(NODES.map((n) => topo.inspect(n)));
  const views: Record<NodeName, ServerView> = { node1: v1 as ServerView, node2: v2 as ServerView };

  for (const n of NODES) {
    const v = views[n];
    if (v.running) continue;
    const o = views[peerOf(n)];
    if (o.up && o.inRecovery === false && (!v.standbySignal || p.startFailures[n] >= 2)) {
      act(`${n} is down and ${o.node} is the primary: rebuilding ${n} as its standby`);
      await rebuild(ctx, p, n, o.node, act);
      return `${n} rebuilt`;
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
      act(`${standby} has not streamed from ${primary} for 20 s (it diverged): rebuilding it`);
      await rebuild(ctx, p, standby, primary, act);
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
  return keepersAgree(ctx, primary);
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
      `${lostIds.length} writes acknowledged by ${loser} are not on ${winner}; rebuilding ${loser} from ${winner}`,
  );
  await rebuild(ctx, p, loser, winner, act);
}
