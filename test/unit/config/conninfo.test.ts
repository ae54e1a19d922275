import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConninfoError, maskConninfo, parseConninfo } from '../../../src/config/conninfo.js';
// The parsed conninfo as node-postgres takes it, next to the PostgreSQL adapters.
import { describeEndpoint, endpointOf, toPgClientConfig } from '../../../src/postgres/client-config.js';

// node:test's test() and describe() return promises that the runner itself tracks; `void` says
// so to the no-floating-promises lint rule.

// The functions consult these like libpq does; each test starts without them.
const ENV_KEYS = ['PGHOST', 'PGPORT', 'PGSSLMODE', 'PGDATABASE'] as const;
let savedEnv: Record<string, string | undefined> = {};
beforeEach(() => {
  savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
});
afterEach(() => {
  for (const k of ENV_KEYS) {
    const v = savedEnv[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** Runs fn, asserts it throws a ConninfoError, and returns the message. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConninfoError, `expected ConninfoError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('expected a ConninfoError');
}

const BASEBACKUP_R =
  'user=postgres password=x channel_binding=prefer host=127.0.0.1 port=5432 sslmode=prefer sslcompression=0 ' +
  'sslcertmode=allow sslsni=1 ssl_min_protocol_version=TLSv1.2 gssencmode=prefer krbsrvname=postgres ' +
  'gssdelegation=0 target_session_attrs=any load_balance_hosts=disable';

void describe('keyword/value form', () => {
  void test('maps host, port, dbname and a quoted application_name into the pg client config', () => {
    const ci = parseConninfo("host=127.0.0.1 port=5551 dbname='postgres' application_name='keeper one'");
    const cfg = toPgClientConfig(ci);
    assert.equal(cfg.host, '127.0.0.1');
    assert.equal(cfg.port, 5551);
    assert.equal(cfg.database, 'postgres');
    assert.equal(cfg.application_name, 'keeper one');
    assert.equal(cfg.ssl, false, 'sslmode defaults to prefer, which pg can only do as plain text');
    assert.equal(cfg.password, undefined);
  });

  void test("unescapes \\' and \\\\ inside quoted values and backslashes in unquoted ones", () => {
    const ci = parseConninfo(String.raw`application_name='it\'s a \\ test' options=-c\ geqo=off`);
    assert.equal(ci.params.application_name, "it's a \\ test");
    assert.equal(ci.params.options, '-c geqo=off');
  });

  void test('allows spaces around "=" and between pairs', () => {
    const ci = parseConninfo('  host = db1   port=  6000\tdbname =app\n');
    assert.deepEqual({ ...ci.params }, { host: 'db1', port: '6000', dbname: 'app' });
  });

  void test("takes '' as an empty value", () => {
    const ci = parseConninfo("application_name='' host=h");
    assert.equal(ci.params.application_name, '');
    assert.equal(ci.params.host, 'h');
  });

  void test('lets a repeated keyword override the earlier one', () => {
    assert.equal(parseConninfo('port=1 port=2').params.port, '2');
  });

  void test('parses the primary_conninfo that pg_basebackup -R writes, newer keywords included', () => {
    const ci = parseConninfo(BASEBACKUP_R);
    assert.equal(ci.params.sslcertmode, 'allow');
    assert.equal(ci.params.gssdelegation, '0');
    assert.equal(ci.params.load_balance_hosts, 'disable');
    assert.equal(ci.params.target_session_attrs, 'any');
    const cfg = toPgClientConfig(ci);
    assert.equal(cfg.host, '127.0.0.1');
    assert.equal(cfg.port, 5432);
    assert.equal(cfg.user, 'postgres');
    assert.equal(cfg.password, 'x');
    assert.equal(cfg.ssl, false);
  });

  void test('rejects an unknown keyword, naming it and listing valid ones', () => {
    const message = errorOf(() => parseConninfo('host=a colour=blue'));
    assert.match(message, /invalid connection option "colour"/);
    assert.match(message, /dbname/);
  });

  void test('points out that keywords are lower case', () => {
    assert.match(
      errorOf(() => parseConninfo('Host=a')),
      /lower case: "host"/,
    );
  });

  void test('rejects a word without "=" with libpq\'s message', () => {
    const message = errorOf(() => parseConninfo('host=a port'));
    assert.match(message, /^missing "=" after "port" in connection info string/);
  });

  void test('rejects an unterminated quote, naming the keyword', () => {
    const message = errorOf(() => parseConninfo("host=a application_name='keeper"));
    assert.match(message, /unterminated quoted string/);
    assert.match(message, /"application_name"/);
  });

  void test('rejects a URI-looking string with another scheme without echoing it', () => {
    const message = errorOf(() => parseConninfo('postgresql+psycopg://u:s3cret@h/db'));
    assert.match(message, /looks like a URI/);
    assert.ok(!message.includes('s3cret'), message);
  });
});

void describe('URI form', () => {
  void test('percent-decodes user, password, host, dbname and query parameters', () => {
    const ci = parseConninfo(
      'postgresql://us%40er:p%40ss%2Fw@db.example.com:6432/my%20db?application_name=keeper%20two&connect_timeout=7',
    );
    assert.deepEqual(
      { ...ci.params },
      {
        user: 'us@er',
        password: 'p@ss/w',
        host: 'db.example.com',
        port: '6432',
        dbname: 'my db',
        application_name: 'keeper two',
        connect_timeout: '7',
      },
    );
    assert.equal(toPgClientConfig(ci).connectionTimeoutMillis, 7000);
  });

  void test('accepts postgres:// and a bracketed IPv6 host', () => {
    const ci = parseConninfo('postgres://[::1]:5433/postgres');
    assert.equal(ci.params.host, '::1');
    assert.deepEqual(endpointOf(ci), { host: '::1', port: 5433 });
    assert.equal(describeEndpoint(ci), '[::1]:5433/postgres');
  });

  void test('keeps a multi-host list and connects to its first entry', () => {
    const ci = parseConninfo('postgresql://h1:5433,h2:5434/db?target_session_attrs=read-write');
    assert.equal(ci.params.host, 'h1,h2');
    assert.equal(ci.params.port, '5433,5434');
    assert.deepEqual(endpointOf(ci), { host: 'h1', port: 5433 });
  });

  void test('takes a socket directory from the host query parameter', () => {
    const ci = parseConninfo('postgresql:///mydb?host=%2Fvar%2Frun%2Fpostgresql');
    assert.deepEqual({ ...ci.params }, { dbname: 'mydb', host: '/var/run/postgresql' });
  });

  void test('turns ssl=true into sslmode=require', () => {
    const ci = parseConninfo('postgresql://h/db?ssl=true');
    assert.equal(ci.params.sslmode, 'require');
    assert.equal(ci.params.ssl, undefined);
    assert.deepEqual(toPgClientConfig(ci).ssl, { rejectUnauthorized: false });
  });

  void test('accepts an empty query and a trailing "&" but not an empty pair', () => {
    assert.deepEqual({ ...parseConninfo('postgresql://h/db?').params }, { host: 'h', dbname: 'db' });
    assert.equal(parseConninfo('postgresql://h/db?sslmode=disable&').params.sslmode, 'disable');
    assert.match(
      errorOf(() => parseConninfo('postgresql://h/db?sslmode=disable&&port=1')),
      /missing "="/,
    );
  });

  void test('rejects an unknown query parameter, naming it', () => {
    const message = errorOf(() => parseConninfo('postgresql://h/db?colour=blue'));
    assert.match(message, /invalid URI query parameter "colour"/);
    assert.match(message, /libpq's list of parameter keywords/);
  });

  void test('rejects a query parameter without "="', () => {
    assert.match(
      errorOf(() => parseConninfo('postgresql://h/db?sslmode')),
      /missing "=".*"sslmode"/,
    );
  });

  void test('rejects a bad percent-encoding', () => {
    assert.match(
      errorOf(() => parseConninfo('postgresql://h/my%zzdb')),
      /invalid percent-encoding in the database/,
    );
  });
});

void describe('validation', () => {
  for (const bad of ['0', '65536', 'abc', '54x', '-1']) {
    void test(`rejects port=${bad}, naming "port"`, () => {
      const message = errorOf(() => parseConninfo(`host=a port=${bad}`));
      assert.match(message, /invalid port number .* for "port"/);
      assert.ok(message.includes(`"${bad}"`), message);
    });
  }

  void test('rejects a bad port in a URI', () => {
    assert.match(
      errorOf(() => parseConninfo('postgresql://h:99999/db')),
      /invalid port number in URI/,
    );
    assert.match(
      errorOf(() => parseConninfo('postgresql://h/db?port=99999')),
      /"99999" for "port"/,
    );
  });

  void test('accepts the port range ends', () => {
    assert.equal(endpointOf(parseConninfo('port=1')).port, 1);
    assert.equal(endpointOf(parseConninfo('port=65535')).port, 65535);
  });

  void test('rejects a negative or non-numeric connect_timeout, naming it', () => {
    assert.match(
      errorOf(() => parseConninfo('connect_timeout=-1')),
      /"connect_timeout": expected a non-negative/,
    );
    assert.match(
      errorOf(() => parseConninfo('postgresql://h/?connect_timeout=5s')),
      /"connect_timeout"/,
    );
  });

  void test('raises connect_timeout=1 to libpq\'s 2-second minimum and keeps 0 as "no timeout"', () => {
    assert.equal(toPgClientConfig(parseConninfo('connect_timeout=1')).connectionTimeoutMillis, 2000);
    assert.equal(toPgClientConfig(parseConninfo('connect_timeout=0')).connectionTimeoutMillis, 0);
  });

  void test('rejects an unknown sslmode', () => {
    assert.match(
      errorOf(() => parseConninfo('sslmode=on')),
      /invalid sslmode value "on"/,
    );
  });

  void test('rejects port lists that do not line up with the hosts', () => {
    assert.match(
      errorOf(() => parseConninfo('host=a,b,c port=1,2')),
      /could not match 2 "port" numbers to 3 hosts/,
    );
  });
});

void describe('passwords', () => {
  void test('are not echoed by a later syntax error', () => {
    const message = errorOf(() => parseConninfo("password='s3cret' host=a port"));
    assert.match(message, /missing "="/);
    assert.ok(!message.includes('s3cret'), message);
  });

  void test('are not echoed when an unquoted password contains a space', () => {
    for (const text of ['password=correct horse', 'password=correct horse=battery']) {
      const message = errorOf(() => parseConninfo(text));
      assert.ok(!message.includes('horse'), message);
      assert.match(message, /"password"/);
    }
  });

  void test('are not echoed by an unterminated quote in the password itself', () => {
    const message = errorOf(() => parseConninfo("host=a password='s3cret"));
    assert.ok(!message.includes('s3cret'), message);
  });

  void test('are not echoed by URI errors', () => {
    for (const uri of [
      'postgresql://u:s3cret%zz@h/db',
      'postgresql://u:s3cret@h:notaport/db',
      'postgresql://u:s3cret@h/db?colour=1',
      'postgresql://u@h/db?password=s3cret%G0',
      // An unencoded "/" ends the user info early, leaving "s3cr" as the host's port.
      'postgresql://u:s3cr/et@h/db',
    ]) {
      const message = errorOf(() => parseConninfo(uri));
      assert.ok(!message.includes('s3cr'), message);
    }
  });

  void test('are masked by maskConninfo, which otherwise round-trips through parseConninfo', () => {
    const ci = parseConninfo(
      String.raw`host=h password='s3cret' sslpassword=k3y application_name='keeper one' options='a\\b' user=''`,
    );
    const masked = maskConninfo(ci);
    assert.equal(
      masked,
      String.raw`host=h password=******** sslpassword=******** application_name='keeper one' options='a\\b' user=''`,
    );
    assert.ok(!masked.includes('s3cret'), masked);
    assert.deepEqual(
      { ...parseConninfo(masked).params },
      { ...ci.params, password: '********', sslpassword: '********' },
    );
  });

  void test('are left undefined when absent, so pg can use PGPASSWORD or ~/.pgpass', () => {
    assert.equal(toPgClientConfig(parseConninfo('host=a password=')).password, undefined);
    assert.equal(toPgClientConfig(parseConninfo('host=a')).password, undefined);
  });
});

void describe('endpoints', () => {
  void test('describeEndpoint gives host:port/dbname without user or password', () => {
    const ci = parseConninfo('postgresql://alice:s3cret@db1:6000/app');
    const described = describeEndpoint(ci);
    assert.equal(described, 'db1:6000/app');
  });

  void test('defaults to PGHOST and PGPORT', () => {
    process.env.PGHOST = 'envhost,other';
    process.env.PGPORT = '6543';
    assert.deepEqual(endpointOf(parseConninfo('dbname=x')), { host: 'envhost', port: 6543 });
    assert.deepEqual(endpointOf(parseConninfo('host=h port=7000')), { host: 'h', port: 7000 });
    assert.equal(describeEndpoint(parseConninfo('dbname=x')), 'envhost:6543/x');
  });

  void test('defaults to localhost:5432 without PGHOST and PGPORT', () => {
    assert.deepEqual(endpointOf(parseConninfo('')), { host: 'localhost', port: 5432 });
    assert.equal(describeEndpoint(parseConninfo('')), 'localhost:5432');
  });

  void test('rejects a bad PGPORT, naming it', () => {
    process.env.PGPORT = 'nope';
    assert.match(
      errorOf(() => endpointOf(parseConninfo('host=a'))),
      /PGPORT/,
    );
  });

  void test('connects to hostaddr but verifies the certificate against host', () => {
    const ci = parseConninfo('host=db.example.com hostaddr=10.0.0.5 sslmode=verify-full');
    const cfg = toPgClientConfig(ci);
    assert.equal(cfg.host, '10.0.0.5');
    assert.ok(typeof cfg.ssl === 'object', 'TLS options, not a boolean');
    assert.equal(cfg.ssl.servername, 'db.example.com');
    assert.equal(cfg.ssl.rejectUnauthorized, true);
  });

  void test('refuses to build a pg config from a service name it cannot resolve', () => {
    assert.match(
      errorOf(() => toPgClientConfig(parseConninfo('service=main'))),
      /"service" is not supported/,
    );
  });
});

void describe('sslmode', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'conninfo-'));
    writeFileSync(join(dir, 'root.crt'), 'ROOT CERT');
    writeFileSync(join(dir, 'client.crt'), 'CLIENT CERT');
    writeFileSync(join(dir, 'client.key'), 'CLIENT KEY');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  void test('disable, allow and prefer turn TLS off', () => {
    for (const mode of ['disable', 'allow', 'prefer']) {
      assert.equal(toPgClientConfig(parseConninfo(`sslmode=${mode}`)).ssl, false, mode);
    }
  });

  void test('require encrypts without verifying', () => {
    assert.deepEqual(toPgClientConfig(parseConninfo('sslmode=require')).ssl, { rejectUnauthorized: false });
  });

  void test('verify-full verifies with the files given', () => {
    const ssl = toPgClientConfig(
      parseConninfo(
        `sslmode=verify-full sslrootcert=${dir}/root.crt sslcert=${dir}/client.crt sslkey=${dir}/client.key`,
      ),
    ).ssl;
    assert.ok(typeof ssl === 'object', 'TLS options, not a boolean');
    assert.equal(ssl.rejectUnauthorized, true);
    assert.equal(String(ssl.ca), 'ROOT CERT');
    assert.equal(String(ssl.cert), 'CLIENT CERT');
    assert.equal(String(ssl.key), 'CLIENT KEY');
    assert.equal(ssl.checkServerIdentity, undefined, 'verify-full keeps the host name check');
  });

  void test('verify-ca verifies the chain but not the host name, and reads no files unless named', () => {
    const ssl = toPgClientConfig(parseConninfo('sslmode=verify-ca')).ssl;
    assert.ok(typeof ssl === 'object', 'TLS options, not a boolean');
    assert.equal(ssl.rejectUnauthorized, true);
    assert.equal(ssl.ca, undefined);
    assert.equal(ssl.cert, undefined);
    assert.equal(ssl.key, undefined);
    assert.equal(typeof ssl.checkServerIdentity, 'function');
  });

  void test('require with a root certificate behaves as verify-ca, as in libpq', () => {
    const ssl = toPgClientConfig(parseConninfo(`sslmode=require sslrootcert=${dir}/root.crt`)).ssl;
    assert.ok(typeof ssl === 'object', 'TLS options, not a boolean');
    assert.equal(ssl.rejectUnauthorized, true);
    assert.equal(typeof ssl.checkServerIdentity, 'function');
  });

  void test('comes from PGSSLMODE when the string has none', () => {
    process.env.PGSSLMODE = 'require';
    assert.deepEqual(toPgClientConfig(parseConninfo('host=a')).ssl, { rejectUnauthorized: false });
    assert.equal(toPgClientConfig(parseConninfo('host=a sslmode=disable')).ssl, false);
  });

  void test('reports an unreadable certificate file by keyword', () => {
    const message = errorOf(() =>
      toPgClientConfig(parseConninfo(`sslmode=verify-full sslrootcert=${dir}/none`)),
    );
    assert.match(message, /"sslrootcert"/);
  });
});
