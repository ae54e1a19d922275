// The web configuration file of the Prometheus ecosystem's exporter toolkit (node_exporter,
// postgres_exporter and Prometheus read the same format), for the keeper's HTTP port:
//
//   tls_server_config:     cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version
//   http_server_config:    headers (the security headers the toolkit allows), http2
//   basic_auth_users:      user: bcrypt hash
//
// Relative paths are relative to the file itself, as in the toolkit. Every problem names the
// file and the key and says what is allowed; a hash is checked to be bcrypt, never shown.

import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { SecureVersion } from 'node:tls';
import bcrypt from 'bcryptjs';
import { parseDocument } from 'yaml';
import { ConfigError } from '../config/config.js';
import { errnoCode, errorText } from '../util/errors.js';

export const CLIENT_AUTH_TYPES = [
  'NoClientCert',
  'RequestClientCert',
  'RequireAnyClientCert',
  'VerifyClientCertIfGiven',
  'RequireAndVerifyClientCert',
] as const;
export type ClientAuthType = (typeof CLIENT_AUTH_TYPES)[number];

const VERSIONS: Record<string, SecureVersion> = {
  TLS10: 'TLSv1',
  TLS11: 'TLSv1.1',
  TLS12: 'TLSv1.2',
  TLS13: 'TLSv1.3',
};

/** The headers the exporter toolkit lets a web configuration set. */
const ALLOWED_HEADERS = [
  'Strict-Transport-Security',
  'X-Content-Type-Options',
  'X-Frame-Options',
  'X-XSS-Protection',
  'Content-Security-Policy',
];

export interface WebConfig {
  file: string;
  tls: {
    cert: Buffer;
    key: Buffer;
    /** The CA that client certificates must be signed by; null: no verification. */
    ca: Buffer | null;
    clientAuth: ClientAuthType;
    minVersion: SecureVersion;
    maxVersion: SecureVersion | null;
  } | null;
  /** user -> bcrypt hash; null: no basic authentication. */
  users: ReadonlyMap<string, string> | null;
  headers: Readonly<Record<string, string>>;
}

export function loadWebConfig(file: string): WebConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [
      `cannot read the web configuration file: ${errnoCode(err) ?? errorText(err)}`,
    ]);
  }
  return parseWebConfig(text, file);
}

