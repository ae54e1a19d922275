// libpq's rules at their edges: every keyword it knows, each part of a URI, the values it
// refuses and the message that says why, and the passwords that no message may show.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConninfoError, maskConninfo, parseConninfo } from '../../../src/config/conninfo.js';

/** Runs fn, asserts it throws a ConninfoError, and returns the message. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConninfoError, `expected ConninfoError, got ${String(err)}`);
    assert.equal(err.name, 'ConninfoError');
    return err.message;
  }
  assert.fail('expected a ConninfoError');
}
const params = (text: string) => ({ ...parseConninfo(text).params });

// From libpq's documentation (PostgreSQL 15, then 16 to 18), "Parameter Key Words".
// prettier-ignore
const LIBPQ_KEYWORDS = [
  'service', 'user', 'password', 'passfile', 'channel_binding', 'connect_timeout', 'dbname', 'host',
  'hostaddr', 'port', 'client_encoding', 'options', 'application_name', 'fallback_application_name',
  'keepalives', 'keepalives_idle', 'keepalives_interval', 'keepalives_count', 'tcp_user_timeout',
  'replication', 'gssencmode', 'sslmode', 'requiressl', 'sslcompression', 'sslcert', 'sslkey',
  'sslpassword', 'sslrootcert', 'sslcrl', 'sslcrldir', 'sslsni', 'requirepeer',
  'ssl_min_protocol_version', 'ssl_max_protocol_version', 'krbsrvname', 'gsslib', 'target_session_attrs',
  'require_auth', 'sslcertmode', 'load_balance_hosts', 'gssdelegation', 'sslnegotiation',
  'min_protocol_version', 'max_protocol_version', 'sslkeylogfile',
  'oauth_issuer', 'oauth_client_id', 'oauth_client_secret', 'oauth_scope',
];

void describe('keywords', () => {
  void test('every keyword of libpq 15 to 18 is accepted', () => {
    for (const key of LIBPQ_KEYWORDS) {
      const value = key === 'port' ? '5432' : key.includes('protocol_version') ? 'TLSv1.2' : '1';
      const text = key === 'sslmode' ? 'sslmode=require' : `${key}=${value}`;
      assert.equal(Object.keys(params(text))[0], key, key);
    }
  });

  void test('an unknown keyword is refused with the usual ones listed', () => {
    assert.equal(
      errorOf(() => parseConninfo('colour=blue')),
      'invalid connection option "colour": expected a libpq keyword such as host, hostaddr, port, dbname, user, ' +
        "password, sslmode, connect_timeout, application_name, options (see libpq's list of parameter keywords)",
    );
  });

  void test('"=" with no keyword before it says where', () => {
    assert.equal(
      errorOf(() => parseConninfo('host=a =b')),
      'missing keyword before "=" at offset 7 in connection info string',
    );
  });

  void test('an unterminated quote says how to write a quote inside a value', () => {
    assert.equal(
      errorOf(() => parseConninfo("application_name='keeper")),
      `unterminated quoted string in connection info string: the value of "application_name" has no closing "'"` +
        ` (write a quote inside a value as \\')`,
    );
  });

  void test('an unquoted password with a space says to quote it, without showing it', () => {
    assert.equal(
      errorOf(() => parseConninfo('password=correct horse')),
      'missing "=" after the word following "password" in connection info string (not shown; ' +
        "a value containing spaces must be quoted: password='...')",
    );
  });

  void test('oauth_client_secret is masked like a password', () => {
    assert.equal(
      maskConninfo(parseConninfo('oauth_client_secret=abc host=h')),
      'oauth_client_secret=******** host=h',
    );
  });
});

void describe('URI parts', () => {
  void test('a trailing newline from a file or the environment is not part of the last value', () => {
    assert.deepEqual(params('postgresql://h/db\n'), { host: 'h', dbname: 'db' });
  });

  void test('user info needs no path after the host', () => {
    assert.deepEqual(params('postgresql://alice:pw@h'), { user: 'alice', password: 'pw', host: 'h' });
  });

  void test('a user without a password gives no password; empty parts give nothing', () => {
    assert.deepEqual(params('postgresql://alice@h/db'), { user: 'alice', host: 'h', dbname: 'db' });
    assert.deepEqual(params('postgresql://:@h/'), { host: 'h' });
    assert.deepEqual(params('postgresql:///mydb'), { dbname: 'mydb' });
  });

  void test('an empty entry of a host list keeps the hosts and ports aligned', () => {
    assert.deepEqual(params('postgresql://h1,:5433/db'), { host: 'h1,', port: ',5433', dbname: 'db' });
  });

  void test('an IPv6 host must be closed, not empty, and followed by a port, path, query or another host', () => {
    assert.equal(
      errorOf(() => parseConninfo('postgresql://[::1/db')),
      'missing "]" after an IPv6 host address in URI',
    );
    assert.equal(
      errorOf(() => parseConninfo('postgresql://[]/db')),
      'IPv6 host address may not be empty in URI',
    );
    assert.equal(
      errorOf(() => parseConninfo('postgresql://[::1]x/db')),
      'unexpected "x" after IPv6 host address in URI',
    );
  });

  void test('a bad port says that a "/" in a password must be encoded', () => {
    assert.equal(
      errorOf(() => parseConninfo('postgresql://h:54x/db')),
      'invalid port number in URI: expected an integer from 1 to 65535 (if the password contains "/", ' +
        'percent-encode it as %2F)',
    );
  });

  void test('a percent-encoding error names the part and quotes it, unless it may hold a secret', () => {
    const cases = [
      ['postgresql://us%zz@h/db', 'the user name "us%zz"'],
      ['postgresql://u:pw%zz@h/db', 'the password'],
      ['postgresql://h%zz/db', 'the host "h%zz"'],
      ['postgresql://h:54%zz/db', 'the port'],
      ['postgresql://h/my%zzdb', 'the database name "my%zzdb"'],
      ['postgresql://h/db?a%zz=1', 'the query parameter name "a%zz"'],
      ['postgresql://h/db?application_name=a%zz', 'the value of "application_name" "a%zz"'],
    ];
    for (const [uri, part] of cases) {
      assert.equal(
        errorOf(() => parseConninfo(uri ?? '')),
        `invalid percent-encoding in ${part} of the URI (expected %XX, X a hex digit)`,
      );
    }
  });

  void test('%00 is refused', () => {
    assert.equal(
      errorOf(() => parseConninfo('postgresql://h/db%00')),
      'forbidden %00 in the database name "db%00" of the URI',
    );
  });

  void test('a query value with an unencoded "=" is refused', () => {
    assert.equal(
      errorOf(() => parseConninfo('postgresql://h/db?options=a=b')),
      'extra "=" in URI query parameter "options" (percent-encode "=" in a value as %3D)',
    );
  });

  void test('ssl takes only true', () => {
    assert.equal(
      errorOf(() => parseConninfo('postgresql://h/db?ssl=false')),
      'invalid URI query parameter "ssl": only ssl=true (meaning sslmode=require) is accepted; use sslmode=...',
    );
  });
});

void describe('values', () => {
  void test('an empty entry of a port list means the default port', () => {
    assert.equal(params('host=a,b port=,5433').port, ',5433');
  });

  void test('a port in exponent notation is not a port', () => {
    assert.match(
      errorOf(() => parseConninfo('port=1e3')),
      /invalid port number "1e3" for "port"/,
    );
  });

  void test('keepalives and keepalives_idle take whole seconds, any number of digits', () => {
    assert.equal(params('connect_timeout=10 keepalives=1 keepalives_idle=30').keepalives_idle, '30');
    assert.equal(
      errorOf(() => parseConninfo('keepalives=on')),
      'invalid value "on" for "keepalives": expected a non-negative integer',
    );
    assert.match(
      errorOf(() => parseConninfo('keepalives_idle=1.5')),
      /"keepalives_idle"/,
    );
  });

  void test('an unknown sslmode lists the modes', () => {
    assert.equal(
      errorOf(() => parseConninfo('sslmode=on')),
      'invalid sslmode value "on" in "sslmode": expected one of disable, allow, prefer, require, verify-ca, verify-full',
    );
  });

  void test('TLS protocol versions: any of TLSv1 to TLSv1.3, or empty', () => {
    for (const v of ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3', '']) {
      assert.equal(
        params(`ssl_min_protocol_version='${v}' ssl_max_protocol_version='${v}'`).ssl_max_protocol_version,
        v,
      );
    }
    for (const key of ['ssl_min_protocol_version', 'ssl_max_protocol_version']) {
      assert.equal(
        errorOf(() => parseConninfo(`${key}=TLSv9`)),
        `invalid value "TLSv9" for "${key}": expected one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3`,
      );
    }
  });

  void test('a hostaddr list must match the host list, unless there is no host', () => {
    assert.equal(
      errorOf(() => parseConninfo('host=a,b hostaddr=10.0.0.1')),
      'could not match 2 host names to 1 "hostaddr" values',
    );
    assert.equal(params('hostaddr=10.0.0.1,10.0.0.2').hostaddr, '10.0.0.1,10.0.0.2');
    assert.equal(params("host='' hostaddr=10.0.0.1,10.0.0.2").hostaddr, '10.0.0.1,10.0.0.2');
  });

  void test('one port serves every host', () => {
    assert.equal(params('host=a,b port=5433').port, '5433');
  });
});

void describe('a password that a message happens to contain', () => {
  // Messages are written not to quote secrets; masking whatever a message contains is the second line.
  void test('is masked, in either form, wherever the password came from', () => {
    for (const text of [
      'password=hunter22 host=h hunter22=1',
      'postgresql://u:hunter22@h/db?hunter22=1',
      'postgresql://h/db?password=hunter22&hunter22=1',
    ]) {
      const message = errorOf(() => parseConninfo(text));
      assert.match(message, /^invalid (connection option|URI query parameter) "\*{8}"/, text);
    }
  });

  void test('is masked from four characters; a shorter one would blank out ordinary words', () => {
    assert.match(
      errorOf(() => parseConninfo('password=abcd host=h abcd=1')),
      /"\*{8}"/,
    );
    assert.match(
      errorOf(() => parseConninfo('password=abc host=h abc=1')),
      /"abc"/,
    );
  });
});
