// `pg-keeper demo kill primary|standby`, from a second terminal: asks the running demo's keepers which
// node has that role now, and SIGKILLs every process of that node's PostgreSQL server. The demo's own
// terminal shows the keepers noticing and acting.
import { NODES, type NodeName } from '../config/config.js';
import type { Status } from '../http/status.js';
import { killServer } from '../server/procs.js';
import { killLine } from './view.js';
import { isDemoAlive, readDemoState, writeKillRecord } from './workdir.js';

export async function killCommand(
  role: 'primary' | 'standby',
  dir: string,
  out: (line: string) => void,
): Promise<number> {
  const state = readDemoState(dir);
  if (!state) {
    out(`no running demo found in ${dir} (no state.json there): start one with \`pg-keeper demo\`,`);
    out('and give `demo kill` the same --dir as the demo');
    return 1;
  }
  if (!isDemoAlive(state)) {
    out(`the demo in ${dir} is not running any more (its process ${state.pid} is gone)`);
    return 1;
  }
  const roles: Partial<Record<NodeName, string>> = {};
  for (const node of NODES) {
    const url = state.nodes[node].keeperUrl;
    if (!url) continue;
    try {
      const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(3000) });
      roles[node] = ((await res.json()) as Status).role;
    } catch (err) {
      roles[node] = `unknown (keeper at ${url} did not answer: ${(err as Error).message})`;
    }
  }
  const target = NODES.find((n) => roles[n] === role);
  if (!target) {
    out(
      `no node is the ${role} right now: ${NODES.map((n) => `${n} is ${roles[n] ?? 'not started'}`).join(', ')}`,
    );
    return 1;
  }
  const pids = await killServer(state.nodes[target].dataDir);
  if (pids.length === 0) {
    out(`${target}'s keeper says it is the ${role}, but its server has no running process to kill`);
    return 1;
  }
  const record = { node: target, role, at: Date.now(), pids };
  writeKillRecord(dir, record);
  out(killLine(record));
  const other = NODES.find((n) => n !== target) ?? 'node2';
  out(
    role === 'primary'
      ? `watch the demo: ${other}'s keeper promotes its standby once ${target} misses keepalive_count heartbeats in a row`
      : `watch the demo: ${other}'s keeper switches to asynchronous replication once ${target} misses keepalive_count heartbeats in a row`,
  );
  return 0;
}
