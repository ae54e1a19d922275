// etcd seen from outside the pair: a client of its own, straight to a member (not through the
// keepers' proxies), that reads the primary's key every 20 ms and, while a lease holds it, that
// lease's time to live. It tells when etcd itself let the lease go, which the keepers cannot.
//
// etcd reports a lease's TTL in whole seconds, truncated: it reads k - 1 from the moment exactly
// k seconds remain. The poll at which the reading drops to n therefore places the lease's expiry
// n + 1 seconds after the drop, which lies between that poll and the one before. Expired leases are revoked (and their keys deleted) by
// etcd's lessor, which looks only every 500 ms: the key goes some time after the expiry.

import { wallNow } from '../lib/write-loop.js';

export interface WatchSample {
  /** wallNow() when the read was sent. */
  at: number;
  /** The node the primary's key names; null when there is no key; undefined when etcd did not answer. */
  holder: string | null | undefined;
  lease: string | null;
  /** The lease's time to live as etcd reported it (whole seconds); null when not asked or gone. */
  ttl: number | null;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: unknown): string =>
  typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '';

export class EtcdWatch {
  readonly samples: WatchSample[] = [];
  private stopped = false;
  private running: Promise<void> | null = null;
  private readonly key: string;
  /** The member asked now; the next one after a failure (a member may be killed or frozen). */
  private current = 0;

  constructor(
    private readonly endpoints: readonly string[],
    prefix: string,
    private readonly everyMs = 20,
  ) {
    this.key = b64(`${prefix}/leader`);
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  /** The first sample at or after `after` where the key is gone. */
  goneAt(after: number): number | null {
    return this.samples.find((s) => s.at >= after && s.holder === null)?.at ?? null;
  }

  /** The first sample at or after `after` where `node` holds the key. */
  heldByAt(node: string, after: number): number | null {
    return this.samples.find((s) => s.at >= after && s.holder === node)?.at ?? null;
  }

  /**
   * When etcd's lease that held the key at `after` expired, from its TTL readings: the first drop
   * of the reading after its last renewal (a reading going up). Null when no drop was seen (the
   * lease was revoked, not expired, or the watch missed it).
   */
  expiryOf(after: number): number | null {
    const held = this.samples.find((s) => s.at >= after && s.lease !== null);
    if (!held) return null;
    const readings = this.samples.filter((s) => s.at >= after && s.lease === held.lease && s.ttl !== null);
    let expiry: number | null = null;
    for (let i = 1; i < readings.length; i++) {
      const prev = readings[i - 1] as WatchSample;
      const cur = readings[i] as WatchSample;
      const before = prev.ttl as number;
      const now = cur.ttl as number;
      if (now > before)
        expiry = null; // renewed: an earlier drop was not the end
      else if (now < before && expiry === null) expiry = (prev.at + cur.at) / 2 + (now + 1) * 1000;
    }
    return expiry;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const at = wallNow();
      const sample: WatchSample = { at, holder: undefined, lease: null, ttl: null };
      try {
        const r = await this.post('/v3/kv/range', { key: this.key });
        const kv = Array.isArray(r.kvs) ? (r.kvs[0] as Record<string, unknown> | undefined) : undefined;
        sample.holder = kv ? unb64(kv.value) : null;
        const lease = kv && String(kv.lease ?? '0') !== '0' ? String(kv.lease) : null;
        sample.lease = lease;
        if (lease !== null) {
          const t = await this.post('/v3/lease/timetolive', { ID: lease });
          // proto3 JSON leaves a 0 out; -1 is a lease already revoked
          const ttl = Number(t.TTL ?? 0);
          sample.ttl = ttl >= 0 ? ttl : null;
        }
      } catch {
        // etcd down or frozen: the sample says so (holder undefined); ask another member next
        this.current = (this.current + 1) % this.endpoints.length;
      }
      this.samples.push(sample);
      const rest = this.everyMs - (wallNow() - at);
      if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    }
  }

  private async post(path: string, body: unknown): Promise<Record<string, unknown>> {
    const r = await fetch(`${this.endpoints[this.current]}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(500),
    });
    return (await r.json()) as Record<string, unknown>;
  }
}
