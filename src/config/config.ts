// The validated, typed configuration. `load.ts` turns a YAML file into this; everything
// after start-up reads only this shape.

import type { Conninfo } from './conninfo.js';

/** The two nodes of a pair, in the order the configuration names them. */
export const NODES = ['node1', 'node2'] as const;
export type NodeName = (typeof NODES)[number];

export interface Config {
  /** The file it came from, for messages and reloads. */
  file: string;
  node: NodeName;
  node1: Conninfo;
  node2: Conninfo;
  keepaliveTimeMs: number;
  keepaliveCount: number;
  heartbeatTimeoutMs: number;
  afterCommand: string | null;
  afterCommandTimeoutMs: number;
  afterAsyncCommand: string | null;
  listen: { host: string; port: number };
  failoverRequiresSync: boolean;
  streamTimeoutMs: number;
  syncRestoreMaxLagBytes: number;
  paused: boolean;
  stateFile: string | null;
  httpToken: string | null;
  tuneWalRetrieveRetryInterval: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

export function peerOf(node: NodeName): NodeName {
  return node === 'node1' ? 'node2' : 'node1';
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}
