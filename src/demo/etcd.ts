// `pg-keeper demo --arbiter`: one etcd member beside the pair, on free ports of 127.0.0.1, its data and
// log in <dir>/etcd. It runs in its own process group (Ctrl-C reaches the demo, which stops the keepers
// before it) and is recorded in state.json like Prometheus, so that the next run stops one that a
// killed demo left behind. Both keepers reach it directly: a partition between the nodes leaves each
// node its path to etcd, which is the case the arbiter decides.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../local-pair/free-port.js';
import { processStartTime } from '../util/procfs.js';
import { sleep } from '../util/wait.js';
import { findOnPath, stopDaemons, type Daemon } from './monitoring.js';

const INSTALL = 'apt-get install etcd-server';
const ATTEMPTS = 3;

/** Starts etcd and resolves once it reports itself healthy; rejects, saying why, when it cannot. */
export async function startEtcd(dir: string): Promise<Daemon> {
  const bin = findOnPath('etcd');
  if (!bin) throw new Error(`--arbiter needs etcd, which is not installed (${INSTALL})`);
  const home = path.join(dir, 'etcd');
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  let lastLog = '';
  // A free port can be taken between freePort() and etcd's bind: try again on others.
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const client = `http://127.0.0.1:${await freePort()}`;
    const peer = `http://127.0.0.1:${await freePort()}`;
    const logFile = path.join(home, 'etcd.log');
    const fd = fs.openSync(logFile, 'a');
    const child = spawn(
      bin,
      [
        '--name=demo',
        `--data-dir=${path.join(home, 'data')}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=demo=${peer}`,
        '--initial-cluster-state=new',
        '--logger=zap',
        '--log-level=warn',
      ],
      { cwd: home, stdio: ['ignore', fd, fd], detached: true },
    );
    fs.closeSync(fd);
    child.on('error', () => {}); // shows as an exit below
    const daemon: Daemon = {
      name: 'etcd',
      url: client,
      logFile,
      child,
      record: { name: 'etcd', pid: child.pid ?? -1, start: child.pid ? processStartTime(child.pid) : null },
    };
    if (await healthy(daemon, 20_000)) return daemon;
    await stopDaemons([daemon], 1000);
    lastLog = tail(logFile);
    fs.rmSync(path.join(home, 'data'), { recursive: true, force: true });
  }
  throw new Error(`etcd did not start (see ${path.join(home, 'etcd.log')})${lastLog ? `:\n${lastLog}` : ''}`);
}

async function healthy(d: Daemon, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (d.child.exitCode === null && d.child.signalCode === null && Date.now() < deadline) {
    try {
      const res = await fetch(`${d.url}/health`, { signal: AbortSignal.timeout(1000) });
      if (((await res.json()) as { health?: string }).health === 'true') return true;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  return false;
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-5).join('\n');
  } catch {
    return '';
  }
}
