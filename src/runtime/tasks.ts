// Long work beside the loop, one at a time: a rejoin (a base backup may take minutes) or
// the primary's side of a switchover. The loop goes on ticking meanwhile; the task's step is
// part of the next observation (so the policy takes no other action), and its outcome goes
// back to the policy like any action's.

import type { Logger } from 'pino';
import type { LocalAction, Outcome, TaskView } from '../policy/types.js';
import { errorText } from '../util/errors.js';
import type { Clock } from './clock.js';
import type { ServerPort } from './ports.js';

type Progress = (step: string, detail: string) => void;

export class Tasks {
  private current: TaskView | null = null;

  constructor(
    private readonly o: {
      server: ServerPort | undefined;
      clock: Clock;
      log: Pick<Logger, 'info'>;
      /** The running task's step changed, or it ended (null). */
      changed: (task: TaskView | null) => void;
      /** It ended: its outcome, for the policy and the record. */
      ended: (outcome: Outcome) => void;
    },
  ) {}

  get running(): TaskView | null {
    return this.current;
  }

  /** Turn the local server into the peer's standby. False when it cannot start (no server, one running). */
  rejoin(): boolean {
    const server = this.o.server;
    return this.run('rejoin', { kind: 'rejoin' }, (progress) => server?.rejoin(progress));
  }

  /** Hand the primary over; `step` hears each step too (the switchover's report). */
  switchover(id: string, step: Progress): boolean {
    const server = this.o.server;
    return this.run('switchover', { kind: 'switchover', id }, async (progress) => {
      await server?.switchover(id, (s, d) => {
        progress(s, d);
        step(s, d);
      });
      return undefined;
    });
  }

  private run(
    kind: TaskView['kind'],
    action: Extract<LocalAction, { kind: 'rejoin' | 'switchover' }>,
    work: (progress: Progress) => Promise<{ method: Outcome['method'] } | undefined> | undefined,
  ): boolean {
    if (!this.o.server || this.current) return false;
    const startedAt = this.o.clock.now();
    const began = this.o.clock.monotonic();
    const set = (task: TaskView | null): void => {
      this.current = task;
      this.o.changed(task);
    };
    set({ kind, step: 'starting', detail: '', startedAt });
    const progress: Progress = (step, detail) => {
      set({ kind, step, detail, startedAt });
      this.o.log.info({ event: `${kind}-step`, step, detail }, `${kind}: ${step}: ${detail}`);
    };
    const end = (r: { method?: Outcome['method'] } | undefined, error: string | null): void => {
      set(null);
      this.o.ended({
        action,
        ok: error === null,
        at: this.o.clock.now(),
        durationMs: this.o.clock.monotonic() - began,
        ...(error === null ? {} : { error }),
        ...(r?.method ? { method: r.method } : {}),
      });
    };
    Promise.resolve()
      .then(() => work(progress))
      .then(
        (r) => end(r ?? undefined, null),
        (err: unknown) => end(undefined, errorText(err)),
      );
    return true;
  }
}
