// Rewrites the documentation generated from the code: the configuration reference in
// README.md (src/config/keys.ts) and the policy's table in docs/SITUATIONS.md
// (src/policy/decide.ts). Tests fail when the committed docs differ from what this writes.
import { readFileSync, writeFileSync } from 'node:fs';
import { withReference } from '../src/config/reference.js';
import { withSituations } from '../src/policy/reference.js';

const rewrite = (file: string, edit: (markdown: string) => string): void => {
  const url = new URL(`../${file}`, import.meta.url);
  writeFileSync(url, edit(readFileSync(url, 'utf8')));
};
rewrite('README.md', withReference);
rewrite('docs/SITUATIONS.md', withSituations);
