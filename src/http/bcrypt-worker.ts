// The bcrypt comparisons of basic authentication, off the keeper's event loop: a cost-10
// comparison takes tens of milliseconds of pure computation, and a flood of wrong passwords
// must not delay the heartbeats (http/auth.ts sends the work here, one at a time).

import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

parentPort?.on('message', (m: { id: number; password: string; hash: string }) => {
  let ok: boolean;
  try {
    ok = bcrypt.compareSync(m.password, m.hash);
  } catch {
    ok = false;
  }
  parentPort?.postMessage({ id: m.id, ok });
});
