// YAML file -> validated Config, driven by the key table. Every problem found is reported
// at once, each naming the key and the file and saying what is allowed, so an operator
// fixes a file in one pass.

import { readFileSync } from 'node:fs';
import { parseDocument, isMap } from 'yaml';
import { errorText } from '../util/errors.js';
import { ConfigError, type Config } from './config.js';
import {
  CROSS_CHECKS,
  Invalid,
  KEY_NAMES,
  canonicalKey,
  defOf,
  keysOf,
  type Basis,
  type Field,
  type KeyName,
  type Settings,
} from './keys.js';

export interface Overrides {
  node?: string;
  listen?: string;
}

export function loadConfig(file: string, overrides: Overrides = {}, env = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${errorText(err)}`]);
  }
  return parseConfig(text, file, overrides, env);
}

export function parseConfig(
  text: string,
  file: string,
  overrides: Overrides = {},
  env = process.env,
): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map(
        (e) => `YAML syntax error at line ${e.linePos?.[0]?.line ?? '?'}: ${firstLine(e.message)}`,
      ),
    );
  }
  const root: unknown = doc.toJS();
  if (
    root !== null &&
    root !== undefined &&
    (typeof root !== 'object' || Array.isArray(root) || !isMap(doc.contents))
  ) {
    throw new ConfigError(file, ['the file must be a mapping of keys to values (key: value lines)']);
  }
  const problems: string[] = [];

  // What the file (and the command line) gives, by canonical key, under the name used.
  const given = new Map<KeyName, { name: string; value: unknown }>();
  const entries = root !== null && typeof root === 'object' ? Object.entries(root) : [];
  for (const [name, value] of entries) {
    const key = canonicalKey(name);
    if (key === undefined) {
      problems.push(`unknown key "${name}": allowed keys are ${KEY_NAMES.join(', ')}`);
    } else if (given.has(key)) {
      problems.push(`key "${name}" repeats "${key}" (an alias of it): give only one`);
    } else {
      given.set(key, { name, value });
    }
  }

  const settings = new Map<Field, unknown>();
  const from = new Map<Field, string>();
  for (const [key, { name, value }] of given) {
    const field = defOf(key).field;
    const other = from.get(field);
    if (other !== undefined) {
      problems.push(`keys "${other}" and "${name}": give only one`);
      continue;
    }
    from.set(field, name);
    const parsed = defOf(key).parse(value);
    if (parsed instanceof Invalid) problems.push(problemOf(name, key, parsed.problem));
    else settings.set(field, parsed);
  }
  // The command line wins over the file (whose own value was still checked above).
  const cli: [KeyName, string | undefined][] = [
    ['node', overrides.node],
    ['listen', overrides.listen],
  ];
  for (const [key, value] of cli) {
    if (value === undefined) continue;
    const parsed = defOf(key).parse(value);
    from.set(defOf(key).field, `--${key}`);
    if (parsed instanceof Invalid) problems.push(problemOf(`--${key}`, key, parsed.problem));
    else settings.set(defOf(key).field, parsed);
  }

  // Defaults: the constant ones first, then those computed from the settings (the basis).
  const unset = KEY_NAMES.filter((k) => !settings.has(defOf(k).field) && !from.has(defOf(k).field));
  for (const key of unset) {
    const d = defOf(key).default;
    if ('required' in d) problems.push(d.required);
    else if ('value' in d) settings.set(defOf(key).field, d.value);
  }
  const endpoints = settings.get('etcdEndpoints');
  const prefix = settings.get('etcdPrefix');
  const basis: Basis = {
    keepaliveTimeMs: numberOr(settings.get('keepaliveTimeMs'), 5000),
    keepaliveCount: numberOr(settings.get('keepaliveCount'), 4),
    node: settings.get('node') === 'node2' ? 'node2' : 'node1',
    etcdPrefix:
      Array.isArray(endpoints) && endpoints.length > 0 && typeof prefix === 'string' ? prefix : null,
    env,
  };
  for (const key of unset) {
    const d = defOf(key).default;
    if ('derive' in d) settings.set(defOf(key).field, d.derive(basis));
  }
  for (const [key, { name }] of given) {
    const def = defOf(key);
    const wrong = settings.has(def.field) ? def.check?.(settings.get(def.field), basis) : null;
    if (wrong) problems.push(problemOf(name, key, wrong));
  }

  if (problems.length === 0) {
    for (const check of CROSS_CHECKS) {
      const wrong = check(Object.fromEntries(settings) as Settings);
      if (wrong) problems.push(wrong);
    }
  }
  if (problems.length > 0) throw new ConfigError(file, problems);
  // Every field of Settings is now set, each by its own key's parser or default: the
  // table's types are the fields' types (keys.ts).
  return { file, ...Object.fromEntries(settings) } as Config;
}

/** The effective settings, passwords and tokens masked: for check-config and /status. */
export function describeConfig(cfg: Config): Record<string, string | number | boolean | null> {
  const out: Record<string, string | number | boolean | null> = {};
  for (const key of KEY_NAMES) {
    const def = defOf(key);
    if (keysOf(def.field)[0] !== key) continue; // shown once, under the first key that fills it
    out[key] = def.show(cfg[def.field]);
  }
  return out;
}

function problemOf(name: string, key: KeyName, problem: string): string {
  const label = name.startsWith('--') ? `key "${key}" (${name})` : `key "${name}"`;
  return problem.startsWith('must ') ? `${label} ${problem}` : `${label}: ${problem}`;
}

function numberOr(v: unknown, fallback: number): number {
  return typeof v === 'number' ? v : fallback;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}
