// The local pair with what only the tests, the fault-injection suite and the benchmarks do to it:
// stop a node, signal every process of its server (SIGKILL, or SIGSTOP to freeze it), and rebuild
// a node as the standby of the other. Kept out of src/ so that none of it ships in dist/.
//
//   const pair = await TestPair.create({ baseDir });
import fsp from 'node:fs/promises';
import type { NodeName } from '../../src/config/config.js';
import { PgPair, type PgNode } from '../../src/local-pair/pair.js';
import { readProcStat, trySignal } from '../../src/util/procfs.js';
import { killServer, postmasterPid, releaseStaleSharedMemory } from '../../src/server/procs.js';
import { waitFor } from '../../src/util/wait.js';

export type { PairOptions, PgNode } from '../../src/local-pair/pair.js';

export class TestPair extends PgPair {
  /** Nodes whose server this pair stopped with SIGSTOP (stop() thaws them first). */
  readonly #frozen = new Set<NodeName>();

  /**
   * pg_ctl stop -w (default mode fast). A node stopped with SIGSTOP is sent SIGCONT first; a node that
   * is not running is left alone. Processes still there afterwards are killed.
   */
  async stop(node: PgNode, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    this.assertUsable();
    if (this.#frozen.has(node.name)) await this.kill(node, 'SIGCONT');
    if (postmasterPid(node.dataDir) !== null) {
      await this.runPg('pg_ctl', ['-D', node.dataDir, '-m', mode, '-w', '-t', '30', 'stop'], {
        node,
        timeoutMs: 40_000,
      });
    }
    if (this.pids(node).length > 0) await this.kill(node, 'SIGKILL');
  }

  /**
   * Sends `signal` to every process of the node's server (postmaster first, then rescans for anything
   * forked meanwhile). SIGKILL resolves once all are gone; SIGSTOP once all are stopped. SIGKILL of a
   * node that is not running is a no-op; other signals to it reject.
   */
  async kill(node: PgNode, signal: NodeJS.Signals): Promise<void> {
    if (signal === 'SIGKILL') {
      await killServer(node.dataDir);
      this.#frozen.delete(node.name);
      return;
    }
    const pids = this.pids(node);
    if (pids.length === 0) throw new Error(`${node.name} has no running processes to send ${signal} to`);
    if (signal === 'SIGSTOP') {
      this.#frozen.add(node.name);
      await waitFor(
        () => {
          let allStopped = true;
          for (const pid of this.pids(node)) {
            if (readProcStat(pid)?.state === 'T') continue;
            allStopped = false;
            trySignal(pid, 'SIGSTOP');
          }
          return allStopped;
        },
        `the processes of ${node.name} to stop`,
        10_000,
        10,
      );
      return;
    }
    if (signal === 'SIGCONT') this.#frozen.delete(node.name);
    for (const pid of pids) trySignal(pid, signal);
  }

  /**
   * Turns a node back into a standby of `from` (the old primary returning after a failover): stops it
   * (immediate) if running, deletes its data directory, pg_basebackup from `from` with -R and
   * application_name=<node.name>, starts it on its old port, and resolves once `from` lists it as sync.
   */
  async rebuildAsStandby(node: PgNode, from: PgNode): Promise<void> {
    this.assertUsable();
    if (node === from) throw new Error('rebuildAsStandby: a node cannot be its own primary');
    const t0 = Date.now();
    await this.stop(node, 'immediate');
    releaseStaleSharedMemory(node.dataDir);
    await fsp.rm(node.dataDir, { recursive: true, force: true });
    await this.basebackup(node, from);
    await this.writeConf(node);
    await this.start(node);
    await this.waitForSync(node, from);
    this.log(`${node.name}: rebuilt as sync standby of ${from.name} in ${Date.now() - t0} ms`);
  }
}
