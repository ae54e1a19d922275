// Rewrites the configuration reference in README.md from src/config/keys.ts.
import { readFileSync, writeFileSync } from 'node:fs';
import { withReference } from '../src/config/reference.js';

const readme = new URL('../README.md', import.meta.url);
writeFileSync(readme, withReference(readFileSync(readme, 'utf8')));
