// libpq connection strings (keyword/value and postgresql:// URIs), parsed the way libpq does it.
// node-postgres has its own parser, but it only understands URIs: given `host=a port=1` it
// silently treats the whole string as a database name, which is how a keeper ends up talking
// to the wrong server. Passwords are kept only in `params`; nothing here puts one in a message.

import type { SecureVersion } from 'node:tls';

/** A connection string that libpq would reject, or that cannot be turned into a pg config.
 *  The message names the offending keyword and never contains a password. */
export class ConninfoError extends Error {
  override name = 'ConninfoError';
}

export interface Conninfo {
  /** every keyword given, normalised to libpq keyword names (URI query params and URI parts mapped too) */
  params: Readonly<Record<string, string>>;
}

// PostgreSQL 15's list, in libpq's own order.
// prettier-ignore
const LIBPQ_15_KEYWORDS = [
  'service', 'user', 'password', 'passfile', 'channel_binding', 'connect_timeout', 'dbname', 'host',
  'hostaddr', 'port', 'client_encoding', 'options', 'application_name', 'fallback_application_name',
  'keepalives', 'keepalives_idle', 'keepalives_interval', 'keepalives_count', 'tcp_user_timeout',
  'replication', 'gssencmode', 'sslmode', 'requiressl', 'sslcompression', 'sslcert', 'sslkey',
  'sslpassword', 'sslrootcert', 'sslcrl', 'sslcrldir', 'sslsni', 'requirepeer',
  'ssl_min_protocol_version', 'ssl_max_protocol_version', 'krbsrvname', 'gsslib', 'target_session_attrs',
];

// Later libpq versions (16-18). `pg_basebackup -R` writes every setting its libpq knows into
// primary_conninfo, so a standby set up with a newer client has these in its string.
// prettier-ignore
const NEWER_KEYWORDS = [
  'require_auth', 'sslcertmode', 'load_balance_hosts', 'gssdelegation', 'sslnegotiation',
  'min_protocol_version', 'max_protocol_version', 'sslkeylogfile',
  'oauth_issuer', 'oauth_client_id', 'oauth_client_secret', 'oauth_scope',
];

const KEYWORDS: ReadonlySet<string> = new Set([...LIBPQ_15_KEYWORDS, ...NEWER_KEYWORDS]);
const SECRET_KEYWORDS: ReadonlySet<string> = new Set(['password', 'sslpassword', 'oauth_client_secret']);
const MASK = '********';
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];
export const TLS_VERSIONS: readonly SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** Parses a keyword/value string or a postgresql:// (or postgres://) URI with libpq's rules. */
export function parseConninfo(text: string): Conninfo {
  // Config files and env vars bring stray newlines, which would otherwise end up in a URI's last value.
  const trimmed = text.trim();
  const secrets: string[] = [];
  try {
    const prefix = ['postgresql://', 'postgres://'].find((p) => trimmed.startsWith(p));
    const params = prefix
      ? parseUri(trimmed.slice(prefix.length), secrets)
      : parseKeywordValue(trimmed, secrets);
    validate(params);
    return { params: Object.freeze(Object.fromEntries(params)) };
  } catch (err) {
    // Messages are built not to quote secrets; this is the second line of defence.
    if (err instanceof ConninfoError) throw new ConninfoError(redact(err.message, secrets));
    throw err;
  }
}

/** The conninfo as a keyword/value string that libpq would parse back, with secrets shown as ********. */
export function maskConninfo(ci: Conninfo): string {
  return Object.entries(ci.params)
    .map(([key, value]) => `${key}=${SECRET_KEYWORDS.has(key) ? MASK : quoteValue(value)}`)
    .join(' ');
}

/** A keyword/value string of `params` that libpq parses back: for programs and primary_conninfo. */
export function formatConninfo(params: Readonly<Record<string, string>>): string {
  return Object.entries(params)
    .map(([key, value]) => `${key}=${quoteValue(value)}`)
    .join(' ');
}

// ---- keyword/value form ----

