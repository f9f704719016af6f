// Our OAuthProxy called directly, as fastmcp's is: errors are OAuthProxyErrors (code, description, statusCode,
// toJSON, toResponse), bad config throws in the constructor, Request/Response objects in and out.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { MemoryTokenStorage as TheirMemory } from 'fastmcp/auth';

import { DiskStore, OAuthProxy, OAuthProxyError } from '../index.js';
import { REDIRECT, tempDir } from '../test-support/helpers.mjs';

const config = {
  baseUrl: 'http://127.0.0.1:9',
  encryptionKey: 'k',
  jwtSigningKey: 'j',
  upstreamAuthorizationEndpoint: 'http://127.0.0.1:9/authorize',
  upstreamClientId: 'id',
  upstreamClientSecret: 'secret',
  upstreamTokenEndpoint: 'http://127.0.0.1:9/token',
};

describe('OAuthProxy', () => {
  test('bad config throws a clear error in the constructor', () => {
    assert.throws(() => new OAuthProxy({ ...config, baseUrl: 'not a url' }), /base_url/);
    assert.throws(() => new OAuthProxy({ ...config, upstreamClientId: undefined }), /upstream_client_id/);
    assert.throws(() => new OAuthProxy({ ...config, accessTokenTtl: -1 }), /access_token_ttl/);
    // Any TokenStorage is accepted (fastmcp's own here); something that is not one is refused.
    const theirs = new TheirMemory();
    new OAuthProxy({ ...config, tokenStorage: theirs }).destroy();
    theirs.destroy();
    assert.throws(() => new OAuthProxy({ ...config, tokenStorage: { save() {} } }), TypeError);
    new OAuthProxy({ ...config, enableCimd: true }).destroy();
    assert.throws(() => new OAuthProxy({ ...config, enableCimd: true, cimd: [] }), TypeError);
    assert.throws(() => new OAuthProxy(), TypeError);
  });

  test('OAuth errors are OAuthProxyErrors with fastmcp\'s shape', async () => {
    const proxy = new OAuthProxy({ ...config, tokenStorage: new DiskStore({ directory: tempDir() }) });
    const meta = proxy.getAuthorizationServerMetadata();
    assert.equal(meta.tokenEndpoint, 'http://127.0.0.1:9/oauth/token');
    assert.deepEqual(meta.codeChallengeMethodsSupported.includes('S256'), true);
    await assert.rejects(proxy.registerClient({ redirect_uris: ['https://evil.example.com/cb'] }), (e) => {
      assert.ok(e instanceof OAuthProxyError);
      assert.equal(e.statusCode, 400);
      assert.deepEqual(Object.keys(e.toJSON()), ['error', 'error_description']);
      assert.equal(e.toResponse().status, 400);
      return true;
    });
    const client = await proxy.registerClient({ redirect_uris: [REDIRECT] });
    await assert.rejects(
      proxy.exchangeAuthorizationCode({ client_id: client.client_id, client_secret: client.client_secret, code: 'nope', redirect_uri: REDIRECT }),
      (e) => e instanceof OAuthProxyError && e.code === 'invalid_grant',
    );
    await assert.rejects(
      proxy.exchangeRefreshToken({ client_id: client.client_id, client_secret: client.client_secret, refresh_token: 'a.b.c' }),
      (e) => e instanceof OAuthProxyError && e.code === 'invalid_grant',
    );
    await assert.rejects(proxy.token('grant_type=password'), (e) => e.code === 'unsupported_grant_type');
    const res = await proxy.authorize({ client_id: 'unknown', redirect_uri: REDIRECT, response_type: 'code' }).catch((e) => e);
    assert.ok(res instanceof OAuthProxyError || res instanceof Response);
    // The consent page for a registered client, then a callback for an unknown transaction.
    const page = await proxy.authorize({
      client_id: client.client_id,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      redirect_uri: REDIRECT,
      response_type: 'code',
      state: 's',
    });
    assert.ok(page instanceof Response);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /transaction_id/);
    const cb = await proxy
      .handleCallback(new Request('http://127.0.0.1:9/oauth/callback?code=x&state=unknown'))
      .catch((e) => e);
    assert.ok(cb instanceof OAuthProxyError || (cb instanceof Response && cb.status >= 400));
    const consent = await proxy
      .handleConsent(
        new Request('http://127.0.0.1:9/oauth/consent', {
          body: 'transaction_id=nope&action=approve',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          method: 'POST',
        }),
      )
      .catch((e) => e);
    assert.ok(consent instanceof OAuthProxyError || (consent instanceof Response && consent.status >= 400));
    for (const t of ['', 'garbage', 'a.b.c', 'x'.repeat(100000)]) assert.equal(await proxy.loadUpstreamTokens(t), null);
    proxy.destroy();
  });
});
