// Last-resort teardown for whatever this process started (servers, keepers, temporary
// directories): run when the process exits, and when SIGINT, SIGTERM or SIGHUP would end it.
//
// A signal that somebody else handles (the demo, a benchmark) is left to them: they stop what
// they started in order and then exit, and the exit runs these hooks. A signal nobody else
// handles ends the process as it would have, but through process.exit(), so that the hooks run.
import { constants } from 'node:os';

const hooks: (() => void)[] = [];
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let installed = false;

/**
 * Registers a synchronous, best-effort cleanup; returns its removal (call it once the thing is
 * torn down normally). Hooks run newest first, as things are torn down in reverse of their start:
 * keepers, then the servers they watch, then the directory holding both.
 */
export function onExit(cleanup: () => void): () => void {
  install();
  hooks.push(cleanup);
  return () => {
    const i = hooks.indexOf(cleanup);
    if (i >= 0) hooks.splice(i, 1);
  };
}

function runHooks(): void {
  for (const hook of hooks.splice(0).reverse()) {
    try {
      hook();
    } catch {
      // best effort: the process is exiting, the next hook still runs
    }
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runHooks);
  for (const signal of SIGNALS) {
    const listener = (): void => {
      if (process.listeners(signal).some((l) => l !== listener)) return;
      process.exit(128 + constants.signals[signal]);
    };
    process.on(signal, listener);
  }
}
