// A TCP proxy on 127.0.0.1 that can be cut and restored, to break one network path (say a keeper's
// heartbeat to a node) while others (replication) keep working: `pg-keeper demo partition` cuts the
// demo's two, and the end-to-end tests and the fault-injection suite cut theirs.
//
//   const proxy = await TcpProxy.start({ host: '127.0.0.1', port: pair.node1.port });
//   ... connect to 127.0.0.1:proxy.port ...
//   await proxy.cut('blackhole');   // or 'refuse'
//   await proxy.restore();
//   await proxy.close();
//
// cut('refuse'): existing connections are closed and the listener too, so new connects get ECONNREFUSED
//   (the host is up, nothing listens). restore() listens again on the same port.
// cut('blackhole'): nothing is forwarded any more in either direction, but every socket stays open and new
//   connections are still accepted (without a connection to the target): clients hang until their own
//   timeouts. Bytes are held, not dropped, and flow again on restore(), like TCP retransmission after a
//   network partition heals. The proxy's kernel still acknowledges TCP segments and keepalive probes, so
//   only application-level timeouts notice a blackhole; a real partition is noticed by TCP keepalive too.
import net from 'node:net';

export type CutMode = 'refuse' | 'blackhole';
export type ProxyState = 'open' | CutMode | 'closed';

interface Link {
  client: net.Socket;
  upstream: net.Socket | null;
  /** Bytes received while black-holed, in arrival order, with where they must go. */
  held: { to: 'client' | 'upstream'; chunk: Buffer | null }[];
}

export class TcpProxy {
  readonly host = '127.0.0.1';
  readonly target: { host: string; port: number };
  #port = 0;
  #state: ProxyState = 'open';
  #server: net.Server | null = null;
  readonly #links = new Set<Link>();

  private constructor(target: { host: string; port: number }) {
    this.target = { ...target };
  }

  /** Starts listening on 127.0.0.1 (on `port`, default a free one) and forwarding to `target`. */
  static async start(target: { host: string; port: number }, port = 0): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await proxy.#listen(port);
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  get state(): ProxyState {
    return this.#state;
  }

  /** Client connections currently open through the proxy. */
  get connectionCount(): number {
    return this.#links.size;
  }

  async cut(mode: CutMode): Promise<void> {
    this.#assertNotClosed();
    this.#state = mode;
    if (mode === 'refuse') {
      for (const link of this.#links) this.#drop(link);
      await this.#closeListener();
    } else {
      for (const link of this.#links) {
        link.client.pause();
        link.upstream?.pause();
      }
    }
  }

  async restore(): Promise<void> {
    this.#assertNotClosed();
    const was = this.#state;
    this.#state = 'open';
    if (was === 'refuse') await this.#listen(this.#port);
    for (const link of this.#links) {
      if (!link.upstream) this.#connectUpstream(link);
      else this.#flush(link);
    }
  }

  /** Closes every connection and the listener. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    for (const link of this.#links) this.#drop(link);
    await this.#closeListener();
  }

  #assertNotClosed(): void {
    if (this.#state === 'closed') throw new Error('TcpProxy is closed');
  }

  #listen(port: number): Promise<void> {
    const server = net.createServer((client) => this.#accept(client));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.host, port, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', () => {});
        const addr = server.address();
        this.#port = addr && typeof addr === 'object' ? addr.port : port;
        this.#server = server;
        resolve();
      });
    });
  }

  #closeListener(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    if (this.#state === 'refuse' || this.#state === 'closed') {
      client.destroy();
      return;
    }
    const link: Link = { client, upstream: null, held: [] };
    this.#links.add(link);
    client.setNoDelay(true);
    client.on('error', () => this.#drop(link));
    client.on('close', () => this.#drop(link));
    client.on('data', (chunk: Buffer) => this.#forward(link, 'upstream', chunk));
    client.on('end', () => this.#forward(link, 'upstream', null));
    if (this.#state === 'blackhole') client.pause();
    else this.#connectUpstream(link);
  }

  #connectUpstream(link: Link): void {
    // Until the upstream connection is up, the client's bytes wait in `held`.
    link.client.pause();
    const upstream = net.connect({ host: this.target.host, port: this.target.port });
    link.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on('error', () => this.#drop(link));
    upstream.on('close', () => this.#drop(link));
    upstream.on('data', (chunk: Buffer) => this.#forward(link, 'client', chunk));
    upstream.on('end', () => this.#forward(link, 'client', null));
    upstream.on('drain', () => {
      if (this.#state === 'open') link.client.resume();
    });
    link.client.on('drain', () => {
      if (this.#state === 'open') upstream.resume();
    });
    upstream.once('connect', () => {
      if (this.#state === 'open') this.#flush(link);
      else upstream.pause();
    });
  }

  /** Passes a chunk on (null: the sender's end of stream), or holds it while cut or still connecting. */
  #forward(link: Link, to: 'client' | 'upstream', chunk: Buffer | null): void {
    const dst = to === 'client' ? link.client : link.upstream;
    if (this.#state !== 'open' || !dst || dst.connecting || link.held.length > 0) {
      link.held.push({ to, chunk });
      (to === 'client' ? link.upstream : link.client)?.pause();
      return;
    }
    if (chunk === null) dst.end();
    else if (!dst.write(chunk)) (to === 'client' ? link.upstream : link.client)?.pause();
  }

  /** Sends what was held back, then lets both directions flow again. */
  #flush(link: Link): void {
    const { client, upstream } = link;
    if (!upstream || upstream.connecting) return;
    for (const { to, chunk } of link.held.splice(0)) {
      const dst = to === 'client' ? client : upstream;
      if (chunk === null) dst.end();
      else dst.write(chunk);
    }
    client.resume();
    upstream.resume();
  }

  #drop(link: Link): void {
    if (!this.#links.delete(link)) return;
    link.client.destroy();
    link.upstream?.destroy();
  }
}
