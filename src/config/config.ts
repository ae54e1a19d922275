// The validated, typed configuration. `load.ts` turns a YAML file into this; everything
// after start-up reads only this shape. Its fields are derived from the key table
// (`keys.ts`): one field per key, with the key's own type.

import type { Settings } from './keys.js';

/** The two nodes of a pair, in the order the configuration names them. */
export const NODES = ['node1', 'node2'] as const;
export type NodeName = (typeof NODES)[number];

export type Config = Settings & {
  /** The file it came from, for messages and reloads. */
  file: string;
};

export function peerOf(node: NodeName): NodeName {
  return node === 'node1' ? 'node2' : 'node1';
}

/** The conninfo of the local node and of its peer. */
export function conninfoOf(cfg: Pick<Config, 'node1' | 'node2'>, node: NodeName): Config['node1'] {
  return node === 'node1' ? cfg.node1 : cfg.node2;
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
