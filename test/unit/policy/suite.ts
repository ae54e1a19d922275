// Every test file of this directory in one process, for Stryker (stryker.config.json,
// stryker.policy.config.json): its tap runner starts a process per test file for each
// mutant, and one process instead of several makes a mutation run much shorter.
// `npm test` runs the test files themselves; this file finds them, so none is left out.

import { readdirSync } from 'node:fs';

const here = new URL('.', import.meta.url);
for (const file of readdirSync(here)
  .filter((f) => f.endsWith('.test.ts'))
  .sort()) {
  await import(new URL(file, here).href);
}
