// The container image, built from the repository's Dockerfile and run beside a real PostgreSQL pair
// on this host: `npm run test:container`. No Docker engine and no registry of images: podman (in a
// store of its own, test/support/podman.ts) builds the Dockerfile unchanged on a stand-in for
// node:20-bookworm-slim made from Debian's archive and the npm registry
// (test/support/stand-in-images.ts), through the Dockerfile's NODE_IMAGE build argument.
//
// The keeper of node2 (the standby) runs in the container with host networking; node1 is killed
// and the containerised keeper must promote node2 and run after_command once. Everything started
// here is removed, images included, on failure and on SIGINT/SIGTERM too.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { freePort } from '../../src/local-pair/free-port.js';
import { waitFor } from '../../src/util/wait.js';
import type { Status } from '../../src/http/status.js';
import { Podman } from '../support/podman.js';
import { makeDir, rmDir } from '../support/temp-dir.js';
import { TestPair } from '../support/test-pair.js';
import { NODE_IMAGE, buildNodeImage } from '../support/stand-in-images.js';

const ROOT = path.join(import.meta.dirname, '..', '..');
const IMAGE = 'localhost/pg-keeper:test';
const NAME = 'pgk-test-node2';
const VOLUME = 'pgk-test-state';
const UID = 10001;
const STOP_TIMEOUT_S = 10;

interface ImageConfig {
  User: string;
  Cmd: string[];
  Entrypoint: string[];
  Env: string[];
  ExposedPorts: Record<string, unknown>;
  Volumes: Record<string, unknown>;
}

let podman: Podman | undefined;
let dir = '';
const timings: Record<string, number> = {};

function timed<T>(what: string, f: () => T): T {
  const t0 = Date.now();
  try {
    return f();
  } finally {
    timings[what] = Date.now() - t0;
  }
}

const p = (): Podman => {
  assert.ok(podman, 'podman store not created');
  return podman;
};

function inspectImage(image: string): {
  size: number;
  config: ImageConfig;
  healthcheck?: { Test: string[] };
} {
  const [info] = JSON.parse(p().must(['image', 'inspect', image])) as {
    Size: number;
    Config: ImageConfig;
    Healthcheck?: { Test: string[] };
  }[];
  assert.ok(info, `no image ${image}`);
  return { size: info.Size, config: info.Config, healthcheck: info.Healthcheck };
}

before(async () => {
  dir = makeDir();
  podman = Podman.create();
  timed('stand-in base image', () => buildNodeImage(p()));
  timed('image build', () =>
    p().must(
      [
        'build',
        '--pull=never',
        '--network=host',
        // Without it podman builds an OCI image, which has no HEALTHCHECK.
        '--format=docker',
        '--build-arg',
        `NODE_IMAGE=${NODE_IMAGE}`,
        '-t',
        IMAGE,
        ROOT,
      ],
      { timeoutMs: 900_000 },
    ),
  );
});

after(() => {
  podman?.destroySync();
  if (dir) rmDir(dir);
  const shown = Object.entries(timings).map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`);
  process.stdout.write(`# container test timings: ${shown.join(', ')}\n`);
});

describe('the image', () => {
  test('adds less than 15 MB to its base', (t) => {
    const base = inspectImage(NODE_IMAGE).size;
    const image = inspectImage(IMAGE).size;
    const added = image - base;
    t.diagnostic(
      `base ${(base / 1e6).toFixed(1)} MB, image ${(image / 1e6).toFixed(1)} MB, added ${(added / 1e6).toFixed(2)} MB`,
    );
    assert.ok(added < 15e6, `the image adds ${(added / 1e6).toFixed(1)} MB to its base`);
  });

  test('runs as a non-root user, uid 10001', () => {
    assert.equal(inspectImage(IMAGE).config.User, 'pg-keeper');
    const id = p().must(['run', '--rm', '--network=host', '--entrypoint', 'id', IMAGE]).trim();
    assert.match(id, new RegExp(`^uid=${UID}\\(pg-keeper\\) gid=${UID}\\(pg-keeper\\)`));
  });

  test('check-config works inside it, on the example configuration it carries', () => {
    const out = p().must([
      'run',
      '--rm',
      '--network=host',
      IMAGE,
      'check-config',
      '--config',
      '/etc/pg-keeper/pg-keeper.yml.example',
    ]);
    assert.match(out, /^\/etc\/pg-keeper\/pg-keeper\.yml\.example: valid$/m);
    const version = p().must(['run', '--rm', '--network=host', IMAGE, '--version']);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(version.trim(), `pg-keeper ${pkg.version}`);
  });
});

