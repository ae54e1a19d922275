// The HTTP port under a web_config_file, on a real pair, with certificates made by the test
// (openssl): node1's keeper serves HTTPS with basic authentication, node2's asks for client
// certificates signed by the test's CA. A real Prometheus scrapes node1 over HTTPS with basic
// auth and gets every metric, and two more jobs (no credentials, a wrong password) get 401; plain
// HTTP to the TLS port is refused; the bearer token is still needed on top of basic auth for
// POST /pause; pg-keeper status works with --cacert, --user and --password-file; a certificate
// replaced on disk plus a SIGHUP changes what is presented, with no heartbeat lost; a web
// configuration that became invalid keeps the old one, logged.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { stringify } from 'yaml';
import { keeperRequest } from '../../src/http/client.js';
import { waitFor } from '../../src/util/wait.js';
import { fingerprint, makeCa, makeCert, type Pem } from '../support/certs.js';
import { CLI, KEEPER_NODE_FLAGS, type KeeperProcess } from '../support/keeper-process.js';
import { Prometheus, PROMETHEUS_BIN, requireBinary } from '../support/prometheus-server.js';
import { metric, usePair } from '../support/setup.js';
import { makeDir } from '../support/temp-dir.js';

const PASSWORD = 'scrape-password-for-tests';
const TOKEN = 'pause-token-for-tests';
const dir = makeDir('pgk-web-');
const ca = makeCa(dir, 'ca');
const otherCa = makeCa(dir, 'other-ca');
const server1 = makeCert(dir, ca, 'server1', 'server');
const server2 = makeCert(dir, ca, 'server2', 'server');
const client = makeCert(dir, ca, 'client', 'client');
const stranger = makeCert(dir, otherCa, 'stranger', 'client');
const passwordFile = join(dir, 'password');
writeFileSync(passwordFile, `${PASSWORD}\n`);
const wrongPasswordFile = join(dir, 'wrong-password');
writeFileSync(wrongPasswordFile, 'not-the-password\n');
const HASH = bcrypt.hashSync(PASSWORD, 8);

// node1: TLS and basic authentication. The certificate files are copies, replaced in the
// rotation test.
const web1 = join(dir, 'web1.yml');
copyFileSync(server1.cert, join(dir, 'live.crt'));
copyFileSync(server1.key, join(dir, 'live.key'));
const web1Config = {
  tls_server_config: { cert_file: 'live.crt', key_file: 'live.key' },
  basic_auth_users: { prometheus: HASH },
  http_server_config: { headers: { 'X-Frame-Options': 'deny' } },
};
writeFileSync(web1, stringify(web1Config));
// node2: client certificates signed by the test's CA, nothing else.
const web2 = join(dir, 'web2.yml');
const web2Config = (auth: string) => ({
  tls_server_config: {
    cert_file: server2.cert,
    key_file: server2.key,
    client_auth_type: auth,
    client_ca_file: ca.cert,
  },
});
writeFileSync(web2, stringify(web2Config('RequireAndVerifyClientCert')));

/** What the server presents: its certificate, or the error of the handshake. */
function handshake(port: number, pem?: Pem): Promise<{ cert: PeerCertificate } | { error: string }> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: readFileSync(ca.cert),
      ...(pem ? { cert: readFileSync(pem.cert), key: readFileSync(pem.key) } : {}),
    });
    socket.setTimeout(3000, () => socket.destroy(new Error('timeout')));
    socket.on('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      // A refusal of the client's certificate arrives just after the handshake, as an alert.
      socket.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('end', () => resolve(text.startsWith('HTTP/1.1') ? { cert } : { error: 'no answer' }));
    });
    socket.on('error', (err) => resolve({ error: err.message }));
  });
}

const portOf = (k: KeeperProcess): number => Number(new URL(k.url).port);

