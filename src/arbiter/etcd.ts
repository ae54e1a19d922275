// The arbiter: every etcd call the keeper makes, and what they mean. Two keys per pair,
// under etcd_prefix:
//
//   <prefix>/leader       the primary's key: its node's name, bound to the holder's lease,
//                         taken only if absent (a transaction on its create revision)
//   <prefix>/replication  {"mode":"sync"|"async","by":"node1"}: written only under the lease,
//                         "async" before a switch to async, "sync" once no commit acknowledged
//                         alone can be missing on the standby
//
// The lease is renewed here, on a timer of its own (a quarter of the TTL), not at the
// keeper's ticks. What the policy is told (observe) is read in one round trip at each tick;
// how long the lease has left is counted on this process's monotonic clock from the send
// time of the last renewal that succeeded, so that the keeper never believes it holds a
// lease that etcd may already have let go.

import type { Logger } from 'pino';
import type { NodeName } from '../config/config.js';
import type { ArbiterView, ReplicationRecord } from '../policy/types.js';
import type { Clock } from '../runtime/clock.js';
import { errorText } from '../util/errors.js';
import { EtcdClient, b64, unb64, type EtcdClientOptions } from './etcd-client.js';

export interface EtcdArbiterOptions extends EtcdClientOptions {
  node: NodeName;
  prefix: string;
  ttlMs: number;
  clock: Clock;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
}

/** What the keeper's /status and metrics show of the arbiter, beside the policy's view. */
export interface ArbiterStatus {
  endpoint: string;
  /** The last call to etcd succeeded within the TTL. */
  up: boolean;
  lastSuccessAt: number | null;
  lastError: string | null;
  leaseId: string | null;
  leaseRemainingMs: number | null;
  renewals: number;
  renewalFailures: number;
  leasesLost: number;
}

interface Held {
  id: string;
  /** Monotonic ms after which the lease may be gone: send time of the last good renewal + TTL. */
  deadline: number;
}

interface Kv {
  value: string;
  lease: string;
  modRevision: number;
}

export class EtcdArbiter {
  private readonly client: EtcdClient;
  private held: Held | null = null;
  private timer: NodeJS.Timeout | null = null;
  private expiry: NodeJS.Timeout | null = null;
  private renewing = false;
  private closed = false;
  private lastSuccessAt: number | null = null;
  private lastError: string | null = null;
  private renewals = 0;
  private renewalFailures = 0;
  private leasesLost = 0;
  private listeners: (() => void)[] = [];
  /** The leader key as last read: a claim re-binds a key this node holds from before a restart. */
  private leader: Kv | null = null;
  private readonly leaderKey: string;
  private readonly replicationKey: string;

  constructor(private readonly o: EtcdArbiterOptions) {
    this.client = new EtcdClient(o);
    this.leaderKey = `${o.prefix}/leader`;
    this.replicationKey = `${o.prefix}/replication`;
  }

  /** How often the lease is renewed: a quarter of its TTL (between 250 ms and 2 s). */
  get renewEveryMs(): number {
    return Math.min(2000, Math.max(250, this.o.ttlMs / 4));
  }

  /** Called when the lease's standing changes between ticks: a renewal failed, or the lease was lost. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** The leader and replication keys, in one round trip. */
  async observe(timeoutMs: number): Promise<ArbiterView> {
    try {
      const r = await this.call(
        '/v3/kv/txn',
        {
          compare: [],
          success: [
            { request_range: { key: b64(this.leaderKey) } },
            { request_range: { key: b64(this.replicationKey) } },
          ],
        },
        timeoutMs,
      );
      const [leader, replication] = rangeResults(r);
      this.leader = leader ?? null;
      const mode = parseReplication(replication?.value);
      return {
        reachable: true,
        error: null,
        holder: leader ? (leader.value === this.o.node ? 'self' : 'peer') : null,
        leaseRemainingMs: leader && this.held && leader.lease === this.held.id ? this.remaining() : null,
        replication: mode,
        replicationRevision: replication?.modRevision ?? 0,
      };
    } catch (err) {
      return {
        reachable: false,
        error: errorText(err),
        holder: null,
        leaseRemainingMs: this.remaining(),
        replication: null,
        replicationRevision: 0,
      };
    }
  }

