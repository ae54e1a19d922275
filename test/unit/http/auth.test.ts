// Basic authentication: right and wrong passwords, unknown users, the cache of verified
// passwords (with a fake clock), and the bound on verifications waiting, which answers
// 'busy' instead of queueing without end.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { BasicAuth, sameSecret } from '../../../src/http/auth.js';

const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('BasicAuth', () => {
  let now = 1_000_000;
  const users = new Map([['prometheus', bcrypt.hashSync('right-password', 4)]]);
  const auth = new BasicAuth(users, () => now);
  after(() => auth.close());

  test('the right password passes; a wrong one, an unknown user, or no header does not', async () => {
    assert.equal(await auth.check(basic('prometheus', 'right-password')), 'ok');
    assert.equal(await auth.check(basic('prometheus', 'wrong')), 'wrong');
    assert.equal(await auth.check(basic('nobody', 'right-password')), 'wrong');
    assert.equal(await auth.check(undefined), 'wrong');
    assert.equal(await auth.check('Bearer abc'), 'wrong');
    assert.equal(await auth.check('Basic !!!'), 'wrong');
    assert.equal(await auth.check(`Basic ${Buffer.from('no-colon').toString('base64')}`), 'wrong');
  });

  test('a password with a colon is the part after the first one', async () => {
    const a = new BasicAuth(new Map([['u', bcrypt.hashSync('p:a:ss', 4)]]));
    try {
      assert.equal(await a.check(basic('u', 'p:a:ss')), 'ok');
    } finally {
      a.close();
    }
  });

  test('a verified password is remembered for ten minutes, then checked again', async () => {
    const a = new BasicAuth(new Map([['u', bcrypt.hashSync('pw', 4)]]), () => now);
    try {
      assert.equal(await a.check(basic('u', 'pw')), 'ok');
      assert.equal(a.comparisons, 1);
      now += 9 * 60_000;
      assert.equal(await a.check(basic('u', 'pw')), 'ok');
      assert.equal(a.comparisons, 1, 'remembered: no second bcrypt comparison');
      assert.equal(await a.check(basic('u', 'wrong')), 'wrong');
      assert.equal(await a.check(basic('u', 'wrong')), 'wrong');
      assert.equal(a.comparisons, 3, 'a wrong password is never remembered');
      now += 2 * 60_000;
      assert.equal(await a.check(basic('u', 'pw')), 'ok');
      assert.equal(a.comparisons, 4, 'checked again after ten minutes');
      a.replace(new Map([['u', bcrypt.hashSync('other', 4)]]));
      assert.equal(await a.check(basic('u', 'pw')), 'wrong', 'new users: what was remembered is forgotten');
      assert.equal(await a.check(basic('u', 'other')), 'ok');
    } finally {
      a.close();
    }
  });

  test('an unknown user costs a bcrypt comparison, as a wrong password does', async () => {
    const a = new BasicAuth(new Map([['u', bcrypt.hashSync('pw', 5)]]));
    try {
      assert.equal(await a.check(basic('nobody', 'pw')), 'wrong');
      assert.equal(a.comparisons, 1);
    } finally {
      a.close();
    }
  });

  test('at most 16 verifications wait: the rest are busy, and the queue drains', async () => {
    // All 24 are asked in one go, before the worker can answer the first: the 17th onwards find
    // the queue full (cost 8 keeps the drain short: 16 comparisons at a quarter of a core).
    const a = new BasicAuth(new Map([['u', bcrypt.hashSync('pw', 8)]]));
    try {
      const verdicts = await Promise.all(
        Array.from({ length: 24 }, (_, i) => a.check(basic('u', `wrong-${i}`))),
      );
      assert.equal(verdicts.filter((v) => v === 'wrong').length, 16);
      assert.equal(verdicts.filter((v) => v === 'busy').length, 8);
      assert.equal(await a.check(basic('nobody', 'x')), 'wrong', 'room again once drained');
    } finally {
      a.close();
    }
  });
});

test('sameSecret: equal strings only, and never an empty one', () => {
  assert.equal(sameSecret('token-1', 'token-1'), true);
  assert.equal(sameSecret('token-1', 'token-2'), false);
  assert.equal(sameSecret('token', 'token-1'), false);
  assert.equal(sameSecret('', ''), false);
});