describe('a keeper in the container beside a real pair', () => {
  let pair: TestPair | undefined;
  let port = 0;
  let base = '';
  const status = async (): Promise<Status> => {
    const res = await fetch(`${base}/status`, { signal: AbortSignal.timeout(2000) });
    return (await res.json()) as Status;
  };
  const stateDir = (): string =>
    p().must(['volume', 'inspect', '--format', '{{.Mountpoint}}', VOLUME]).trim();

  before(async () => {
    pair = await TestPair.create({ baseDir: path.join(dir, 'pg') });
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const config = path.join(dir, 'pg-keeper.yml');
    fs.writeFileSync(
      config,
      stringify({
        node1_conninfo: pair.conninfo(pair.node1),
        node2_conninfo: pair.conninfo(pair.node2),
        node: 'node2',
        keepalive_time: 0.2,
        keepalive_count: 3,
        listen: `127.0.0.1:${port}`,
        after_command:
          'echo "$PG_KEEPER_EVENT $PG_KEEPER_NODE $(id -u)" >> /var/lib/pg-keeper/after_command.log',
      }),
    );
    fs.chmodSync(config, 0o644); // read by uid 10001 inside
    p().must(['volume', 'create', VOLUME]);
    p().must([
      'run',
      '--detach',
      '--init',
      '--name',
      NAME,
      '--network=host',
      '--stop-timeout',
      String(STOP_TIMEOUT_S),
      // The health check asks the port this keeper listens on (the image's documented knob).
      '--env',
      `PG_KEEPER_HEALTH_URL=${base}/health`,
      '--volume',
      `${config}:/etc/pg-keeper/pg-keeper.yml:ro`,
      '--volume',
      `${VOLUME}:/var/lib/pg-keeper`,
      IMAGE,
    ]);
  });

  after(async () => {
    p().run(['rm', '--force', '--time', '1', NAME]);
    await pair?.destroy();
  });

  test('reports node2 as the synchronous standby', async () => {
    const s = await waitFor(
      async () => {
        const x = await status();
        return x.role === 'standby' && x.guards.synchronous_at_last_contact ? x : null;
      },
      'the containerised keeper to see node2 as the synchronous standby',
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${p().run(['logs', NAME]).out}`);
    });
    assert.equal(s.node, 'node2');
    assert.equal(s.peer_role, 'primary');
  });

  test("is healthy through the image's own HEALTHCHECK", () => {
    const hc = inspectImage(IMAGE).healthcheck;
    assert.ok(hc && hc.Test.length > 1, 'the image has a HEALTHCHECK (podman build --format=docker)');
    const r = p().run(['healthcheck', 'run', NAME]);
    assert.equal(r.code, 0, `podman healthcheck run: ${r.out}${r.err}`);
    const state = p().must(['inspect', '--format', '{{.State.Health.Status}}', NAME]).trim();
    assert.equal(state, 'healthy');
  });

  test('fails a SIGKILLed primary over, and runs after_command once, as uid 10001', async () => {
    const a = pair as TestPair;
    await a.kill(a.node1, 'SIGKILL');
    const s = await waitFor(
      async () => {
        const x = await status();
        return x.role === 'primary' && x.last_action?.kind === 'promote' ? x : null;
      },
      'the containerised keeper to promote node2',
      30_000,
    );
    assert.equal(s.events.filter((e) => e.event === 'promote' && e.outcome === 'ok').length, 1);
    const log = path.join(stateDir(), 'after_command.log');
    await waitFor(() => fs.existsSync(log), 'after_command to write its log', 10_000);
    // Time for a second run, if there were to be one.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(fs.readFileSync(log, 'utf8').trim().split('\n'), [`promote node2 ${UID}`]);
    const hook = p().run(['healthcheck', 'run', NAME]);
    assert.equal(hook.code, 0, 'still healthy as the new primary');
  });

  test('podman stop stops it cleanly (exit 0) within the stop timeout', () => {
    const t0 = Date.now();
    p().must(['stop', NAME], { timeoutMs: (STOP_TIMEOUT_S + 20) * 1000 });
    const ms = Date.now() - t0;
    const code = p().must(['inspect', '--format', '{{.State.ExitCode}}', NAME]).trim();
    assert.equal(code, '0', p().run(['logs', '--tail', '20', NAME]).out);
    assert.ok(ms < STOP_TIMEOUT_S * 1000, `stopped in ${ms} ms (stop timeout ${STOP_TIMEOUT_S} s)`);
    const logs = p().run(['logs', NAME]);
    assert.doesNotMatch(logs.out + logs.err, /\n\s+at .+\(.+:\d+:\d+\)/, 'no stack trace in its log');
  });

  test("the state volume is written by the container's user", () => {
    const files = fs.readdirSync(stateDir());
    assert.ok(files.includes('node2.state.json'), `state files: ${files.join(', ')}`);
    for (const f of files) {
      const st = fs.statSync(path.join(stateDir(), f));
      assert.equal(st.uid, UID, `${f} is owned by uid ${st.uid}`);
    }
    const saved = JSON.parse(fs.readFileSync(path.join(stateDir(), 'node2.state.json'), 'utf8')) as object;
    assert.ok(Object.keys(saved).length > 0);
  });
});

describe('docs/examples/docker-compose.yml, as podman-compose reads it', () => {
  // podman-compose 1.0.3 (Debian 12) has no `config`; its --dry-run prints the podman commands `up`
  // would run (and creates the volumes and network it needs, here in the test's own store). The
  // images of the PostgreSQL, Prometheus, Alertmanager and Grafana services cannot be pulled here, so
  // the stack is not started; what the keepers' commands say is checked against the image built above.
  let commands: string[] = [];
  before(() => {
    const r = spawnSync(
      'podman-compose',
      ['--dry-run', '--project-name', 'pgk-compose-check', '--file', 'docker-compose.yml', 'up', '--detach'],
      { cwd: path.join(ROOT, 'docs', 'examples'), env: p().env, encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(r.status, 0, `podman-compose --dry-run up: ${r.stdout}${r.stderr}`);
    commands = r.stdout.split('\n').filter((l) => l.startsWith('podman run '));
  });

  const keeperRun = (service: string): string => {
    const cmd = commands.find((c) => c.includes(`com.docker.compose.service=${service} `));
    assert.ok(cmd, `no podman run for ${service} in:\n${commands.join('\n')}`);
    return cmd;
  };

  test('every service gets a podman run', () => {
    for (const s of ['pg1', 'pg2', 'keeper1', 'keeper2', 'prometheus', 'alertmanager', 'grafana'])
      keeperRun(s);
  });

  test('the keepers run the built image with its CMD, its config path, and a volume on its VOLUME', () => {
    const { config } = inspectImage(IMAGE);
    const [volume] = Object.keys(config.Volumes);
    const configPath = config.Cmd[config.Cmd.indexOf('--config') + 1];
    for (const [service, node] of [
      ['keeper1', 'node1'],
      ['keeper2', 'node2'],
    ] as const) {
      const cmd = keeperRun(service);
      assert.match(cmd, / pg-keeper:example /, `${service} runs the image built from the Dockerfile`);
      assert.ok(cmd.endsWith(` pg-keeper:example ${config.Cmd.join(' ')}`), `${service}: ${cmd}`);
      assert.ok(cmd.includes(`:${volume} `), `${service} mounts its state on ${volume}`);
      assert.ok(cmd.includes(`compose/keeper-${node}.yml:${configPath}:ro`), `${service} mounts its config`);
      assert.match(cmd, / --init /, `${service} runs with --init, as the Dockerfile says`);
    }
  });

  test("the keepers listen on the image's EXPOSEd port, which their servers publish, and health checks ask it", () => {
    const { config } = inspectImage(IMAGE);
    assert.deepEqual(Object.keys(config.ExposedPorts), ['9754/tcp']);
    const healthUrl = config.Env.find((e) => e.startsWith('PG_KEEPER_HEALTH_URL='));
    assert.equal(healthUrl, 'PG_KEEPER_HEALTH_URL=http://127.0.0.1:9754/health');
    for (const [keeper, server] of [
      ['keeper1', 'pg1'],
      ['keeper2', 'pg2'],
    ] as const) {
      const file = path.join(ROOT, 'docs', 'examples', 'compose', `keeper-node${keeper.slice(-1)}.yml`);
      const cfg = parse(fs.readFileSync(file, 'utf8')) as { listen: string };
      assert.equal(cfg.listen, '0.0.0.0:9754');
      assert.match(keeperRun(server), /-p 127\.0\.0\.1:\d+:9754 /, `${server} publishes its keeper's port`);
      assert.match(keeperRun(keeper), /127\.0\.0\.1:9754\/health/, `${keeper}'s health check asks 9754`);
    }
  });
});
