// The fault injector: carries out one planned fault on the live topology, holds it for its duration
// (watching the keepers' /health meanwhile), removes it, and hands over to the operator.

import {
  failoverAfterReconnectMs,
  failoverBoundMs,
  judgeAvailability,
  SLACK_MS,
  type AvailabilityCheck,
  type Loss,
} from './availability.js';
import { describeFault, type EtcdMember, type FaultKind, type PlannedFault } from './schedule.js';
import { promotedBySwitchover } from './lifecycle.js';
import { heal } from './operator.js';
import { keeperExited, Topology } from './topology.js';
import { anomaly, pause, startedFault, type FaultRecord, type RunContext } from './types.js';
import { NODES, peerOf, type NodeName } from '../../src/config/config.js';
import { waitFor } from '../../src/util/wait.js';
import type { PgNode } from '../support/test-pair.js';

/** The node that is the primary now (the pair is healthy between faults, so there is exactly one). */
async function currentPrimary(ctx: RunContext): Promise<NodeName> {
  const [v1, v2] = await Promise.all(NODES.map((n) => ctx.topo.inspect(n)));
  if (v1?.inRecovery === false && v2?.inRecovery !== false) return 'node1';
  if (v2?.inRecovery === false && v1?.inRecovery !== false) return 'node2';
  throw new Error(
    `expected one primary before a fault: node1 ${JSON.stringify(v1)}, node2 ${JSON.stringify(v2)}`,
  );
}

/**
 * Holds a fault for `ms` (or until `done()` says so), polling the /health of every keeper the harness
 * did not kill; two failed answers in a row from the same keeper is the anomaly `keeper-unhealthy`
 * (once per keeper and fault).
 */
async function hold(ctx: RunContext, ms: number, done: () => boolean = () => false): Promise<void> {
  const end = Date.now() + ms;
  const misses: Record<NodeName, number> = { node1: 0, node2: 0 };
  const reported = new Set<NodeName>();
  while (Date.now() < end && !ctx.signal.aborted && !done()) {
    const primaryOk: Record<NodeName, boolean> = { node1: false, node2: false };
    const at = Date.now();
    await Promise.all(
      NODES.map(async (n) => {
        const k = ctx.topo.keepers[n];
        if (keeperExited(k) || ctx.topo.killedOnPurpose.has(k) || ctx.topo.frozenOnPurpose.has(k)) return;
        let status: number | string;
        try {
          status = (await k.get('/health')).status;
          // What a load balancer would be told: with the arbiter, at most one primary to write to.
          if (ctx.topo.arbiter) primaryOk[n] = (await k.get('/primary')).status === 200;
        } catch (err) {
          status = (err as Error).message;
        }
        if (status === 200) misses[n] = 0;
        else if (++misses[n] >= 2 && !reported.has(n)) {
          reported.add(n);
          anomaly(ctx, 'keeper-unhealthy', `${n}'s keeper answered /health with ${status} twice in a row`);
        }
      }),
    );
    if (primaryOk.node1 && primaryOk.node2 && ctx.fault) {
      const b = (ctx.fault.bothPrimaryOk ??= { firstAt: at, lastAt: at, polls: 0 });
      b.lastAt = at;
      b.polls += 1;
    }
    await pause(Math.min(250, Math.max(0, end - Date.now())), ctx.signal);
  }
}

