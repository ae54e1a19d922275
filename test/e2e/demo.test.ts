// `pg-keeper demo` as a user runs it: the built CLI (dist/cli.js), real PostgreSQL servers, two
// keepers. Checks the scripted failover (--once), `demo kill` from a second process against a demo
// running in the background, Ctrl-C, and that nothing of a demo is left running afterwards.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NODES } from '../../src/config/config.js';
import { readDemoState } from '../../src/demo/workdir.js';
import { onExit } from '../../src/local-pair/exit-hook.js';
import { isProcessAlive, listPids, readProcCmdline, readProcCwd } from '../../src/util/procfs.js';
import { killServer, killServerSync, releaseStaleSharedMemory } from '../../src/server/procs.js';
import { sleep } from '../../src/util/wait.js';
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

  async waitFor(pattern: RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.output)) {
      if (this.code !== null)
        assert.fail(`exited (${this.code}) before printing ${pattern}:\n${this.output}`);
      if (Date.now() > deadline) assert.fail(`no ${pattern} within ${timeoutMs} ms:\n${this.output}`);
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

describe('pg-keeper demo', { timeout: 120_000 }, () => {
  let dir: string;

  let removeExitHook = (): void => {};

  before(() => {
    // Searchable by all: as root, PostgreSQL runs as postgres and must reach <dir>/pg.
    dir = makeDir('pgk-demo-');
    // Should this process be interrupted, the demos it started must not outlive it, nor the
    // servers of a demo it killed with SIGKILL (after() does the same when the tests end).
    removeExitHook = onExit(() => {
      for (const cli of started) if (cli.code === null) cli.child.kill('SIGKILL');
      for (const dataDir of dataDirsOf(dir)) killServerSync(dataDir);
    });
  });

  after(async () => {
    for (const cli of started) if (cli.code === null) cli.child.kill('SIGKILL');
    // A failed test may have left servers behind: never leave them running.
    for (const dataDir of dataDirsOf(dir)) {
      await killServer(dataDir).catch(() => []);
      releaseStaleSharedMemory(dataDir);
    }
    removeExitHook();
    rmDir(dir);
  });

  test('--once fails the primary over to the standby, times it, and leaves nothing running', async () => {
    const run = await runCli(['demo', '--once', '--dir', dir], 60_000);
    const out = run.output;
    assert.equal(run.code, 0, out);
    assert.match(out, /node1: keeper started, http:\/\/127\.0\.0\.1:\d+\/status/);
    assert.match(out, /node2: keeper started, http:\/\/127\.0\.0\.1:\d+\/status/);
    assert.match(out, /^ready: node1 is the primary, node2 its synchronous standby/m);
    assert.match(out, /KILLED: node1 \(the primary\): SIGKILL to \d+ PostgreSQL processes/);
    assert.match(out, /^PROMOTED: node2 is the new primary, \d+ ms after the kill$/m);
    assert.match(out, /node2 accepts writes/);
    assert.match(out, /^after_command: ok/m);
    assert.match(fs.readFileSync(path.join(dir, 'after_command.log'), 'utf8'), /^PG_KEEPER_EVENT=promote$/m);
    // The superuser's password is in the generated configs (mode 0600), never in the output.
    const password = /password=(\S+)/.exec(fs.readFileSync(path.join(dir, 'node1.yml'), 'utf8'))?.[1];
    assert.ok(password && !out.includes(password), 'the password is not printed');
    assertNothingRunsIn(dir);
  });

  test('a second run in the same directory, failed over by `demo kill primary`, stops on SIGINT', async () => {
    const demo = Cli.start(['demo', '--dir', dir]);
    await demo.waitFor(/^ready: /m, 40_000);
    assert.match(demo.output, /demo kill primary --dir /, 'it says how to cause a failover');

    const kill = await runCli(['demo', 'kill', 'primary', '--dir', dir], 20_000);
    assert.equal(kill.code, 0, kill.output);
    assert.match(kill.output, /KILLED: node1 \(the primary\)/);
    await demo.waitFor(/PROMOTED: node2 is the new primary, \d+ ms after the kill/, 20_000);

    const t0 = Date.now();
    demo.child.kill('SIGINT');
    assert.equal(await demo.exit(8000), 0, demo.output);
    assert.ok(Date.now() - t0 < 8000);
    assertNothingRunsIn(dir);

    const none = await runCli(['demo', 'kill', 'primary', '--dir', dir], 10_000);
    assert.equal(none.code, 1, none.output);
    assert.match(none.output, /no running demo found/);
  });

  test('a run after a demo killed with SIGKILL stops what that one left running', async () => {
    const demo = Cli.start(['demo', '--dir', dir]);
    await demo.waitFor(/^ready: /m, 40_000);
    demo.child.kill('SIGKILL');
    await demo.exit(5000);
    assert.notDeepEqual(processesOf(dir), [], 'its PostgreSQL servers outlive it');

    const run = await runCli(['demo', '--once', '--dir', dir], 60_000);
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /stopped node1's PostgreSQL \(pids [\d ]+\) left by a previous demo/);
    assert.match(run.output, /^PROMOTED: node2/m);
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
