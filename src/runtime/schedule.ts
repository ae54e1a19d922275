// The tick schedule: tick n is due at start + n × period on a monotonic clock, whatever the
// previous tick took, so the period does not drift with the poll's own duration (pg_keeper
// slept, then polled). Ticks never overlap: the next is scheduled when the last one ends,
// and slots that passed while a long action ran are skipped rather than fired in a burst.

import type { Clock } from './clock.js';

export class TickSchedule {
  private epoch = 0;
  private slot = 0;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = true;
  private again = false;

  /** `late`: how many ms after its slot a scheduled tick started (a starved event loop shows here). */
  constructor(
    private readonly clock: Clock,
    private period: number,
    private readonly tick: () => Promise<void>,
    private readonly late: (ms: number) => void = () => {},
  ) {}

  start(): void {
    this.stopped = false;
    this.restartAt(this.clock.monotonic());
  }

  /** A new period takes effect from now: slot 0 is due at once. */
  setPeriod(period: number): void {
    if (period === this.period) return;
    this.period = period;
    if (!this.stopped) this.restartAt(this.clock.monotonic());
  }

  /** A tick as soon as possible (right after the one running, if any), without moving the schedule. */
  soon(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.slot = Math.max(0, this.slot - 1);
    this.run();
  }

  /** Stop; wait (at most `graceMs`) for a tick in progress. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.running) await Promise.race([this.running, new Promise((r) => setTimeout(r, graceMs))]);
  }

  private restartAt(now: number): void {
    this.epoch = now;
    this.slot = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.running) this.next();
  }

  private next(): void {
    if (this.stopped) return;
    const now = this.clock.monotonic();
    // The millisecond of slack lets slot 0 run at start instead of one period later.
    this.slot = Math.max(this.slot, Math.ceil((now - this.epoch - 1) / this.period));
    const due = this.epoch + this.slot * this.period;
    this.slot += 1;
    this.timer = setTimeout(
      () => {
        this.late(Math.max(0, this.clock.monotonic() - due));
        this.run();
      },
      Math.max(0, due - now),
    );
  }

  private run(): void {
    this.timer = null;
    this.running = this.tick().finally(() => {
      this.running = null;
      if (this.again && !this.stopped) {
        this.again = false;
        this.run();
      } else this.next();
    });
  }
}
