// The demo's working directory (default `.demo/` under the current directory): its layout, the
// state.json that lets a second terminal (`pg-keeper demo kill`) and the next run find what this run
// started, and the clean-up of a previous run before a new one reuses the directory.
//
// The demo deletes only what it can prove is its own: a directory holding its marker file (or an empty
// one), and processes recorded in state.json that are still the same processes (pid and start time), or
// PostgreSQL processes working in a data directory recorded there.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { NODES, type NodeName } from '../config/config.js';
import { lookupUser } from '../local-pair/command.js';
import { isSameProcessAlive, killRecorded, processStartTime } from '../util/procfs.js';
import { killServer, releaseStaleSharedMemory } from '../server/procs.js';

const MARKER = '.pg-keeper-demo';
const SUN_PATH_MAX = 107;
const SOCKET_NAME_MAX = '/.s.PGSQL.65535'.length;

export interface RecordedProcess {
  name: string;
  pid: number;
  /** processStartTime() when it was recorded: with the pid, it names one process for good. */
  start: number | null;
}

export interface DemoState {
  dir: string;
  /** The demo process itself. */
  pid: number;
  start: number | null;
  startedAt: string;
  /** PgPair's baseDir: `<dir>/pg`, or `<tempRoot>/pg` (see placementFor). */
  pgBaseDir: string;
  /** The keepers' own files: `<dir>/keepers`, or `<tempRoot>/keepers`. */
  keepersDir: string;
  /** A directory under the system's temp directory, when the OS user postgres cannot work in <dir>. */
  tempRoot: string | null;
  nodes: Record<NodeName, { dataDir: string; port: number | null; keeperUrl: string | null }>;
  /** The keepers, and etcd, Prometheus and Alertmanager when started. */
  children: RecordedProcess[];
  /** etcd's client URL with --arbiter, else null. */
  arbiter: string | null;
  /** The path between the nodes, once its proxies run: what `demo partition` and `demo heal` wait for. */
  network: { state: 'connected' | 'partitioned'; changedAt: number; request: number | null } | null;
}

/** What `pg-keeper demo kill` writes, so that the running demo can show the kill and time the failover. */
export interface KillRecord {
  node: NodeName;
  role: string;
  at: number;
  pids: number[];
}

/** The files of the demo in `dir`; the keepers' own in `keepersDir` (see placementFor). */
export function demoFiles(dir: string, keepersDir = path.join(dir, 'keepers')) {
  return {
    marker: path.join(dir, MARKER),
    state: path.join(dir, 'state.json'),
    kill: path.join(dir, 'kill.json'),
    networkRequest: path.join(dir, 'network.json'),
    log: (node: NodeName) => path.join(dir, `${node}.log`),
    // The keepers' own files, in a directory of the OS user they run as (postgres, when the demo is
    // root): what they read, write, and run as after_command.
    keepers: keepersDir,
    config: (node: NodeName) => path.join(keepersDir, `${node}.yml`),
    keeperState: (node: NodeName) => path.join(keepersDir, `${node}.state.json`),
    tokenFile: path.join(keepersDir, 'http_token'),
    afterCommandScript: path.join(keepersDir, 'after_command.sh'),
    afterCommandLog: path.join(keepersDir, 'after_command.log'),
  };
}

export class DemoDirError extends Error {}

export function readDemoState(dir: string): DemoState | null {
  try {
    return JSON.parse(fs.readFileSync(demoFiles(dir).state, 'utf8')) as DemoState;
  } catch {
    return null;
  }
}

