// The composition root of `pg-keeper run`: configuration, logger, adapters, metrics, the
// loop and the HTTP server, wired once; signals handled here.

import type { Server } from 'node:http';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { ConfigError, conninfoOf, peerOf, type Config, type NodeName } from '../config/config.js';
import { loadConfig, type Overrides } from '../config/load.js';
import { runHook } from '../hooks/run.js';
import { createApp, listen } from '../http/server.js';
import { createMetrics } from '../metrics/metrics.js';
import { LocalServer } from '../postgres/local.js';
import { heartbeat } from '../postgres/peer.js';
import { describeEndpoint, toPgClientConfig } from '../postgres/client-config.js';
import { PgSession } from '../postgres/session.js';
import { errorText } from '../util/errors.js';
import { EtcdArbiter } from '../arbiter/etcd.js';
import { systemClock } from './clock.js';
import { Keeper } from './keeper.js';
import type { ServerPort } from './ports.js';
import { rejoin } from '../lifecycle/rejoin.js';
import { ServerControl } from '../server/control.js';

/** pg-keeper's log: JSON lines with structured fields, to stdout unless `destination` is given. */
export function createLogger(
  cfg: Pick<Config, 'node' | 'logLevel' | 'clusterName'>,
  destination?: DestinationStream,
): Logger {
  const options: LoggerOptions = {
    level: cfg.logLevel,
    base: { cluster: cfg.clusterName, node: cfg.node },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Defence in depth: nothing should log these, and if something does, it is masked.
    redact: {
      paths: ['password', '*.password', 'conninfo', '*.conninfo', 'token', '*.token'],
      censor: '********',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

function session(cfg: Config, node: NodeName): PgSession {
  const ci = conninfoOf(cfg, node);
  const pgConfig = toPgClientConfig(ci);
  return new PgSession(
    { ...pgConfig, application_name: pgConfig.application_name ?? `pg-keeper-${cfg.node}` },
    `${node} (${describeEndpoint(ci)})`,
  );
}

/** The etcd arbiter of this keeper's configuration (etcd_endpoints set). */
function arbiterOf(cfg: Config, logger: Logger): EtcdArbiter {
  return new EtcdArbiter({
    endpoints: cfg.etcdEndpoints,
    tls: { ca: cfg.etcdCaCert, cert: cfg.etcdCert, key: cfg.etcdKey },
    auth:
      cfg.etcdUser !== null && cfg.etcdPassword !== null
        ? { user: cfg.etcdUser, password: cfg.etcdPassword }
        : null,
    node: cfg.node,
    prefix: cfg.etcdPrefix,
    ttlMs: cfg.etcdLeaseTtlMs,
    clock: systemClock,
    log: logger,
  });
}

export interface Running {
  keeper: Keeper;
  server: Server;
  logger: Logger;
  stop(): Promise<void>;
}

/** The local server's processes and files, when the configuration says where (data_directory). */
function serverOf(cfg: Config): ServerPort | null {
  if (cfg.dataDirectory === null) return null;
  const control = new ServerControl({
    dataDir: cfg.dataDirectory,
    binDir: cfg.pgBinDir,
    startCommand: cfg.serverStartCommand,
    stopCommand: cfg.serverStopCommand,
  });
  const owner = control.ownerProblem();
  if (owner) throw new Error(owner);
  return {
    state: (timeoutMs) => control.state(timeoutMs),
    rejoin: async (progress) => {
      // Sessions of its own: the loop's heartbeat and observation go on beside it.
      const peer = session(cfg, peerOf(cfg.node));
      const local = session(cfg, cfg.node);
      try {
        return await rejoin({
          node: cfg.node,
          control,
          peer,
          local,
          peerConninfo: conninfoOf(cfg, peerOf(cfg.node)),
          progress,
        });
      } finally {
        peer.close();
        local.close();
      }
    },
  };
}

export async function startKeeper(cfg: Config, logger = createLogger(cfg)): Promise<Running> {
  const dataDir = serverOf(cfg);
  const peerSession = session(cfg, peerOf(cfg.node));
  const local = new LocalServer(session(cfg, cfg.node));
  let keeper: Keeper | null = null;
  const metrics = createMetrics(
    () => (keeper as Keeper).snapshot(),
    () => (keeper as Keeper).config,
    peerOf(cfg.node),
  );
  keeper = new Keeper({
    config: cfg,
    local,
    peer: { heartbeat: (ms) => heartbeat(peerSession, ms), close: () => peerSession.close() },
    logger,
    metrics,
    runHook,
    ...(cfg.etcdEndpoints.length > 0 ? { arbiter: arbiterOf(cfg, logger) } : {}),
    ...(dataDir ? { server: dataDir } : {}),
  });
  const server = await listen(
    createApp({ keeper, registry: metrics.registry, logger }),
    cfg.listen.host,
    cfg.listen.port,
  );
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.listen.port;
  logger.info(
    { event: 'listen', host: cfg.listen.host, port },
    `HTTP on ${cfg.listen.host}:${port} (/metrics, /status, /health)`,
  );
  keeper.start();
  const k = keeper;
  return {
    keeper: k,
    server,
    logger,
    async stop() {
      await k.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `pg-keeper run`: runs until SIGTERM or SIGINT; SIGHUP reloads the configuration. */
export async function runCommand(file: string, overrides: Overrides): Promise<number> {
  const cfg = loadConfig(file, overrides);
  const logger = createLogger(cfg);
  let running: Running;
  try {
    running = await startKeeper(cfg, logger);
  } catch (err) {
    logger.error({ event: 'start-failed', error: errorText(err) }, `cannot start: ${errorText(err)}`);
    return 1;
  }
  const titler = setInterval(() => {
    const s = running.keeper.snapshot();
    const peer = s.observation?.peer.reachable ? 'connected' : 'disconnected';
    process.title = `pg-keeper: ${s.node} (${s.state.role} mode:${peer})`;
  }, 1000);
  titler.unref();

  process.on('SIGHUP', () => {
    let next: Config;
    try {
      next = loadConfig(file, overrides);
    } catch (err) {
      running.keeper.reloadFailed(err instanceof ConfigError ? err.problems.join('; ') : errorText(err));
      return;
    }
    running.keeper.reload(next);
  });
  return new Promise<number>((resolve) => {
    const shutdown = (signal: string): void => {
      running.logger.info({ event: 'signal', signal }, `received ${signal}, stopping`);
      const force = setTimeout(() => resolve(0), 1500);
      force.unref();
      running.stop().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
}