describe('the HTTP port under a web_config_file', () => {
  requireBinary(PROMETHEUS_BIN);
  const s = usePair({
    node1Settings: { web_config_file: web1, http_token: TOKEN },
    node2Settings: { web_config_file: web2 },
    httpOf: (node) =>
      node === 'node1'
        ? { tls: true, cacert: ca.cert, user: 'prometheus', passwordFile }
        : { tls: true, cacert: ca.cert, cert: client.cert, key: client.key },
  });
  let prom: Prometheus;
  before(async () => {
    const target = `127.0.0.1:${portOf(s().k1)}`;
    const tls = { ca_file: ca.cert };
    prom = await Prometheus.start({
      dir: s().dir,
      job: 'pg-keeper',
      targets: [target],
      ruleFiles: [],
      scrape: {
        scheme: 'https',
        tls_config: tls,
        basic_auth: { username: 'prometheus', password_file: passwordFile },
      },
      moreJobs: [
        {
          job_name: 'no-credentials',
          scheme: 'https',
          tls_config: tls,
          static_configs: [{ targets: [target] }],
        },
        {
          job_name: 'wrong-password',
          scheme: 'https',
          tls_config: tls,
          basic_auth: { username: 'prometheus', password_file: wrongPasswordFile },
          static_configs: [{ targets: [target] }],
        },
      ],
    });
  });
  after(() => prom?.stop());

  test('Prometheus scrapes over HTTPS with basic auth and gets every metric', async () => {
    await prom.waitScrapes('pg-keeper', 2);
    const own = await s().k1.get('/metrics');
    assert.equal(own.status, 200);
    const exported = new Set(
      (await own.text())
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)?.[0] ?? ''),
    );
    const scraped = new Set(
      (await prom.query('count by (__name__) ({job="pg-keeper"})')).map((r) => r.metric.__name__ ?? ''),
    );
    const missing = [...exported].filter((n) => !scraped.has(n));
    assert.deepEqual(missing, [], 'every series the keeper exports reaches Prometheus');
    assert.ok(scraped.has('pg_keeper_heartbeats_total'));
    const [up] = await prom.query('up{job="pg-keeper"}');
    assert.equal(up?.value?.[1], '1');
  });

  test('a scrape without credentials, or with a wrong password, gets 401', async () => {
    await waitFor(async () => {
      const t = await prom.targets();
      return ['no-credentials', 'wrong-password'].every((job) =>
        t.some((x) => x.labels.job === job && x.health === 'down' && /401/.test(x.lastError)),
      );
    }, 'both credential-less jobs down with 401');
    const nobody = await keeperRequest(new URL(s().k1.url), '/metrics', { cacert: ca.cert });
    assert.equal(nobody.status, 401);
    assert.equal(nobody.headers['www-authenticate'], 'Basic realm="pg-keeper"');
    assert.deepEqual(nobody.body, { error: 'unauthorized' });
    const unknown = await keeperRequest(new URL(s().k1.url), '/status', {
      cacert: ca.cert,
      user: 'someone',
      passwordFile,
    });
    assert.equal(unknown.status, 401);
    assert.deepEqual(unknown.body, nobody.body, 'an unknown user learns what a wrong password learns');
    for (const path of ['/health', '/primary', '/status']) {
      const r = await keeperRequest(new URL(s().k1.url), path, { cacert: ca.cert });
      assert.equal(r.status, 401, `${path} needs a user too`);
    }
    const ok = await s().k1.get('/primary');
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-frame-options'), 'deny', 'the headers of http_server_config');
  });

  test('plain HTTP to the TLS port is refused', async () => {
    const answer = await new Promise<string>((resolve) => {
      const req = http.get(`http://127.0.0.1:${portOf(s().k1)}/metrics`, { timeout: 3000 }, (res) =>
        resolve(`HTTP ${res.statusCode}`),
      );
      req.on('error', (err) => resolve(`error: ${err.message}`));
      req.on('timeout', () => req.destroy(new Error('timeout')));
    });
    assert.match(answer, /^error: (socket hang up|read ECONNRESET)/);
  });

  test('the bearer token is still needed, on top of basic auth, to change state', async () => {
    const k1 = s().k1;
    const without = await k1.get('/pause', { method: 'POST' });
    assert.equal(without.status, 401);
    assert.equal(without.headers.get('www-authenticate'), 'Bearer');
    const wrong = await k1.get('/pause', { method: 'POST', headers: { 'X-Pg-Keeper-Token': 'nope' } });
    assert.equal(wrong.status, 401);
    const paused = await k1.get('/pause', { method: 'POST', headers: { 'X-Pg-Keeper-Token': TOKEN } });
    assert.equal(paused.status, 200);
    assert.equal((await k1.status()).paused, true);
    const resumed = await k1.get('/resume', { method: 'POST', headers: { 'X-Pg-Keeper-Token': TOKEN } });
    assert.equal(resumed.status, 200);
    assert.equal((await k1.status()).paused, false);
  });

  test('pg-keeper status takes --cacert, --user and --password-file; without them it says why', () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, [...KEEPER_NODE_FLAGS, CLI, 'status', '--url', s().k1.url, ...args], {
        encoding: 'utf8',
        timeout: 15_000,
      });
    const ok = run(['--cacert', ca.cert, '--user', 'prometheus', '--password-file', passwordFile, '--json']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { role: string }).role, 'primary');
    const noUser = run(['--cacert', ca.cert]);
    assert.equal(noUser.status, 1);
    assert.match(noUser.stderr, /HTTP 401 \(this keeper wants --user and --password-file\)/);
    const noCa = run(['--user', 'prometheus', '--password-file', passwordFile]);
    assert.equal(noCa.status, 1);
    assert.match(noCa.stderr, /self-signed certificate in certificate chain|unable to verify/);
    const viaCert = spawnSync(
      process.execPath,
      [
        ...KEEPER_NODE_FLAGS,
        CLI,
        'status',
        '--url',
        s().k2.url,
        '--json',
        '--cacert',
        ca.cert,
        '--cert',
        client.cert,
        '--key',
        client.key,
      ],
      { encoding: 'utf8', timeout: 15_000 },
    );
    assert.equal(viaCert.status, 0, viaCert.stderr);
    assert.equal((JSON.parse(viaCert.stdout) as { role: string }).role, 'standby');
    for (const r of [ok, noUser, noCa])
      assert.ok(!r.stdout.includes(PASSWORD) && !r.stderr.includes(PASSWORD));
  });

  test("pg-keeper health (the image's HEALTHCHECK) takes its TLS and user from the environment", () => {
    const health = (env: Record<string, string>) =>
      spawnSync(process.execPath, [...KEEPER_NODE_FLAGS, CLI, 'health'], {
        encoding: 'utf8',
        timeout: 15_000,
        env: { ...process.env, PG_KEEPER_HEALTH_URL: `${s().k1.url}/health`, ...env },
      });
    const ok = health({
      PG_KEEPER_HEALTH_CACERT: ca.cert,
      PG_KEEPER_HEALTH_USER: 'prometheus',
      PG_KEEPER_HEALTH_PASSWORD_FILE: passwordFile,
    });
    assert.equal(ok.status, 0, ok.stderr);
    const without = health({ PG_KEEPER_HEALTH_CACERT: ca.cert });
    assert.equal(without.status, 1);
    assert.match(without.stderr, /\/health: HTTP 401/);
  });

  test('RequireAndVerifyClientCert: only a certificate signed by client_ca_file gets through', async () => {
    const port = portOf(s().k2);
    assert.ok('error' in (await handshake(port)), 'no client certificate');
    assert.ok('error' in (await handshake(port, stranger)), 'a certificate of another CA');
    assert.ok('cert' in (await handshake(port, client)), 'a certificate of client_ca_file');
    assert.equal((await s().k2.status()).role, 'standby');
  });

  test('VerifyClientCertIfGiven after a SIGHUP: none is fine, a wrong one is not', async () => {
    const k2 = s().k2;
    const reloads = k2.events('web-reload').length;
    writeFileSync(web2, stringify(web2Config('VerifyClientCertIfGiven')));
    k2.child.kill('SIGHUP');
    await waitFor(() => k2.events('web-reload').length > reloads, 'node2 to reload its web configuration');
    const port = portOf(k2);
    const h0 = await handshake(port);
    assert.ok(
      'cert' in h0,
      `no client certificate: ${JSON.stringify(h0)} ${JSON.stringify(k2.events('web-reload'))}`,
    );
    assert.ok('error' in (await handshake(port, stranger)), 'a certificate of another CA');
    assert.ok('cert' in (await handshake(port, client)), 'a certificate of client_ca_file');
  });

  test('a certificate replaced on disk and a SIGHUP: presented at once, no heartbeat lost', async () => {
    const k1 = s().k1;
    const port = portOf(k1);
    const before1 = await handshake(port);
    assert.ok('cert' in before1);
    assert.equal(before1.cert.fingerprint256, fingerprint(server1.cert));
    const peer = 'peer="node2"';
    const failures = await metric(k1, 'pg_keeper_heartbeat_failures_total', peer);
    assert.notEqual(failures, null);
    const beats = (await metric(k1, 'pg_keeper_heartbeats_total', peer)) ?? 0;
    const reloads = k1.events('web-reload').length;
    const rotated = makeCert(dir, ca, 'server1-rotated', 'server');
    copyFileSync(rotated.cert, join(dir, 'live.crt'));
    copyFileSync(rotated.key, join(dir, 'live.key'));
    k1.child.kill('SIGHUP');
    await waitFor(() => k1.events('web-reload').length > reloads, 'node1 to reload its web configuration');
    const after1 = await handshake(port);
    assert.ok('cert' in after1);
    assert.equal(after1.cert.fingerprint256, fingerprint(rotated.cert));
    assert.notEqual(after1.cert.fingerprint256, before1.cert.fingerprint256);
    await waitFor(
      async () => ((await metric(k1, 'pg_keeper_heartbeats_total', peer)) ?? 0) >= beats + 5,
      'five more heartbeats',
    );
    assert.equal(
      await metric(k1, 'pg_keeper_heartbeat_failures_total', peer),
      failures,
      'no heartbeat failed',
    );
    await prom.waitScrapes('pg-keeper', 2);
    const [up] = await prom.query('up{job="pg-keeper"}');
    assert.equal(up?.value?.[1], '1', 'Prometheus scrapes the new certificate');
  });

  test('a web configuration that became invalid keeps the old one, logged and named', async () => {
    const k1 = s().k1;
    const failed = k1.lines.length;
    writeFileSync(web1, stringify({ ...web1Config, basic_auth_users: { prometheus: 'a-plain-password' } }));
    k1.child.kill('SIGHUP');
    const line = await waitFor(
      () =>
        k1.lines.slice(failed).find((l) => l.event === 'reload-failed' || l.event === 'web-reload-failed'),
      'node1 to refuse the new web configuration',
    );
    assert.match(line.msg, /basic_auth_users\.prometheus" must be a bcrypt hash/);
    assert.ok(line.msg.includes(web1));
    assert.ok(!k1.raw.includes('a-plain-password'), 'the would-be password is not logged');
    assert.equal((await k1.get('/status')).status, 200, 'the old users still get in');
    writeFileSync(web1, stringify(web1Config));
  });

  test('no password in any log line', () => {
    for (const k of s().keepers) {
      assert.ok(!k.raw.includes(PASSWORD), `${k.node}: the scrape password`);
      assert.ok(!k.raw.includes(TOKEN), `${k.node}: the token`);
    }
  });
});
