// `pg-keeper import-conf postgresql.conf`: pg_keeper kept its settings in postgresql.conf
// as pg_keeper.*; print them as pg-keeper's YAML so that a migration starts from the
// settings already in production.

import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { Invalid, KEY_NAMES, defOf, type KeyName } from './keys.js';

/** pg_keeper.<name> -> our key: the keys pg_keeper had, under every spelling we accept. */
const MAP: ReadonlyMap<string, KeyName> = new Map(
  KEY_NAMES.filter((k) => defOf(k).fromPgKeeper).flatMap((k) =>
    [k, ...(defOf(k).aliases ?? [])].map((name) => [name, k] as const),
  ),
);

/** Reads `pg_keeper.name = value` lines (postgresql.conf syntax: quotes, '' escapes, # comments). */
export function importPgKeeperSettings(text: string): {
  settings: Record<string, string | number>;
  unknown: string[];
} {
  const settings: Record<string, string | number> = {};
  const unknown: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*pg_keeper\.([a-z0-9_]+)\s*=?\s*('(?:[^'\\]|''|\\.)*'|[^\s#]+)/i.exec(line);
    if (!m || m[1] === undefined || m[2] === undefined) continue;
    const name = m[1].toLowerCase();
    let value = m[2];
    if (value.startsWith("'")) value = value.slice(1, -1).replace(/''/g, "'").replace(/\\(.)/g, '$1');
    const key = MAP.get(name);
    if (key === undefined) {
      unknown.push(name);
      continue;
    }
    // postgresql.conf has no types: a value that the key takes as a number is written as one.
    const n = Number(value);
    settings[key] = value.trim() !== '' && !(defOf(key).parse(n) instanceof Invalid) ? n : value;
  }
  return { settings, unknown };
}

export function importConfCommand(file: string): number {
  const { settings, unknown } = importPgKeeperSettings(readFileSync(file, 'utf8'));
  if (Object.keys(settings).length === 0) {
    process.stderr.write(`pg-keeper: no pg_keeper.* settings found in ${file}\n`);
    return 1;
  }
  // pg_keeper's defaults differ from ours (keepalive_count 1): make them explicit.
  const out = { keepalive_time: 5, keepalive_count: 1, ...settings, node: 'node1', listen: '0.0.0.0:9754' };
  process.stdout.write(`# converted from ${file} by pg-keeper import-conf\n`);
  process.stdout.write('# set node: to node2 on the second host (or use --node)\n');
  process.stdout.write(stringify(out));
  for (const name of unknown)
    process.stderr.write(`pg-keeper: pg_keeper.${name} has no equivalent; left out\n`);
  return 0;
}
