// The path between the demo's two nodes: a TCP proxy in front of each server, owned by the demo, that
// everything travelling between the nodes goes through, and nothing else:
//
//        writer, node1's keeper ──────────────▶ node1 ◀── proxy to node1 ◀── node2's keeper, node2's WAL receiver
//        writer, node2's keeper ──────────────▶ node2 ◀── proxy to node2 ◀── node1's keeper, node1's WAL receiver
//
// A keeper reaches its own server directly and its peer's through the proxy; a standby streams from
// the primary through the proxy (a rejoined one too: the keeper writes its peer's conninfo, the proxy,
// into primary_conninfo). The writer and etcd are reached directly from both sides. Cutting both
// proxies is thus a network partition between the nodes, and only that.
//
// A cut is a black hole, as a real partition is: nothing is refused, bytes simply stop (and flow again
// on heal); each side notices only through its own timeouts. `pg-keeper demo partition` and
// `demo heal` run in another process: they leave a request in the demo directory, the demo applies it
// within a fraction of a second and records the result in state.json, which they wait for.
import fs from 'node:fs';
import { NODES, type NodeName } from '../config/config.js';
import { TcpProxy } from '../local-pair/tcp-proxy.js';
import { demoFiles } from './workdir.js';

export type NetworkState = 'connected' | 'partitioned';

export interface NetworkRequest {
  want: NetworkState;
  /** Wall-clock ms when it was asked: the demo records it once applied. */
  at: number;
}

export class DemoNetwork {
  state: NetworkState = 'connected';
  /** Wall-clock ms of the last change (start, cut, heal). */
  changedAt = Date.now();

  private constructor(readonly proxyTo: Record<NodeName, TcpProxy>) {}

  /** A proxy in front of each server (ports chosen by the kernel). */
  static async start(ports: Record<NodeName, number>): Promise<DemoNetwork> {
    const to1 = await TcpProxy.start({ host: '127.0.0.1', port: ports.node1 });
    try {
      const to2 = await TcpProxy.start({ host: '127.0.0.1', port: ports.node2 });
      return new DemoNetwork({ node1: to1, node2: to2 });
    } catch (err) {
      await to1.close();
      throw err;
    }
  }

  async set(want: NetworkState): Promise<void> {
    if (want === this.state) return;
    await Promise.all(
      NODES.map((n) =>
        want === 'partitioned' ? this.proxyTo[n].cut('blackhole') : this.proxyTo[n].restore(),
      ),
    );
    this.state = want;
    this.changedAt = Date.now();
  }

  async close(): Promise<void> {
    await Promise.all(NODES.map((n) => this.proxyTo[n].close()));
  }
}

export function writeNetworkRequest(dir: string, request: NetworkRequest): void {
  const file = demoFiles(dir).networkRequest;
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(request)}\n`);
  fs.renameSync(`${file}.tmp`, file);
}

export function readNetworkRequest(dir: string): NetworkRequest | null {
  try {
    const r = JSON.parse(fs.readFileSync(demoFiles(dir).networkRequest, 'utf8')) as NetworkRequest;
    return r.want === 'connected' || r.want === 'partitioned' ? r : null;
  } catch {
    return null;
  }
}
