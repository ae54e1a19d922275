// etcd v3 through its HTTP/JSON gateway (POST /v3/<service>/<method>), as Patroni talks to
// it: no gRPC stack, and every call is one request we send, time and bound ourselves. That
// matters for the lease: its deadline is counted from the send time of the last renewal that
// succeeded, which a streaming client hides from its caller.
//
// Every call ends within its deadline (connect included), trying the next endpoint when one
// fails; an overrun destroys the request. Errors name the endpoint (host:port) and what etcd
// said, never a password or a token.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { errorText } from '../util/errors.js';

export interface EtcdClientOptions {
  endpoints: string[];
  tls: { ca: string | null; cert: string | null; key: string | null };
  auth: { user: string; password: string } | null;
}

export class EtcdError extends Error {
  constructor(
    message: string,
    /** etcd's gRPC code when it answered with one (14 unavailable, 16 unauthenticated, ...). */
    readonly code: number | null = null,
  ) {
    super(message);
    this.name = 'EtcdError';
  }
}

type Json = Record<string, unknown>;

const AUTH_CODES = new Set([16]);
const AUTH_MESSAGES = /invalid auth token|user name is empty|auth: revision in header is old/i;

export class EtcdClient {
  private current = 0;
  private token: string | null = null;
  private readonly agent: http.Agent;
  private readonly endpoints: URL[];

  constructor(private readonly opts: EtcdClientOptions) {
    this.endpoints = opts.endpoints.map((e) => new URL(e));
    const https_ = this.endpoints[0]?.protocol === 'https:';
    const read = (f: string | null): Buffer | undefined => (f === null ? undefined : readFileSync(f));
    this.agent = https_
      ? new https.Agent({
          keepAlive: true,
          maxSockets: 4,
          ca: read(opts.tls.ca),
          cert: read(opts.tls.cert),
          key: read(opts.tls.key),
        })
      : new http.Agent({ keepAlive: true, maxSockets: 4 });
  }

  /** host:port of the endpoint that answered last (for messages). */
  get endpoint(): string {
    return this.endpoints[this.current]?.host ?? '?';
  }

  /** One call, within `timeoutMs` whatever happens; with etcd auth, a token is fetched (again) when needed. */
  async call(path: string, body: Json, timeoutMs: number): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    if (this.opts.auth && this.token === null) await this.authenticate(deadline);
    try {
      return await this.anyEndpoint(path, body, deadline, true);
    } catch (err) {
      if (!(err instanceof EtcdError) || !this.opts.auth || !isAuthError(err)) throw err;
      this.token = null;
      await this.authenticate(deadline);
      return this.anyEndpoint(path, body, deadline, true);
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private async authenticate(deadline: number): Promise<void> {
    const auth = this.opts.auth;
    if (!auth) return;
    const r = await this.anyEndpoint(
      '/v3/auth/authenticate',
      { name: auth.user, password: auth.password },
      deadline,
      false,
    );
    if (typeof r.token !== 'string')
      throw new EtcdError(`etcd at ${this.endpoint} gave no token for user ${auth.user}`);
    this.token = r.token;
  }

  /** Tries each endpoint in turn, starting with the last one that answered, until one does or time is up. */
  private async anyEndpoint(path: string, body: Json, deadline: number, withToken: boolean): Promise<Json> {
    const errors: string[] = [];
    for (let i = 0; i < this.endpoints.length; i++) {
      const index = (this.current + i) % this.endpoints.length;
      const url = this.endpoints[index] as URL;
      const left = deadline - Date.now();
      if (left <= 0) break;
      // A frozen member accepts connections and never answers: it must not take the whole
      // deadline from the members that would answer. Each try gets its share of what is left.
      const share = Math.max(250, left / (this.endpoints.length - i));
      try {
        const out = await this.post(url, path, body, Math.min(left, share), withToken);
        this.current = index;
        return out;
      } catch (err) {
        // An answer that is etcd's own refusal (bad request, auth) is not the endpoint's fault.
        if (err instanceof EtcdError && err.code !== null && err.code !== 14 && err.code !== 4) throw err;
        errors.push(`${url.host}: ${errorText(err)}`);
      }
    }
    throw new EtcdError(
      errors.length > 0 ? `etcd did not answer: ${errors.join('; ')}` : 'etcd did not answer in time',
      14,
    );
  }

  private post(url: URL, path: string, body: Json, timeoutMs: number, withToken: boolean): Promise<Json> {
    const payload = JSON.stringify(body);
    return new Promise<Json>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
      };
      if (withToken && this.token !== null) headers.authorization = this.token;
      const mod = url.protocol === 'https:' ? https : http;
      const req = mod.request(
        { host: url.hostname, port: url.port, path, method: 'POST', agent: this.agent, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let json: Json;
            try {
              json = JSON.parse(text) as Json;
            } catch {
              reject(
                new EtcdError(
                  `${url.host}${path}: HTTP ${res.statusCode ?? '?'} with a body that is not JSON`,
                ),
              );
              return;
            }
            // A streaming method (lease keepalive) wraps its one answer in "result"; errors come as "error".
            const error = (json.error ?? null) as Json | null;
            if ((res.statusCode ?? 500) >= 400 || error) {
              const e = error ?? json;
              const code = typeof e.code === 'number' ? e.code : null;
              const message = typeof e.message === 'string' ? e.message : `HTTP ${res.statusCode ?? '?'}`;
              reject(new EtcdError(`${url.host}${path}: ${message}`, code));
              return;
            }
            resolve(json.result && typeof json.result === 'object' ? (json.result as Json) : json);
          });
          res.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
          });
        },
      );
      const timer = setTimeout(() => {
        req.destroy(new Error(`no answer within ${Math.round(timeoutMs)} ms`));
      }, timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(payload);
    });
  }
}

function isAuthError(err: EtcdError): boolean {
  return (err.code !== null && AUTH_CODES.has(err.code)) || AUTH_MESSAGES.test(err.message);
}

/** etcd's JSON gateway carries keys and values as base64. */
export const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
export const unb64 = (s: unknown): string =>
  typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '';