/** Written whole and renamed into place: a reader never sees half a file. */
export function writeDemoState(state: DemoState): void {
  const file = demoFiles(state.dir).state;
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

export function newDemoState(dir: string, place: Placement): DemoState {
  const node = (name: NodeName) => ({
    dataDir: path.join(place.pgBaseDir, name, 'data'),
    port: null,
    keeperUrl: null,
  });
  return {
    dir,
    pid: process.pid,
    start: processStartTime(process.pid),
    startedAt: new Date().toISOString(),
    pgBaseDir: place.pgBaseDir,
    keepersDir: place.keepersDir,
    tempRoot: place.tempRoot,
    nodes: { node1: node('node1'), node2: node('node2') },
    children: [],
    arbiter: null,
    network: null,
  };
}

export function isDemoAlive(state: DemoState): boolean {
  return state.pid !== process.pid && isSameProcessAlive(state.pid, state.start);
}

export function readKillRecord(dir: string): KillRecord | null {
  try {
    return JSON.parse(fs.readFileSync(demoFiles(dir).kill, 'utf8')) as KillRecord;
  } catch {
    return null;
  }
}

export function writeKillRecord(dir: string, record: KillRecord): void {
  const file = demoFiles(dir).kill;
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(record)}\n`);
  fs.renameSync(`${file}.tmp`, file);
}

/**
 * Makes `dir` an empty demo directory: creates it, or empties one a previous demo left (after making sure
 * nothing of that demo still runs). Refuses a directory a demo is running in, and a non-empty directory
 * the demo did not make.
 */
export async function prepareDemoDir(dir: string, say: (line: string) => void): Promise<void> {
  const files = demoFiles(dir);
  let entries: string[];
  try {
    entries = await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    entries = [];
  }
  if (entries.length > 0 && !entries.includes(MARKER)) {
    throw new DemoDirError(
      `${dir} is not empty and was not made by pg-keeper demo, so the demo will not delete anything in it; ` +
        'choose another directory with --dir',
    );
  }
  const previous = readDemoState(dir);
  if (previous) {
    if (isDemoAlive(previous)) {
      throw new DemoDirError(
        `a demo is already running in ${dir} (pid ${previous.pid}): stop it with Ctrl-C in its terminal, ` +
          'or use another --dir',
      );
    }
    await stopLeftovers(previous, say);
  }
  for (const entry of entries) await fsp.rm(path.join(dir, entry), { recursive: true, force: true });
  // Searchable by all: as root, PostgreSQL runs as the OS user postgres and must reach <dir>/pg.
  await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
  await fsp.chmod(dir, 0o755);
  await fsp.writeFile(
    files.marker,
    'This directory belongs to `pg-keeper demo`, which empties it at every start.\n',
  );
}

/**
 * Kills what a demo that did not stop cleanly left running: its children first (keepers, which would
 * otherwise act on what follows, and etcd, Prometheus, Alertmanager), then its PostgreSQL servers.
 */
async function stopLeftovers(previous: DemoState, say: (line: string) => void): Promise<void> {
  for (const child of previous.children) {
    if (killRecorded(child.pid, child.start))
      say(`stopped ${child.name} (pid ${child.pid}) left by a previous demo`);
  }
  for (const node of NODES) {
    const dataDir = previous.nodes[node].dataDir;
    const killed = await killServer(dataDir);
    if (killed.length > 0)
      say(`stopped ${node}'s PostgreSQL (pids ${killed.join(' ')}) left by a previous demo`);
    releaseStaleSharedMemory(dataDir);
  }
  // What was placed under the temp directory is outside <dir>: remove it too.
  if (previous.tempRoot) await fsp.rm(previous.tempRoot, { recursive: true, force: true });
  else if (!isInside(previous.pgBaseDir, previous.dir)) {
    await fsp.rm(previous.pgBaseDir, { recursive: true, force: true });
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

export interface Placement {
  /** PgPair's baseDir. */
  pgBaseDir: string;
  /** The keepers' own files. */
  keepersDir: string;
  /** The directory under the system's temp directory holding both, or null when <dir> holds them. */
  tempRoot: string | null;
  /** Why not <dir>, or null. */
  why: string | null;
}

/**
 * Where the pair and the keepers' own files live: `<dir>/pg` and `<dir>/keepers`, unless the unix
 * socket path would be too long, or (as root) the OS user postgres, which runs the servers and the
 * keepers, cannot reach <dir>; then both go to a fresh directory under the system's temp directory.
 */
export async function placementFor(dir: string): Promise<Placement> {
  const inside = path.join(dir, 'pg');
  let why: string | null = null;
  if (Buffer.byteLength(path.join(inside, 'node1')) + SOCKET_NAME_MAX > SUN_PATH_MAX) {
    why = `${inside} is too long for a unix socket path`;
  } else if (process.getuid?.() === 0) {
    const pgUser = await lookupUser('postgres').catch(() => null);
    if (pgUser && !searchableBy(dir, pgUser)) why = `the OS user postgres cannot reach ${dir}`;
  }
  if (why === null) return { pgBaseDir: inside, keepersDir: path.join(dir, 'keepers'), tempRoot: null, why };
  const tempRoot = await fsp.mkdtemp(path.join(os.tmpdir(), 'pgk-demo-'));
  await fsp.chmod(tempRoot, 0o755); // the OS user postgres passes through it to pg/ and keepers/
  return { pgBaseDir: path.join(tempRoot, 'pg'), keepersDir: path.join(tempRoot, 'keepers'), tempRoot, why };
}

/** Whether every directory from / down to `dir` lets this uid/gid (no supplementary groups) pass. */
function searchableBy(dir: string, who: { uid: number; gid: number }): boolean {
  let p = path.resolve(dir);
  for (;;) {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      return false;
    }
    const bit = st.uid === who.uid ? 0o100 : st.gid === who.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return false;
    const parent = path.dirname(p);
    if (parent === p) return true;
    p = parent;
  }
}
