// One kept connection to one server, where every call (connect included) ends within its
// deadline. pg_keeper 1.0 had no timeout at all: a frozen or black-holed peer blocked its
// loop for minutes. Here a call that overruns destroys the socket, so the next call starts
// from a fresh connection instead of queueing behind a hung one.

import pg from 'pg';

export class TimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

export class PgSession {
  private client: pg.Client | null = null;

  constructor(
    private readonly config: pg.ClientConfig,
    /** For messages only: host:port, never the conninfo (it may hold a password). */
    readonly label: string,
  ) {}

  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[], timeoutMs: number): Promise<R[]> {
    const started = Date.now();
    const client = this.client ?? (await this.connect(timeoutMs));
    const left = Math.max(1, timeoutMs - (Date.now() - started));
    try {
      const result = await withDeadline(
        client.query<R>(sql, params),
        left,
        () => this.discard(client),
        this.label,
      );
      return result.rows;
    } catch (err) {
      this.discard(client);
      throw err;
    }
  }

  /** Drop the connection now, without waiting for a server that may never answer. */
  close(): void {
    if (this.client) this.discard(this.client);
  }

  private async connect(timeoutMs: number): Promise<pg.Client> {
    const client = new pg.Client({ ...this.config, connectionTimeoutMillis: 0 });
    // An idle connection that dies emits 'error'; without a listener it would crash the keeper.
    client.on('error', () => this.discard(client));
    try {
      await withDeadline(client.connect(), timeoutMs, () => destroy(client), this.label);
    } catch (err) {
      destroy(client);
      throw err;
    }
    this.client = client;
    return client;
  }

  private discard(client: pg.Client): void {
    if (this.client === client) this.client = null;
    destroy(client);
  }
}

function destroy(client: pg.Client): void {
  try {
    client.connection.stream.destroy();
  } catch {
    // already gone
  }
}

function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => void, label: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout();
      reject(new TimeoutError(label, ms));
    }, ms);
    work.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
