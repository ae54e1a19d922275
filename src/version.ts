// pg-keeper's version: package.json's, the one place it is written. src/version.ts and
// dist/version.js both sit one directory below the package root.

import { readFileSync } from 'node:fs';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