function parseKeywordValue(text: string, secrets: string[]): Map<string, string> {
  const params = new Map<string, string>();
  let i = 0;
  // The pair before the current one: if it was a password, the "keyword" we are looking at may be
  // the second half of an unquoted password with a space in it, so it must not be echoed.
  let previousKey: string | undefined;
  while (true) {
    while (isSpace(text.charAt(i))) i++;
    if (i >= text.length) break;
    const keyStart = i;
    while (i < text.length && text.charAt(i) !== '=' && !isSpace(text.charAt(i))) i++;
    const key = text.slice(keyStart, i);
    while (isSpace(text.charAt(i))) i++;
    if (text.charAt(i) !== '=') throw missingEquals(key, previousKey);
    if (key === '') {
      throw new ConninfoError(`missing keyword before "=" at offset ${keyStart} in connection info string`);
    }
    checkKeyword(key, previousKey, 'connection option');
    i++;
    while (isSpace(text.charAt(i))) i++;

    // Inside and outside quotes a backslash takes the next character literally; libpq documents
    // only \' and \\ but implements it for any character.
    let value = '';
    if (text.charAt(i) === "'") {
      i++;
      while (true) {
        if (i >= text.length) {
          throw new ConninfoError(
            `unterminated quoted string in connection info string: the value of "${key}" has no closing "'"` +
              ` (write a quote inside a value as \\')`,
          );
        }
        const c = text.charAt(i++);
        if (c === "'") break;
        if (c === '\\') {
          value += text.charAt(i++);
        } else {
          value += c;
        }
      }
    } else {
      while (i < text.length && !isSpace(text.charAt(i))) {
        const c = text.charAt(i++);
        if (c === '\\') {
          value += text.charAt(i++);
        } else {
          value += c;
        }
      }
    }
    if (SECRET_KEYWORDS.has(key)) secrets.push(value);
    // A repeated keyword overrides the earlier one, as in libpq.
    params.set(key, value);
    previousKey = key;
  }
  return params;
}

function missingEquals(word: string, previousKey: string | undefined): ConninfoError {
  if (previousKey !== undefined && SECRET_KEYWORDS.has(previousKey)) {
    return new ConninfoError(
      `missing "=" after the word following "${previousKey}" in connection info string (not shown; ` +
        `a value containing spaces must be quoted: ${previousKey}='...')`,
    );
  }
  if (word.includes('://')) {
    return new ConninfoError(
      'connection info string looks like a URI but does not start with "postgresql://" or "postgres://"',
    );
  }
  return new ConninfoError(
    `missing "=" after "${word}" in connection info string (expected keyword=value pairs separated by spaces)`,
  );
}

// ---- URI form ----

