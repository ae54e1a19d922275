// `pg-keeper rejoin --config FILE [--node nodeN] [--force]`: make the local server a
// standby of the peer, by hand. Without --force it refuses where the keeper's state says
// that the server may have acknowledged commits its standby lacks (they would be
// discarded), or cannot say (no state file); with the arbiter, it refuses to turn into a
// standby the node that holds the primary's key. Progress goes to stderr, step by step.

import { EtcdArbiter } from '../arbiter/etcd.js';
import { conninfoOf, peerOf, type Config } from '../config/config.js';
import { loadConfig, type Overrides } from '../config/load.js';
import { describeEndpoint, toPgClientConfig } from '../postgres/client-config.js';
import { PgSession } from '../postgres/session.js';
import { systemClock } from '../runtime/clock.js';
import { readStateFile } from '../runtime/state-file.js';
import { ServerControl } from '../server/control.js';
import { errorText } from '../util/errors.js';
import { RejoinRefused, rejoin } from './rejoin.js';

export async function rejoinCommand(
  file: string,
  overrides: Overrides,
  force: boolean,
  say = (line: string): void => void process.stderr.write(`pg-keeper rejoin: ${line}\n`),
): Promise<number> {
  const cfg = loadConfig(file, overrides);
  if (cfg.dataDirectory === null) {
    say(
      `${cfg.file}: key "data_directory" is needed to rejoin: the keeper must know where the server's data is`,
    );
    return 2;
  }
  const control = new ServerControl({
    dataDir: cfg.dataDirectory,
    binDir: cfg.pgBinDir,
    startCommand: cfg.serverStartCommand,
    stopCommand: cfg.serverStopCommand,
  });
  const owner = control.ownerProblem();
  if (owner) {
    say(owner);
    return 1;
  }
  const refusal = force ? null : ((await arbiterRefusal(cfg)) ?? stateRefusal(cfg));
  if (refusal) {
    say(`${refusal}; not rejoining (--force rejoins anyway, discarding what only this server has)`);
    return 1;
  }
  const session = (node: 'node1' | 'node2'): PgSession => {
    const ci = conninfoOf(cfg, node);
    const pg = toPgClientConfig(ci);
    return new PgSession(
      { ...pg, application_name: pg.application_name ?? `pg-keeper-${cfg.node}-rejoin` },
      describeEndpoint(ci),
    );
  };
  const peer = session(peerOf(cfg.node));
  const local = session(cfg.node);
  const started = Date.now();
  try {
    const { method } = await rejoin({
      node: cfg.node,
      control,
      peer,
      local,
      peerConninfo: conninfoOf(cfg, peerOf(cfg.node)),
      progress: (step, detail) => say(`${step}: ${detail}`),
    });
    say(
      method === 'restart'
        ? 'the server already streams from the peer: nothing to do'
        : `done in ${((Date.now() - started) / 1000).toFixed(1)} s (${method}): ${cfg.node} streams from ${peerOf(cfg.node)}`,
    );
    return 0;
  } catch (err) {
    say(err instanceof RejoinRefused ? `refused: ${err.message}` : `failed: ${errorText(err)}`);
    return 1;
  } finally {
    peer.close();
    local.close();
  }
}

/** Why the keeper's state forbids a rejoin without --force; null when it allows it. */
function stateRefusal(cfg: Config): string | null {
  if (cfg.stateFile === null)
    return 'no state_file: the keeper cannot tell whether this server acknowledged commits its standby lacks';
  let saved;
  try {
    saved = readStateFile(cfg.stateFile);
  } catch (err) {
    return `the state file ${cfg.stateFile} cannot be read (${errorText(err)})`;
  }
  if (saved === null || saved.mayHaveAckedAlone === null)
    return `the state file ${cfg.stateFile} does not say whether this server acknowledged commits alone`;
  if (saved.mayHaveAckedAlone)
    return 'this server was asynchronous as a primary and may have acknowledged commits its standby lacks: a rejoin would discard them';
  return null;
}

/** With the arbiter: the node holding the primary's key is the primary; it never becomes a standby. */
async function arbiterRefusal(cfg: Config): Promise<string | null> {
  if (cfg.etcdEndpoints.length === 0) return null;
  const arbiter = new EtcdArbiter({
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
    log: { info() {}, warn() {}, error() {} },
  });
  try {
    const view = await arbiter.observe(5000);
    if (!view.reachable)
      return `etcd does not answer (${view.error ?? ''}): cannot check who holds the primary's key`;
    return view.holder === 'self' ? `${cfg.node} holds the primary's key in etcd: it is the primary` : null;
  } finally {
    arbiter.close();
  }
}
