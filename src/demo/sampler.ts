// What the demo reads of its keepers, as Prometheus and an operator would: each keeper's /status
// (every sample, both in parallel, each within a deadline), and its heartbeat counters from /metrics
// (in the background, only after a keeper's tick). A keeper that does not answer is shown as such.
import { NODES, type NodeName } from '../config/config.js';
import type { Status } from '../http/status.js';
import type { HeartbeatCounts, NodeSample } from './tracker.js';

const TIMEOUT_MS = 1000;

/** Sums every series of a counter in Prometheus text format; null when the counter is absent. */
export function sumCounter(metrics: string, name: string): number | null {
  let sum: number | null = null;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum = (sum ?? 0) + value;
  }
  return sum;
}

/** The keeper's heartbeat counters, read from its /metrics as Prometheus reads them. */
export async function fetchHeartbeats(url: string): Promise<HeartbeatCounts | null> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const text = await res.text();
    const sent = sumCounter(text, 'pg_keeper_heartbeats_total');
    const failed = sumCounter(text, 'pg_keeper_heartbeat_failures_total') ?? 0;
    return sent === null ? null : { ok: sent - failed, failed };
  } catch {
    return null;
  }
}

export async function fetchStatus(url: string): Promise<Status | null> {
  try {
    const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    return res.ok ? ((await res.json()) as Status) : null;
  } catch {
    return null;
  }
}

export class Sampler {
  private readonly counts = new Map<NodeName, HeartbeatCounts | null>();
  private countedTicks = '';
  private fetching = false;

  constructor(private readonly urls: Record<NodeName, string>) {}

  async sample(): Promise<NodeSample[]> {
    const statuses = await Promise.all(NODES.map((n) => fetchStatus(this.urls[n])));
    const samples = NODES.map((node, i): NodeSample => ({
      node,
      status: statuses[i] ?? null,
      heartbeats: this.counts.get(node) ?? null,
      url: this.urls[node],
    }));
    const ticks = samples.map((s) => s.status?.last_tick_at).join();
    if (!this.fetching && ticks !== this.countedTicks) {
      this.fetching = true;
      this.countedTicks = ticks;
      void this.refresh();
    }
    return samples;
  }

  /** Fetches the counters once, so that the first lines printed have them. */
  async prime(): Promise<void> {
    this.fetching = true;
    await this.refresh();
  }

  private async refresh(): Promise<void> {
    await Promise.all(NODES.map(async (n) => this.counts.set(n, await fetchHeartbeats(this.urls[n]))));
    this.fetching = false;
  }
}