function parseUri(rest: string, secrets: string[]): Map<string, string> {
  const params = new Map<string, string>();

  // Like libpq, user info is whatever precedes an "@" that comes before the first "/".
  const at = rest.indexOf('@');
  const slash = rest.indexOf('/');
  if (at !== -1 && (slash === -1 || at < slash)) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const user = percentDecode(colon === -1 ? userinfo : userinfo.slice(0, colon), 'user name');
    if (user !== '') params.set('user', user);
    if (colon !== -1) {
      const password = percentDecode(userinfo.slice(colon + 1), 'password');
      secrets.push(password);
      if (password !== '') params.set('password', password);
    }
  }

  // host[:port] entries separated by commas; an IPv6 address sits in brackets.
  const hosts: string[] = [];
  const ports: string[] = [];
  while (true) {
    let host: string;
    if (rest.startsWith('[')) {
      const close = rest.indexOf(']');
      if (close === -1) throw new ConninfoError('missing "]" after an IPv6 host address in URI');
      host = rest.slice(1, close);
      if (host === '') throw new ConninfoError('IPv6 host address may not be empty in URI');
      rest = rest.slice(close + 1);
      if (rest !== '' && !':/?,'.includes(rest.charAt(0))) {
        throw new ConninfoError(`unexpected "${rest.charAt(0)}" after IPv6 host address in URI`);
      }
    } else {
      const end = indexOfAny(rest, ':/?,');
      host = rest.slice(0, end);
      rest = rest.slice(end);
    }
    let port = '';
    if (rest.startsWith(':')) {
      const end = indexOfAny(rest, '/?,');
      port = rest.slice(1, end);
      rest = rest.slice(end);
    }
    hosts.push(percentDecode(host, 'host'));
    port = percentDecode(port, 'port', true);
    if (port !== '' && parsePort(port) === undefined) {
      // Not quoted: an unencoded "/" in a password ends the user info early, as in libpq, and
      // leaves the password's tail here.
      throw new ConninfoError(
        'invalid port number in URI: expected an integer from 1 to 65535 (if the password contains "/", ' +
          'percent-encode it as %2F)',
      );
    }
    ports.push(port);
    if (!rest.startsWith(',')) break;
    rest = rest.slice(1);
  }
  // Empty entries mean "default" and are kept so host and port lists stay aligned.
  if (hosts.some((h) => h !== '')) params.set('host', hosts.join(','));
  if (ports.some((p) => p !== '')) params.set('port', ports.join(','));

  if (rest.startsWith('/')) {
    const end = indexOfAny(rest, '?');
    const dbname = percentDecode(rest.slice(1, end), 'database name');
    if (dbname !== '') params.set('dbname', dbname);
    rest = rest.slice(end);
  }

  if (rest.startsWith('?')) {
    const pairs = rest.slice(1).split('&');
    // libpq accepts an empty query and a trailing "&", but not an empty pair in between.
    if (pairs.at(-1) === '') pairs.pop();
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      const rawKey = eq === -1 ? pair : pair.slice(0, eq);
      let key = percentDecode(rawKey, 'query parameter name');
      if (eq === -1) {
        throw new ConninfoError(`missing "=" in URI query parameter "${key}" (expected keyword=value)`);
      }
      const rawValue = pair.slice(eq + 1);
      if (rawValue.includes('=')) {
        throw new ConninfoError(
          `extra "=" in URI query parameter "${key}" (percent-encode "=" in a value as %3D)`,
        );
      }
      let value = percentDecode(rawValue, `value of "${key}"`, SECRET_KEYWORDS.has(key));
      // libpq's concession to JDBC-style URIs; any other value of "ssl" is an error there too.
      if (key === 'ssl') {
        if (value !== 'true') {
          throw new ConninfoError(
            'invalid URI query parameter "ssl": only ssl=true (meaning sslmode=require) is accepted; use sslmode=...',
          );
        }
        key = 'sslmode';
        value = 'require';
      }
      checkKeyword(key, undefined, 'URI query parameter');
      if (SECRET_KEYWORDS.has(key)) secrets.push(value);
      params.set(key, value);
    }
  } else if (rest !== '') {
    // Only reachable after an IPv6 host, e.g. postgresql://[::1]x
    throw new ConninfoError(`unexpected "${rest.charAt(0)}" in URI`);
  }
  return params;
}

/** Decodes %XX escapes as UTF-8. `part` names the URI part for errors; secret parts are never quoted. */
function percentDecode(raw: string, part: string, secret = part === 'password'): string {
  if (!raw.includes('%')) return raw;
  const bytes: Buffer[] = [];
  let i = 0;
  while (i < raw.length) {
    const pct = raw.indexOf('%', i);
    if (pct === -1) {
      bytes.push(Buffer.from(raw.slice(i), 'utf8'));
      break;
    }
    bytes.push(Buffer.from(raw.slice(i, pct), 'utf8'));
    const hex = raw.slice(pct + 1, pct + 3);
    const shown = secret ? '' : ` "${raw}"`;
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
      throw new ConninfoError(
        `invalid percent-encoding in the ${part}${shown} of the URI (expected %XX, X a hex digit)`,
      );
    }
    if (hex === '00') throw new ConninfoError(`forbidden %00 in the ${part}${shown} of the URI`);
    bytes.push(Buffer.from([parseInt(hex, 16)]));
    i = pct + 3;
  }
  return Buffer.concat(bytes).toString('utf8');
}

// ---- checks shared by both forms ----

