// A parsed conninfo turned into what node-postgres needs: where to connect, with what
// TLS options (libpq's sslmode semantics, which pg's own reading of PGSSLMODE gets wrong),
// and a password-free label for messages. The parser itself is pure (config/conninfo.ts);
// this reads the SSL files it names.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { ClientConfig } from 'pg';
import {
  ConninfoError,
  TLS_VERSIONS,
  checkSslMode,
  firstEntry,
  nonEmpty,
  parsePort,
  type Conninfo,
  type SslMode,
} from '../config/conninfo.js';

/** The node-postgres client config for this conninfo. Reads the sslrootcert/sslcert/sslkey/sslcrl files. */
export function toPgClientConfig(ci: Conninfo): ClientConfig {
  const p = ci.params;
  if (nonEmpty(p.service) !== undefined) {
    // The service file could name any server; guessing localhost instead would be worse than failing.
    throw new ConninfoError(
      `"service" is not supported: pg_service.conf is not read; write its host, port, dbname, user out instead`,
    );
  }
  const { host, port } = endpointOf(ci);
  const connectTimeout = intParam(p, 'connect_timeout');
  const keepalivesIdle = intParam(p, 'keepalives_idle');
  return {
    host,
    port,
    // Left undefined when absent so pg applies PGDATABASE/PGUSER and the OS user, as libpq does.
    database: nonEmpty(p.dbname),
    user: nonEmpty(p.user),
    // Undefined (not '') when absent or empty: pg's connection-parameters.js then takes PGPASSWORD,
    // and failing that client.js asks the bundled `pgpass` module at authentication time, which
    // reads PGPASSFILE or ~/.pgpass (pg 8 marks that deprecated). The `passfile` keyword itself
    // has no pg equivalent and is ignored.
    password: nonEmpty(p.password),
    application_name: p.application_name,
    fallback_application_name: p.fallback_application_name,
    client_encoding: p.client_encoding,
    options: p.options,
    // libpq: 0 waits forever (pg agrees), and 1 second is raised to its 2-second minimum.
    connectionTimeoutMillis:
      connectTimeout === undefined ? undefined : connectTimeout === 1 ? 2000 : connectTimeout * 1000,
    // libpq turns TCP keepalives on unless keepalives=0; pg's default is off.
    keepAlive: intParam(p, 'keepalives') !== 0,
    keepAliveInitialDelayMillis: keepalivesIdle === undefined ? undefined : keepalivesIdle * 1000,
    ssl: sslConfig(ci),
  };
}

/** Where a connection would go. hostaddr wins over host (libpq connects to hostaddr and only uses host
 *  for names); defaults are PGHOST, then localhost (pg cannot find libpq's default socket directory),
 *  and PGPORT, then 5432. Of a multi-host list only the first entry is used. */
export function endpointOf(ci: Conninfo): { host: string; port: number } {
  const p = ci.params;
  const host =
    nonEmpty(firstEntry(p.hostaddr)) ??
    nonEmpty(firstEntry(p.host)) ??
    nonEmpty(firstEntry(process.env.PGHOST)) ??
    'localhost';
  const given = nonEmpty(firstEntry(p.port));
  const portText = given ?? nonEmpty(firstEntry(process.env.PGPORT));
  let port = 5432;
  if (portText !== undefined) {
    const parsed = parsePort(portText);
    if (parsed === undefined) {
      const source = given === undefined ? 'PGPORT' : '"port"';
      throw new ConninfoError(
        `invalid port number "${portText}" in ${source}: expected an integer from 1 to 65535`,
      );
    }
    port = parsed;
  }
  return { host, port };
}

/** "host:port/dbname" for logs: no user, no password. dbname falls back to PGDATABASE, else is left out. */
export function describeEndpoint(ci: Conninfo): string {
  const { host, port } = endpointOf(ci);
  const shownHost = isIP(host) === 6 ? `[${host}]` : host;
  const dbname = nonEmpty(ci.params.dbname) ?? nonEmpty(process.env.PGDATABASE);
  return `${shownHost}:${port}${dbname === undefined ? '' : `/${dbname}`}`;
}

function sslConfig(ci: Conninfo): ClientConfig['ssl'] {
  const p = ci.params;
  const rootcert = nonEmpty(p.sslrootcert);
  const envMode = nonEmpty(process.env.PGSSLMODE);
  // libpq's order: sslmode, the old requiressl, PGSSLMODE, then prefer (verify-full with system CAs).
  // pg's own PGSSLMODE reading maps "require" to full verification, so it is done here instead.
  const mode: SslMode =
    p.sslmode !== undefined
      ? checkSslMode(p.sslmode, '"sslmode"')
      : p.requiressl === '1'
        ? 'require'
        : envMode !== undefined
          ? checkSslMode(envMode, 'PGSSLMODE')
          : rootcert === 'system'
            ? 'verify-full'
            : 'prefer';
  if (rootcert === 'system' && mode !== 'verify-full') {
    // libpq 16+: any certificate from a public CA would pass a weaker check.
    throw new ConninfoError(`sslmode "${mode}" may not be used with sslrootcert=system (use verify-full)`);
  }
  // pg cannot try TLS and fall back, so allow/prefer connect in plain text, which is what libpq
  // ends up doing against a server without TLS.
  if (mode === 'disable' || mode === 'allow' || mode === 'prefer') return false;

  const caFile = rootcert === 'system' ? undefined : rootcert;
  const options: ConnectionOptions = {
    // libpq: require with a root certificate given behaves as verify-ca.
    rejectUnauthorized: mode !== 'require' || caFile !== undefined,
  };
  if (mode === 'verify-ca' || (mode === 'require' && caFile !== undefined)) {
    // verify-ca checks the chain but not the name; Node checks both unless told otherwise.
    options.checkServerIdentity = () => undefined;
  }
  if (caFile !== undefined) options.ca = readSslFile('sslrootcert', caFile);
  const cert = nonEmpty(p.sslcert);
  if (cert !== undefined) options.cert = readSslFile('sslcert', cert);
  const key = nonEmpty(p.sslkey);
  if (key !== undefined) options.key = readSslFile('sslkey', key);
  const crl = nonEmpty(p.sslcrl);
  if (crl !== undefined) options.crl = readSslFile('sslcrl', crl);
  const passphrase = nonEmpty(p.sslpassword);
  if (passphrase !== undefined) options.passphrase = passphrase;
  const minVersion = TLS_VERSIONS.find((v) => v === p.ssl_min_protocol_version);
  if (minVersion !== undefined) options.minVersion = minVersion;
  const maxVersion = TLS_VERSIONS.find((v) => v === p.ssl_max_protocol_version);
  if (maxVersion !== undefined) options.maxVersion = maxVersion;
  // Connecting to hostaddr, the certificate must still match the host name (pg would check the IP).
  const hostName = nonEmpty(firstEntry(p.host));
  if (nonEmpty(firstEntry(p.hostaddr)) !== undefined && hostName !== undefined && isIP(hostName) === 0) {
    options.servername = hostName;
  }
  return options;
}

function readSslFile(keyword: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConninfoError(`cannot read the file named by "${keyword}": ${reason}`);
  }
}

function intParam(params: Readonly<Record<string, string>>, key: string): number | undefined {
  const value = params[key];
  return value === undefined ? undefined : Number(value);
}
