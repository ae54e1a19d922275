// `pg-keeper demo --once`: the story, unattended. Kill the primary; node2's keeper promotes its
// standby (timed); the writer's acknowledged writes are checked on it; the old primary's keeper turns
// its server into node2's standby by itself (auto_rejoin) and node2's keeper restores synchronous
// replication. Then a timeline, the final status of both keepers, and what after_command recorded.
import fs from 'node:fs';
import { NODES } from '../config/config.js';
import { formatStatus } from '../http/status-command.js';
import { fetchStatus } from './sampler.js';
import { Cancelled, type DemoStack } from './stack.js';
import { promotionLine } from './tracker.js';
import { readyLine, type Watch } from './watch.js';
import { sleep } from '../util/wait.js';

export async function once(
  stack: DemoStack,
  watch: Watch,
  info: string[],
  stopped: Promise<void>,
): Promise<number> {
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  for (const line of info) out(line);
  out(readyLine());
  const { tracker } = watch;
  const timeline: { at: number; what: string }[] = [];
  let lastFailures = 0;
  let interrupted = false;
  void stopped.then(() => (interrupted = true));
  const poll = async (): Promise<void> => {
    const sample = await watch.step();
    const s2 = sample.nodes.find((s) => s.node === 'node2')?.status;
    if (s2 && s2.role === 'standby' && s2.consecutive_failures > lastFailures) {
      const at = s2.decided_at ? Date.parse(s2.decided_at) : sample.now;
      timeline.push({
        at,
        what: `node2: heartbeat to node1 failed, ${s2.consecutive_failures}/${s2.keepalive_count} in a row`,
      });
    }
    lastFailures = s2?.consecutive_failures ?? lastFailures;
  };
  const until = async (check: () => boolean, timeoutMs: number, what: string): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await poll();
      if (check()) return;
      if (interrupted) throw new Cancelled();
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(100);
    }
  };
  const writer = stack.writer;

  await until(() => (writer?.acked.length ?? 0) >= 10, 15_000, 'the writer to have written');
  out('killing the primary (node1): SIGKILL to every process of its server');
  const kill = await stack.killServer('node1', 'primary');
  await until(() => tracker.promotion?.node === 'node2', 30_000, "node2's keeper to promote its server");
  const promotion = tracker.promotion;
  if (!promotion) return 1;
  const hookDone = (): boolean =>
    tracker.events.some((e) => e.node === 'node2' && e.event === 'after_command' && e.at >= promotion.at);
  await until(hookDone, 15_000, "node2's after_command to finish");
  await until(() => tracker.lastCheck?.node === 'node2', 15_000, "the check of the writer's writes on node2");
  await until(
    () => tracker.rejoinedAt !== null,
    90_000,
    "node1's keeper to rejoin its server as node2's standby",
  );
  await until(() => (tracker.syncBackAt ?? 0) > kill.at, 60_000, 'synchronous replication to come back');

  for (const e of tracker.events) {
    if (e.at >= kill.at) timeline.push({ at: e.at, what: `${e.node}: ${e.event} ${e.outcome}: ${e.detail}` });
  }
  const resumed = writer?.gaps.notable.find((g) => g.to > kill.at && g.node === 'node2') ?? null;
  if (resumed) {
    timeline.push({
      at: resumed.to,
      what: `the writer's first write acknowledged by node2 (it waited ${resumed.ms} ms)`,
    });
  }
  if (tracker.syncBackAt !== null)
    timeline.push({ at: tracker.syncBackAt, what: 'node2 replicates synchronously to node1 again' });
  timeline.sort((a, b) => a.at - b.at);
  out('');
  out('timeline (ms after the kill):');
  out(`${'0'.padStart(7)}  killed node1 (the primary): SIGKILL to ${kill.pids.length} processes`);
  for (const t of timeline) out(`${String(t.at - kill.at).padStart(7)}  ${t.what}`);
  out(promotionLine(promotion));
  if (resumed)
    out(`node2 accepts writes: the writer's writes stopped for ${resumed.ms} ms, then went on on node2`);
  const check = tracker.lastCheck;
  if (tracker.rejoinedAt !== null)
    out(`REJOINED: node1 is node2's standby again, ${tracker.rejoinedAt - kill.at} ms after the kill`);
  if (tracker.syncBackAt !== null)
    out(`SYNC: the pair is whole again, ${tracker.syncBackAt - kill.at} ms after the kill`);
  out('');
  for (const node of NODES) {
    out(`---- final status of ${node}'s keeper ----`);
    const status = await fetchStatus(stack.keeper(node).url);
    out(status ? formatStatus(status).trimEnd() : '(not answering)');
    out('');
  }
  const hook = tracker.events.find(
    (e) => e.node === 'node2' && e.event === 'after_command' && e.at >= promotion.at,
  );
  out(`after_command: ${hook?.outcome} (${hook?.detail}); it recorded:`);
  try {
    out(fs.readFileSync(stack.files.afterCommandLog, 'utf8').trimEnd() || '(nothing)');
  } catch {
    out('(nothing)');
  }
  if (hook?.outcome !== 'ok') {
    process.stderr.write(
      `pg-keeper demo: node2's after_command did not succeed: ${hook?.detail ?? 'no result'}\n`,
    );
    return 1;
  }
  if (!check || check.missing.length > 0) {
    process.stderr.write('pg-keeper demo: acknowledged writes are missing on the new primary\n');
    return 1;
  }
  return 0;
}
