// Clean-up that must happen however a test process ends: normally, by an uncaught error, or by
// SIGINT/SIGTERM (a person's Ctrl-C, a CI run stopped). Tasks run once, the last registered
// first, like nested finally blocks: what was started last is stopped first.

import os from 'node:os';

const tasks: (() => void)[] = [];
let hooked = false;

function runAll(): void {
  for (let task = tasks.pop(); task; task = tasks.pop()) {
    try {
      task();
    } catch (err) {
      process.stderr.write(`clean-up failed: ${String(err)}\n`);
    }
  }
}

/** Registers `task` (synchronous); returns a function that unregisters it, for the normal path. */
export function onExit(task: () => void): () => void {
  if (!hooked) {
    hooked = true;
    process.on('exit', runAll);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        runAll();
        process.exit(128 + os.constants.signals[signal]);
      });
    }
  }
  tasks.push(task);
  return () => {
    const i = tasks.indexOf(task);
    if (i >= 0) tasks.splice(i, 1);
  };
}
