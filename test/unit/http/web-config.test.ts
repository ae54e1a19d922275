// The web configuration file (the exporter toolkit's format): what loads, and that every
// problem names the file and the key and says what is allowed, without showing a secret.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { ConfigError } from '../../../src/config/config.js';
import { loadWebConfig, parseWebConfig } from '../../../src/http/web-config.js';
import { makeCa, makeCert } from '../../support/certs.js';

const dir = mkdtempSync(join(tmpdir(), 'pgk-web-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ca = makeCa(dir, 'ca');
const server = makeCert(dir, ca, 'server', 'server');
const HASH = bcrypt.hashSync('scrape-password', 4);
const FILE = join(dir, 'web.yml');

function problemsOf(text: string): string[] {
  try {
    parseWebConfig(text, FILE);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.file, FILE);
    return err.problems;
  }
  assert.fail('the web configuration was accepted');
}

describe('web_config_file: what loads', () => {
  test('an empty file is plain HTTP, open to all', () => {
    const w = parseWebConfig('', FILE);
    assert.equal(w.tls, null);
    assert.equal(w.users, null);
    assert.deepEqual(w.headers, {});
  });

  test('TLS with defaults: no client certificates, TLS 1.2 at least', () => {
    const w = parseWebConfig(
      `tls_server_config:\n  cert_file: ${server.cert}\n  key_file: ${server.key}\n`,
      FILE,
    );
    assert.ok(w.tls);
    assert.equal(w.tls.clientAuth, 'NoClientCert');
    assert.equal(w.tls.minVersion, 'TLSv1.2');
    assert.equal(w.tls.maxVersion, null);
    assert.equal(w.tls.ca, null);
    assert.match(w.tls.cert.toString(), /BEGIN CERTIFICATE/);
  });

  test('relative paths are relative to the file, as in the exporter toolkit', () => {
    const sub = join(dir, 'sub');
    mkdirSync(sub, { recursive: true });
    const inner = makeCert(sub, ca, 'inner', 'server');
    writeFileSync(
      join(sub, 'web.yml'),
      'tls_server_config:\n  cert_file: inner.crt\n  key_file: inner.key\n' +
        '  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ../ca.crt\n  min_version: TLS13\n',
    );
    const w = loadWebConfig(join(sub, 'web.yml'));
    assert.ok(w.tls);
    assert.equal(w.tls.clientAuth, 'RequireAndVerifyClientCert');
    assert.equal(w.tls.minVersion, 'TLSv1.3');
    assert.ok(w.tls.ca);
    assert.ok(inner.cert.startsWith(sub));
  });

  test('users with bcrypt hashes ($2a$, $2b$ and htpasswd -B $2y$), and the allowed headers', () => {
    const y = HASH.replace(/^\$2[ab]\$/, '$2y$');
    const w = parseWebConfig(
      `basic_auth_users:\n  prometheus: '${HASH}'\n  haproxy: '${y}'\n` +
        `http_server_config:\n  http2: true\n  headers:\n    x-frame-options: deny\n    Strict-Transport-Security: max-age=31536000\n`,
      FILE,
    );
    assert.deepEqual([...(w.users?.keys() ?? [])], ['prometheus', 'haproxy']);
    assert.deepEqual(w.headers, {
      'X-Frame-Options': 'deny',
      'Strict-Transport-Security': 'max-age=31536000',
    });
  });
});

describe('web_config_file: every problem named', () => {
  test('unknown keys, at the top and inside, with the allowed ones', () => {
    const p = problemsOf(`tls_config: {}\nbasic_auth_users: {}\nhttp_server_config:\n  header: {}\n`);
    assert.ok(
      p.some((x) => /unknown key "tls_config": allowed keys are tls_server_config/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /unknown key "http_server_config.header": allowed keys are headers, http2/.test(x)),
    );
  });

  test('toolkit keys pg-keeper does not support are refused, not ignored', () => {
    const p = problemsOf(
      `tls_server_config:\n  cert_file: ${server.cert}\n  key_file: ${server.key}\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n`,
    );
    assert.deepEqual(p, [
      'key "tls_server_config.cipher_suites" is not supported by pg-keeper (Node.js chooses its TLS parameters): remove it',
    ]);
  });

  test('an unreadable certificate or key names the key and the file', () => {
    const p = problemsOf(`tls_server_config:\n  cert_file: nowhere.crt\n  key_file: ${server.cert}\n`);
    assert.ok(
      p.some((x) =>
        x.startsWith(`key "tls_server_config.cert_file": cannot read ${join(dir, 'nowhere.crt')}: ENOENT`),
      ),
      p.join('\n'),
    );
    assert.ok(p.includes('key "tls_server_config.key_file": not a PEM private key'), p.join('\n'));
  });

  test('a missing certificate key is named', () => {
    const p = problemsOf(`tls_server_config:\n  key_file: ${server.key}\n`);
    assert.deepEqual(p, ['key "tls_server_config.cert_file" must be a file name']);
  });

  test('client_auth_type: the allowed kinds, and the CA the verifying kinds need', () => {
    const base = `tls_server_config:\n  cert_file: ${server.cert}\n  key_file: ${server.key}\n`;
    assert.match(
      problemsOf(`${base}  client_auth_type: Yes\n`)[0] ?? '',
      /must be one of NoClientCert, RequestClientCert, .*RequireAndVerifyClientCert, got "Yes"/,
    );
    assert.deepEqual(problemsOf(`${base}  client_auth_type: VerifyClientCertIfGiven\n`), [
      'key "tls_server_config.client_ca_file" is needed with client_auth_type VerifyClientCertIfGiven',
    ]);
    assert.match(
      problemsOf(`${base}  min_version: TLS1.2\n`)[0] ?? '',
      /min_version" must be one of TLS10, TLS11, TLS12, TLS13, got "TLS1.2"/,
    );
  });

  test('a password where a hash belongs is refused, and never shown', () => {
    const p = problemsOf(`basic_auth_users:\n  prometheus: my-plain-password\n  "a:b": '${HASH}'\n`);
    assert.ok(
      p.includes(
        'key "basic_auth_users.prometheus" must be a bcrypt hash ($2y$10$..., as htpasswd -B makes), not a password',
      ),
    );
    assert.ok(p.some((x) => /user name must not be empty nor hold ":"/.test(x)));
    assert.ok(!p.join('\n').includes('my-plain-password'));
  });

  test('a hash of another kind (SHA-512 crypt) is not bcrypt', () => {
    const p = problemsOf(`basic_auth_users:\n  u: '$6$salt$${'x'.repeat(86)}'\n`);
    assert.equal(p.length, 1);
  });

  test('headers outside the allowed list, and YAML that does not parse', () => {
    assert.match(
      problemsOf(`http_server_config:\n  headers:\n    Set-Cookie: a=b\n`)[0] ?? '',
      /headers.Set-Cookie": allowed headers are Strict-Transport-Security, /,
    );
    assert.match(problemsOf(`basic_auth_users: [\n`)[0] ?? '', /^YAML syntax error/);
    assert.match(problemsOf(`- a\n`)[0] ?? '', /must be a mapping/);
  });

  test("the shipped example is valid but for its certificate files, which are the operator's", () => {
    const example = join(import.meta.dirname, '..', '..', '..', 'docs', 'examples', 'web-config.yml');
    assert.throws(
      () => loadWebConfig(example),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.length === 2 &&
        err.problems.every((p) =>
          /^key "tls_server_config\.(cert|key)_file": cannot read .*: ENOENT$/.test(p),
        ),
    );
  });

  test('an unreadable file is named', () => {
    assert.throws(
      () => loadWebConfig(join(dir, 'absent.yml')),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.file === join(dir, 'absent.yml') &&
        /cannot read the web configuration file: ENOENT/.test(err.problems[0] ?? ''),
    );
  });
});