/** Leases any keeper process of this run counted lost between two moments. */
function leasesLostBetween(ctx: RunContext, from: number, to: number): FaultRecord['leasesLost'] {
  const out: FaultRecord['leasesLost'] = [];
  for (const { node, k } of ctx.topo.keeperHistory) {
    for (const l of k.events('lease-lost')) {
      const at = Date.parse(String(l.time));
      if (at >= from && at <= to) out.push({ node, at, reason: String(l.reason) });
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

/**
 * Promotions logged by any keeper process of this run between two moments, a planned switchover's
 * told apart by its reason.
 */
function promotionsBetween(ctx: RunContext, from: number, to: number): FaultRecord['promotions'] {
  const out: FaultRecord['promotions'] = [];
  for (const { node, k } of ctx.topo.keeperHistory) {
    for (const l of k.events('promote')) {
      const at = Date.parse(String(l.time));
      if (l.outcome === 'ok' && at >= from && at <= to)
        out.push({ node, at, switchover: promotedBySwitchover(l) });
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

export async function runFault(ctx: RunContext, planned: PlannedFault, total: number): Promise<FaultRecord> {
  const primaryBefore = await currentPrimary(ctx);
  const node =
    planned.target === 'primary'
      ? primaryBefore
      : planned.target === 'standby'
        ? peerOf(primaryBefore)
        : null;
  const rec = startedFault(planned, node, primaryBefore, Date.now());
  ctx.fault = rec;
  ctx.log(
    `[seed ${ctx.seed}] fault ${planned.index} of ${total}: ${planned.kind}: ${describeFault(planned, node ?? undefined)}`,
  );
  try {
    await inject(ctx, rec);
  } catch (err) {
    // Something the fault waits for never happened (the primary never went async, a server would
    // not stop): say so, and still let the operator bring the pair back.
    anomaly(ctx, 'fault-failed', `${planned.kind} could not be carried out: ${(err as Error).message}`);
  }
  rec.endedAt = Date.now();
  await heal(ctx);
  rec.healedAt = Date.now();
  rec.promotions = promotionsBetween(ctx, rec.startedAt, rec.healedAt);
  rec.leasesLost = leasesLostBetween(ctx, rec.startedAt, rec.healedAt);
  for (const pr of rec.promotions)
    rec.notes.push(
      `${pr.node} promoted ${pr.at - rec.startedAt} ms after the fault began${pr.switchover ? ' (the switchover home)' : ''}`,
    );
  for (const l of rec.leasesLost)
    rec.notes.push(`${l.node}'s keeper lost its lease ${l.at - rec.startedAt} ms after the fault began`);
  if (rec.bothPrimaryOk)
    rec.notes.push(
      `both keepers answered /primary 200 from +${rec.bothPrimaryOk.firstAt - rec.startedAt} ms ` +
        `to +${rec.bothPrimaryOk.lastAt - rec.startedAt} ms (${rec.bothPrimaryOk.polls} polls)`,
    );
  checkPromotions(ctx, rec);
  ctx.log(
    `  healed ${((rec.healedAt - rec.endedAt) / 1000).toFixed(1)} s after the fault ended` +
      (rec.notes.length ? `; ${rec.notes.join('; ')}` : ''),
  );
  return rec;
}

async function inject(ctx: RunContext, rec: FaultRecord): Promise<void> {
  const { topo } = ctx;
  const { planned } = rec;
  const target = (): PgNode => {
    if (!rec.node) throw new Error(`${planned.kind} needs a target node`);
    return topo.node(rec.node);
  };
  switch (planned.kind) {
    case 'kill-server':
      rec.marks.lostAt = Date.now();
      await topo.pair.kill(target(), 'SIGKILL');
      await hold(ctx, planned.durationMs);
      return; // the operator starts it again, or rebuilds it if the standby took over
    case 'freeze-server':
      rec.marks.lostAt = Date.now();
      await topo.pair.kill(target(), 'SIGSTOP');
      await hold(ctx, planned.durationMs);
      await topo.pair.kill(target(), 'SIGCONT');
      return;
    case 'restart-server':
      await topo.pair.stop(target(), 'fast');
      await hold(ctx, planned.durationMs);
      await topo.pair.start(target());
      return;
    case 'kill-keeper':
      await topo.killKeeper(target().name);
      await hold(ctx, planned.durationMs);
      await topo.startKeeper(target().name);
      return;
    case 'partition':
      await Promise.all(NODES.map((n) => topo.proxyTo[n].cut(planned.mode ?? 'blackhole')));
      await hold(ctx, planned.durationMs);
      await Promise.all(NODES.map((n) => topo.proxyTo[n].restore()));
      return;
    case 'hung-hook':
      return hungHook(ctx, rec);
    case 'cascade-kill':
      return cascadeKill(ctx, rec);
    case 'isolate-primary': {
      const mode = planned.mode ?? 'blackhole';
      const primary = target().name;
      rec.marks.lostAt = Date.now();
      await Promise.all([
        ...NODES.map((n) => topo.proxyTo[n].cut(mode)),
        topo.cutArbiter(primary, true, mode),
      ]);
      await hold(ctx, planned.durationMs);
      await Promise.all([...NODES.map((n) => topo.proxyTo[n].restore()), topo.cutArbiter(primary, false)]);
      return;
    }
    case 'cut-standby-etcd':
      return cutStandbyFromEtcd(ctx, rec);
    case 'etcd-kill': {
      const etcd = etcdOf(ctx);
      const name = await memberName(ctx, rec, planned.member);
      await etcd.kill(name);
      await hold(ctx, planned.durationMs);
      await etcd.restart(name);
      return;
    }
    case 'etcd-freeze': {
      const etcd = etcdOf(ctx);
      const name = await memberName(ctx, rec, planned.member);
      etcd.freeze(true, name);
      await hold(ctx, planned.durationMs);
      etcd.freeze(false, name);
      await etcd.waitHealthy();
      return;
    }
    case 'etcd-outage': {
      const etcd = etcdOf(ctx);
      await etcd.kill();
      await hold(ctx, planned.durationMs);
      await etcd.restart();
      return;
    }
  }
}

function etcdOf(ctx: RunContext): NonNullable<Topology['arbiter']>['etcd'] {
  const etcd = ctx.topo.arbiter?.etcd;
  if (!etcd) throw new Error('an etcd fault needs the arbiter (--arbiter)');
  return etcd;
}

/** The member a fault hits: the only one, or the leader or a follower of three, resolved now. */
async function memberName(ctx: RunContext, rec: FaultRecord, member: EtcdMember | null): Promise<string> {
  const etcd = etcdOf(ctx);
  const names = etcd.memberNames();
  let name = names[0] as string;
  if (member !== null) {
    const leader = await etcd.leader();
    name = member === 'leader' ? leader : (names.find((n) => n !== leader) as string);
  }
  rec.notes.push(`etcd member ${name}${member ? ` (${member})` : ''}`);
  return name;
}

/**
 * The standby's keeper cut from etcd. Variant `primary-lost`: the primary's host (server and keeper)
 * is lost right after, so the lease runs out in etcd while the standby cannot see it; the standby
 * must not promote while cut, and must once it reaches etcd again: the fault is held until it does,
 * or until the promotion was owed (else the operator would start the old primary again first).
 */
async function cutStandbyFromEtcd(ctx: RunContext, rec: FaultRecord): Promise<void> {
  const { topo, timing } = ctx;
  const standby = rec.node as NodeName;
  const primary = peerOf(standby);
  await topo.cutArbiter(standby, true, rec.planned.mode ?? 'blackhole');
  const lostAt = Date.now();
  if (rec.planned.variant === 'primary-lost') {
    rec.marks.lostAt = lostAt;
    await Promise.all([topo.pair.kill(topo.node(primary), 'SIGKILL'), topo.killKeeper(primary)]);
  }
  await hold(ctx, rec.planned.durationMs);
  await topo.cutArbiter(standby, false);
  if (rec.planned.variant !== 'primary-lost') return;
  const reconnectedAt = Date.now();
  rec.marks.reconnectedAt = reconnectedAt;
  const owedBy = lostAt + failoverAfterReconnectMs(timing, reconnectedAt - lostAt) + SLACK_MS;
  await hold(ctx, owedBy - Date.now(), () =>
    promotionsBetween(ctx, lostAt, Date.now()).some((p) => p.node === standby),
  );
}

/** How each kind loses the primary, when it does (and the promotion is owed once it lasts). */
function lossOf(kind: FaultKind, rec: FaultRecord): Loss | 'host-lost-then-reconnect' | null {
  const onPrimary = rec.node === rec.primaryBefore;
  switch (kind) {
    case 'kill-server':
      return onPrimary ? 'server-killed' : null;
    case 'freeze-server':
      return onPrimary ? 'server-frozen' : null;
    case 'hung-hook':
      return 'server-killed';
    case 'isolate-primary':
      return 'host-lost';
    case 'cut-standby-etcd':
      return rec.planned.variant === 'primary-lost' ? 'host-lost-then-reconnect' : null;
    default:
      return null;
  }
}

/**
 * A primary lost for long enough must have been replaced in time (availability.ts: from the keepers'
 * window, stream_timeout and lease TTL); a fault that leaves the pair's own health alone must promote
 * nothing: losing a keeper, and with the arbiter a partition between the nodes (both reach etcd),
 * etcd's faults, and the standby cut from etcd (while cut).
 */
function checkPromotions(ctx: RunContext, rec: FaultRecord): void {
  const { kind } = rec.planned;
  // The operator's switchover home promotes too, once the pair healed: not the keepers' doing.
  const failovers = rec.promotions.filter((p) => !p.switchover);
  const arbiter = ctx.topo.arbiter !== null;
  const quietKinds: FaultKind[] = arbiter
    ? ['kill-keeper', 'partition', 'etcd-kill', 'etcd-freeze', 'etcd-outage', 'cut-standby-etcd']
    : ['kill-keeper'];
  if (quietKinds.includes(kind)) {
    // Variant primary-lost: the standby may promote only once it reaches etcd again.
    const until = rec.marks.reconnectedAt ?? rec.healedAt;
    const early = failovers.filter((p) => p.at < until);
    if (early.length > 0)
      anomaly(
        ctx,
        'spurious-promotion',
        `${early.map((p) => `${p.node} at +${p.at - rec.startedAt} ms`).join(', ')} promoted during ${kind} ` +
          `(${describeFault(rec.planned, rec.node ?? undefined)}), which leaves the pair itself healthy`,
      );
  }
  const loss = lossOf(kind, rec);
  const lostAt = rec.marks.lostAt;
  if (loss === null || lostAt === undefined) return;
  if (loss === 'host-lost' && ctx.timing.ttlMs === null) return;
  const lostNode = kind === 'cut-standby-etcd' ? peerOf(rec.node as NodeName) : (rec.node as NodeName);
  const promoted = failovers.find((p) => p.node !== lostNode && p.at >= lostAt);
  const bound =
    loss === 'host-lost-then-reconnect'
      ? failoverAfterReconnectMs(ctx.timing, (rec.marks.reconnectedAt ?? rec.endedAt) - lostAt)
      : failoverBoundMs(ctx.timing, loss);
  // cut-standby-etcd holds the loss until the promotion or the deadline: it always owes one.
  const lostFor =
    loss === 'host-lost-then-reconnect'
      ? Math.max(rec.endedAt - lostAt, bound + SLACK_MS)
      : rec.endedAt - lostAt;
  const check: AvailabilityCheck = judgeAvailability(
    loss,
    bound,
    lostFor,
    promoted ? promoted.at - lostAt : null,
  );
  rec.availability = check;
  rec.notes.push(
    check.checked
      ? `availability checked: ${loss}, promotion owed within ${check.deadlineMs} ms, ` +
          (promoted ? `promoted after ${check.promotedAfterMs} ms` : 'none')
      : `availability not owed: ${loss} lasted ${check.lostForMs} ms, under the ${check.deadlineMs} ms a promotion may take`,
  );
  if (!check.ok)
    anomaly(
      ctx,
      'no-failover',
      `${lostNode} was lost (${loss}, ${kind}) for ${check.lostForMs} ms and ${peerOf(lostNode)} was ` +
        (promoted
          ? `promoted only after ${check.promotedAfterMs} ms`
          : `not promoted (owed within ${check.deadlineMs} ms)`),
    );
}

/**
 * after_command hangs: the standby's keeper is reconfigured (file + SIGHUP) to run `sleep 3600`,
 * then the primary is killed. The keeper must promote, report the hook as timed out after
 * after_command_timeout, kill its whole process group, and answer /health 200 all along.
 */
async function hungHook(ctx: RunContext, rec: FaultRecord): Promise<void> {
  const { topo } = ctx;
  const primary = rec.node as NodeName;
  const standby = peerOf(primary);
  const marker = `${topo.hookMarker}-hung`;
  await topo.reconfigureKeeper(standby, { after_command: `sleep 3600; : ${marker}` });
  const k = topo.keepers[standby];
  const since = Date.now();
  const after = (l: Record<string, unknown>): boolean => Date.parse(String(l.time)) >= since;
  const hookDone = (): Record<string, unknown> | undefined =>
    k.events('hook-done').find((l) => l.hook === 'after_command' && after(l));
  try {
    rec.marks.lostAt = Date.now();
    await topo.pair.kill(topo.node(primary), 'SIGKILL');
    try {
      await waitFor(() => k.events('hook-start').some(after), 'the promotion and its after_command', 30_000);
    } catch {
      anomaly(ctx, 'no-failover', `${primary} was killed and ${standby} did not promote within 30 s`);
      return;
    }
    const started = Date.now();
    // The shell that runs the hook leads its own process group; find it while it waits.
    const sh = await waitFor(
      () => topo.hookPids(marker)[0] ?? (hookDone() ? -1 : 0),
      'the hook process',
      10_000,
      20,
    );
    await hold(ctx, 1000); // /health while the keeper waits the hook out
    const done = await waitFor(hookDone, 'the hung after_command to be reported done', 20_000);
    rec.notes.push(
      `hung after_command reported "${String(done.result)}" ${Date.now() - started} ms after it started`,
    );
    if (done.result !== 'timeout') {
      anomaly(ctx, 'hook-not-timed-out', `the hung after_command was reported as ${String(done.result)}`);
    }
    if (sh > 0) {
      // SIGTERM at the timeout, SIGKILL 2 s later: the whole group must be gone within a few seconds.
      const left = await waitFor(
        () => Topology.groupPids(sh).length === 0,
        'the hook group to go',
        10_000,
      ).then(
        () => [],
        () => Topology.groupPids(sh),
      );
      if (left.length > 0) {
        anomaly(
          ctx,
          'hook-not-timed-out',
          `processes of the hung after_command are still alive: ${left.join(', ')}`,
        );
      }
    }
  } catch (err) {
    anomaly(ctx, 'hook-not-timed-out', (err as Error).message);
  } finally {
    await topo.reconfigureKeeper(standby, { after_command: topo.normalAfterCommand });
  }
}

/**
 * The standby's server dies; the primary's keeper switches to async and the primary acknowledges
 * writes that only it has; then the primary dies too, and the standby's server comes back first,
 * alone. Its keeper must not promote it (it was not synchronous when the primary last acknowledged
 * a commit): by default availability waits for the old primary, which the operator then starts.
 * Variant `host`: the standby's keeper dies and comes back with its server, as after a host reboot,
 * with only its state file to go by. Variant `frozen-host`: server and keeper are stopped and
 * resumed (a paused VM), receiving nothing meanwhile: the keeper wakes up with what it knew before.
 */
async function cascadeKill(ctx: RunContext, rec: FaultRecord): Promise<void> {
  const { topo, workload } = ctx;
  const primary = rec.primaryBefore;
  const standby = peerOf(primary);
  const variant = rec.planned.variant ?? 'server';
  if (variant === 'host') await topo.killKeeper(standby);
  if (variant === 'frozen-host') {
    topo.freezeKeeper(standby, true);
    await topo.pair.kill(topo.node(standby), 'SIGSTOP');
    // A paused machine receives nothing. On loopback a stopped process's kernel still buffers what
    // the primary streams to it, and would hand it over on resume: drop the standby's paths to the
    // primary (its WAL receiver's and its keeper's connections) so that nothing arrives.
    await topo.proxyTo[primary].cut('refuse');
  } else {
    await topo.pair.kill(topo.node(standby), 'SIGKILL');
  }
  // As soon as the primary's keeper has switched to async and the primary acknowledged a write
  // alone, it dies: the shorter the standby was away, the harder for its keeper to tell.
  const k = topo.keepers[primary];
  const switched = await waitFor(
    () =>
      k
        .events('switch-to-async')
        .find((l) => l.outcome === 'ok' && Date.parse(String(l.time)) >= rec.startedAt),
    `${primary} to switch to async`,
    30_000,
    5,
  );
  const switchAt = Date.parse(String(switched.time));
  await waitFor(
    () => workload.records.some((r) => r.node === primary && r.ackAt !== null && r.ackAt > switchAt),
    `a write acknowledged by ${primary} alone`,
    30_000,
    5,
  );
  await topo.pair.kill(topo.node(primary), 'SIGKILL');
  if (variant === 'frozen-host') {
    await topo.proxyTo[primary].restore();
    await topo.pair.kill(topo.node(standby), 'SIGCONT');
    topo.freezeKeeper(standby, false);
  } else {
    await topo.pair.start(topo.node(standby));
    if (variant === 'host') await topo.startKeeper(standby);
  }
  rec.notes.push(
    `${standby} (${variant}) came back ${Date.now() - rec.startedAt} ms after it went away, alone; ` +
      `${primary} had gone async after ${switchAt - rec.startedAt} ms and acknowledged writes without it`,
  );
  await hold(ctx, rec.planned.durationMs);
}