export function parseWebConfig(text: string, file: string): WebConfig {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0)
    throw new ConfigError(
      file,
      doc.errors.map((e) => `YAML syntax error: ${e.message.split('\n')[0] ?? ''}`),
    );
  const root = (doc.toJS() ?? {}) as unknown;
  const problems: string[] = [];
  if (typeof root !== 'object' || root === null || Array.isArray(root))
    throw new ConfigError(file, [
      'the web configuration must be a mapping (tls_server_config, http_server_config, basic_auth_users)',
    ]);
  const r = root as Record<string, unknown>;
  unknownKeys(r, ['tls_server_config', 'http_server_config', 'basic_auth_users'], '', problems);
  const base = dirname(resolve(file));
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const read = (key: string, p: unknown): Buffer | null => {
    if (typeof p !== 'string' || p === '') {
      problems.push(`key "${key}" must be a file name`);
      return null;
    }
    try {
      return readFileSync(path(p));
    } catch (err) {
      problems.push(`key "${key}": cannot read ${path(p)}: ${errnoCode(err) ?? errorText(err)}`);
      return null;
    }
  };

  let tls: WebConfig['tls'] = null;
  const t = r.tls_server_config;
  if (t !== undefined && t !== null) {
    if (typeof t !== 'object' || Array.isArray(t)) problems.push('key "tls_server_config" must be a mapping');
    else {
      const o = t as Record<string, unknown>;
      unknownKeys(
        o,
        ['cert_file', 'key_file', 'client_auth_type', 'client_ca_file', 'min_version', 'max_version'],
        'tls_server_config.',
        problems,
        ['cipher_suites', 'curve_preferences', 'prefer_server_cipher_suites', 'client_allowed_sans'],
      );
      const cert = read('tls_server_config.cert_file', o.cert_file);
      const key = read('tls_server_config.key_file', o.key_file);
      if (cert && !/-----BEGIN CERTIFICATE-----/.test(cert.toString('utf8')))
        problems.push('key "tls_server_config.cert_file": not a PEM certificate');
      if (key && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString('utf8')))
        problems.push('key "tls_server_config.key_file": not a PEM private key');
      const auth = o.client_auth_type ?? 'NoClientCert';
      const clientAuth = CLIENT_AUTH_TYPES.find((x) => x === auth);
      if (!clientAuth)
        problems.push(
          `key "tls_server_config.client_auth_type" must be one of ${CLIENT_AUTH_TYPES.join(', ')}, got ${JSON.stringify(auth)}`,
        );
      const ca =
        o.client_ca_file === undefined ? null : read('tls_server_config.client_ca_file', o.client_ca_file);
      if (
        (clientAuth === 'VerifyClientCertIfGiven' || clientAuth === 'RequireAndVerifyClientCert') &&
        o.client_ca_file === undefined
      )
        problems.push(`key "tls_server_config.client_ca_file" is needed with client_auth_type ${clientAuth}`);
      const version = (k: 'min_version' | 'max_version', fallback: string | null): SecureVersion | null => {
        const v = o[k] ?? fallback;
        if (v === null) return null;
        const found = VERSIONS[String(v)];
        if (!found)
          problems.push(
            `key "tls_server_config.${k}" must be one of ${Object.keys(VERSIONS).join(', ')}, got ${JSON.stringify(v)}`,
          );
        return found ?? null;
      };
      const minVersion = version('min_version', 'TLS12');
      const maxVersion = version('max_version', null);
      if (cert && key && clientAuth && minVersion)
        tls = { cert, key, ca, clientAuth, minVersion, maxVersion };
    }
  }

  const headers: Record<string, string> = {};
  const h = r.http_server_config;
  if (h !== undefined && h !== null) {
    if (typeof h !== 'object' || Array.isArray(h))
      problems.push('key "http_server_config" must be a mapping');
    else {
      const o = h as Record<string, unknown>;
      unknownKeys(o, ['headers', 'http2'], 'http_server_config.', problems);
      if (o.http2 !== undefined && typeof o.http2 !== 'boolean')
        problems.push(
          'key "http_server_config.http2" must be true or false (pg-keeper serves HTTP/1.1 either way)',
        );
      const given = o.headers ?? {};
      if (typeof given !== 'object' || given === null || Array.isArray(given))
        problems.push('key "http_server_config.headers" must be a mapping of header to value');
      else
        for (const [name, value] of Object.entries(given)) {
          const allowed = ALLOWED_HEADERS.find((a) => a.toLowerCase() === name.toLowerCase());
          if (!allowed)
            problems.push(
              `key "http_server_config.headers.${name}": allowed headers are ${ALLOWED_HEADERS.join(', ')}`,
            );
          else if (typeof value !== 'string')
            problems.push(`key "http_server_config.headers.${name}" must be a string`);
          else headers[allowed] = value;
        }
    }
  }

  let users: Map<string, string> | null = null;
  const u = r.basic_auth_users;
  if (u !== undefined && u !== null) {
    if (typeof u !== 'object' || Array.isArray(u))
      problems.push('key "basic_auth_users" must be a mapping of user to bcrypt hash');
    else {
      users = new Map();
      for (const [user, hash] of Object.entries(u)) {
        if (user === '' || user.includes(':'))
          problems.push(`key "basic_auth_users": a user name must not be empty nor hold ":"`);
        else if (typeof hash !== 'string' || !isBcrypt(hash))
          problems.push(
            `key "basic_auth_users.${user}" must be a bcrypt hash ($2y$10$..., as htpasswd -B makes), not a password`,
          );
        else users.set(user, hash);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(file, problems);
  return { file, tls, users, headers };
}

/** $2a$, $2b$ or $2y$, a cost from 4 to 31, 53 characters of salt and hash. */
function isBcrypt(hash: string): boolean {
  if (!/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) return false;
  try {
    const rounds = bcrypt.getRounds(hash);
    return rounds >= 4 && rounds <= 31;
  } catch {
    return false;
  }
}

function unknownKeys(
  o: Record<string, unknown>,
  known: string[],
  prefix: string,
  problems: string[],
  unsupported: string[] = [],
): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    problems.push(
      unsupported.includes(k)
        ? `key "${prefix}${k}" is not supported by pg-keeper (Node.js chooses its TLS parameters): remove it`
        : `unknown key "${prefix}${k}": allowed keys are ${known.join(', ')}`,
    );
  }
}
