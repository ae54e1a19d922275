// What the web configuration file does to the HTTP port, kept up to date across SIGHUP:
// TLS (the certificate and key, and client certificates by client_auth_type), basic
// authentication on every path, and the security headers. A new file that does not load
// keeps the old one; turning TLS on or off needs a restart (the listening socket is one or
// the other).

import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer, ServerOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { NextFunction, Request, Response } from 'express';
import { BasicAuth } from './auth.js';
import type { WebConfig } from './web-config.js';

export class WebSecurity {
  private auth: BasicAuth | null;
  private headers: Readonly<Record<string, string>>;

  /** `failed`: basic authentication cannot verify passwords (its worker failed). */
  constructor(
    private config: WebConfig | null,
    private readonly failed: (why: string) => void = () => {},
  ) {
    this.auth = config?.users ? new BasicAuth(config.users, Date.now, failed) : null;
    this.headers = config?.headers ?? {};
  }

  get tls(): boolean {
    return this.config?.tls !== null && this.config?.tls !== undefined;
  }

  /** Options for https.createServer; null: plain HTTP. */
  serverOptions(): ServerOptions | null {
    const t = this.config?.tls;
    if (!t) return null;
    const request = t.clientAuth !== 'NoClientCert';
    return {
      cert: t.cert,
      key: t.key,
      ...(t.ca ? { ca: t.ca } : {}),
      minVersion: t.minVersion,
      ...(t.maxVersion ? { maxVersion: t.maxVersion } : {}),
      requestCert: request,
      // Only RequireAndVerifyClientCert lets the TLS layer refuse an unverified client;
      // the other kinds are checked when the connection is established (below).
      rejectUnauthorized: t.clientAuth === 'RequireAndVerifyClientCert',
    };
  }

  /** Client certificates that the TLS layer accepted but client_auth_type refuses: the connection goes. */
  guard(server: HttpServer | HttpsServer): void {
    server.on('secureConnection', (socket: TLSSocket) => {
      const kind = this.config?.tls?.clientAuth;
      const given = Object.keys(socket.getPeerCertificate()).length > 0;
      if (kind === 'RequireAnyClientCert' && !given) socket.destroy();
      if (kind === 'VerifyClientCertIfGiven' && given && !socket.authorized) socket.destroy();
    });
  }

  /** SIGHUP: the new file's certificates, users and headers (TLS on or off needs a restart). */
  reload(next: WebConfig, server: HttpServer | HttpsServer): 'ok' | 'restart' {
    const tlsNow = next.tls !== null;
    if (tlsNow !== this.tls) return 'restart';
    this.config = next;
    const options = this.serverOptions();
    if (options && 'setSecureContext' in server) {
      server.setSecureContext(options);
      // Whether to ask for a client certificate, and to refuse one the CA did not sign, are
      // the server's, read at each new connection: a new client_auth_type applies from the next.
      const tls = server as HttpsServer & { requestCert: boolean; rejectUnauthorized: boolean };
      tls.requestCert = options.requestCert ?? false;
      tls.rejectUnauthorized = options.rejectUnauthorized ?? false;
    }
    if (next.users) {
      if (this.auth) this.auth.replace(next.users);
      else this.auth = new BasicAuth(next.users, Date.now, this.failed);
    } else {
      this.auth?.close();
      this.auth = null;
    }
    this.headers = next.headers;
    return 'ok';
  }

  /** Every path: the security headers, then basic authentication when users are configured. */
  middleware() {
    return (req: Request, res: Response, next: NextFunction): void => {
      for (const [k, v] of Object.entries(this.headers)) res.set(k, v);
      const auth = this.auth;
      if (!auth) {
        next();
        return;
      }
      auth.check(req.get('authorization')).then(
        (verdict) => {
          if (verdict === 'ok') next();
          else if (verdict === 'busy')
            res.set('Retry-After', '1').status(503).json({ error: 'busy: try again' });
          else
            res
              .set('WWW-Authenticate', 'Basic realm="pg-keeper"')
              .status(401)
              .json({ error: 'unauthorized' });
        },
        (err: unknown) => next(err),
      );
    };
  }

  close(): void {
    this.auth?.close();
  }
}
