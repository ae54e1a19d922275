// `pg-keeper demo`: a real PostgreSQL primary and synchronous standby on loopback, a keeper process
// beside each managing its server (auto_rejoin), a writer writing all the time, optionally etcd as the
// arbiter (--arbiter), and a live view of what the keepers see and do. From a second terminal,
// `demo kill primary`, `demo partition` / `demo heal` and `demo switchover` make something happen.
// `--once` runs the story unattended: kill the primary, time the promotion and the rejoin, stop.
// Ctrl-C or SIGTERM stops everything it started.
import path from 'node:path';
import { NODES } from '../config/config.js';
import { sleep } from '../util/wait.js';
import { ensurePgBin } from './install.js';
import {
  DEFAULT_DIR,
  demoCommandLine,
  demoSwitchoverCommand,
  killCommand,
  networkCommand,
} from './remote.js';
import { once } from './once.js';
import { Cancelled, DemoStack, KEEPALIVE_COUNT, KEEPALIVE_TIME_S, LEASE_TTL_S } from './stack.js';
import { clock } from './tracker.js';
import { CLEAR_SCREEN, HIDE_CURSOR, SHOW_CURSOR, frame, painter, renderScreen } from './view.js';
import { Watch, readyLine } from './watch.js';

export interface DemoOptions {
  prometheus: boolean;
  once: boolean;
  arbiter: boolean;
  dir?: string | undefined;
}

const REDRAW_MS = 250;
const USAGE =
  'usage: pg-keeper demo [--arbiter] [--prometheus] [--once] [--dir DIR]\n' +
  '       pg-keeper demo kill primary|standby | partition | heal | switchover [--dir DIR]';

const out = (line: string): void => void process.stdout.write(`${line}\n`);
const err = (line: string): void => void process.stderr.write(`pg-keeper demo: ${line}\n`);

export async function demoCommand(args: string[], opts: DemoOptions): Promise<number> {
  const dir = path.resolve(opts.dir ?? DEFAULT_DIR);
  const [sub, arg, ...extra] = args;
  switch (sub) {
    case undefined: {
      const code = await runDemo(dir, opts);
      // Everything is closed by now; this only guards against a forgotten handle keeping the process up.
      setTimeout(() => process.exit(code), 2000).unref();
      return code;
    }
    case 'kill':
      if ((arg !== 'primary' && arg !== 'standby') || extra.length > 0) break;
      return killCommand(arg, dir, out);
    case 'partition':
    case 'heal':
      if (arg !== undefined) break;
      return networkCommand(sub === 'partition' ? 'partitioned' : 'connected', dir, out);
    case 'switchover':
      if (arg !== undefined) break;
      return demoSwitchoverCommand(dir, out);
    default:
      err(`unknown demo command "${sub}"`);
  }
  err(USAGE);
  return 2;
}

async function runDemo(dir: string, opts: DemoOptions): Promise<number> {
  const pgBin = await ensurePgBin(out, (line) => void process.stderr.write(`${line}\n`));
  if (!pgBin) return 1;

  let signalled: string | null = null;
  let wake = (): void => {};
  const stopped = new Promise<void>((resolve) => (wake = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled !== null) {
      // A second Ctrl-C: the exit hooks still SIGKILL the servers and the children.
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
    arbiter: opts.arbiter,
    say: out,
    cancelled: () => signalled !== null,
  });
  let code: number;
  const tty = !opts.once && process.stdout.isTTY === true;
  try {
    await stack.start();
    const watch = new Watch(stack, dir, tty ? () => {} : out);
    await watch.untilReady(() => signalled !== null);
    code = opts.once
      ? await once(stack, watch, infoLines(stack, dir), stopped)
      : await live(stack, watch, dir, opts, tty, stopped);
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
    const what = [
      'the writer',
      'the keepers',
      ...(stack.daemons.length > 0 ? ['Prometheus, Alertmanager'] : []),
      'the proxies',
      ...(stack.etcd ? ['etcd'] : []),
      'PostgreSQL',
    ].join(', ');
    out(`${signalled ? `${signalled}: ` : ''}stopping ${what}...`);
    await stack.stop();
    out(
      stack.tempRoot
        ? `stopped; nothing is left running. Logs are kept in ${dir}; the keepers' configurations went with ${stack.tempRoot}`
        : `stopped; nothing is left running. Configurations and logs are kept in ${dir}`,
    );
  }
  for (const s of signals) process.off(s, onSignal);
  process.stdout.off('error', ignore);
  process.stderr.off('error', ignore);
  return code;
}

