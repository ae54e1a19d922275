// The benchmarks measure the built CLI (dist/cli.js), as a user runs it: refuse to run without
// it, and say so when it is older than the sources it is built from.

import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { CLI } from '../../test/support/keeper-process.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

export class MissingBuild extends Error {}

/** Throws MissingBuild without dist/cli.js; warns on stderr when some file of src/ is newer. */
export function checkBuild(): void {
  if (!existsSync(CLI))
    throw new MissingBuild(`${path.relative(ROOT, CLI)} not found: run \`npm run build\` first`);
  const built = statSync(CLI).mtimeMs;
  const newer: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && statSync(p).mtimeMs > built) newer.push(path.relative(ROOT, p));
    }
  };
  walk(path.join(ROOT, 'src'));
  if (newer.length > 0) {
    process.stderr.write(
      `warning: ${newer.length} file(s) in src/ are newer than the built CLI (${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ', ...' : ''}); run \`npm run build\` to measure them\n`,
    );
  }
}
