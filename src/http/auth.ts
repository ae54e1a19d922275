// HTTP basic authentication against the web configuration's bcrypt hashes, as the
// Prometheus exporter toolkit does it:
//
// - a password once verified is remembered (a hash of user and password, for a while), so a
//   scraper that sends it every 15 s costs one bcrypt comparison, not one per scrape;
// - an unknown user is compared against a dummy hash of the same cost, so that it takes the
//   same time as a wrong password and nothing is learned from the answer;
// - comparisons run in a worker thread, one at a time, taking at most a quarter of one core
//   (after a comparison of d ms the worker rests 3d), with a bounded queue: a flood of wrong
//   passwords fills the queue and is answered 503 (retry later), and takes neither the event
//   loop nor the machine's CPU away from the heartbeats and the database.

import { createHash, timingSafeEqual } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

const CACHE_MS = 10 * 60_000;
const CACHE_MAX = 1000;
const QUEUE_MAX = 16;
/** The share of one core that comparisons may take: after one of d ms, the worker rests 3d. */
const BUSY_SHARE = 0.25;

export type Verdict = 'ok' | 'wrong' | 'busy';

export class BasicAuth {
  private readonly cache = new Map<string, number>();
  private worker: Worker | null = null;
  private readonly pending = new Map<number, (ok: boolean) => void>();
  private readonly jobs: { password: string; hash: string; done: (ok: boolean) => void }[] = [];
  private inFlight = false;
  private restUntil = 0;
  private restTimer: NodeJS.Timeout | null = null;
  private queued = 0;
  private nextId = 1;
  private dummy: string;
  /** bcrypt comparisons made (the cache's hits make none). */
  comparisons = 0;

  /** `failed`: the worker could not run (every login is refused meanwhile): said, not swallowed. */
  constructor(
    private users: ReadonlyMap<string, string>,
    private readonly now: () => number = () => Date.now(),
    private readonly failed: (why: string) => void = () => {},
  ) {
    this.dummy = dummyHash(users);
  }

  /** New users (SIGHUP): what was remembered goes. */
  replace(users: ReadonlyMap<string, string>): void {
    this.users = users;
    this.dummy = dummyHash(users);
    this.cache.clear();
  }

  async check(header: string | undefined): Promise<Verdict> {
    const creds = parseBasic(header);
    if (!creds) return 'wrong';
    const key = createHash('sha256').update(`${creds.user}\0${creds.password}`).digest('hex');
    const until = this.cache.get(key);
    if (until !== undefined && until > this.now() && this.users.has(creds.user)) return 'ok';
    if (this.queued >= QUEUE_MAX) return 'busy';
    const hash = this.users.get(creds.user);
    const ok = await this.compare(creds.password, hash ?? this.dummy);
    if (!ok || hash === undefined) return 'wrong';
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(key, this.now() + CACHE_MS);
    return 'ok';
  }

  close(): void {
    if (this.restTimer) clearTimeout(this.restTimer);
    this.restTimer = null;
    for (const job of this.jobs.splice(0)) job.done(false);
    void this.worker?.terminate();
    this.worker = null;
  }

  private compare(password: string, hash: string): Promise<boolean> {
    this.queued += 1;
    this.comparisons += 1;
    return new Promise<boolean>((resolve) => {
      this.jobs.push({
        password,
        hash,
        done: (ok) => {
          this.queued -= 1;
          resolve(ok);
        },
      });
      this.pump();
    });
  }

  /** The next comparison, once the last one is done and the worker has rested its share. */
  private pump(): void {
    if (this.inFlight || this.restTimer || this.jobs.length === 0) return;
    const rest = this.restUntil - performance.now();
    if (rest > 0) {
      this.restTimer = setTimeout(() => {
        this.restTimer = null;
        this.pump();
      }, rest);
      this.restTimer.unref();
      return;
    }
    const job = this.jobs.shift();
    if (!job) return;
    const id = this.nextId++;
    const started = performance.now();
    this.inFlight = true;
    this.pending.set(id, (ok) => {
      this.inFlight = false;
      const took = performance.now() - started;
      this.restUntil = performance.now() + took * (1 / BUSY_SHARE - 1);
      job.done(ok);
      this.pump();
    });
    this.workerThread().postMessage({ id, password: job.password, hash: job.hash });
  }

  private workerThread(): Worker {
    if (this.worker) return this.worker;
    const w = startWorker();
    w.unref();
    w.on('message', (m: { id: number; ok: boolean }) => {
      const done = this.pending.get(m.id);
      this.pending.delete(m.id);
      done?.(m.ok);
    });
    w.on('error', (err) => {
      this.failed(`the bcrypt worker failed: ${err.message}`);
      this.failAll();
    });
    w.on('exit', () => {
      if (this.worker === w) this.worker = null;
      this.failAll();
    });
    this.worker = w;
    return w;
  }

  private failAll(): void {
    for (const [id, done] of this.pending) {
      this.pending.delete(id);
      done(false);
    }
  }
}

declare const PG_KEEPER_BCRYPT_WORKER: string | undefined;

/**
 * The worker: in the single-file bundle (scripts/bundle.ts) its code is written in, as
 * PG_KEEPER_BCRYPT_WORKER, and runs from that string; once built with tsc it is
 * dist/http/bcrypt-worker.js beside this file; from the TypeScript sources (the tests run
 * them through tsx, which a worker thread does not inherit) it registers tsx first.
 */
function startWorker(): Worker {
  if (typeof PG_KEEPER_BCRYPT_WORKER === 'string') return new Worker(PG_KEEPER_BCRYPT_WORKER, { eval: true });
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./bcrypt-worker.js', import.meta.url));
  const tsx = import.meta.resolve('tsx/esm/api');
  const file = new URL('./bcrypt-worker.ts', import.meta.url).href;
  return new Worker(
    `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(file)}); })`,
    { eval: true },
  );
}

function parseBasic(header: string | undefined): { user: string; password: string } | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m?.[1]) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? null : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** A hash no password matches, at the users' cost: an unknown user costs what a wrong password does. */
function dummyHash(users: ReadonlyMap<string, string>): string {
  const first = users.values().next();
  const rounds = first.done ? 10 : bcrypt.getRounds(first.value);
  return bcrypt.hashSync(createHash('sha256').update(String(Math.random())).digest('hex'), rounds);
}

/** Constant-time comparison that does not leak the token's length either. */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given.length > 0;
}
