// The application: inserts uniquely numbered rows as fast as is reasonable into whichever server
// accepts writes, and remembers, for every id, when it was sent, whether and when it was
// acknowledged, by which server, and on which timeline. An unacknowledged write is never counted as
// lost: it may or may not have committed.
//
// Two loops share one id counter:
//   main   every ~15 ms, one write at a time, to the server that took the last write; on an error
//          or after a 2 s deadline it turns to the other server for the next id.
//   probe  every 200 ms, one write to the server the main loop is NOT using (1 s deadline). A
//          healthy standby refuses it at once; a second primary accepts it, which is how two
//          servers accepting writes at the same moment become visible even while the main loop
//          is happy where it is.
//
// With `cancelAfterMs` (opt-in, `npm run chaos -- --cancel`), a third loop:
//   cancel every 200 ms, one write to the server the main loop uses; if it is not answered within
//          cancelAfterMs, the client cancels it (pg_cancel_backend from a second connection, as a
//          driver's query timeout or a person's Ctrl-C would) and takes what the server answers.
//          PostgreSQL answers a commit cancelled while it waits for the synchronous standby with
//          success (and a warning): such a write counts as acknowledged, as the client sees it.
//
// Each server has its own kept connection per loop (TCP, straight to the server, not through the
// proxies: the application is not on the path between the nodes). A deadline destroys the socket,
// as queryOnce does, so a frozen or black-holed server cannot hold a loop.

import net from 'node:net';
import pg from 'pg';
import type { NodeName } from '../../src/config/config.js';
import type { ConnTarget } from '../../src/local-pair/query.js';

export interface WriteRecord {
  id: number;
  loop: 'main' | 'probe' | 'cancel';
  /** Where it was sent; when acknowledged, also who acknowledged it. */
  node: NodeName;
  sentAt: number;
  /** Wall-clock ms of the acknowledgement; null when not acknowledged (error, deadline, stopped). */
  ackAt: number | null;
  /** Timeline of the server that acknowledged it (from its current WAL file name). */
  timeline: number | null;
  error: string | null;
  /** cancel loop: the client cancelled it before the answer came. */
  cancelled?: boolean;
}

const INSERT_SQL =
  'INSERT INTO chaos_writes (id, node) VALUES ($1, $2) ' +
  "RETURNING ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int AS tl";

export const CREATE_TABLE_SQL =
  'CREATE TABLE IF NOT EXISTS chaos_writes (id bigint PRIMARY KEY, node text NOT NULL, at timestamptz NOT NULL DEFAULT now())';

const other = (n: NodeName): NodeName => (n === 'node1' ? 'node2' : 'node1');

/** One kept connection whose every call (connect included) ends within its deadline. */
class Conn {
  #client: pg.Client | null = null;
  #socket: net.Socket | null = null;

  constructor(private readonly target: ConnTarget) {}

  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[], timeoutMs: number): Promise<R[]> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.close();
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    const work = (async () => {
      const client = this.#client ?? (await this.#connect());
      return (await client.query<R>(sql, params)).rows;
    })();
    work.catch(() => {}); // may fail after the deadline already won
    try {
      return await Promise.race([work, expired]);
    } catch (err) {
      this.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = null;
    this.#client = null;
    this.#pid = null;
  }

  #pid: number | null = null;

  /** The server process of this connection (connecting first if needed). */
  async backendPid(timeoutMs: number): Promise<number> {
    if (this.#pid === null) {
      const [r] = await this.query<{ pid: number }>('SELECT pg_backend_pid() AS pid', [], timeoutMs);
      this.#pid = r?.pid ?? null;
    }
    if (this.#pid === null) throw new Error('no backend pid');
    return this.#pid;
  }

  async #connect(): Promise<pg.Client> {
    const socket = new net.Socket();
    const client = new pg.Client({
      ...this.target,
      application_name: 'chaos-workload',
      stream: () => socket,
    });
    client.on('error', () => {
      if (this.#client === client) this.close();
    });
    this.#socket = socket;
    await client.connect();
    if (this.#socket !== socket) {
      socket.destroy();
      throw new Error('connection closed while connecting');
    }
    this.#client = client;
    return client;
  }
}

export interface WorkloadOptions {
  targets: Record<NodeName, ConnTarget>;
  /** Where the first write goes. */
  first: NodeName;
  intervalMs?: number;
  probeIntervalMs?: number;
  deadlineMs?: number;
  probeDeadlineMs?: number;
  /** The cancel loop: how long a write waits before the client cancels it; absent: no such loop. */
  cancelAfterMs?: number;
}

