// One sample of everything the demo shows at a time (both keepers' /status, the network, the arbiter,
// the writer, the last `demo kill`), and the tracker's lines for it; shared by the live view and the
// scripted story (`--once`).
import { Sampler } from './sampler.js';
import { Cancelled, type DemoStack } from './stack.js';
import { Tracker, clock, type DemoSample } from './tracker.js';
import { readKillRecord } from './workdir.js';
import { waitFor } from '../util/wait.js';

/**
 * One sample of everything at a time, and the tracker's lines for it (printed through `print`); runs
 * the checks of the writer's acknowledged writes that a promotion asks for.
 */
export class Watch {
  readonly tracker = new Tracker();
  private readonly sampler: Sampler;
  private checking: Promise<void> | null = null;

  constructor(
    private readonly stack: DemoStack,
    private readonly dir: string,
    private readonly print: (line: string) => void,
  ) {
    this.sampler = new Sampler(stack.keeperUrls());
  }

  async sample(): Promise<DemoSample> {
    const nodes = await this.sampler.sample();
    const { network, writer, etcd } = this.stack;
    const now = Date.now();
    return {
      now,
      nodes,
      network: network
        ? {
            state: network.state,
            changedAt: network.changedAt,
            proxyPorts: { node1: network.proxyTo.node1.port, node2: network.proxyTo.node2.port },
          }
        : null,
      arbiter: etcd?.url ?? null,
      writer: writer ? { ...writer.view(now), notable: [...writer.gaps.notable] } : null,
      kill: readKillRecord(this.dir),
    };
  }

  /** Samples, prints what changed, starts a check a promotion asked for; returns the sample. */
  async step(): Promise<DemoSample> {
    const sample = await this.sample();
    for (const line of this.tracker.update(sample)) this.print(line);
    const node = this.tracker.checks.shift();
    const { writer, pair } = this.stack;
    if (node && writer && pair && !this.checking) {
      this.checking = writer
        .check(node, pair.target(pair[node]))
        .then(
          (c) => this.print(this.tracker.noteCheck(c)),
          (e: unknown) =>
            this.print(`${clock(Date.now())}  WRITES: could not check ${node}: ${(e as Error).message}`),
        )
        .finally(() => (this.checking = null));
    }
    return sample;
  }

  /** Once node1 is the primary with a synchronous standby, node2 sees itself as that, and (arbiter) node1 holds the lease. */
  async untilReady(cancelled: () => boolean, timeoutMs = 40_000): Promise<void> {
    await this.sampler.prime();
    const outcome = await waitFor(
      async () => {
        if (cancelled()) return 'cancelled';
        const [s1, s2] = (await this.sampler.sample()).map((n) => n.status);
        const paired =
          s1?.role === 'primary' &&
          s1.sync_mode === 'sync' &&
          s1.peer_reachable &&
          s2?.role === 'standby' &&
          s2.peer_reachable &&
          s2.guards.synchronous_at_last_contact;
        const leased =
          this.stack.etcd === null ||
          (s1?.arbiter?.lease_held === true &&
            s1.arbiter.replication === 'sync' &&
            s2?.arbiter?.holder === 'node1');
        return paired && leased && 'ready';
      },
      `node1's keeper to see a synchronous standby${this.stack.etcd ? ' and hold the lease' : ''}, and node2's to see itself as that standby`,
      timeoutMs,
      100,
    );
    if (outcome === 'cancelled') throw new Cancelled();
  }
}

export function readyLine(): string {
  return 'ready: node1 is the primary, node2 its synchronous standby, and both keepers see each other';
}