  /**
   * Take the leader key under a new lease: create-if-absent, or re-bind it when it already
   * names this node (a key left from before a restart, or a lease that ran out). With
   * `replicationRevision`, the replication record must not have changed since it was read;
   * with `recordAsync`, "async" is written in the same transaction.
   */
  async claim(replicationRevision: number | null, recordAsync: boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const left = (): number => Math.max(1, deadline - Date.now());
    if (this.held && this.remaining() !== null && this.leader?.lease === this.held.id) {
      if (recordAsync) await this.record('async', left());
      return;
    }
    const sent = this.o.clock.monotonic();
    const grant = await this.call('/v3/lease/grant', { TTL: Math.ceil(this.o.ttlMs / 1000) }, left());
    const id = String(grant.ID ?? '');
    const ttl = Number(grant.TTL ?? 0);
    if (id === '' || !(ttl > 0)) throw new Error('etcd granted no lease');
    const mine = this.leader !== null && this.leader.value === this.o.node ? this.leader : null;
    const compare: unknown[] = mine
      ? [
          { key: b64(this.leaderKey), target: 'VALUE', result: 'EQUAL', value: b64(this.o.node) },
          { key: b64(this.leaderKey), target: 'LEASE', result: 'EQUAL', lease: mine.lease },
        ]
      : [{ key: b64(this.leaderKey), target: 'CREATE', result: 'EQUAL', create_revision: '0' }];
    if (replicationRevision !== null)
      compare.push({
        key: b64(this.replicationKey),
        target: 'MOD',
        result: 'EQUAL',
        mod_revision: String(replicationRevision),
      });
    const success: unknown[] = [
      { request_put: { key: b64(this.leaderKey), value: b64(this.o.node), lease: id } },
    ];
    if (recordAsync) success.push(this.replicationPut('async'));
    const r = await this.call('/v3/kv/txn', { compare, success, failure: [] }, left()).catch(
      async (err: unknown) => {
        await this.revoke(id, left());
        throw err;
      },
    );
    if (r.succeeded !== true) {
      await this.revoke(id, left());
      throw new Error(
        replicationRevision !== null
          ? 'the lease or the replication record changed since this tick read them; not taken'
          : 'the primary key was taken by the peer meanwhile',
      );
    }
    const previous = [mine?.lease, this.held?.id].filter((l): l is string => !!l && l !== '0' && l !== id);
    this.held = { id, deadline: sent + ttl * 1000 };
    this.leader = { value: this.o.node, lease: id, modRevision: 0 };
    this.o.log.info({ event: 'lease-claimed', lease_ttl: ttl }, `took the lease (TTL ${ttl} s)`);
    // A lease of ours that no longer holds the key would only keep nothing alive until its TTL.
    for (const old of new Set(previous)) await this.revoke(old, left()).catch(() => {});
    this.schedule();
  }

  /** Give the lease up: revoking it deletes the leader key with it. */
  async release(timeoutMs: number): Promise<void> {
    const held = this.held;
    this.held = null;
    this.stop();
    if (held) {
      await this.revoke(held.id, timeoutMs);
    } else if (this.leader?.value === this.o.node) {
      // A key left from before a restart, under a lease this process does not renew.
      await this.call(
        '/v3/kv/txn',
        {
          compare: [{ key: b64(this.leaderKey), target: 'VALUE', result: 'EQUAL', value: b64(this.o.node) }],
          success: [{ request_delete_range: { key: b64(this.leaderKey) } }],
        },
        timeoutMs,
      );
    }
    this.leader = null;
    this.o.log.info({ event: 'lease-released' }, 'gave the lease up');
  }

  /** Write the replication record, only while this keeper's lease holds the leader key. */
  async record(mode: ReplicationRecord, timeoutMs: number): Promise<void> {
    const held = this.held;
    if (!held || this.remaining() === null) throw new Error('this keeper does not hold the lease');
    const r = await this.call(
      '/v3/kv/txn',
      {
        compare: [
          { key: b64(this.leaderKey), target: 'VALUE', result: 'EQUAL', value: b64(this.o.node) },
          { key: b64(this.leaderKey), target: 'LEASE', result: 'EQUAL', lease: held.id },
        ],
        success: [this.replicationPut(mode)],
      },
      timeoutMs,
    );
    if (r.succeeded !== true) throw new Error('the leader key is no longer held by this lease; not recorded');
  }

  status(): ArbiterStatus {
    const now = this.o.clock.monotonic();
    return {
      endpoint: this.client.endpoint,
      up: this.lastSuccessAt !== null && now - this.lastSuccessAt < this.o.ttlMs,
      lastSuccessAt: this.lastSuccessAt,
      lastError: this.lastError,
      leaseId: this.held?.id ?? null,
      leaseRemainingMs: this.remaining(),
      renewals: this.renewals,
      renewalFailures: this.renewalFailures,
      leasesLost: this.leasesLost,
    };
  }

