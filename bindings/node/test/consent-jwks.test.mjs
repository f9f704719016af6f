// ConsentManager and JWKSVerifier against npm fastmcp's, case by case: consent cookies signed by either verify in
// the other (and tampered, expired, foreign or malformed ones in neither); the consent page escapes what it shows;
// JWKSVerifier (both on `jose`) gives the same verdicts and claims for tokens signed by a JWKS served on 127.0.0.1.
// (A `tokenVerifier`'s use by the proxy and the providers: proxy-options.test.mjs.)
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';

import * as theirs from 'fastmcp/auth';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

import * as ours from '../index.js';

const data = (extra = {}) => ({
  clientName: 'Claude',
  provider: 'GitHub',
  scope: ['openid', 'read:user'],
  timestamp: Date.now(),
  transactionId: 'tx-1',
  ...extra,
});

describe('ConsentManager', () => {
  test("cookies cross both ways with fastmcp's under one key; any change refuses", () => {
    const pairs = [
      [new ours.ConsentManager('shared-key'), new theirs.ConsentManager('shared-key')],
      [new theirs.ConsentManager('shared-key'), new ours.ConsentManager('shared-key')],
    ];
    for (const [signer, checker] of pairs) {
      const d = data();
      const cookie = signer.signConsentCookie(d);
      assert.deepEqual(checker.validateConsentCookie(cookie), d);
      const [p, sig] = cookie.split('.');
      const forged = Buffer.from(JSON.stringify({ ...d, clientName: 'Evil' })).toString('base64');
      const cases = {
        'another key': new ours.ConsentManager('other-key').signConsentCookie(d),
        'payload changed': `${forged}.${sig}`,
        'signature changed': `${p}.${sig.slice(0, -1)}${sig.endsWith('0') ? '1' : '0'}`,
        'signature cut': `${p}.${sig.slice(0, 10)}`,
        'no signature': p,
        empty: '',
        'expired (6 minutes old)': signer.signConsentCookie(data({ timestamp: Date.now() - 6 * 60_000 })),
        'not JSON': `${Buffer.from('nope').toString('base64')}.${sig}`,
      };
      for (const [name, c] of Object.entries(cases)) {
        assert.equal(new ours.ConsentManager('shared-key').validateConsentCookie(c), null, `ours: ${name}`);
        assert.equal(new theirs.ConsentManager('shared-key').validateConsentCookie(c), null, `fastmcp: ${name}`);
      }
    }
    // Stricter than fastmcp: extra dots, a cookie from beyond a minute in the future, a non-string. (Within a
    // minute: clock skew between hosts sharing the key, accepted.)
    const m = new ours.ConsentManager('shared-key');
    assert.equal(m.validateConsentCookie(`${m.signConsentCookie(data())}.x`), null);
    assert.equal(m.validateConsentCookie(m.signConsentCookie(data({ timestamp: Date.now() + 120_000 }))), null);
    assert.ok(m.validateConsentCookie(m.signConsentCookie(data({ timestamp: Date.now() + 30_000 }))));
    assert.equal(m.validateConsentCookie(undefined), null);
  });

  test('without a key: a random one per manager (nothing one manager signed verifies in another)', () => {
    const a = new ours.ConsentManager();
    const b = new ours.ConsentManager();
    const c = a.signConsentCookie(data());
    assert.deepEqual(a.validateConsentCookie(c), data({ timestamp: JSON.parse(Buffer.from(c.split('.')[0], 'base64')).timestamp }));
    assert.equal(b.validateConsentCookie(c), null);
  });

  test('the consent page escapes every value; the response is not cacheable or frameable', async () => {
    const m = new ours.ConsentManager('k');
    const html = m.generateConsentScreen(
      data({ clientName: '<script>alert(1)</script>', provider: '"><img src=x>', scope: ['<b>x</b>'], transactionId: '"onmouseover="x' }),
    );
    assert.doesNotMatch(html, /<script>|<img|<b>|"onmouseover/);
    assert.match(html, /name="transaction_id" value="&quot;onmouseover=&quot;x"/);
    assert.match(html, /Verify your identity|&lt;b&gt;x&lt;&#x2F;b&gt;/);
    const r = m.createConsentResponse({ id: 'tx-9', scope: ['openid'] }, 'Google');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.match(await r.text(), /value="tx-9"/);
  });
});

describe('JWKSVerifier', () => {
  let jwks;
  let key;
  let other;
  before(async () => {
    key = await generateKeyPair('RS256');
    other = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(key.publicKey)), alg: 'RS256', kid: 'k1', use: 'sig' };
    const server = createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    jwks = { close: () => new Promise((r) => server.close(r)), url: `http://127.0.0.1:${server.address().port}/jwks.json` };
  });
  after(() => jwks.close());

  const sign = (claims, k = key.privateKey, kid = 'k1', exp = '5m') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).setIssuedAt().setExpirationTime(exp).sign(k);

  test("verdicts and claims equal fastmcp's", async () => {
    const config = { audience: 'api://mcp', issuer: 'https://idp.example.com', jwksUri: jwks.url };
    const a = new ours.JWKSVerifier(config);
    const b = new theirs.JWKSVerifier(config);
    assert.equal(a.getJwksUri(), b.getJwksUri());
    const base = { aud: 'api://mcp', iss: 'https://idp.example.com', scope: 'read write', sub: 'user-1' };
    const cases = {
      valid: [await sign(base), true],
      'scope as an array, client_id claim': [await sign({ ...base, client_id: 'app', scope: ['a', 'b'] }), true],
      'wrong audience': [await sign({ ...base, aud: 'other' }), false],
      'wrong issuer': [await sign({ ...base, iss: 'https://evil.example' }), false],
      expired: [await sign(base, key.privateKey, 'k1', Math.floor(Date.now() / 1000) - 60), false],
      'signed by another key': [await sign(base, other.privateKey), false],
      'alg none': [`${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(base)).toString('base64url')}.`, false],
      garbage: ['not.a.jwt', false],
    };
    for (const [name, [token, valid]] of Object.entries(cases)) {
      const [ra, rb] = [await a.verify(token), await b.verify(token)];
      assert.equal(ra.valid, valid, `ours: ${name}`);
      assert.equal(rb.valid, valid, `fastmcp: ${name}`);
      assert.deepEqual(ra.claims, rb.claims, name);
      if (!valid) assert.equal(typeof ra.error, 'string');
    }
    await a.refreshKeys();
    assert.equal((await a.verify(cases.valid[0])).valid, true, 'after refreshKeys');
  });

  test('claims normalised as fastmcp does (client_id from sub, scope as an array); bad configs refused', async () => {
    const v = new ours.JWKSVerifier({ jwksUri: jwks.url });
    const r = await v.verify(await sign({ sub: 'user-7', scope: 'repo' }));
    assert.equal(r.valid, true);
    assert.equal(r.claims.client_id, 'user-7');
    assert.deepEqual(r.claims.scope, ['repo']);
    assert.throws(() => new ours.JWKSVerifier({}), /jwksUri is required/);
    assert.throws(() => new ours.JWKSVerifier({ jwksUri: 'not a url' }));
  });
});
