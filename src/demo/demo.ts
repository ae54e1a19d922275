// `pg-keeper demo`: a real PostgreSQL primary and synchronous standby on loopback, a keeper beside each,
// and a live view of what the keepers see and do, so that a failover can be watched as it happens
// (`pg-keeper demo kill primary` from a second terminal). `--once` runs the whole story unattended:
// start, kill the primary, time the promotion, stop. Ctrl-C or SIGTERM stops everything it started.
import fs from 'node:fs';
import path from 'node:path';
import { NODES, type NodeName } from '../config/config.js';
import { formatStatus } from '../http/status-command.js';
import { queryOnce } from '../local-pair/query.js';
import { sleep } from '../util/wait.js';
import { ensurePgBin } from './install.js';
import { killCommand } from './kill.js';
import { Cancelled, DemoStack, KEEPALIVE_COUNT, KEEPALIVE_TIME_S } from './stack.js';
import {
  CLEAR_SCREEN,
  HIDE_CURSOR,
  SHOW_CURSOR,
  Tracker,
  clock,
  fetchHeartbeats,
  frame,
  painter,
  promotionLine,
  renderScreen,
  type HeartbeatCounts,
  type NodeSample,
} from './view.js';
import { readKillRecord } from './workdir.js';

export interface DemoOptions {
  prometheus: boolean;
  once: boolean;
  dir?: string | undefined;
}

const DEFAULT_DIR = '.demo';
const REDRAW_MS = 250;

const out = (line: string): void => void process.stdout.write(`${line}\n`);
const err = (line: string): void => void process.stderr.write(`pg-keeper demo: ${line}\n`);

export async function demoCommand(args: string[], opts: DemoOptions): Promise<number> {
  const dir = path.resolve(opts.dir ?? DEFAULT_DIR);
  const [sub, role, ...extra] = args;
  if (sub === 'kill') {
    if ((role !== 'primary' && role !== 'standby') || extra.length > 0) {
      err('usage: pg-keeper demo kill primary|standby [--dir DIR]');
      return 2;
    }
    return killCommand(role, dir, out);
  }
  if (sub !== undefined) {
    err(`unknown demo command "${sub}": use \`pg-keeper demo\` or \`pg-keeper demo kill primary|standby\``);
    return 2;
  }
  const code = await runDemo(dir, opts);
  // Everything is closed by now; this only guards against a forgotten handle keeping the process up.
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}

async function runDemo(dir: string, opts: DemoOptions): Promise<number> {
  const pgBin = await ensurePgBin(out, (line) => void process.stderr.write(`${line}\n`));
  if (!pgBin) return 1;

  let signalled: string | null = null;
  let wake = (): void => {};
  const stopped = new Promise<void>((resolve) => (wake = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled !== null) {
      // A second Ctrl-C: PgPair's exit hook still SIGKILLs the servers.
      err(`${signal} again: exiting at once`);
      process.exit(130);
    }
    signalled = signal;
    wake();
  };
  // SIGHUP: the terminal was closed, which must not leave servers behind either.
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  // A closed terminal or pipe must not crash the teardown that follows.
  const ignore = (): void => {};
  process.stdout.on('error', ignore);
  process.stderr.on('error', ignore);

  const stack = new DemoStack({
    dir,
    pgBin,
    prometheus: opts.prometheus,
    say: out,
    cancelled: () => signalled !== null,
  });
  let code: number;
  const tty = !opts.once && process.stdout.isTTY === true;
  try {
    await stack.start();
    await stack.waitUntilPaired();
    code = opts.once ? await once(stack, dir, stopped) : await live(stack, dir, opts, tty, stopped);
    if (code !== 0) err('failed (see above)');
  } catch (e) {
    if (e instanceof Cancelled) {
      code = opts.once ? 1 : 0;
    } else {
      err((e as Error).message);
      code = 1;
    }
  } finally {
    if (tty) process.stdout.write(SHOW_CURSOR);
  }
  if (stack.started) {
    const what = `the keepers, PostgreSQL${stack.daemons.length > 0 ? ', Prometheus, Alertmanager' : ''}`;
    out(`${signalled ? `${signalled}: ` : ''}stopping ${what}...`);
    await stack.stop();
    out(`stopped; nothing is left running. Configurations and logs are kept in ${dir}`);
  }
  for (const s of signals) process.off(s, onSignal);
  process.stdout.off('error', ignore);
  process.stderr.off('error', ignore);
  return code;
}

