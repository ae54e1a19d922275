// What the keeper loop talks to: the local server and the peer behind two small
// interfaces (postgres/local.ts and postgres/peer.ts, or fakes in tests), and everything
// else it is given at construction.

import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { RunHook } from '../hooks/hooks.js';
import type { KeeperMetrics } from '../metrics/metrics.js';
import type { ArbiterStatus } from '../arbiter/etcd.js';
import type {
  ArbiterView,
  LocalObservation,
  PeerObservation,
  ReplicationRecord,
  ServerView,
  Signal,
} from '../policy/types.js';
import type { Clock } from './clock.js';

/** The local server as the loop uses it (postgres/local.ts, or a fake in tests). */
export interface LocalPort {
  observe(timeoutMs: number): Promise<LocalObservation>;
  switchToAsync(timeoutMs: number): Promise<void>;
  /** Returns the WAL position once synchronous replication is back. */
  restoreSync(value: string, timeoutMs: number): Promise<string>;
  promote(waitSeconds: number, timeoutMs: number): Promise<void>;
  setWalRetrieveRetryInterval(ms: number, timeoutMs: number): Promise<void>;
  /** The rights the keeper's role lacks (a superuser lacks none). */
  missingGrants?(lifecycle: boolean, timeoutMs: number): Promise<string[]>;
  close(): void;
}

export interface PeerPort {
  heartbeat(timeoutMs: number): Promise<PeerObservation>;
  close(): void;
}

/** The etcd arbiter as the loop uses it (arbiter/etcd.ts, or a fake in tests). */
export interface ArbiterPort {
  observe(timeoutMs: number): Promise<ArbiterView>;
  claim(replicationRevision: number | null, recordAsync: boolean, timeoutMs: number): Promise<void>;
  release(timeoutMs: number): Promise<void>;
  record(mode: ReplicationRecord, timeoutMs: number): Promise<void>;
  /** Called when the lease's standing changes between ticks (a renewal failed, the lease ran out). */
  onChange(listener: () => void): void;
  status(): ArbiterStatus;
  close(): void;
}

/** The local server's data directory, when the keeper manages its server (data_directory). */
export interface ServerPort {
  state(timeoutMs: number): Promise<ServerView>;
  /** Turn the local server into the peer's standby; `progress` hears each step. */
  rejoin(
    progress: (step: string, detail: string) => void,
  ): Promise<{ method: 'rewind' | 'basebackup' | 'restart' }>;
  /** Hand the primary over to the peer (lifecycle/switchover.ts). */
  switchover(id: string, progress: (step: string, detail: string) => void): Promise<void>;
}

/** The signal this keeper holds on the peer's server (postgres/signal.ts). */
export interface SignalPort {
  hold(signal: Signal | null): Promise<void>;
  close(): void;
}

export interface KeeperDeps {
  config: Config;
  local: LocalPort;
  peer: PeerPort;
  logger: Logger;
  metrics: KeeperMetrics;
  runHook: RunHook;
  clock?: Clock;
  /** The etcd arbiter; absent in two-node mode. */
  arbiter?: ArbiterPort;
  /** The local server's processes and files; absent without data_directory. */
  server?: ServerPort;
  /** The keeper's signals to its peer. */
  signals?: SignalPort;
}
