// What a second terminal does to a running demo, found through its state.json:
//
//   pg-keeper demo kill primary|standby   asks the keepers which node has that role now, and SIGKILLs
//                                         every process of that node's PostgreSQL server
//   pg-keeper demo partition | heal       cuts (restores) the path between the nodes: the demo applies it
//                                         to its proxies, and this waits until it has
//   pg-keeper demo switchover             `pg-keeper switchover` against the primary's keeper, with the
//                                         demo's token: the roles swap, nothing acknowledged is lost
//
// The demo's own terminal shows the keepers noticing and acting.
import path from 'node:path';
import { NODES, type NodeName } from '../config/config.js';
import { switchoverCommand } from '../lifecycle/switchover-command.js';
import { killServer } from '../server/procs.js';
import { sleep } from '../util/wait.js';
import { writeNetworkRequest, type NetworkState } from './network.js';
import { fetchStatus } from './sampler.js';
import { killLine, partitionSentence } from './tracker.js';
import { demoFiles, isDemoAlive, readDemoState, writeKillRecord, type DemoState } from './workdir.js';

type Say = (line: string) => void;

/** The running demo in `dir`, or null having said why there is none. */
function runningDemo(dir: string, out: Say): DemoState | null {
  const state = readDemoState(dir);
  if (!state) {
    out(`no running demo found in ${dir} (no state.json there): start one with \`pg-keeper demo\`,`);
    out('and give this command the same --dir as the demo');
    return null;
  }
  if (!isDemoAlive(state)) {
    out(`the demo in ${dir} is not running any more (its process ${state.pid} is gone)`);
    return null;
  }
  return state;
}

/** Each node's role, as its keeper says now. */
async function rolesOf(state: DemoState): Promise<Partial<Record<NodeName, string>>> {
  const roles: Partial<Record<NodeName, string>> = {};
  await Promise.all(
    NODES.map(async (node) => {
      const url = state.nodes[node].keeperUrl;
      if (!url) return;
      roles[node] = (await fetchStatus(url))?.role ?? `unknown (its keeper at ${url} did not answer)`;
    }),
  );
  return roles;
}

export async function killCommand(role: 'primary' | 'standby', dir: string, out: Say): Promise<number> {
  const state = runningDemo(dir, out);
  if (!state) return 1;
  const roles = await rolesOf(state);
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
      ? `watch the demo: ${other}'s keeper promotes its standby once ${target} misses keepalive_count heartbeats in a row; ` +
          `then ${target}'s keeper makes its server ${other}'s standby by itself (auto_rejoin), and sync comes back`
      : `watch the demo: ${other}'s keeper switches to asynchronous replication once ${target} misses keepalive_count heartbeats in a row, ` +
          `so that commits stop waiting; ${target}'s server stays down (a keeper starts its server only to rejoin it)`,
  );
  return 0;
}

export async function networkCommand(want: NetworkState, dir: string, out: Say): Promise<number> {
  const state = runningDemo(dir, out);
  if (!state) return 1;
  if (!state.network) {
    out('the demo is still starting: its proxies between the nodes are not up yet; try again in a moment');
    return 1;
  }
  const at = Date.now();
  writeNetworkRequest(dir, { want, at });
  const deadline = at + 10_000;
  for (;;) {
    const now = readDemoState(dir)?.network;
    if (now?.request === at) break;
    if (Date.now() > deadline) {
      out(`the demo did not apply "${want}" within 10 s: is it still running? (see its terminal)`);
      return 1;
    }
    await sleep(50);
  }
  if (want === 'partitioned') {
    out(
      'PARTITIONED: nothing passes between node1 and node2 any more (heartbeats, the WAL stream); both still reach their clients',
    );
    out(`watch the demo: ${partitionSentence(state.arbiter !== null)}`);
    out(`\`${demoCommandLine(dir, 'heal')}\` restores the path`);
  } else {
    out(
      'HEALED: the nodes reach each other again; watch the WAL stream resume and synchronous replication come back',
    );
  }
  return 0;
}

export async function demoSwitchoverCommand(dir: string, out: Say): Promise<number> {
  const state = runningDemo(dir, out);
  if (!state) return 1;
  const roles = await rolesOf(state);
  const primary = NODES.find((n) => roles[n] === 'primary');
  const url = primary ? state.nodes[primary].keeperUrl : null;
  if (!primary || !url) {
    out(
      `no node is the primary right now: ${NODES.map((n) => `${n} is ${roles[n] ?? 'not started'}`).join(', ')}`,
    );
    return 1;
  }
  const tokenFile = demoFiles(dir, state.keepersDir).tokenFile;
  out(`$ pg-keeper switchover --url ${url} --token-file ${tokenFile}`);
  return switchoverCommand({ url, to: undefined, tokenFile }, (line) => out(`pg-keeper switchover: ${line}`));
}

export const DEFAULT_DIR = '.demo';

/** `pg-keeper demo <sub>` as this process was started (node dist/cli.js, npx, pg-keeper), with --dir when not the default. */
export function demoCommandLine(dir: string, sub: string): string {
  const script = process.argv[1] ?? '';
  let cli = 'npx pg-keeper';
  if (path.basename(script) === 'pg-keeper') cli = 'pg-keeper';
  else if (script.endsWith('cli.js')) cli = `node ${path.relative(process.cwd(), script) || script}`;
  const dirArg = dir === path.resolve(DEFAULT_DIR) ? '' : ` --dir ${dir}`;
  return `${cli} demo ${sub}${dirArg}`;
}