export class Workload {
  readonly records: WriteRecord[] = [];
  #nextId = 1;
  #current: NodeName;
  #stopped = false;
  readonly #wakers = new Set<() => void>();
  #loops: Promise<void>[] = [];
  readonly #conns: Record<'main' | 'probe' | 'cancel' | 'canceller', Record<NodeName, Conn>>;
  readonly #o: Required<Omit<WorkloadOptions, 'cancelAfterMs'>> & Pick<WorkloadOptions, 'cancelAfterMs'>;

  constructor(o: WorkloadOptions) {
    this.#o = { intervalMs: 15, probeIntervalMs: 200, deadlineMs: 2000, probeDeadlineMs: 1000, ...o };
    this.#current = o.first;
    const conns = (): Record<NodeName, Conn> => ({
      node1: new Conn(o.targets.node1),
      node2: new Conn(o.targets.node2),
    });
    this.#conns = { main: conns(), probe: conns(), cancel: conns(), canceller: conns() };
  }

  /** The server the main loop writes to now. */
  get current(): NodeName {
    return this.#current;
  }

  start(): void {
    this.#loops = [
      this.#loop(this.#o.intervalMs, () => this.#mainWrite()),
      this.#loop(this.#o.probeIntervalMs, () => this.#probeWrite()),
    ];
    const cancelAfter = this.#o.cancelAfterMs;
    if (cancelAfter !== undefined)
      this.#loops.push(this.#loop(this.#o.probeIntervalMs, () => this.#cancelledWrite(cancelAfter)));
  }

  /** Stops both loops; resolves once the writes in flight have ended (each within its deadline). */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const wake of this.#wakers) wake();
    await Promise.all(this.#loops);
    for (const byNode of Object.values(this.#conns)) for (const c of Object.values(byNode)) c.close();
  }

  acked(): WriteRecord[] {
    return this.records.filter((r) => r.ackAt !== null);
  }

  /** Wall-clock ms of the last acknowledged write, or null. */
  lastAckAt(): number | null {
    for (let i = this.records.length - 1; i >= 0; i--) {
      const at = this.records[i]?.ackAt;
      if (at !== undefined && at !== null) return at;
    }
    return null;
  }

  async #loop(everyMs: number, once: () => Promise<void>): Promise<void> {
    while (!this.#stopped) {
      const started = Date.now();
      await once();
      const rest = everyMs - (Date.now() - started);
      // Pacing, not synchronisation: stop() wakes it at once.
      if (rest > 0 && !this.#stopped) {
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            clearTimeout(timer);
            this.#wakers.delete(wake);
            resolve();
          };
          const timer = setTimeout(wake, rest);
          this.#wakers.add(wake);
        });
      }
    }
  }

  async #mainWrite(): Promise<void> {
    const node = this.#current;
    const ok = await this.#write('main', node, this.#o.deadlineMs);
    if (!ok && this.#current === node) this.#current = other(node);
  }

  async #probeWrite(): Promise<void> {
    await this.#write('probe', other(this.#current), this.#o.probeDeadlineMs);
  }

  /** A write that the client cancels when it waits longer than `afterMs`, taking the server's answer. */
  async #cancelledWrite(afterMs: number): Promise<void> {
    const node = this.#current;
    const conn = this.#conns.cancel[node];
    let pid: number;
    try {
      pid = await conn.backendPid(1000);
    } catch {
      return; // not reachable now: no write sent
    }
    const rec: WriteRecord = {
      id: this.#nextId++,
      loop: 'cancel',
      node,
      sentAt: Date.now(),
      ackAt: null,
      timeline: null,
      error: null,
    };
    this.records.push(rec);
    const timer = setTimeout(() => {
      rec.cancelled = true;
      this.#conns.canceller[node].query('SELECT pg_cancel_backend($1)', [pid], 1000).catch(() => {});
    }, afterMs);
    try {
      const [row] = await conn.query<{ tl: number }>(
        INSERT_SQL,
        [rec.id, node],
        afterMs + this.#o.deadlineMs,
      );
      rec.ackAt = Date.now();
      rec.timeline = row?.tl ?? null;
    } catch (err) {
      rec.error = (err as Error).message;
    } finally {
      clearTimeout(timer);
    }
  }

  async #write(loop: 'main' | 'probe', node: NodeName, deadlineMs: number): Promise<boolean> {
    const rec: WriteRecord = {
      id: this.#nextId++,
      loop,
      node,
      sentAt: Date.now(),
      ackAt: null,
      timeline: null,
      error: null,
    };
    this.records.push(rec);
    try {
      const [row] = await this.#conns[loop][node].query<{ tl: number }>(
        INSERT_SQL,
        [rec.id, node],
        deadlineMs,
      );
      rec.ackAt = Date.now();
      rec.timeline = row?.tl ?? null;
      return true;
    } catch (err) {
      rec.error = (err as Error).message;
      return false;
    }
  }
}
