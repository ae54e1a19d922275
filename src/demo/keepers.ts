// The demo's keepers: one `pg-keeper run --config <dir>/keepers/nodeN.yml` process per node, as an
// operator runs them, their JSON log lines going to <dir>/nodeN.log.
//
// Why processes and not keepers inside the demo: a keeper that manages its server (data_directory:
// auto_rejoin, switchover) runs pg_ctl, pg_rewind and pg_controldata itself, and PostgreSQL's programs
// refuse to run as anyone but the data directory's owner; the keeper checks this at start-up. As root,
// the demo's servers belong to the OS user postgres, so the keepers must be postgres too: each is
// started through setpriv (util-linux), which changes uid, gid and groups and then execs node, with no
// process in between. That is how the end-to-end tests run them, and what the systemd unit does with
// User=postgres. Routing only the start and stop commands through runuser would not do: the rewind and
// the control-file reads would still run as root, and the keeper would refuse its data directory.
//
// setpriv also sets the parent-death signal: should the demo itself be killed (SIGKILL), its keepers
// die with it instead of managing servers whose proxies are gone (they would see the peer vanish and
// act on it). Each keeper is recorded in state.json anyway, so that the next run stops one that lived.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { NodeName } from '../config/config.js';
import { freePort } from '../local-pair/free-port.js';
import { processStartTime } from '../util/procfs.js';
import { sleep } from '../util/wait.js';
import { findOnPath } from './monitoring.js';
import type { RecordedProcess } from './workdir.js';

/** The CLI next to this module (dist/cli.js): the keepers run the very build the demo runs. */
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
/** The Node flags of the CLI's shebang line. */
const NODE_FLAGS = ['--max-semi-space-size=1'];
const ATTEMPTS = 3;

/** Who the keepers run as: the OS user PostgreSQL runs as when the demo is root, else the demo's own user. */
export interface RunAs {
  user: string;
  uid: number;
  gid: number;
}

export interface KeeperChild {
  node: NodeName;
  url: string;
  configFile: string;
  logFile: string;
  child: ChildProcess;
  record: RecordedProcess;
}

export interface KeeperSpec {
  node: NodeName;
  /** The keeper's configuration, without `listen` (a free port is chosen here). */
  settings: Record<string, unknown>;
  configFile: string;
  logFile: string;
  runAs: RunAs | null;
}

/**
 * Writes the keeper's configuration (mode 0600: it holds the superuser's password), starts it, and
 * resolves once it answers /status. A port taken meanwhile is retried on another.
 */
export async function startKeeperProcess(spec: KeeperSpec): Promise<KeeperChild> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} not found: run \`npm run build\` first`);
  let lastOutput = '';
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const port = await freePort();
    const text =
      `# keeper of ${spec.node} in the pg-keeper demo (generated at every start)\n` +
      stringify({ ...spec.settings, listen: `127.0.0.1:${port}` });
    fs.writeFileSync(spec.configFile, text, { mode: 0o600 });
    if (spec.runAs) fs.chownSync(spec.configFile, spec.runAs.uid, spec.runAs.gid);
    const logStart = fileSize(spec.logFile);
    const fd = fs.openSync(spec.logFile, 'a');
    const child = spawnKeeper(spec, fd);
    fs.closeSync(fd);
    child.on('error', () => {}); // shows as an exit below
    const k: KeeperChild = {
      node: spec.node,
      url: `http://127.0.0.1:${port}`,
      configFile: spec.configFile,
      logFile: spec.logFile,
      child,
      record: {
        name: `${spec.node}'s keeper`,
        pid: child.pid ?? -1,
        start: child.pid ? processStartTime(child.pid) : null,
      },
    };
    if (await answers(k, 15_000)) return k;
    await stopKeeperProcess(k, 1000);
    lastOutput = readFrom(spec.logFile, logStart);
    if (!/EADDRINUSE|address already in use/i.test(lastOutput)) break;
  }
  throw new Error(`${spec.node}'s keeper did not start (see ${spec.logFile}):\n${lastOutput.trimEnd()}`);
}

/** SIGTERM (a keeper stops within a second), then SIGKILL after `graceMs`. */
export function stopKeeperProcess(k: KeeperChild, graceMs = 3000): Promise<void> {
  const { child } = k;
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function spawnKeeper(spec: KeeperSpec, fd: number): ChildProcess {
  const argv = [...NODE_FLAGS, CLI, 'run', '--config', spec.configFile];
  // No PG* variable of ours may reach the keeper (its conninfo says everything); HOME is its own
  // directory, where libpq would look for a .pgpass.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.HOME = path.dirname(spec.configFile);
  const setpriv = findOnPath('setpriv');
  if (!setpriv && spec.runAs) {
    throw new Error('setpriv (util-linux) is needed to run the keepers as the OS user postgres');
  }
  // Own process group: Ctrl-C reaches the demo only, which stops the keepers first, then the servers.
  const options: SpawnOptions = {
    cwd: path.dirname(spec.configFile),
    env,
    stdio: ['ignore', fd, fd],
    detached: true,
  };
  if (!setpriv) return spawn(process.execPath, argv, options);
  const user = spec.runAs
    ? [`--reuid=${spec.runAs.user}`, `--regid=${spec.runAs.user}`, '--init-groups']
    : [];
  return spawn(setpriv, [...user, '--pdeathsig=SIGKILL', process.execPath, ...argv], options);
}

async function answers(k: KeeperChild, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (k.child.exitCode === null && k.child.signalCode === null && Date.now() < deadline) {
    try {
      const res = await fetch(`${k.url}/status`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  return false;
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  try {
    return fs.readFileSync(file).subarray(offset).toString('utf8').slice(-4000);
  } catch {
    return '';
  }
}
