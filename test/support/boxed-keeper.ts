// For the tests of a keeper packaged in a box (the container image, the Debian package): a real
// pair on this host, and the configuration of the boxed keeper as node2's, with --network=host.

import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Status } from '../../src/http/status.js';
import { freePort } from '../../src/local-pair/free-port.js';
import { TestPair } from './test-pair.js';

export interface BoxedKeeperSetup {
  pair: TestPair;
  /** http://127.0.0.1:<port>, where the keeper listens. */
  base: string;
  /** dir/pg-keeper.yml, to mount at /etc/pg-keeper/pg-keeper.yml. */
  config: string;
}

/**
 * A new pair in dir/pg and, in dir/pg-keeper.yml, node2's keeper for it: listening on a free port
 * of 127.0.0.1, running `afterCommand` after every action. The file is readable by everyone: the
 * box's user reads it.
 */
export async function boxedKeeperSetup(dir: string, afterCommand: string): Promise<BoxedKeeperSetup> {
  const pair = await TestPair.create({ baseDir: path.join(dir, 'pg') });
  try {
    const port = await freePort();
    const config = path.join(dir, 'pg-keeper.yml');
    fs.writeFileSync(
      config,
      stringify({
        node1_conninfo: pair.conninfo(pair.node1),
        node2_conninfo: pair.conninfo(pair.node2),
        node: 'node2',
        keepalive_time: 0.2,
        keepalive_count: 3,
        listen: `127.0.0.1:${port}`,
        after_command: afterCommand,
      }),
    );
    fs.chmodSync(config, 0o644);
    return { pair, base: `http://127.0.0.1:${port}`, config };
  } catch (err) {
    await pair.destroy();
    throw err;
  }
}

/** The keeper's /status at `base`. */
export async function statusAt(base: string): Promise<Status> {
  const res = await fetch(`${base}/status`, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as Status;
}
