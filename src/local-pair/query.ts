// One query on a server of the local pair, on a short-lived connection that is always closed,
// within one deadline that a frozen or black-holed server cannot stretch.
import net from 'node:net';
import pg from 'pg';

/** Where queryOnce connects (TCP, password authentication). */
export interface ConnTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/**
 * One short-lived connection, one query, always closed. Connecting and querying share one deadline; on
 * expiry the socket is destroyed, so a frozen or black-holed server cannot make this hang.
 */
export async function queryOnce<R extends pg.QueryResultRow = pg.QueryResultRow>(
  target: ConnTarget,
  sql: string,
  params: unknown[] = [],
  timeoutMs = 5000,
): Promise<R[]> {
  // Our own socket, so that the deadline can always destroy it: pg's end() waits for the server's
  // goodbye when no query is outstanding, which never comes from a frozen or black-holed server.
  const socket = new net.Socket();
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
    connectionTimeoutMillis: timeoutMs,
    application_name: 'pg-keeper-demo',
    stream: () => socket,
  });
  // A connection error after the query settled (e.g. the server going away) must not crash the process.
  client.on('error', () => {});
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Error(`query on ${target.host}:${target.port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
  });
  const work = (async () => {
    await client.connect();
    return (await client.query<R>(sql, params)).rows;
  })();
  work.catch(() => {}); // it may fail after the deadline has already won
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
    // A healthy server answers the goodbye at once; after a timeout there is no point in waiting.
    if (!timedOut) {
      let giveUp: NodeJS.Timeout | undefined;
      await Promise.race([
        client.end().catch(() => {}),
        new Promise<void>((resolve) => (giveUp = setTimeout(resolve, 500))),
      ]);
      clearTimeout(giveUp);
    }
    socket.destroy();
  }
}