function checkKeyword(key: string, previousKey: string | undefined, what: string): void {
  if (KEYWORDS.has(key)) return;
  if (previousKey !== undefined && SECRET_KEYWORDS.has(previousKey)) {
    throw new ConninfoError(
      `invalid ${what} after the value of "${previousKey}" (not shown; a value containing spaces must be quoted)`,
    );
  }
  const hint = KEYWORDS.has(key.toLowerCase()) ? ` (keywords are lower case: "${key.toLowerCase()}")` : '';
  throw new ConninfoError(
    `invalid ${what} "${key}"${hint}: expected a libpq keyword such as host, hostaddr, port, dbname, user, ` +
      `password, sslmode, connect_timeout, application_name, options (see libpq's list of parameter keywords)`,
  );
}

/** Values libpq would refuse at connect time, refused now so a bad config fails at startup. */
function validate(params: Map<string, string>): void {
  const port = params.get('port');
  if (port !== undefined) {
    for (const entry of port.split(',')) {
      if (entry !== '' && parsePort(entry) === undefined) {
        throw new ConninfoError(
          `invalid port number "${entry}" for "port": expected an integer from 1 to 65535`,
        );
      }
    }
  }
  for (const key of ['connect_timeout', 'keepalives', 'keepalives_idle']) {
    const value = params.get(key);
    if (value !== undefined && !/^\d+$/.test(value)) {
      throw new ConninfoError(`invalid value "${value}" for "${key}": expected a non-negative integer`);
    }
  }
  const sslmode = params.get('sslmode');
  if (sslmode !== undefined) checkSslMode(sslmode, '"sslmode"');
  for (const key of ['ssl_min_protocol_version', 'ssl_max_protocol_version']) {
    const value = params.get(key);
    if (value !== undefined && value !== '' && !(TLS_VERSIONS as readonly string[]).includes(value)) {
      throw new ConninfoError(
        `invalid value "${value}" for "${key}": expected one of ${TLS_VERSIONS.join(', ')}`,
      );
    }
  }
  // libpq pairs list entries by position, so the lists must line up (a single port serves all hosts).
  const hosts = listLength(params.get('host'));
  const hostaddrs = listLength(params.get('hostaddr'));
  const ports = listLength(params.get('port'));
  if (hosts > 0 && hostaddrs > 0 && hosts !== hostaddrs) {
    throw new ConninfoError(`could not match ${hosts} host names to ${hostaddrs} "hostaddr" values`);
  }
  const targets = Math.max(hosts, hostaddrs, 1);
  if (ports > 1 && ports !== targets) {
    throw new ConninfoError(`could not match ${ports} "port" numbers to ${targets} hosts`);
  }
}

export function checkSslMode(value: string, source: string): SslMode {
  const mode = SSL_MODES.find((m) => m === value);
  if (mode === undefined) {
    throw new ConninfoError(
      `invalid sslmode value "${value}" in ${source}: expected one of ${SSL_MODES.join(', ')}`,
    );
  }
  return mode;
}

// ---- small helpers ----

export function parsePort(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

function quoteValue(value: string): string {
  return value !== '' && !/[\s'\\]/.test(value) ? value : `'${value.replace(/['\\]/g, '\\$&')}'`;
}

function redact(message: string, secrets: readonly string[]): string {
  // Very short secrets would blank out ordinary words; the messages do not quote values anyway.
  return secrets.filter((s) => s.length >= 4).reduce((m, s) => m.split(s).join(MASK), message);
}

export function firstEntry(list: string | undefined): string | undefined {
  return list?.split(',')[0];
}

export function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function listLength(list: string | undefined): number {
  return list === undefined || list === '' ? 0 : list.split(',').length;
}

function indexOfAny(text: string, chars: string): number {
  for (let i = 0; i < text.length; i++) if (chars.includes(text.charAt(i))) return i;
  return text.length;
}

// libpq uses C isspace(), which knows only the ASCII blanks.
function isSpace(c: string): boolean {
  return c !== '' && ' \t\n\r\v\f'.includes(c);
}