/**
 * Samples both keepers in this process; their heartbeat counters come from their /metrics, fetched in
 * the background after each tick of a keeper.
 */
class Sampler {
  private readonly counts = new Map<NodeName, HeartbeatCounts | null>();
  private countedTicks = '';
  private fetching = false;

  constructor(private readonly stack: DemoStack) {}

  sample(): NodeSample[] {
    const samples = NODES.map((node): NodeSample => {
      let status = null;
      try {
        status = this.stack.status(node);
      } catch {
        // keeper gone: shown as not answering
      }
      return { node, status, heartbeats: this.counts.get(node) ?? null, url: this.stack.keeper(node).url };
    });
    const ticks = samples.map((s) => s.status?.last_tick_at).join();
    if (!this.fetching && ticks !== this.countedTicks) {
      this.fetching = true;
      this.countedTicks = ticks;
      void this.refresh();
    }
    return samples;
  }

  /** Fetches the counters once, so that the first lines printed have them. */
  async prime(): Promise<void> {
    this.fetching = true;
    await this.refresh();
  }

  private async refresh(): Promise<void> {
    await Promise.all(
      NODES.map(async (n) => this.counts.set(n, await fetchHeartbeats(this.stack.keeper(n).url))),
    );
    this.fetching = false;
  }
}

function readyLine(): string {
  return 'ready: node1 is the primary, node2 its synchronous standby, and both keepers see each other';
}

/** How to run `demo kill` from a second terminal, in the form this demo was started with. */
function killHint(dir: string): string[] {
  const script = process.argv[1] ?? '';
  const dirArg = dir === path.resolve(DEFAULT_DIR) ? '' : ` --dir ${dir}`;
  let cli = 'npx pg-keeper';
  if (path.basename(script) === 'pg-keeper') cli = 'pg-keeper';
  else if (script.endsWith('cli.js')) cli = `node ${path.relative(process.cwd(), script) || script}`;
  return [
    'to cause a failover, in a second terminal (in this directory):',
    `  ${cli} demo kill primary${dirArg}`,
    `  (also: pg-keeper demo kill ..., npx pg-keeper demo kill ...; \`kill standby\` kills the standby instead)`,
  ];
}

function infoLines(stack: DemoStack, dir: string): string[] {
  const lines = [
    `rule: keepalive_time ${KEEPALIVE_TIME_S} s, keepalive_count ${KEEPALIVE_COUNT}: a node is acted upon after ${KEEPALIVE_COUNT} missed heartbeats in a row`,
  ];
  for (const node of NODES) {
    const k = stack.keeper(node);
    lines.push(`${node} keeper: ${k.url}/status  ${k.url}/metrics  (log ${path.relative(dir, k.logFile)})`);
  }
  for (const d of stack.daemons) {
    lines.push(
      d.name === 'prometheus'
        ? `Prometheus: ${d.url}/targets  ${d.url}/alerts  ${d.url}/graph`
        : `Alertmanager: ${d.url}`,
    );
  }
  lines.push(`http_token (POST /pause, /resume): ${stack.token}`);
  lines.push(`after_command appends the PG_KEEPER_* variables it gets to ${stack.files.afterCommandLog}`);
  return lines;
}

async function live(
  stack: DemoStack,
  dir: string,
  opts: DemoOptions,
  tty: boolean,
  stopped: Promise<void>,
): Promise<number> {
  const info = [
    ...infoLines(stack, dir),
    ...killHint(dir),
    'Ctrl-C stops everything and leaves nothing running',
  ];
  const tracker = new Tracker();
  const sampler = new Sampler(stack);
  await sampler.prime();
  const p = painter(tty);
  if (tty) process.stdout.write(CLEAR_SCREEN + HIDE_CURSOR);
  else {
    for (const line of info) out(line);
    out(readyLine());
  }
  let running = true;
  void stopped.then(() => (running = false));
  while (running) {
    const now = Date.now();
    const samples = sampler.sample();
    const lines = tracker.update(samples, readKillRecord(dir), now);
    if (tty) {
      const title = `pg-keeper demo   ${clock(now).slice(0, 8)}   ${dir}${opts.prometheus ? '' : '   (--prometheus: also start Prometheus)'}`;
      const screen = renderScreen(
        { title, samples, tracker, footer: info, now },
        process.stdout.columns || 100,
        process.stdout.rows || 40,
        p,
      );
      process.stdout.write(frame(screen));
    } else for (const line of lines) out(line);
    await Promise.race([sleep(REDRAW_MS), stopped]);
  }
  if (tty) out('');
  return 0;
}

