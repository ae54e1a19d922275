// A configuration file for the loader tests, and the problems a bad one is reported with.

import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/config/config.js';
import { parseConfig, type Overrides } from '../../../src/config/load.js';

/** The keys every file must have: the two conninfos (with a password each) and the node. */
export const BASE = `
node1_conninfo: "host=127.0.0.1 port=5551 dbname=postgres user=keeper password=s3cret-pw"
node2_conninfo: "postgresql://keeper:s3cret-pw@127.0.0.1:5552/postgres"
node: node1
`;

/** The problems parseConfig reports for this text, as /etc/pg-keeper.yml; fails if it accepts it. */
export function problemsOf(text: string, overrides: Overrides = {}): string[] {
  try {
    parseConfig(text, '/etc/pg-keeper.yml', overrides, {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.file, '/etc/pg-keeper.yml');
    return err.problems;
  }
  assert.fail('the configuration was accepted');
}

/** The configuration BASE plus these lines gives. */
export const configWith = (extra = '', env: NodeJS.ProcessEnv = {}) =>
  parseConfig(`${BASE}${extra}`, 'f.yml', {}, env);
