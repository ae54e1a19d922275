// `pg-keeper demo` as a user runs it: the built CLI (dist/cli.js), real PostgreSQL servers, two
// keeper processes, a real etcd. One live demo with the arbiter is driven from "a second terminal"
// (`demo partition`, `heal`, `kill primary`, `switchover`) through the whole lifecycle, then stopped
// with Ctrl-C; a demo killed with SIGKILL is cleaned up by the next run, which tells the scripted
// story (--once). After each, nothing of a demo is left running.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { NODES, type NodeName } from '../../src/config/config.js';
import { parseConninfo } from '../../src/config/conninfo.js';
import type { Status } from '../../src/http/status.js';
import { readDemoState } from '../../src/demo/workdir.js';
import { onExit } from '../../src/local-pair/exit-hook.js';
import { queryOnce, type ConnTarget } from '../../src/local-pair/query.js';
import {
  isProcessAlive,
  killRecorded,
  listPids,
  readProcCmdline,
  readProcCwd,
} from '../../src/util/procfs.js';
import { killServer, killServerSync, releaseStaleSharedMemory } from '../../src/server/procs.js';
import { sleep, waitFor } from '../../src/util/wait.js';
import { makeDir, rmDir } from '../support/temp-dir.js';

const ROOT = path.join(import.meta.dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

before(() => {
  if (!fs.existsSync(CLI)) execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
});

/** Every CLI process started here, to be killed should a test leave one running. */
const started: Cli[] = [];

/** A `node dist/cli.js ...` process with its output (stdout and stderr, interleaved) collected. */
class Cli {
  output = '';
  code: number | null = null;
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    const take = (chunk: Buffer): void => void (this.output += chunk.toString('utf8'));
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    this.exited = new Promise((resolve) =>
      child.on('close', (code, signal) => {
        this.code = code ?? (signal ? 128 : null);
        resolve(this.code);
      }),
    );
  }

  static start(args: string[]): Cli {
    // Piped output: not a terminal, so the demo prints a line per change instead of redrawing.
    const cli = new Cli(
      spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    started.push(cli);
    return cli;
  }

  /** Waits for `pattern` in the output printed from offset `from` on; returns where the match ends. */
  async waitFor(pattern: RegExp, timeoutMs: number, from = 0): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.output.slice(from));
      if (m) return from + m.index + m[0].length;
      if (this.code !== null)
        assert.fail(`exited (${this.code}) before printing ${pattern}:\n${this.output.slice(from)}`);
      if (Date.now() > deadline)
        assert.fail(`no ${pattern} within ${timeoutMs} ms:\n${this.output.slice(from)}`);
      await sleep(50);
    }
  }

  /** Resolves with the exit code, or fails when the process takes longer than `timeoutMs`. */
  async exit(timeoutMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`still running after ${timeoutMs} ms:\n${this.output}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

async function runCli(args: string[], timeoutMs: number): Promise<Cli> {
  const cli = Cli.start(args);
  await cli.exit(timeoutMs).catch((err: unknown) => {
    cli.child.kill('SIGKILL');
    throw err;
  });
  return cli;
}

/** Live processes (other than this one) working in `dir` or naming it on their command line. */
function processesOf(dir: string): string[] {
  const real = fs.realpathSync(dir);
  const found: string[] = [];
  for (const pid of listPids()) {
    if (pid === process.pid || !isProcessAlive(pid)) continue;
    const cmdline = readProcCmdline(pid)?.join(' ').trim();
    if (cmdline === undefined) continue; // gone meanwhile
    const cwd = readProcCwd(pid) ?? '';
    if (cwd === real || cwd.startsWith(`${real}/`) || cmdline.includes(real) || cmdline.includes(dir)) {
      found.push(`${pid} (cwd ${cwd}): ${cmdline}`);
    }
  }
  return found;
}

/** The data directories of the demo in `dir`, where its state.json says they are (else where they go). */
function dataDirsOf(dir: string): string[] {
  const state = readDemoState(dir);
  return NODES.map((n) => state?.nodes[n].dataDir ?? path.join(dir, 'pg', n, 'data'));
}

function assertNothingRunsIn(dir: string): void {
  assert.deepEqual(processesOf(dir), [], `processes of the demo in ${dir} are still running`);
  assert.ok(!fs.existsSync(path.join(dir, 'pg')), 'the PostgreSQL data directories are removed');
  assert.ok(!fs.existsSync(path.join(dir, 'state.json')), 'state.json is removed with what it listed');
}

/** A node's server as the demo's keeper of that node reaches it (its conninfo holds the password). */
function serverOf(dir: string, node: NodeName): ConnTarget {
  const cfg = parse(fs.readFileSync(path.join(dir, 'keepers', `${node}.yml`), 'utf8')) as Record<
    string,
    string
  >;
  const p = parseConninfo(cfg[`${node}_conninfo`] ?? '').params;
  return {
    host: p.host ?? '',
    port: Number(p.port),
    user: p.user ?? '',
    password: p.password ?? '',
    database: p.dbname ?? '',
  };
}

async function inRecovery(dir: string, node: NodeName): Promise<boolean | null> {
  try {
    const [r] = await queryOnce<{ r: boolean }>(
      serverOf(dir, node),
      'SELECT pg_is_in_recovery() AS r',
      [],
      3000,
    );
    return r?.r ?? null;
  } catch {
    return null;
  }
}

async function statusOf(dir: string, node: NodeName): Promise<Status> {
  const url = readDemoState(dir)?.nodes[node].keeperUrl;
  const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as Status;
}

/** `primary`'s keeper sees a synchronous standby, and the standby's sees itself as that. */
async function waitWhole(dir: string, primary: NodeName, timeoutMs: number): Promise<void> {
  const standby = primary === 'node1' ? 'node2' : 'node1';
  await waitFor(
    async () => {
      const [p, s] = await Promise.all([statusOf(dir, primary), statusOf(dir, standby)]);
      return (
        p.role === 'primary' &&
        p.sync_mode === 'sync' &&
        p.local.standbys.some((x) => x.syncState === 'sync') &&
        s.role === 'standby' &&
        s.guards.synchronous_at_last_contact
      );
    },
    `${primary} to be the primary with ${standby} its synchronous standby`,
    timeoutMs,
    200,
  );
}

describe('pg-keeper demo', { timeout: 600_000 }, () => {
  let dir: string;

  let removeExitHook = (): void => {};

  const killLeftovers = (): void => {
    for (const cli of started) if (cli.code === null) cli.child.kill('SIGKILL');
    for (const child of readDemoState(dir)?.children ?? []) killRecorded(child.pid, child.start);
  };

  before(() => {
    // Searchable by all: as root, PostgreSQL and the keepers run as postgres and must reach <dir>/pg.
    dir = makeDir('pgk-demo-');
    // Should this process be interrupted, the demos it started must not outlive it, nor the
    // servers and etcd of a demo it killed with SIGKILL (after() does the same when the tests end).
    removeExitHook = onExit(() => {
      killLeftovers();
      for (const dataDir of dataDirsOf(dir)) killServerSync(dataDir);
    });
  });

  after(async () => {
    // A failed test may have left servers behind: never leave them running.
    killLeftovers();
    for (const dataDir of dataDirsOf(dir)) {
      await killServer(dataDir).catch(() => []);
      releaseStaleSharedMemory(dataDir);
    }
    removeExitHook();
    rmDir(dir);
  });

  describe('a live demo with the arbiter, driven from a second terminal', () => {
    let demo: Cli;

    before(async () => {
      demo = Cli.start(['demo', '--arbiter', '--dir', dir]);
      await demo.waitFor(/^ready: /m, 90_000);
      assert.match(demo.output, /demo kill primary --dir /, 'it says how to cause a failover');
      assert.match(demo.output, /demo partition --dir /, 'and a partition');
      assert.match(
        demo.output,
        /node1: keeper started as postgres \(pid \d+\)/,
        'the keepers run as postgres',
      );
    });

    test('partition, then heal: the standby does not promote, and the primary writes on after the window', async (t) => {
      const from = demo.output.length;
      const cut = await runCli(['demo', 'partition', '--dir', dir], 20_000);
      assert.equal(cut.code, 0, cut.output);
      assert.match(cut.output, /PARTITIONED: nothing passes between node1 and node2/);
      assert.match(cut.output, /with the arbiter, the standby cannot take the primary's lease/);
      const cutAt = Date.now();
      await waitFor(
        async () => (await statusOf(dir, 'node1')).sync_mode === 'async',
        'node1 to go async',
        20_000,
      );
      // The primary takes writes (of the demo's writer, and of this test) during the partition.
      await demo.waitFor(/WRITER: no write acknowledged for \d+ ms .*; writing to node1 now/, 20_000, from);
      const t0 = Date.now();
      await queryOnce(serverOf(dir, 'node1'), 'CREATE TABLE written_while_cut (id int)', [], 10_000);
      t.diagnostic(`node1 went async and wrote on ${t0 - cutAt} ms after the cut`);
      // Well past the window and stream_timeout: node2 stays a standby, held back by the lease.
      const until = Date.now() + 6000;
      while (Date.now() < until) {
        assert.equal(await inRecovery(dir, 'node2'), true, 'node2 was promoted during the partition');
        await sleep(250);
      }
      const s2 = await statusOf(dir, 'node2');
      assert.equal(s2.role, 'standby');
      assert.match(s2.reason ?? '', /still holds the lease/);
      assert.equal(s2.arbiter?.holder, 'node1');

      const heal = await runCli(['demo', 'heal', '--dir', dir], 20_000);
      assert.equal(heal.code, 0, heal.output);
      await waitWhole(dir, 'node1', 60_000);
      await waitFor(
        async () => (await statusOf(dir, 'node1')).arbiter?.replication === 'sync',
        '"sync" to be recorded in etcd again',
        30_000,
      );
      await demo.waitFor(/HEALED: the nodes reach each other again/, 5000, from);
      assert.doesNotMatch(demo.output.slice(from), /PROMOTED|TWO PRIMARIES/);
    });

    test('kill primary: node2 is promoted, the old primary rejoins by itself, and sync returns', async (t) => {
      const from = demo.output.length;
      const kill = await runCli(['demo', 'kill', 'primary', '--dir', dir], 20_000);
      assert.equal(kill.code, 0, kill.output);
      assert.match(kill.output, /KILLED: node1 \(the primary\)/);
      await demo.waitFor(/PROMOTED: node2 is the new primary, \d+ ms after the kill/, 30_000, from);
      await demo.waitFor(
        /WRITES: all \d+ acknowledged writes of the writer are on node2: none lost/,
        15_000,
        from,
      );
      await demo.waitFor(
        /REJOINED: node1's server rejoined by itself as the new primary's standby \((rewind|basebackup)\), \d+ ms after the kill/,
        90_000,
        from,
      );
      await demo.waitFor(
        /SYNC: node2 replicates synchronously to node1 again: the pair is whole, \d+ ms after the kill/,
        60_000,
        from,
      );
      t.diagnostic(/SYNC: .*/.exec(demo.output.slice(from))?.[0] ?? '');
      await waitWhole(dir, 'node2', 30_000);
      assert.equal(await inRecovery(dir, 'node1'), true, 'node1 is a standby');
    });

    test('demo switchover: the roles swap back, and no acknowledged write of the writer is lost', async (t) => {
      const from = demo.output.length;
      const sw = await runCli(['demo', 'switchover', '--dir', dir], 60_000);
      assert.equal(sw.code, 0, sw.output);
      assert.match(sw.output, /done in [\d.]+ s: node1 is the primary/);
      await demo.waitFor(/PROMOTED: node1 is the new primary \(planned switchover\)/, 20_000, from);
      await demo.waitFor(
        /WRITES: all \d+ acknowledged writes of the writer are on node1: none lost/,
        15_000,
        from,
      );
      const end = await demo.waitFor(
        /SWITCHED OVER in [\d.]+ s: node1 is the primary, node2 its standby; the writer's longest gap during it: (\d+ ms|under 0\.5 s)/,
        20_000,
        from,
      );
      t.diagnostic(demo.output.slice(from, end).split('\n').pop() ?? '');
      await waitWhole(dir, 'node1', 30_000);
      const acked = Number(/WRITES: all (\d+) acknowledged/.exec(demo.output.slice(from))?.[1]);
      assert.ok(acked > 100, `the writer wrote all along (${acked} writes)`);
    });

    test('Ctrl-C stops everything, etcd and the keepers included, and leaves nothing running', async () => {
      const t0 = Date.now();
      demo.child.kill('SIGINT');
      assert.equal(await demo.exit(20_000), 0, demo.output);
      assert.ok(Date.now() - t0 < 20_000);
      assert.match(demo.output, /stopping the writer, the keepers, the proxies, etcd, PostgreSQL/);
      assertNothingRunsIn(dir);
      const none = await runCli(['demo', 'partition', '--dir', dir], 10_000);
      assert.equal(none.code, 1, none.output);
      assert.match(none.output, /no running demo found/);
    });
  });

  test('a run after a demo killed with SIGKILL stops what it left running, and --once tells the story: failover, rejoin, sync', async () => {
    const demo = Cli.start(['demo', '--arbiter', '--dir', dir]);
    await demo.waitFor(/^ready: /m, 90_000);
    demo.child.kill('SIGKILL');
    await demo.exit(5000);
    const left = processesOf(dir);
    assert.ok(
      left.some((p) => p.includes('etcd')),
      `etcd outlives it:\n${left.join('\n')}`,
    );
    // Its keepers die with it (their parent-death signal): nothing acts on what it left.
    await waitFor(
      () => !processesOf(dir).some((p) => p.includes(' run --config ')),
      'its keepers to die with it',
      10_000,
    );

    const run = await runCli(['demo', '--once', '--dir', dir], 120_000);
    const out = run.output;
    assert.equal(run.code, 0, out);
    assert.match(out, /stopped etcd \(pid \d+\) left by a previous demo/);
    assert.match(out, /stopped node1's PostgreSQL \(pids [\d ]+\) left by a previous demo/);
    assert.match(out, /^ready: node1 is the primary, node2 its synchronous standby/m);
    assert.match(out, /KILLED: node1 \(the primary\): SIGKILL to \d+ PostgreSQL processes/);
    assert.match(out, /^PROMOTED: node2 is the new primary, \d+ ms after the kill$/m);
    assert.match(out, /node2 accepts writes/);
    assert.match(out, /WRITES: all \d+ acknowledged writes of the writer are on node2: none lost/);
    assert.match(out, /^REJOINED: node1 is node2's standby again, \d+ ms after the kill$/m);
    assert.match(out, /^SYNC: the pair is whole again, \d+ ms after the kill$/m);
    assert.match(out, /^after_command: ok/m);
    assert.match(
      fs.readFileSync(path.join(dir, 'keepers', 'after_command.log'), 'utf8'),
      /^PG_KEEPER_EVENT=promote$/m,
    );
    // The superuser's password is in the generated configs (mode 0600), never in the output.
    const password = serverOf(dir, 'node1').password;
    assert.ok(password && !out.includes(password), 'the password is not printed');
    assertNothingRunsIn(dir);
  });

  test('refuses a non-empty directory it did not make, and deletes nothing in it', async () => {
    const other = makeDir('pgk-demo-');
    try {
      fs.writeFileSync(path.join(other, 'precious'), 'x');
      const run = await runCli(['demo', '--once', '--dir', other], 20_000);
      assert.equal(run.code, 1, run.output);
      assert.match(run.output, /not empty and was not made by pg-keeper demo/);
      assert.deepEqual(fs.readdirSync(other), ['precious']);
    } finally {
      rmDir(other);
    }
  });
});
