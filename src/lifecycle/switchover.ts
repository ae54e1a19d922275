// A planned switchover, on the primary's side: hand the primary over to the synchronous
// standby without losing an acknowledged commit, and with writes stopped only for as long as
// a clean stop and a promotion take.
//
//   announce   a session on the standby's server named pg-keeper:<me>:switchover:<id>:<to>;
//              the standby's keeper answers ready (or refused) through a session of its own
//              on this server. No new port between the hosts: only PostgreSQL.
//   stop       a clean (fast) stop: PostgreSQL sends every WAL record, the shutdown
//              checkpoint included, to its standby before it completes
//   stopped    the shutdown checkpoint's LSN, read from the control file, signalled to the
//              standby, which promotes once it has replayed past it; the lease given up
//   rejoin     once the standby is the primary: a standby of it (no rewind needed: this
//              server stopped exactly at the fork point)
//
// Every step that fails before the standby promoted leaves (or puts back) this server as
// the primary; a stop that was not clean leaves the decision to the standby's keeper, whose
// ordinary rules apply once the announcement (this keeper's session) is gone.

import type { NodeName } from '../config/config.js';
import { signalText } from '../policy/types.js';
import type { PgSession } from '../postgres/session.js';
import type { ServerControl } from '../server/control.js';
import { errorText } from '../util/errors.js';
import { sleep } from '../util/wait.js';

export interface SwitchoverDeps {
  node: NodeName;
  peer: NodeName;
  id: string;
  control: ServerControl;
  /** A session on the peer's server whose application_name carries this keeper's signal. */
  signal: { set(text: string): Promise<void>; close(): void };
  /** The local server, to read the standby keeper's answer. */
  local: PgSession;
  /** The peer's server, to see it promoted. */
  peerServer: PgSession;
  /** The arbiter: give the lease up once the server stopped (the standby takes it to promote). */
  releaseLease: (() => Promise<void>) | null;
  rejoin: (progress: (step: string, detail: string) => void) => Promise<{ method: string }>;
  progress: (step: string, detail: string) => void;
  /** How long the standby's keeper has to answer, and then to promote. */
  answerMs: number;
  promoteMs: number;
  /** Once the stopped signal is withdrawn, how long before the standby surely saw it go (two of its ticks). */
  withdrawMs: number;
}

const Q = 5_000;

export async function switchover(d: SwitchoverDeps): Promise<void> {
  const { control, id } = d;
  const sig = (word: string, arg?: string): string =>
    signalText({ from: d.node, word: word as 'switchover', id, arg: arg ?? null });

  d.progress('announcing', `telling ${d.peer}'s keeper, and waiting for its answer`);
  await d.signal.set(sig('switchover', d.peer));
  const answer = await waitForAnswer(d);
  if (answer === 'refused') throw new Error(`${d.peer}'s keeper refused (it is paused)`);
  if (answer === null) throw new Error(`${d.peer}'s keeper did not answer within ${d.answerMs} ms`);

  d.progress('stopping', 'a clean (fast) stop: every WAL record goes to the standby first');
  await control.stop('fast');
  const state = await control.state();
  if (state.running || state.clusterState !== 'shut down' || state.checkpointLsn === null) {
    // Not a clean stop: the standby's keeper decides by its ordinary rules once this
    // keeper's announcement is gone (its guards know whether it may promote).
    throw new Error(
      `the server did not stop cleanly (${state.clusterState}); leaving the decision to ${d.peer}'s keeper`,
    );
  }

  d.progress(
    'stopped',
    `shut down at ${state.checkpointLsn}; ${d.peer} promotes once it has replayed past it`,
  );
  if (d.releaseLease) await d.releaseLease();
  await d.signal.set(sig('stopped', state.checkpointLsn));

  d.progress('waiting-for-promotion', `waiting for ${d.peer} to be the primary`);
  if (!(await promoted(d, Date.now() + d.promoteMs))) {
    // Withdraw the signal first, and make sure it did not promote meanwhile, so that the
    // two servers never both take writes.
    d.signal.close();
    await sleep(d.withdrawMs);
    if (!(await promoted(d, Date.now()))) {
      d.progress('aborting', `${d.peer} did not promote: starting this server again as the primary`);
      await control.start();
      throw new Error(`${d.peer} did not promote within ${d.promoteMs} ms; this server is the primary again`);
    }
  }

  d.signal.close();
  d.progress('rejoining', `${d.peer} is the primary: this server becomes its standby`);
  await d.rejoin(d.progress);
}

/** ready, refused, or null when the standby's keeper did not answer in time. */
async function waitForAnswer(d: SwitchoverDeps): Promise<'ready' | 'refused' | null> {
  const deadline = Date.now() + d.answerMs;
  const ready = signalText({ from: d.peer, word: 'ready', id: d.id, arg: null });
  const refused = signalText({ from: d.peer, word: 'refused', id: d.id, arg: null });
  while (Date.now() < deadline) {
    const [r] = await d.local.query<{ names: string[] }>(
      `SELECT coalesce(array_agg(application_name::text), '{}') AS names FROM pg_stat_activity
        WHERE application_name LIKE 'pg-keeper:%'`,
      [],
      Q,
    );
    const names = r?.names ?? [];
    if (names.includes(ready)) return 'ready';
    if (names.includes(refused)) return 'refused';
    await sleep(20);
  }
  return null;
}

async function promoted(d: SwitchoverDeps, deadline: number): Promise<boolean> {
  for (;;) {
    try {
      const [r] = await d.peerServer.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r', [], Q);
      if (r?.r === false) return true;
    } catch (err) {
      d.progress('waiting-for-promotion', `${d.peer} does not answer: ${errorText(err)}`);
    }
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
}
