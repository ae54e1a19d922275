// The composition root of `pg-keeper run`: configuration, logger, adapters, metrics, the
// loop and the HTTP server, wired once; signals handled here.

import type { Server } from 'node:http';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { ConfigError, conninfoOf, peerOf, type Config, type NodeName } from '../config/config.js';
import { loadConfig, type Overrides } from '../config/load.js';
import { runHook } from '../hooks/run.js';
import { createApp, listen } from '../http/server.js';
import { loadWebConfig } from '../http/web-config.js';
import { WebSecurity } from '../http/web-security.js';
import { createMetrics } from '../metrics/metrics.js';
import { LocalServer } from '../postgres/local.js';
import { heartbeat } from '../postgres/peer.js';
import { describeEndpoint, toPgClientConfig } from '../postgres/client-config.js';
import { PgSession } from '../postgres/session.js';
import { errorText } from '../util/errors.js';
import { EtcdArbiter } from '../arbiter/etcd.js';
import { systemClock } from './clock.js';
import { Keeper } from './keeper.js';
import type { ServerPort, SignalPort } from './ports.js';
import { switchover } from '../lifecycle/switchover.js';
import { signalText } from '../policy/types.js';
import { SignalSession } from '../postgres/signal.js';
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
  /** SIGHUP: re-read web_config_file (certificates, users, headers); a file that does not load keeps the old one. */
  reloadWeb(): void;
  stop(): Promise<void>;
}

/** The local server's processes and files, when the configuration says where (data_directory). */
function serverOf(cfg: Config, arbiter: EtcdArbiter | null): ServerPort | null {
  if (cfg.dataDirectory === null) return null;
  const control = new ServerControl({
    dataDir: cfg.dataDirectory,
    binDir: cfg.pgBinDir,
    startCommand: cfg.serverStartCommand,
    stopCommand: cfg.serverStopCommand,
  });
  const owner = control.ownerProblem();
  if (owner) throw new Error(owner);
  const doRejoin: ServerPort['rejoin'] = async (progress) => {
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
  };
  return {
    state: (timeoutMs) => control.state(timeoutMs),
    rejoin: doRejoin,
    switchover: async (id, progress) => {
      const peerServer = session(cfg, peerOf(cfg.node));
      const local = session(cfg, cfg.node);
      const signal = signalSession(cfg);
      try {
        await switchover({
          node: cfg.node,
          peer: peerOf(cfg.node),
          id,
          control,
          signal,
          local,
          peerServer,
          releaseLease: arbiter ? () => arbiter.release(cfg.heartbeatTimeoutMs) : null,
          rejoin: doRejoin,
          progress,
          // The standby's keeper answers at its next tick, and promotes at the one after the stop.
          answerMs: Math.max(5000, 5 * cfg.keepaliveTimeMs),
          promoteMs: Math.max(15_000, 10 * cfg.keepaliveTimeMs),
          withdrawMs: 2 * cfg.keepaliveTimeMs + cfg.heartbeatTimeoutMs,
        });
      } finally {
        signal.close();
        peerServer.close();
        local.close();
      }
    },
  };
}

/** A session on the peer's server that carries this keeper's signal in its application_name. */
function signalSession(cfg: Config): SignalSession {
  const ci = conninfoOf(cfg, peerOf(cfg.node));
  return new SignalSession(toPgClientConfig(ci), `${peerOf(cfg.node)} (${describeEndpoint(ci)})`);
}

function signalsOf(cfg: Config): SignalPort {
  const s = signalSession(cfg);
  return {
    hold: async (signal) => {
      if (signal === null) s.close();
      else await s.set(signalText(signal));
    },
    close: () => s.close(),
  };
}

export async function startKeeper(cfg: Config, logger = createLogger(cfg)): Promise<Running> {
  const arbiter = cfg.etcdEndpoints.length > 0 ? arbiterOf(cfg, logger) : null;
  const dataDir = serverOf(cfg, arbiter);
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
    ...(arbiter ? { arbiter } : {}),
    signals: signalsOf(cfg),
    ...(dataDir ? { server: dataDir } : {}),
  });
  const web = cfg.webConfigFile
    ? new WebSecurity(loadWebConfig(cfg.webConfigFile), (why) =>
        logger.error({ event: 'auth-failed', error: why }, `basic authentication refuses everyone: ${why}`),
      )
    : undefined;
  const server = await listen(
    createApp({ keeper, registry: metrics.registry, logger, ...(web ? { web } : {}) }),
    cfg.listen.host,
    cfg.listen.port,
    web,
  );
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.listen.port;
  logger.info(
    { event: 'listen', host: cfg.listen.host, port },
    `${web?.tls ? 'HTTPS' : 'HTTP'} on ${cfg.listen.host}:${port} (/metrics, /status, /health)` +
      (cfg.webConfigFile ? `, as ${cfg.webConfigFile} says` : ''),
  );
  keeper.start();
  const k = keeper;
  return {
    keeper: k,
    server,
    logger,
    reloadWeb() {
      const file = cfg.webConfigFile;
      if (!web || !file) return;
      try {
        const result = web.reload(loadWebConfig(file), server);
        if (result === 'restart')
          logger.warn(
            { event: 'web-reload', file },
            `${file}: turning TLS on or off needs a restart; kept the running one`,
          );
        else logger.info({ event: 'web-reload', file }, `${file} reloaded: certificates, users and headers`);
      } catch (err) {
        const why = err instanceof ConfigError ? err.problems.join('; ') : errorText(err);
        logger.error(
          { event: 'web-reload-failed', file, error: why },
          `${file} not reloaded, keeping the old one: ${why}`,
        );
      }
    },
    async stop() {
      await k.stop();
      web?.close();
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
    running.reloadWeb();
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