/** The scripted story: kill the primary, time the promotion, check the new primary takes writes. */
async function once(stack: DemoStack, dir: string, stopped: Promise<void>): Promise<number> {
  for (const line of infoLines(stack, dir)) out(line);
  out(readyLine());
  const tracker = new Tracker();
  const sampler = new Sampler(stack);
  await sampler.prime();
  const timeline: { at: number; what: string }[] = [];
  let lastFailures = 0;
  let interrupted = false;
  void stopped.then(() => (interrupted = true));
  const poll = (): void => {
    const now = Date.now();
    const samples = sampler.sample();
    for (const line of tracker.update(samples, readKillRecord(dir), now)) out(line);
    const s2 = samples.find((s) => s.node === 'node2')?.status;
    if (s2 && s2.consecutive_failures > lastFailures) {
      const at = s2.decided_at ? Date.parse(s2.decided_at) : now;
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
      poll();
      if (check()) return;
      if (interrupted) throw new Cancelled();
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(100);
    }
  };

  poll();
  out('killing the primary (node1): SIGKILL to every process of its server');
  const kill = await stack.killServer('node1', 'primary');
  await until(() => tracker.promotion?.node === 'node2', 30_000, "node2's keeper to promote its server");
  const promotion = tracker.promotion;
  if (!promotion) return 1;
  const hookDone = (): boolean =>
    tracker.events.some((e) => e.node === 'node2' && e.event === 'after_command' && e.at >= promotion.at);
  await until(hookDone, 15_000, "node2's after_command to finish");
  // One more tick, so that the final status shows what the promoted server looks like.
  await until(
    () => {
      const s = stack.status('node2');
      return s.decided_at !== null && Date.parse(s.decided_at) > promotion.at && s.role === 'primary';
    },
    5_000,
    "node2's keeper to observe its promoted server",
  ).catch(() => {});

  const pair = stack.pair;
  let writeMs: number | null = null;
  if (pair) {
    const t0 = Date.now();
    await queryOnce(
      pair.target(pair.node2),
      'CREATE TABLE IF NOT EXISTS demo_after_failover (at timestamptz)',
    );
    await queryOnce(pair.target(pair.node2), 'INSERT INTO demo_after_failover VALUES (now())');
    writeMs = Date.now() - t0;
  }

  for (const e of tracker.events) {
    if (e.at >= kill.at) timeline.push({ at: e.at, what: `${e.node}: ${e.event} ${e.outcome}: ${e.detail}` });
  }
  timeline.sort((a, b) => a.at - b.at);
  out('');
  out('timeline (ms after the kill):');
  out(`${'0'.padStart(7)}  killed node1 (the primary): SIGKILL to ${kill.pids.length} processes`);
  for (const t of timeline) out(`${String(t.at - kill.at).padStart(7)}  ${t.what}`);
  out(promotionLine(promotion));
  if (writeMs !== null) out(`node2 accepts writes: CREATE TABLE and INSERT committed in ${writeMs} ms`);
  out('');
  for (const node of NODES) {
    out(`---- final status of ${node}'s keeper ----`);
    out(formatStatus(stack.status(node)).trimEnd());
    out('');
  }
  const hook = tracker.events.find(
    (e) => e.node === 'node2' && e.event === 'after_command' && e.at >= promotion.at,
  );
  out(`after_command: ${hook?.outcome} (${hook?.detail}); it recorded:`);
  try {
    out(fs.readFileSync(stack.files.afterCommandLog, 'utf8').trimEnd());
  } catch {
    out('(nothing)');
  }
  if (hook?.outcome !== 'ok') {
    err(`node2's after_command did not succeed: ${hook?.detail ?? 'no result'}`);
    return 1;
  }
  return 0;
}
