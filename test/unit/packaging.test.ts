// What can be checked of the image, the compose example and their files without building them,
// without the built CLI and without a Docker engine: the files the Dockerfile and the compose
// example refer to exist, the image runs the bundle its build stage makes, and the health check
// works. Running the bundle: test/e2e/packaging.test.ts; deploy/ (the unit, the example
// configuration, move-vip.sh): test/e2e/deploy.test.ts; building and running the image itself:
// `npm run test:container` (test/container/).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { KEEPER_NODE_FLAGS } from '../support/keeper-process.js';

const ROOT = path.join(import.meta.dirname, '..', '..');
const at = (...p: string[]): string => path.join(ROOT, ...p);
const read = (...p: string[]): string => fs.readFileSync(at(...p), 'utf8');

interface Instruction {
  name: string;
  args: string;
}

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function dockerfile(): Instruction[] {
  const logical: string[] = [];
  let current = '';
  for (const raw of read('Dockerfile').split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && current === '')) continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(current + line);
    current = '';
  }
  return logical
    .filter((l) => l !== '')
    .map((l) => {
      const [name = '', ...rest] = l.split(/\s+/);
      return { name: name.toUpperCase(), args: rest.join(' ') };
    });
}

/** Exec-form arguments (a JSON array), or undefined for the shell form. */
function execForm(args: string): string[] | undefined {
  return args.startsWith('[') ? (JSON.parse(args) as string[]) : undefined;
}

/** COPY sources from the build context (not --from another stage), with their destination. */
function contextCopies(): { sources: string[]; dest: string }[] {
  return dockerfile()
    .filter((i) => i.name === 'COPY' && !/--from=/.test(i.args))
    .map((i) => {
      const words = (execForm(i.args) ?? i.args.split(/\s+/)).filter((w) => !w.startsWith('--'));
      return { sources: words.slice(0, -1), dest: words.at(-1) ?? '' };
    });
}

