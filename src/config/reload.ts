// SIGHUP: which settings a reload takes, and which wait for a restart. Derived from the key
// table's `reloadable`, and said in the configuration's own key names (what an operator
// wrote), with values shown as check-config shows them (passwords and tokens masked).

import type { Config } from './config.js';
import { KEY_NAMES, defOf, keysOf, type Field, type KeyName } from './keys.js';

export interface KeyChange {
  key: KeyName;
  /** "keepalive_time 0.2 -> 0.5" */
  text: string;
}

export function reloadedConfig(
  running: Config,
  next: Config,
): { config: Config; changed: KeyChange[]; kept: KeyChange[] } {
  const changed: KeyChange[] = [];
  const kept: KeyChange[] = [];
  const fields: Partial<Record<Field, unknown>> = {};
  for (const key of KEY_NAMES) {
    const def = defOf(key);
    if (keysOf(def.field)[0] !== key) continue; // a field shared by two keys is compared once
    const [was, is] = [def.show(running[def.field]), def.show(next[def.field])];
    const differs = JSON.stringify(running[def.field]) !== JSON.stringify(next[def.field]);
    if (!def.reloadable) fields[def.field] = running[def.field];
    if (!differs) continue;
    const text = was === is ? `${key} (changed)` : `${key} ${String(was)} -> ${String(is)}`;
    (def.reloadable ? changed : kept).push({ key, text });
  }
  // Every field is either next's (reloadable) or running's (restart only), and both are Configs.
  return { config: { ...next, ...fields } as Config, changed, kept };
}
