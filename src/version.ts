// pg-keeper's version: package.json's, the one place it is written. src/version.ts and
// dist/version.js both sit one directory below the package root. The single-file bundle
// (scripts/bundle.ts, for the Debian package and the image) has no package.json beside
// it: the bundler writes the version in, as PG_KEEPER_BUNDLED_VERSION.

import { readFileSync } from 'node:fs';

declare const PG_KEEPER_BUNDLED_VERSION: string | undefined;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export const VERSION: string =
  typeof PG_KEEPER_BUNDLED_VERSION === 'string' ? PG_KEEPER_BUNDLED_VERSION : packageVersion();