describe('Dockerfile', () => {
  test('every file it copies from the build context exists, and .dockerignore lets it through', () => {
    const exceptions = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    const copies = contextCopies();
    assert.ok(copies.length > 0);
    for (const { sources } of copies) {
      for (const source of sources) {
        assert.ok(fs.existsSync(at(source)), `COPY ${source}: no such file in the repository`);
        assert.ok(
          exceptions.some((e) => source === e || source.startsWith(`${e}/`)),
          `COPY ${source}: .dockerignore keeps it out of the build context`,
        );
      }
    }
  });

  test('builds the one-file bundle with npm ci and npm run bundle, and copies only that', () => {
    const runs = dockerfile()
      .filter((i) => i.name === 'RUN')
      .map((i) => i.args);
    assert.ok(runs.some((r) => r.includes('npm ci')));
    assert.ok(runs.some((r) => r.includes('npm run bundle')));
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.bundle, 'tsx scripts/bundle.ts');
    const froms = dockerfile().filter((i) => i.name === 'FROM');
    assert.ok(froms.length >= 2, 'multi-stage');
    assert.ok(read('Dockerfile').includes('node:20-bookworm-slim'));
    const fromBuild = dockerfile().filter((i) => i.name === 'COPY' && i.args.includes('--from=build'));
    assert.deepEqual(
      fromBuild.map((i) => i.args),
      ['--from=build /app/build/pg-keeper.cjs /app/build/pg-keeper.cjs.LEGAL.txt /app/'],
      'the runtime stage gets the bundle and its licence notices, no node_modules',
    );
  });

  test('its entrypoint runs the bundle that the build stage makes (npm run bundle)', () => {
    const entry = execForm(dockerfile().find((i) => i.name === 'ENTRYPOINT')?.args ?? '');
    assert.deepEqual(entry, ['node', ...KEEPER_NODE_FLAGS, '/app/pg-keeper.cjs']);
    // scripts/bundle.ts writes build/pg-keeper.cjs under the build stage's WORKDIR /app.
    assert.match(
      read('scripts', 'bundle.ts'),
      /export const BUNDLE = path\.join\(ROOT, 'build', 'pg-keeper\.cjs'\)/,
    );
    assert.ok(dockerfile().some((i) => i.name === 'WORKDIR' && i.args === '/app'));
  });

  test('the CLI, the image and the tests start Node with the same flags', () => {
    const shebang = read('src/cli.ts').split('\n')[0];
    assert.equal(shebang, `#!/usr/bin/env -S node ${KEEPER_NODE_FLAGS.join(' ')}`);
  });

  test('runs `run --config /etc/pg-keeper/pg-keeper.yml` as a non-root user, on port 9754', () => {
    const all = dockerfile();
    assert.deepEqual(execForm(all.find((i) => i.name === 'CMD')?.args ?? ''), [
      'run',
      '--config',
      '/etc/pg-keeper/pg-keeper.yml',
    ]);
    const users = all.filter((i) => i.name === 'USER').map((i) => i.args);
    assert.ok(users.length > 0 && !['root', '0'].includes(users.at(-1) ?? 'root'), 'runs as non-root');
    assert.ok(all.some((i) => i.name === 'EXPOSE' && i.args.split(/\s+/).includes('9754')));
  });

  describe('HEALTHCHECK', () => {
    let server: Server;
    let healthy = true;
    let url = '';
    before(async () => {
      server = createServer((req, res) => {
        res.statusCode = req.url === '/health' && healthy ? 200 : 503;
        res.end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const addr = server.address();
      url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/health`;
    });
    after(() => server.close());

    /** Runs the image's health check command here, with node, against `target`. */
    function check(target: string): Promise<number | null> {
      const instr = dockerfile().find((i) => i.name === 'HEALTHCHECK');
      const cmd = execForm(instr?.args.slice(instr.args.indexOf('CMD') + 3).trim() ?? '');
      assert.ok(
        cmd && cmd[0] === 'node' && cmd[1] === '/app/pg-keeper.cjs',
        'HEALTHCHECK CMD is an exec-form node command of the bundle (no curl in slim images)',
      );
      // The bundle is the CLI: here, its sources.
      const args = ['--import', 'tsx', at('src', 'cli.ts'), ...cmd.slice(2)];
      return new Promise((resolve) => {
        const child = spawn(process.execPath, args, {
          env: { ...process.env, PG_KEEPER_HEALTH_URL: target },
          stdio: 'ignore',
        });
        child.on('close', resolve);
      });
    }

    test('passes while /health answers 200', async () => {
      healthy = true;
      assert.equal(await check(url), 0);
    });

    test('fails when /health answers 503, or nothing listens', async () => {
      healthy = false;
      assert.equal(await check(url), 1);
      assert.equal(await check('http://127.0.0.1:9/health'), 1);
    });

    test('asks /health on port 9754 by default', () => {
      assert.match(read('Dockerfile'), /PG_KEEPER_HEALTH_URL=http:\/\/127\.0\.0\.1:9754\/health/);
    });
  });
});

describe('docs/examples/docker-compose.yml', () => {
  const composeDir = at('docs', 'examples');
  interface Service {
    build?: string | { context?: string; dockerfile?: string };
    volumes?: (string | { type?: string; source?: string; target?: string })[];
    env_file?: string | string[];
    command?: string[];
    network_mode?: string;
  }
  const compose = (): { services: Record<string, Service> } =>
    parse(read('docs', 'examples', 'docker-compose.yml'), { merge: true }) as {
      services: Record<string, Service>;
    };

  /** Bind mounts of a service: [source resolved against the compose file's directory, target]. */
  function binds(svc: Service): [string, string][] {
    const out: [string, string][] = [];
    for (const v of svc.volumes ?? []) {
      if (typeof v === 'string') {
        const [source = '', target = ''] = v.split(':');
        if (/^[./~]/.test(source)) out.push([path.resolve(composeDir, source), target]);
      } else if (v.type === 'bind' && v.source)
        out.push([path.resolve(composeDir, v.source), v.target ?? '']);
    }
    return out;
  }

  test('has both PostgreSQL nodes, both keepers, Prometheus, Alertmanager and Grafana', () => {
    const names = Object.keys(compose().services);
    for (const s of ['pg1', 'pg2', 'keeper1', 'keeper2', 'prometheus', 'alertmanager', 'grafana'])
      assert.ok(names.includes(s), `service ${s}`);
  });

  test('every bind-mounted path exists relative to the compose file', () => {
    for (const [name, svc] of Object.entries(compose().services)) {
      for (const [source] of binds(svc)) {
        assert.ok(
          fs.existsSync(source),
          `${name}: bind mount source ${path.relative(ROOT, source)} does not exist`,
        );
      }
      for (const f of [svc.env_file ?? []].flat()) assert.ok(fs.existsSync(path.resolve(composeDir, f)), f);
    }
  });

  test('every build context and Dockerfile resolves', () => {
    let builds = 0;
    for (const [name, svc] of Object.entries(compose().services)) {
      if (!svc.build) continue;
      builds += 1;
      const b = typeof svc.build === 'string' ? { context: svc.build } : svc.build;
      const context = path.resolve(composeDir, b.context ?? '.');
      assert.ok(fs.statSync(context).isDirectory(), `${name}: build context ${context}`);
      assert.ok(fs.existsSync(path.join(context, b.dockerfile ?? 'Dockerfile')), `${name}: Dockerfile`);
      assert.equal(context, ROOT, `${name}: builds the repository's own image`);
    }
    assert.equal(builds, 2, 'both keepers are built from the Dockerfile');
  });

  /** The host file behind a path inside a service's container, through its bind mounts; null if none. */
  function hostPath(svc: Service, inContainer: string): string | null {
    for (const [source, target] of binds(svc)) {
      if (inContainer === target) return source;
      if (target && inContainer.startsWith(`${target}/`))
        return path.join(source, inContainer.slice(target.length + 1));
    }
    return null;
  }

  test('Prometheus finds the shipped rules, and scrapes both keepers where they listen', () => {
    const { services } = compose();
    const prom = services.prometheus ?? {};
    const configIn =
      prom.command?.find((a) => a.startsWith('--config.file='))?.split('=')[1] ??
      '/etc/prometheus/prometheus.yml';
    const configHost = hostPath(prom, configIn);
    assert.ok(configHost && fs.existsSync(configHost), `${configIn} is mounted`);
    const config = parse(fs.readFileSync(configHost, 'utf8')) as {
      rule_files?: string[];
      scrape_configs?: { job_name: string; static_configs?: { targets: string[] }[] }[];
    };
    assert.ok((config.rule_files ?? []).length > 0, 'rule_files');
    for (const rules of config.rule_files ?? []) {
      const inContainer = path.posix.resolve(path.posix.dirname(configIn), rules);
      const host = hostPath(prom, inContainer);
      assert.ok(host && fs.existsSync(host), `rule file ${inContainer} is not mounted into the container`);
      assert.equal(host, at('alerts', 'pg-keeper.rules.yml'));
    }
    const targets = (config.scrape_configs ?? [])
      .filter((j) => j.job_name === 'pg-keeper')
      .flatMap((j) => (j.static_configs ?? []).flatMap((c) => c.targets));
    // A keeper listens on 9754 in its own network namespace, or in its server's (network_mode: service:X).
    const keeperHosts = ['keeper1', 'keeper2'].map((k) => {
      const mode = services[k]?.network_mode ?? '';
      return mode.startsWith('service:') ? mode.slice('service:'.length) : k;
    });
    assert.deepEqual(targets.sort(), keeperHosts.map((h) => `${h}:9754`).sort());
  });

  test('Grafana gets the dashboard where its provisioning looks for it', () => {
    const grafana = compose().services.grafana ?? {};
    const provisioning = hostPath(grafana, '/etc/grafana/provisioning/dashboards');
    assert.ok(provisioning && fs.existsSync(provisioning), 'dashboard provisioning is mounted');
    const paths = fs
      .readdirSync(provisioning)
      .filter((f) => /\.ya?ml$/.test(f))
      .flatMap((f) => {
        const doc = parse(fs.readFileSync(path.join(provisioning, f), 'utf8')) as {
          providers?: { options?: { path?: string } }[];
        };
        return (doc.providers ?? []).map((p) => p.options?.path ?? '');
      });
    assert.ok(paths.length > 0, 'a dashboard provider');
    for (const dir of paths) {
      assert.equal(hostPath(grafana, `${dir}/pg-keeper.json`), at('dashboards', 'pg-keeper.json'), dir);
    }
  });

  test('each keeper mounts its configuration from compose/keeper-<node>.yml', () => {
    // test/e2e/packaging.test.ts runs check-config on those files.
    for (const [svc, node] of [
      ['keeper1', 'node1'],
      ['keeper2', 'node2'],
    ] as const) {
      const config = binds(compose().services[svc] ?? {}).find(
        ([, target]) => target === '/etc/pg-keeper/pg-keeper.yml',
      );
      assert.ok(config, `${svc} mounts a config at /etc/pg-keeper/pg-keeper.yml`);
      assert.equal(config[0], path.join(composeDir, 'compose', `keeper-${node}.yml`));
    }
  });

  test('the PostgreSQL set-up scripts are valid sh', () => {
    for (const script of ['primary-init.sh', 'standby-entrypoint.sh']) {
      const r = spawnSync('sh', ['-n', path.join(composeDir, 'compose', script)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${script}: ${r.stderr}`);
    }
  });
});
