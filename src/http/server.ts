// The keeper's one HTTP port: /metrics for Prometheus, Patroni-compatible health checks
// for HAProxy, /status for people, and the token-protected pause/resume. Every answer is
// computed from the keeper's snapshot: no request ever waits for a database.

import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { sameSecret } from './auth.js';
import { buildStatus, checkView, checks, type CheckName } from './status.js';
import { WebSecurity } from './web-security.js';
import { syncModeOf } from '../policy/types.js';
import type { Keeper } from '../runtime/keeper.js';

export interface HttpDeps {
  keeper: Keeper;
  registry: Registry;
  /** TLS, basic authentication and headers of web_config_file; absent: plain HTTP, open. */
  web?: WebSecurity;
  /** Where a 500 is reported: the client only sees "internal error". */
  logger?: Pick<Logger, 'error'>;
}

const CHECK_PATHS: Record<string, CheckName> = {
  '/primary': 'primary',
  '/master': 'primary',
  '/read-write': 'primary',
  '/replica': 'replica',
  '/read-only': 'read-only',
  '/sync': 'sync',
  '/synchronous': 'sync',
  '/async': 'async',
  '/asynchronous': 'async',
};

export function createApp({ keeper, registry, logger, web }: HttpDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  if (web) app.use(web.middleware());

  const render = sharedRendering(
    () => registry.metrics(),
    METRICS_REUSE_MS,
    () => keeper.snapshot(),
  );
  app.get('/metrics', async (_req, res) => {
    res.set('Content-Type', registry.contentType);
    res.send(await render());
  });

  // OPTIONS too: it is HAProxy's default `option httpchk` method, and Patroni answers it on /health.
  const health = (_req: Request, res: Response): void => {
    const alive = keeper.alive();
    res.status(alive ? 200 : 503).json({ status: alive ? 'ok' : 'stalled', node: keeper.config.node });
  };
  app.get('/health', health);
  app.options('/health', health);

  app.get('/status', (_req, res) => {
    res.json(buildStatus(keeper));
  });

  for (const [path, check] of Object.entries(CHECK_PATHS)) {
    // HAProxy set-ups written for Patroni probe with GET, HEAD or OPTIONS.
    const handler = (_req: Request, res: Response): void => {
      const snap = keeper.snapshot();
      const ok = checks[check](checkView(snap));
      const local = snap.observation?.local;
      res.status(ok ? 200 : 503).json({
        check,
        ok,
        node: snap.node,
        role: snap.state.role,
        sync_mode: local ? syncModeOf(local) : 'unknown',
      });
    };
    app.get(path, handler);
    app.options(path, handler);
  }

  const token = (): string | null => keeper.config.httpToken;
  const requireToken = (req: Request, res: Response, next: NextFunction): void => {
    const expected = token();
    if (expected === null) {
      res.status(403).json({
        error: 'state-changing endpoints are off: set http_token or http_token_file to enable them',
      });
      return;
    }
    // With basic authentication the Authorization header carries the user: the token then
    // comes in X-Pg-Keeper-Token (accepted always).
    const given =
      req.get('x-pg-keeper-token')?.trim() ??
      /^Bearer\s+(.+)$/i.exec(req.get('authorization') ?? '')?.[1]?.trim() ??
      '';
    if (!sameSecret(given, expected)) {
      res.set('WWW-Authenticate', 'Bearer').status(401).json({ error: 'missing or wrong bearer token' });
      return;
    }
    next();
  };
  const body = express.json({ limit: '4kb', strict: true });
  app.post('/pause', requireToken, body, (req, res) => {
    keeper.setPaused(true, `HTTP from ${req.ip ?? 'unknown'}`);
    res.json({ paused: true });
  });
  app.post('/resume', requireToken, body, (req, res) => {
    keeper.setPaused(false, `HTTP from ${req.ip ?? 'unknown'}`);
    res.json({ paused: false });
  });

  // A planned switchover: to=nodeN (query or JSON body) names the node to become the
  // primary; the policy takes or refuses it at the next tick, and /status says which.
  app.post('/switchover', requireToken, body, (req, res) => {
    const fromBody = (req.body as { to?: unknown } | undefined)?.to;
    const to = typeof req.query.to === 'string' ? req.query.to : fromBody;
    if (to !== undefined && to !== 'node1' && to !== 'node2') {
      res.status(400).json({ error: `to must be node1 or node2, got ${JSON.stringify(to)}` });
      return;
    }
    const r = keeper.requestSwitchover(to ?? null);
    if ('refused' in r) {
      res.status(409).json({ error: r.refused });
      return;
    }
    res.status(202).json({ id: r.id, to: to ?? null, status: '/status' });
  });

  const known = new Set([
    '/metrics',
    '/health',
    '/status',
    '/pause',
    '/resume',
    '/switchover',
    ...Object.keys(CHECK_PATHS),
  ]);
  const allowed = (path: string): string =>
    path === '/pause' || path === '/resume' || path === '/switchover'
      ? 'POST'
      : path === '/health' || Object.hasOwn(CHECK_PATHS, path)
        ? 'GET, HEAD, OPTIONS'
        : 'GET, HEAD';
  app.use((req, res) => {
    if (known.has(req.path)) {
      res.set('Allow', allowed(req.path));
      res.status(405).json({ error: `method ${req.method} not allowed on ${req.path}` });
      return;
    }
    res.status(404).json({ error: `no such path: ${req.path}` });
  });

  // express 5 passes rejected promises and body-parser errors here.
  app.use(
    (err: Error & { status?: number; type?: string }, req: Request, res: Response, _next: NextFunction) => {
      const status = err.status && err.status >= 400 && err.status < 500 ? err.status : 500;
      if (status === 500) {
        logger?.error(
          { event: 'http-error', path: req.path, error: err.message },
          `HTTP ${req.path}: ${err.message}`,
        );
      }
      res.status(status).json({ error: status === 500 ? 'internal error' : (err.type ?? err.message) });
    },
  );
  return app;
}

/**
 * Scrapes that arrive together share one rendering: rendering (mostly Node's default process
 * metrics) costs about a millisecond, which 50 concurrent scrapers would otherwise pay 50
 * times over. A rendering is reused only while the keeper's snapshot is the same object
 * (it is replaced at every tick and every change, such as a pause) and for at most
 * `reuseMs`, so no scrape ever shows a state older than the keeper's current one.
 */
const METRICS_REUSE_MS = 100;

export function sharedRendering<T>(
  render: () => Promise<T>,
  reuseMs: number,
  version: () => unknown,
  now: () => number = () => performance.now(),
): () => Promise<T> {
  let last: { text: T; at: number; version: unknown } | null = null;
  let inFlight: { promise: Promise<T>; version: unknown } | null = null;
  return () => {
    const v = version();
    if (last && last.version === v && now() - last.at < reuseMs) return Promise.resolve(last.text);
    if (inFlight && inFlight.version === v) return inFlight.promise;
    const promise = render()
      .then((text) => {
        last = { text, at: now(), version: v };
        return text;
      })
      .finally(() => {
        if (inFlight?.promise === promise) inFlight = null;
      });
    inFlight = { promise, version: v };
    return promise;
  };
}

export async function listen(
  app: express.Express,
  host: string,
  port: number,
  web?: WebSecurity,
): Promise<Server> {
  const tls = web?.serverOptions() ?? null;
  const server: Server = tls
    ? createHttpsServer({ ...tls, maxHeaderSize: 16 * 1024 }, app)
    : createServer({ maxHeaderSize: 16 * 1024 }, app);
  if (tls && web) web.guard(server);
  // A slow or idle client must not hold sockets open for long.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
