// The demo's screen, redrawn in place about four times a second in a terminal: both keepers, the
// network between the nodes, the arbiter, the writer, the events and what they meant. A pure function
// of one sample and the tracker (src/demo/tracker.ts), which also gives the line-per-change output of a
// pipe, a log or `--once`.
import {
  arbiterLine,
  eventLine,
  networkLine,
  secondsUntilAction,
  writerLine,
  type DemoSample,
  type NodeSample,
  type Tracker,
} from './tracker.js';

const ESC = '\x1b[';
// eslint-disable-next-line no-control-regex -- matching terminal escape sequences is the point
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export interface Painter {
  bold(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  dim(s: string): string;
}

export function painter(color: boolean): Painter {
  const wrap =
    (code: string) =>
    (s: string): string =>
      color ? `${ESC}${code}m${s}${ESC}0m` : s;
  return { bold: wrap('1'), red: wrap('31'), green: wrap('32'), yellow: wrap('33'), dim: wrap('2') };
}

/** Cuts a line to `width` visible characters, keeping escape sequences whole. */
export function fit(line: string, width: number): string {
  if (line.replace(ANSI, '').length <= width) return line;
  let out = '';
  let visible = 0;
  for (let i = 0; i < line.length;) {
    ANSI.lastIndex = i;
    const m = ANSI.exec(line);
    if (m && m.index === i) {
      out += m[0];
      i += m[0].length;
      continue;
    }
    if (visible >= width - 1) break;
    out += line[i];
    visible += 1;
    i += 1;
  }
  return `${out}…${ESC}0m`;
}

/** Splits text into lines of at most `width` characters at spaces; at most `max` lines. */
function wrap(text: string, width: number, max: number): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of text.split(' ')) {
    if (current && current.length + 1 + word.length > width) {
      lines.push(current);
      current = word;
    } else current = current ? `${current} ${word}` : word;
  }
  if (current) lines.push(current);
  return lines.length > max ? [...lines.slice(0, max - 1), `${lines.slice(max - 1).join(' ')}`] : lines;
}

export interface Screen {
  title: string;
  sample: DemoSample;
  tracker: Tracker;
  footer: string[];
}

function nodeBlock(sample: NodeSample, now: number, width: number, p: Painter): string[] {
  const s = sample.status;
  const links = `${sample.url}/status   ${sample.url}/metrics`;
  if (!s) return [`${p.bold(sample.node)}  ${p.red('keeper not answering')}`, `  http        ${links}`];
  const role =
    s.role === 'primary' ? p.green('PRIMARY') : s.role === 'standby' ? p.yellow('STANDBY') : p.red('UNKNOWN');
  const server = s.local.up
    ? `server up${s.local.timeline !== null ? `, timeline ${s.local.timeline}` : ''}`
    : p.red('server DOWN');
  const peer = s.peer_reachable
    ? `peer ${s.peer} reachable (${s.peer_role})`
    : p.red(`peer ${s.peer} UNREACHABLE`);
  const hb = sample.heartbeats;
  const bar = '#'.repeat(Math.min(s.consecutive_failures, s.keepalive_count)).padEnd(s.keepalive_count, '.');
  const inRow = `[${bar}] ${s.consecutive_failures}/${s.keepalive_count} in a row`;
  const left = secondsUntilAction(s, now);
  const action = left === null ? '-' : p.red(`${left.toFixed(1)} s if failures go on`);
  const lines = [
    `${p.bold(s.node)}  ${role}  replication ${s.sync_mode === 'unknown' ? '-' : s.sync_mode}   ${server}   ${peer}${s.paused ? p.red('   PAUSED') : ''}`,
    `  heartbeats  ok ${hb?.ok ?? '?'}  failed ${hb?.failed ?? '?'}   ${s.consecutive_failures > 0 ? p.red(inRow) : inRow}   action in ${action}`,
  ];
  const reason = wrap(s.reason ?? '-', Math.max(20, width - 14), 2);
  reason.forEach((line, i) => lines.push(`  ${i === 0 ? 'reason' : ''}`.padEnd(14) + line));
  if (s.task) lines.push(p.yellow(`  ${s.task.kind.padEnd(12)}${s.task.step}: ${s.task.detail}`));
  lines.push(`  http        ${p.dim(links)}`);
  if (s.peer_is_primary) lines.push(p.red('  TWO PRIMARIES: both servers accept writes'));
  return lines;
}

/** The network, the arbiter and the writer: what happens between the nodes and to the application. */
function pairBlock(sample: DemoSample, width: number, p: Painter): string[] {
  const lines: string[] = [];
  const indent = (text: string, color: (s: string) => string = (x) => x): void => {
    wrap(text, Math.max(30, width - 10), 3).forEach((l, i) =>
      lines.push(color(i === 0 ? l : `          ${l}`)),
    );
  };
  indent(networkLine(sample), sample.network?.state === 'partitioned' ? p.red : (x) => x);
  indent(arbiterLine(sample), sample.arbiter === null ? p.dim : (x) => x);
  indent(writerLine(sample), sample.writer?.waitingMs !== null ? p.red : (x) => x);
  return lines;
}

const NOTE_COLOR: [RegExp, keyof Painter][] = [
  [/ (PROMOTED|REJOINED|SYNC|SWITCHED OVER|HEALED|LEASE):|WRITES: all/, 'green'],
  [/ (WRITER|SWITCHOVER):/, 'yellow'],
];

/** The whole screen as text: redrawn in place about 4 times a second. */
export function renderScreen(screen: Screen, width: number, height: number, p: Painter): string {
  const { sample } = screen;
  const lines: string[] = [p.bold(screen.title), ''];
  for (const n of sample.nodes) lines.push(...nodeBlock(n, sample.now, width, p), '');
  lines.push(...pairBlock(sample, width, p), '');
  const notes = screen.tracker.notes.slice(-5).map((n) => {
    const color = NOTE_COLOR.find(([re]) => re.test(n))?.[1] ?? 'red';
    return p[color](n);
  });
  const MIN_EVENTS = 3;
  // A short terminal keeps the footer's last lines (how to make something happen), not the first.
  const footerRoom = Math.max(0, height - lines.length - notes.length - MIN_EVENTS - 4);
  const footer = screen.footer.slice(Math.max(0, screen.footer.length - footerRoom));
  const room = Math.max(MIN_EVENTS, height - lines.length - footer.length - notes.length - 4);
  lines.push(p.bold('events'));
  const events = screen.tracker.events.slice(-room);
  if (events.length === 0) lines.push(p.dim('  (none yet)'));
  for (const e of events) {
    const line = `  ${eventLine(e)}`;
    lines.push(e.outcome === 'failed' ? p.red(line) : e.outcome === 'vetoed' ? p.yellow(line) : line);
  }
  if (notes.length > 0) lines.push('', ...notes);
  lines.push('', ...footer);
  return lines.map((l) => fit(l, width)).join('\n');
}

/** Cursor home, the frame with each line cleared to its end, the rest of the screen cleared. */
export function frame(text: string): string {
  return `${ESC}H${text.split('\n').join(`${ESC}K\n`)}${ESC}K${ESC}J`;
}

export const HIDE_CURSOR = `${ESC}?25l`;
export const SHOW_CURSOR = `${ESC}?25h`;
export const CLEAR_SCREEN = `${ESC}2J${ESC}H`;