/** How to make things happen from a second terminal, in the form this demo was started with. */
function hints(dir: string): string[] {
  const width = Math.max(
    ...['kill primary', 'switchover', 'partition'].map((s) => demoCommandLine(dir, s).length),
  );
  const cmd = (sub: string): string => demoCommandLine(dir, sub).padEnd(width + 2);
  return [
    'to watch the keepers at work, in a second terminal (in this directory):',
    `  ${cmd('kill primary')}kill the primary: failover, then the old primary rejoins by itself`,
    `  ${cmd('switchover')}a planned switchover: the roles swap, no acknowledged write is lost`,
    `  ${cmd('partition')}cut the network between the nodes (\`demo heal\` restores it)`,
    '  (`demo kill standby` kills the standby; `pg-keeper demo ...` and `npx pg-keeper demo ...` work too)',
  ];
}

export function infoLines(stack: DemoStack, dir: string): string[] {
  const lines = [
    `rule: keepalive_time ${KEEPALIVE_TIME_S} s, keepalive_count ${KEEPALIVE_COUNT}: a node is acted upon after ${KEEPALIVE_COUNT} missed heartbeats in a row`,
    'the keepers manage their servers (data_directory, auto_rejoin: true): an old primary rejoins by itself',
  ];
  for (const node of NODES) {
    const k = stack.keeper(node);
    lines.push(
      `${node} keeper: ${k.url}/status  ${k.url}/metrics  (log ${path.relative(dir, k.logFile)}, config ${path.relative(dir, k.configFile)})`,
    );
  }
  lines.push(
    stack.etcd
      ? `arbiter: etcd ${stack.etcd.url} (etcd_lease_ttl ${LEASE_TTL_S} s): the standby promotes only after taking the primary's lease`
      : 'arbiter: none (two-node mode); `pg-keeper demo --arbiter` adds etcd, which makes a partition safe',
  );
  for (const d of stack.daemons) {
    lines.push(
      d.name === 'prometheus'
        ? `Prometheus: ${d.url}/targets  ${d.url}/alerts  ${d.url}/graph`
        : `Alertmanager: ${d.url}`,
    );
  }
  lines.push(
    `http_token (POST /pause, /resume, /switchover): ${stack.token} (also in ${path.relative(dir, stack.files.tokenFile)})`,
  );
  lines.push(`after_command appends the PG_KEEPER_* variables it gets to ${stack.files.afterCommandLog}`);
  return lines;
}

async function live(
  stack: DemoStack,
  watch: Watch,
  dir: string,
  opts: DemoOptions,
  tty: boolean,
  stopped: Promise<void>,
): Promise<number> {
  const info = [
    ...infoLines(stack, dir),
    ...hints(dir),
    'Ctrl-C stops everything and leaves nothing running',
  ];
  const p = painter(tty);
  if (tty) process.stdout.write(CLEAR_SCREEN + HIDE_CURSOR);
  else {
    for (const line of info) out(line);
    out(readyLine());
  }
  let running = true;
  void stopped.then(() => (running = false));
  while (running) {
    const started = Date.now();
    const sample = await watch.step();
    if (tty) {
      const mode = stack.etcd ? 'arbiter: etcd' : 'two-node mode (--arbiter: with etcd)';
      const title = `pg-keeper demo   ${clock(sample.now).slice(0, 8)}   ${dir}   ${mode}${opts.prometheus ? '' : '   (--prometheus: also start Prometheus)'}`;
      const screen = renderScreen(
        { title, sample, tracker: watch.tracker, footer: info },
        process.stdout.columns || 100,
        process.stdout.rows || 40,
        p,
      );
      process.stdout.write(frame(screen));
    }
    await Promise.race([sleep(Math.max(0, REDRAW_MS - (Date.now() - started))), stopped]);
  }
  if (tty) out('');
  return 0;
}
