#!/usr/bin/env -S node --max-semi-space-size=1
// pg-keeper's command line. Exit status: 0 success, 1 runtime failure, 2 bad usage or bad
// configuration (docs/CONTRACT.md).
//
// --max-semi-space-size=1: under a burst of scrapes V8 grows its young generation to the
// 16 MB default and keeps it; resident memory went from 61 MB to 110 MB and stayed there
// (bench/metrics.ts). With 1 MB it returns to 65 MB, and scrape latency improved. The
// Dockerfile's entrypoint and the tests' launcher pass the same flag.

import { parseArgs } from 'node:util';
import { ConfigError } from './config/config.js';
import { describeConfig, loadConfig } from './config/load.js';
import type { ClientOptions } from './http/client.js';
import { errorText } from './util/errors.js';
import { VERSION } from './version.js';

const USAGE = `pg-keeper ${VERSION}: automatic failover for a PostgreSQL primary and its synchronous standby

usage:
  pg-keeper run --config FILE [--node node1|node2] [--listen HOST:PORT]
  pg-keeper check-config --config FILE [--node node1|node2]
  pg-keeper status [--url URL] [--json] [TLS and auth options]
  pg-keeper health [--url URL] [TLS and auth options]
                                      exit 0 when the keeper's /health answers 200 (the image's HEALTHCHECK)
  pg-keeper demo [--arbiter] [--prometheus] [--once] [--dir D]
  pg-keeper demo kill primary|standby | partition | heal | switchover [--dir D]
  pg-keeper rejoin --config FILE [--node node1|node2] [--force]
                                      make the local server a standby of the peer (the new primary)
  pg-keeper switchover --url URL [--to node1|node2] [--token-file FILE] [TLS and auth options]
                                      hand the primary over to the standby, losing no commit
  pg-keeper import-conf FILE          print pg_keeper.* settings of a postgresql.conf as YAML
  pg-keeper --version | --help

TLS and auth options (for a keeper with a web_config_file):
  --cacert FILE  --cert FILE --key FILE  --user USER --password-file FILE
`;

class UsageError extends Error {}

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  node: { type: 'string' },
  listen: { type: 'string' },
  url: { type: 'string' },
  json: { type: 'boolean' },
  prometheus: { type: 'boolean' },
  once: { type: 'boolean' },
  arbiter: { type: 'boolean' },
  dir: { type: 'string' },
  force: { type: 'boolean' },
  to: { type: 'string' },
  'token-file': { type: 'string' },
  cacert: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  user: { type: 'string' },
  'password-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

/**
 * A reader that goes away (`pg-keeper check-config | head -1`) is not a failure of the
 * command: stop at once, quietly, instead of dying on an unhandled EPIPE. `run` logs
 * through its own stream (pino), which carries on without a reader: a keeper must not stop
 * failing over because someone closed a pipe.
 */
function exitQuietlyWhenOutputCloses(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });
}

export async function main(argv: string[]): Promise<number> {
  exitQuietlyWhenOutputCloses(process.stdout);
  exitQuietlyWhenOutputCloses(process.stderr);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`pg-keeper: ${errorText(err)}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`pg-keeper ${VERSION}\n`);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  try {
    switch (command) {
      case 'run': {
        const { runCommand } = await import('./runtime/run.js');
        return await runCommand(requireConfig(values.config), overrides(values));
      }
      case 'check-config': {
        const cfg = loadConfig(requireConfig(values.config), overrides(values));
        process.stdout.write(`${cfg.file}: valid\n`);
        for (const [k, v] of Object.entries(describeConfig(cfg))) process.stdout.write(`${k}: ${v ?? ''}\n`);
        return 0;
      }
      case 'status': {
        const { statusCommand } = await import('./http/status-command.js');
        return await statusCommand(
          values.url ?? 'http://127.0.0.1:9754',
          values.json ?? false,
          client(values),
        );
      }
      case 'health': {
        const { healthCommand, healthOptionsFromEnv } = await import('./http/health-command.js');
        return await healthCommand(healthOptionsFromEnv(process.env, { url: values.url, ...client(values) }));
      }
      case 'demo': {
        const { demoCommand } = await import('./demo/demo.js');
        return await demoCommand(rest, {
          prometheus: values.prometheus ?? false,
          once: values.once ?? false,
          arbiter: values.arbiter ?? false,
          dir: values.dir,
        });
      }
      case 'rejoin': {
        const { rejoinCommand } = await import('./lifecycle/rejoin-command.js');
        return await rejoinCommand(requireConfig(values.config), overrides(values), values.force ?? false);
      }
      case 'switchover': {
        const { switchoverCommand } = await import('./lifecycle/switchover-command.js');
        if (!values.url) throw new UsageError('switchover needs --url, the address of either keeper');
        return await switchoverCommand({
          url: values.url,
          to: values.to,
          tokenFile: values['token-file'],
          client: client(values),
        });
      }
      case 'import-conf': {
        const { importConfCommand } = await import('./config/import-conf.js');
        const file = rest[0];
        if (!file) throw new UsageError('import-conf needs the path of a postgresql.conf');
        return importConfCommand(file);
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pg-keeper: ${err.message}\n`);
      return 2;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`pg-keeper: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`pg-keeper: ${errorText(err)}\n`);
    return 1;
  }
}

function client(v: {
  cacert?: string;
  cert?: string;
  key?: string;
  user?: string;
  'password-file'?: string;
}): ClientOptions {
  if ((v.cert === undefined) !== (v.key === undefined)) throw new UsageError('--cert and --key go together');
  if (v.user !== undefined && v['password-file'] === undefined)
    throw new UsageError('--user needs --password-file (a password never goes on the command line)');
  return { cacert: v.cacert, cert: v.cert, key: v.key, user: v.user, passwordFile: v['password-file'] };
}

function requireConfig(file: string | undefined): string {
  if (!file) throw new UsageError('--config FILE is required');
  return file;
}

function overrides(values: { node?: string; listen?: string }): { node?: string; listen?: string } {
  return {
    ...(values.node !== undefined ? { node: values.node } : {}),
    ...(values.listen !== undefined ? { listen: values.listen } : {}),
  };
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // `run` returns only when stopping; anything still open must not keep the process up.
    if (code !== 0 || process.argv[2] === 'run') setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    process.stderr.write(`pg-keeper: ${String(err)}\n`);
    process.exit(1);
  },
);
