// One client inserting uniquely numbered rows as fast as it can, recording every acknowledged id
// with the wall-clock times the INSERT was sent and acknowledged.
//
// It writes to whichever node is the primary. Each node has at most one connection, kept open:
// when a write fails, the loop tries both nodes in turn, sending the INSERT itself as the probe. A
// standby answers "read-only transaction" (SQLSTATE 25006) at once and its connection is kept, so
// the loop notices the moment a promoted standby accepts writes without paying a new connection
// (and its SCRAM handshake) per probe; a dead node refuses the connection at once. Between probe
// rounds that found no primary it pauses PROBE_PAUSE_MS, so that it does not take a CPU from the
// promotion it is waiting for. A session opened on a standby may write once the server is promoted:
// PostgreSQL decides read-only-ness at the start of each transaction.
//
// An INSERT whose outcome is unknown (the connection died before the answer) is not counted as
// acknowledged; it may or may not be on the new primary.

import pg from 'pg';
import type { ConnTarget } from '../../src/local-pair/query.js';
import { sleep } from '../../src/util/wait.js';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable with Date.now() and log times. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

export interface Ack {
  id: number;
  node: string;
  /** wallNow() when the INSERT was sent. */
  start: number;
  /** wallNow() when its acknowledgement arrived. */
  end: number;
}

export interface WriteError {
  at: number;
  node: string;
  message: string;
}

export interface WriteNode {
  name: string;
  target: ConnTarget;
}

const PROBE_PAUSE_MS = 5;
const CONNECT_TIMEOUT_MS = 1000;
/** Longer than any stall the benchmark provokes; a write that takes longer is abandoned. */
const WRITE_TIMEOUT_MS = 60_000;
const READ_ONLY = '25006';

export interface WriteLoopOptions {
  /**
   * A write unanswered for this long is abandoned (its socket destroyed; not acknowledged). Default:
   * longer than any stall the failover benchmark provokes. A fenced primary never answers: the
   * arbiter's benchmark gives up sooner.
   */
  writeTimeoutMs?: number;
  /** Where ids come from: loops that write into one table share one counter. Default: 1, 2, 3, ... */
  nextId?: () => number;
}

/** One counter for several loops. */
export function idCounter(): () => number {
  let next = 1;
  return () => next++;
}

export class WriteLoop {
  readonly acks: Ack[] = [];
  readonly errors: WriteError[] = [];
  private readonly conns = new Map<string, pg.Client>();
  private current: string | null = null;
  private readonly nextId: () => number;
  private readonly writeTimeoutMs: number;
  private stopping = false;
  private running: Promise<void> | null = null;

  constructor(
    private readonly nodes: readonly WriteNode[],
    private readonly table: string,
    opts: WriteLoopOptions = {},
  ) {
    this.nextId = opts.nextId ?? idCounter();
    this.writeTimeoutMs = opts.writeTimeoutMs ?? WRITE_TIMEOUT_MS;
  }

  start(): void {
    this.running ??= this.run();
  }

  /** Stops after the write in flight (if any) ends, and closes the connections. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    for (const name of [...this.conns.keys()]) await this.drop(name, true);
  }

  /** Acknowledged writes, newest last. */
  get count(): number {
    return this.acks.length;
  }

  acksOn(node: string): Ack[] {
    return this.acks.filter((a) => a.node === node);
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.current !== null && (await this.write(this.current))) continue;
      this.current = null;
      for (const node of this.nodes) {
        if (this.stopping) break;
        if (await this.write(node.name)) {
          this.current = node.name;
          break;
        }
      }
      if (this.current === null && !this.stopping) await sleep(PROBE_PAUSE_MS);
    }
  }

  /** One INSERT on `name`; true when acknowledged. Never throws. */
  private async write(name: string): Promise<boolean> {
    let client: pg.Client;
    try {
      client = await this.connection(name);
    } catch (err) {
      this.note(name, err);
      return false;
    }
    const id = this.nextId();
    const start = wallNow();
    try {
      await withDeadline(
        client.query(`INSERT INTO ${this.table} (id) VALUES ($1)`, [id]),
        this.writeTimeoutMs,
        () => destroy(client),
      );
      this.acks.push({ id, node: name, start, end: wallNow() });
      return true;
    } catch (err) {
      this.note(name, err);
      // A standby refuses the write but its connection stays good for the next probe.
      if ((err as { code?: string }).code !== READ_ONLY) await this.drop(name, false);
      return false;
    }
  }

  private async connection(name: string): Promise<pg.Client> {
    const open = this.conns.get(name);
    if (open) return open;
    const node = this.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`unknown node ${name}`);
    const client = new pg.Client({
      ...node.target,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: 'pg-keeper-bench',
    });
    // A connection that dies while idle emits 'error'; the next write finds out and reconnects.
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (err) {
      destroy(client);
      throw err;
    }
    this.conns.set(name, client);
    return client;
  }

  private async drop(name: string, polite: boolean): Promise<void> {
    const client = this.conns.get(name);
    if (!client) return;
    this.conns.delete(name);
    if (polite) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        client.end().catch(() => {}),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, 500))),
      ]);
      clearTimeout(timer);
    }
    destroy(client);
  }

  private note(node: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.errors.push({ at: wallNow(), node, message });
  }
}

function destroy(client: pg.Client): void {
  try {
    client.connection.stream.destroy();
  } catch {
    // already gone
  }
}

function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`no answer within ${ms} ms`));
    }, ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
