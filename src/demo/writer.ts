// The demo's application: one small writer that inserts a numbered row ten times a second into
// whichever server takes it, straight to the server (not through the demo's proxies: a client is not
// on the path between the nodes), so that a failover, a partition or a switchover shows as a gap in
// its writes. It remembers every write a server acknowledged, and can check that a server has them
// all: what "no acknowledged write lost" means, asked of the server itself.
//
// One write at a time, on a kept connection per server; each write within a deadline (a commit that
// waits for a lost synchronous standby waits up to that long). After an error it turns to the other
// server for the next write; a standby refuses at once, so during a failover it alternates between
// the two every RETRY_MS until one of them is a primary again.
import type { NodeName } from '../config/config.js';
import { PgSession } from '../postgres/session.js';
import type { ConnTarget } from '../local-pair/query.js';
import { errorText } from '../util/errors.js';

export const WRITES_TABLE = 'demo_writes';
export const CREATE_WRITES_TABLE = `CREATE TABLE IF NOT EXISTS ${WRITES_TABLE} (seq bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`;

const INTERVAL_MS = 100;
const RETRY_MS = 50;
/** Longer than the demo's window (3 s): a commit held by a lost standby is waited for, not abandoned. */
const DEADLINE_MS = 6000;
/** Gaps shorter than this are the writer's own pace, not news. */
export const NOTABLE_GAP_MS = 500;
const KEPT_GAPS = 50;

const other = (n: NodeName): NodeName => (n === 'node1' ? 'node2' : 'node1');

export interface Gap {
  /** Wall-clock ms of the acknowledgement before the gap, and of the one that ended it. */
  from: number;
  to: number;
  ms: number;
  /** The server that acknowledged the write that ended the gap. */
  node: NodeName;
}

/** The time between consecutive acknowledgements: the longest one, and the recent notable ones. */
export class GapMeter {
  lastAckAt: number | null = null;
  longest: Gap | null = null;
  readonly notable: Gap[] = [];

  /** Records an acknowledgement; returns the gap it ended when that one is notable. */
  ack(at: number, node: NodeName): Gap | null {
    const from = this.lastAckAt;
    this.lastAckAt = at;
    if (from === null) return null;
    const gap: Gap = { from, to: at, ms: at - from, node };
    if (!this.longest || gap.ms > this.longest.ms) this.longest = gap;
    if (gap.ms < NOTABLE_GAP_MS) return null;
    this.notable.push(gap);
    if (this.notable.length > KEPT_GAPS) this.notable.shift();
    return gap;
  }

  /** How long since the last acknowledgement. */
  current(now: number): number | null {
    return this.lastAckAt === null ? null : now - this.lastAckAt;
  }
}

/** The longest of `gaps` that overlaps [from, to], or null when there is none. */
export function longestWithin(gaps: readonly Gap[], from: number, to: number): Gap | null {
  let found: Gap | null = null;
  for (const g of gaps) if (g.to >= from && g.from <= to && (!found || g.ms > found.ms)) found = g;
  return found;
}

export interface WriterView {
  acked: number;
  ackedBy: Record<NodeName, number>;
  /** Where the next write goes. */
  target: NodeName;
  lastAckAt: number | null;
  /** Since the last acknowledgement, while it is longer than a notable gap. */
  waitingMs: number | null;
  longest: Gap | null;
  lastError: string | null;
}

export interface WriteCheck {
  node: NodeName;
  at: number;
  checked: number;
  missing: number[];
}

export class Writer {
  readonly gaps = new GapMeter();
  /** Every acknowledged sequence number, in order (ten a second: 36,000 numbers an hour). */
  readonly acked: number[] = [];
  readonly ackedBy: Record<NodeName, number> = { node1: 0, node2: 0 };
  /** Called with each notable gap once a write ends it. */
  onGap: (gap: Gap) => void = () => {};
  #next = 1;
  #target: NodeName = 'node1';
  #lastError: string | null = null;
  #stopped = false;
  #wake: () => void = () => {};
  #loop: Promise<void> | null = null;
  readonly #sessions: Record<NodeName, PgSession>;

  constructor(targets: Record<NodeName, ConnTarget>) {
    const session = (n: NodeName): PgSession =>
      new PgSession(
        {
          host: targets[n].host,
          port: targets[n].port,
          user: targets[n].user,
          password: targets[n].password,
          database: targets[n].database,
          application_name: 'pg-keeper-demo-writer',
        },
        `${n} (${targets[n].host}:${targets[n].port})`,
      );
    this.#sessions = { node1: session('node1'), node2: session('node2') };
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Resolves once the write in flight has ended (within its deadline). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake();
    await this.#loop;
    for (const s of Object.values(this.#sessions)) s.close();
  }

  view(now: number): WriterView {
    const waiting = this.gaps.current(now);
    return {
      acked: this.acked.length,
      ackedBy: { ...this.ackedBy },
      target: this.#target,
      lastAckAt: this.gaps.lastAckAt,
      waitingMs: waiting !== null && waiting >= NOTABLE_GAP_MS ? waiting : null,
      longest: this.gaps.longest,
      lastError: this.#lastError,
    };
  }

  /** Which acknowledged writes `node`'s server lacks: asked of the server, on a connection of its own. */
  async check(node: NodeName, target: ConnTarget): Promise<WriteCheck> {
    const seqs = [...this.acked];
    const s = new PgSession(
      { ...target, application_name: 'pg-keeper-demo-check' },
      `${node} (${target.host}:${target.port})`,
    );
    try {
      const rows = await s.query<{ seq: string }>(
        `SELECT s AS seq FROM unnest($1::bigint[]) AS s
          WHERE NOT EXISTS (SELECT 1 FROM ${WRITES_TABLE} w WHERE w.seq = s) ORDER BY s`,
        [seqs],
        10_000,
      );
      return { node, at: Date.now(), checked: seqs.length, missing: rows.map((r) => Number(r.seq)) };
    } finally {
      s.close();
    }
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const started = Date.now();
      const ok = await this.#write();
      const rest = (ok ? INTERVAL_MS : RETRY_MS) - (Date.now() - started);
      if (rest > 0 && !this.#stopped) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, rest);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  async #write(): Promise<boolean> {
    const node = this.#target;
    const seq = this.#next++;
    try {
      await this.#sessions[node].query(`INSERT INTO ${WRITES_TABLE} (seq) VALUES ($1)`, [seq], DEADLINE_MS);
    } catch (err) {
      // Not acknowledged: it may or may not have committed, and it is never counted as lost.
      this.#lastError = `${node}: ${errorText(err)}`;
      this.#target = other(node);
      return false;
    }
    this.acked.push(seq);
    this.ackedBy[node] += 1;
    this.#lastError = null;
    const gap = this.gaps.ack(Date.now(), node);
    if (gap) this.onGap(gap);
    return true;
  }
}
