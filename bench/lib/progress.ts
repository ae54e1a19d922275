// A one-line progress bar on stderr: runs done / total, elapsed, ETA and what is happening now.
//
// On a terminal the line is redrawn in place (and every second, so the ETA counts down); when
// stderr is a file or a pipe, one plain line is printed per finished run instead, so that logs of
// CI jobs stay readable. The ETA is the mean duration of the finished runs times the runs left,
// minus the time already spent on the current one.

const BAR_WIDTH = 24;

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private readonly startedAt = Date.now();
  private lastDoneAt = Date.now();
  private done = 0;
  private phase = '';
  private drawn = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly total: number,
    private readonly title: string,
  ) {
    if (this.tty) {
      this.timer = setInterval(() => this.render(), 1000);
      this.timer.unref();
    }
    this.render();
  }

  /** What the current run is doing (shown after the bar). */
  setPhase(phase: string): void {
    this.phase = phase;
    this.render();
  }

  /** One more run finished. */
  runDone(note = ''): void {
    this.done += 1;
    this.lastDoneAt = Date.now();
    this.phase = '';
    if (!this.tty) {
      process.stderr.write(
        `${this.title}: ${this.done}/${this.total} runs done, elapsed ${formatDuration(Date.now() - this.startedAt)}, ETA ${this.eta()}${note ? `; ${note}` : ''}\n`,
      );
    }
    this.render();
  }

  /** A message above the bar (the bar is redrawn under it). */
  log(message: string): void {
    this.clear();
    process.stderr.write(`${message}\n`);
    this.render();
  }

  /** Remove the bar for good (before printing the report, or on exit). */
  finish(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.clear();
  }

  private eta(): string {
    if (this.done === 0) return '--';
    if (this.done >= this.total) return '0s';
    const perRun = (this.lastDoneAt - this.startedAt) / this.done;
    const left = perRun * (this.total - this.done) - (Date.now() - this.lastDoneAt);
    return formatDuration(Math.max(0, left));
  }

  private clear(): void {
    if (this.tty && this.drawn) process.stderr.write('\r\x1b[2K');
    this.drawn = false;
  }

  private render(): void {
    if (!this.tty) return;
    const filled = Math.round((this.done / Math.max(1, this.total)) * BAR_WIDTH);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}`;
    const elapsed = formatDuration(Date.now() - this.startedAt);
    let line = `${this.title} [${bar}] ${this.done}/${this.total} runs  elapsed ${elapsed}  ETA ${this.eta()}`;
    if (this.phase) line += `  ${this.phase}`;
    const width = process.stderr.columns || 120;
    if (line.length > width - 1) line = `${line.slice(0, width - 2)}…`;
    process.stderr.write(`\r\x1b[2K${line}`);
    this.drawn = true;
  }
}
