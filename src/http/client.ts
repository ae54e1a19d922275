// How the command line talks to a keeper's HTTP port (pg-keeper status, switchover): plain
// HTTP, or HTTPS with the operator's CA, a client certificate, and basic authentication, as
// a web_config_file may require. Passwords come from files, never from the command line.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { errorText } from '../util/errors.js';

export interface ClientOptions {
  /** PEM file of the CA that signed the keeper's certificate. */
  cacert?: string | undefined;
  /** PEM client certificate and key, for client_auth_type RequireAndVerifyClientCert and the like. */
  cert?: string | undefined;
  key?: string | undefined;
  /** Basic authentication: a user of basic_auth_users, and a file holding its password. */
  user?: string | undefined;
  passwordFile?: string | undefined;
  /** The bearer token of the state-changing paths (a file's content). */
  token?: string | null | undefined;
}

export interface KeeperAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The text parsed as JSON, or the text itself when it is not JSON. */
  body: unknown;
}

export class ClientError extends Error {
  override name = 'ClientError';
}

/**
 * A keeper's address as an operator types it: a URL (http://host:9754, https://...), or
 * HOST:PORT or HOST (http, port 9754). Throws an error that says what is accepted.
 */
export function keeperUrl(given: string): URL {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i;
  const hostPart = given.replace(scheme, '').replace(/\/.*$/, '');
  const text = scheme.test(given) ? given : `http://${given}${/:\d+$/.test(hostPart) ? '' : ':9754'}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ClientError(
      `--url "${given}" is not a URL: give http://HOST:PORT, or HOST:PORT (e.g. 127.0.0.1:9754)`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ClientError(
      `--url "${given}": the keeper answers on http:// or https://, not ${url.protocol}//`,
    );
  return url;
}

export async function keeperRequest(
  base: URL,
  path: string,
  o: ClientOptions,
  method: 'GET' | 'POST' = 'GET',
  timeoutMs = 5000,
  headers: http.OutgoingHttpHeaders = {},
): Promise<KeeperAnswer> {
  const url = new URL(path, base);
  const read = (file: string | undefined, what: string): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ClientError(`cannot read ${what} ${file}: ${errorText(err)}`);
    }
  };
  headers = { ...headers };
  if (o.user !== undefined) {
    const password = read(o.passwordFile, '--password-file')?.toString('utf8').trim() ?? '';
    headers.authorization = `Basic ${Buffer.from(`${o.user}:${password}`).toString('base64')}`;
  }
  if (o.token) {
    // With basic authentication the Authorization header is taken: the token goes apart.
    if (o.user !== undefined) headers['x-pg-keeper-token'] = o.token;
    else headers.authorization = `Bearer ${o.token}`;
  }
  const tls = url.protocol === 'https:';
  const options: https.RequestOptions = {
    method,
    headers,
    ...(tls
      ? { ca: read(o.cacert, '--cacert'), cert: read(o.cert, '--cert'), key: read(o.key, '--key') }
      : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (tls ? https : http).request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: kept as text
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