  close(): void {
    this.closed = true;
    this.stop();
    this.client.close();
  }

  private replicationPut(mode: ReplicationRecord): unknown {
    return {
      request_put: { key: b64(this.replicationKey), value: b64(JSON.stringify({ mode, by: this.o.node })) },
    };
  }

  /** Time left on the lease by this process's clock; null when none is held (or it ran out). */
  private remaining(): number | null {
    if (!this.held) return null;
    const left = this.held.deadline - this.o.clock.monotonic();
    if (left > 0) return left;
    this.lost('it was not renewed in time');
    return null;
  }

  private lost(why: string): void {
    const held = this.held;
    if (!held) return;
    this.held = null;
    this.stop();
    this.leasesLost += 1;
    // When it ran out by this process's clock, in wall-clock time, for people and tests.
    const ranOut = new Date(this.o.clock.now() - (this.o.clock.monotonic() - held.deadline)).toISOString();
    this.o.log.warn({ event: 'lease-lost', reason: why, ran_out_at: ranOut }, `lost the lease: ${why}`);
    this.notify();
  }

  /**
   * The next renewal: a quarter of the TTL after a success, sooner after a failure; and a
   * timer at the deadline itself, so that a lease that runs out is known (and the keeper
   * woken to go back to sync) at that moment, not at the next tick.
   */
  private schedule(afterFailure = false): void {
    this.stop();
    if (this.closed || !this.held) return;
    const next = afterFailure ? Math.min(250, this.renewEveryMs) : this.renewEveryMs;
    this.timer = setTimeout(() => void this.renew(), next);
    this.timer.unref();
    const left = this.held.deadline - this.o.clock.monotonic();
    this.expiry = setTimeout(() => this.remaining(), Math.max(0, left) + 1);
    this.expiry.unref();
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.expiry) clearTimeout(this.expiry);
    this.timer = null;
    this.expiry = null;
  }

  private async renew(): Promise<void> {
    const held = this.held;
    if (!held || this.renewing) return;
    this.renewing = true;
    const sent = this.o.clock.monotonic();
    let failed = false;
    try {
      const r = await this.call('/v3/lease/keepalive', { ID: held.id }, Math.min(this.renewEveryMs, 2000));
      const ttl = Number(r.TTL ?? 0);
      if (this.held !== held) return; // released or re-claimed meanwhile
      if (ttl > 0) {
        held.deadline = sent + ttl * 1000;
        this.renewals += 1;
      } else {
        this.lost('etcd says it has expired');
      }
    } catch (err) {
      failed = true;
      this.renewalFailures += 1;
      if (this.held === held) {
        this.o.log.warn(
          {
            event: 'lease-renewal-failed',
            error: errorText(err),
            lease_remaining_ms: Math.round(held.deadline - sent),
          },
          `could not renew the lease: ${errorText(err)}`,
        );
        this.remaining(); // a deadline that passed is a lost lease
        this.notify();
      }
    } finally {
      this.renewing = false;
      this.schedule(failed);
    }
  }

  private async revoke(id: string, timeoutMs: number): Promise<void> {
    await this.call('/v3/lease/revoke', { ID: id }, timeoutMs);
  }

  private async call(
    path: string,
    body: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    try {
      const r = await this.client.call(path, body, timeoutMs);
      this.lastSuccessAt = this.o.clock.monotonic();
      this.lastError = null;
      return r;
    } catch (err) {
      this.lastError = errorText(err);
      throw err;
    }
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }
}

/** The kvs of a txn's range responses, in order. */
function rangeResults(r: Record<string, unknown>): (Kv | undefined)[] {
  const responses = Array.isArray(r.responses) ? (r.responses as Record<string, unknown>[]) : [];
  return responses.map((resp) => {
    const range = resp.response_range as { kvs?: Record<string, unknown>[] } | undefined;
    const kv = range?.kvs?.[0];
    if (!kv) return undefined;
    return {
      value: unb64(kv.value),
      lease: String(kv.lease ?? '0'),
      modRevision: Number(kv.mod_revision ?? 0),
    };
  });
}

function parseReplication(value: string | undefined): ReplicationRecord | null {
  if (!value) return null;
  try {
    const mode = (JSON.parse(value) as { mode?: unknown }).mode;
    return mode === 'sync' || mode === 'async' ? mode : null;
  } catch {
    return null;
  }
}
