// The proxy's browser-facing protections through a real FastMCP TypeScript server (npm `fastmcp`) on 127.0.0.1,
// with our OAuthProxy mounted as the README says (`proxy.mount(server)`), driven over HTTP by two browsers with
// their own cookie jars: an attacker's and a victim's.
//  - consent bound to the browser: a forwarded upstream login link yields no code (consent on and off);
//  - CSRF on the consent form: the attacker's form posted from the victim's browser approves nothing;
//  - two consent pages in one browser both work; the security headers reach the browser.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { FastMCP } from 'fastmcp';

import { OAuthProxy } from '../index.js';
import {
  approve,
  Browser,
  freePort,
  hiddenField,
  obtainTokens,
  pkcePair,
  REDIRECT,
  startIdp,
  upstreamConfig,
} from '../test-support/helpers.mjs';

const quiet = { debug() {}, error() {}, info() {}, log() {}, warn() {} };

let idp;
before(async () => {
  idp = await startIdp();
});
after(async () => {
  await idp.close();
});

/** A FastMCP server on a free port with our proxy mounted; `extra` is proxy config. */
async function start(extra = {}) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proxy = new OAuthProxy({
    baseUrl: base,
    encryptionKey: 'security-test-storage-key',
    jwtSigningKey: 'security-test-signing-key-0123456789',
    scopes: ['openid'],
    ...upstreamConfig(idp.url),
    ...extra,
  });
  const server = new FastMCP({
    logger: quiet,
    name: 'fastmcp-auth-security-test',
    oauth: {
      authorizationServer: proxy.getAuthorizationServerMetadata(),
      enabled: true,
      protectedResource: { authorizationServers: [base], resource: base },
    },
    version: '1.0.0',
  });
  proxy.mount(server);
  await server.start({ httpStream: { host: '127.0.0.1', port }, transportType: 'httpStream' });
  return {
    base,
    stop: async () => {
      await server.stop();
      proxy.destroy();
    },
  };
}

async function register(base, browser = new Browser()) {
  const r = await browser.fetch(`${base}/oauth/register`, {
    body: JSON.stringify({ client_name: 'Attacker app', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }),
    headers: { 'Content-Type': 'application/json' },
    method: 'POST',
  });
  assert.equal(r.status, 201);
  return r.json();
}

function authorizeUrl(base, clientId, state = 'st') {
  const q = new URLSearchParams({
    client_id: clientId,
    code_challenge: pkcePair().challenge,
    code_challenge_method: 'S256',
    redirect_uri: REDIRECT,
    response_type: 'code',
    state,
  });
  return `${base}/oauth/authorize?${q}`;
}

/** The upstream login at the mock provider (any browser: the provider logs in whoever comes); the callback URL. */
async function upstreamLogin(upstreamUrl) {
  const r = await fetch(upstreamUrl, { redirect: 'manual' });
  assert.equal(r.status, 302);
  return r.headers.get('location');
}

function callbackOn(base, callbackUrl) {
  const cb = new URL(callbackUrl);
  return `${base}${cb.pathname}${cb.search}`;
}

describe('browser binding and CSRF through a FastMCP server (two browsers)', () => {
  test('the whole flow works in one browser, with the security headers', async () => {
    const s = await start();
    try {
      const browser = new Browser();
      const client = await register(s.base, browser);
      const page = await browser.fetch(authorizeUrl(s.base, client.client_id));
      assert.equal(page.status, 200);
      assert.equal(page.headers.get('x-frame-options'), 'DENY');
      assert.match(page.headers.get('content-security-policy'), /frame-ancestors 'none'/);
      assert.equal(page.headers.get('cache-control'), 'no-store');
      const [cookie] = page.headers.getSetCookie();
      for (const attr of ['fastmcp_auth_browser=', 'HttpOnly', 'SameSite=Lax', 'Path=/', 'Max-Age=600']) {
        assert.ok(cookie.includes(attr), `${attr} in ${cookie}`);
      }
      const { tokens } = await obtainTokens(s.base, browser);
      assert.equal(tokens.token_type, 'Bearer');
      const meta = await (await fetch(`${s.base}/.well-known/oauth-authorization-server`)).json();
      assert.equal(meta.authorization_response_iss_parameter_supported, true);
      // Mounted: the revocation endpoint is served, so it is advertised; FastMCP's own copy does not name it.
      assert.equal(meta.revocation_endpoint, `${s.base}/oauth/revoke`);
    } finally {
      await s.stop();
    }
  });

  for (const consentRequired of [true, false]) {
    test(`a forwarded upstream login link yields no code (consent ${consentRequired ? 'on' : 'off'})`, async () => {
      const s = await start({ consentRequired });
      try {
        const attacker = new Browser();
        const victim = new Browser();
        const client = await register(s.base, attacker);
        let r = await attacker.fetch(authorizeUrl(s.base, client.client_id));
        if (consentRequired) {
          assert.equal(r.status, 200);
          r = await approve(attacker, s.base, await r.text());
        }
        assert.equal(r.status, 302);
        const upstreamUrl = r.headers.get('location');
        assert.ok(upstreamUrl.startsWith(idp.url), 'the attacker holds the upstream login link');
        // The victim follows the link, logs in upstream and comes back to our callback in her own browser.
        const callback = await upstreamLogin(upstreamUrl);
        r = await victim.fetch(callbackOn(s.base, callback));
        assert.equal(r.status, 403);
        assert.equal(r.headers.get('location'), null, 'nothing goes to the attacker client');
        assert.match(await r.text(), /another browser/);
        // The transaction is dead: not even the attacker's browser can use it now.
        r = await attacker.fetch(callbackOn(s.base, callback));
        assert.equal(r.headers.get('location'), null);
        assert.ok(r.status >= 400);
      } finally {
        await s.stop();
      }
    });
  }

  test("the attacker's consent form posted from the victim's browser approves nothing", async () => {
    const s = await start();
    try {
      const attacker = new Browser();
      const victim = new Browser();
      const client = await register(s.base, attacker);
      const attackerPage = await (await attacker.fetch(authorizeUrl(s.base, client.client_id))).text();
      // The victim has her own authorization open (her browser has the binding cookie).
      const victimPage = await (await victim.fetch(authorizeUrl(s.base, client.client_id, 'victim'))).text();
      const post = (browser, fields) =>
        browser.fetch(`${s.base}/oauth/consent`, {
          body: new URLSearchParams(fields).toString(),
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          method: 'POST',
        });
      const forged = [
        // The input: transaction_id and action alone.
        { action: 'approve', transaction_id: hiddenField(attackerPage, 'transaction_id') },
        { action: 'approve', transaction_id: hiddenField(victimPage, 'transaction_id') },
        // The attacker's own page fields (token included), posted from the victim's browser.
        {
          action: 'approve',
          csrf_token: hiddenField(attackerPage, 'csrf_token'),
          transaction_id: hiddenField(attackerPage, 'transaction_id'),
        },
        // The victim's transaction with the attacker's token.
        {
          action: 'approve',
          csrf_token: hiddenField(attackerPage, 'csrf_token'),
          transaction_id: hiddenField(victimPage, 'transaction_id'),
        },
      ];
      for (const fields of forged) {
        const r = await post(victim, fields);
        assert.equal(r.status, 403, JSON.stringify(fields));
        assert.equal(r.headers.get('location'), null);
      }
      // Nothing changed: the victim's own page still works, and so does the attacker's in his own browser.
      let r = await approve(victim, s.base, victimPage);
      assert.equal(r.status, 302);
      r = await victim.fetch(callbackOn(s.base, await upstreamLogin(r.headers.get('location'))));
      assert.equal(r.status, 302);
      assert.equal(new URL(r.headers.get('location')).searchParams.get('state'), 'victim');
      r = await approve(attacker, s.base, attackerPage);
      assert.equal(r.status, 302);
    } finally {
      await s.stop();
    }
  });

  test('two consent pages in one browser both work, and the cookie stays one value', async () => {
    const s = await start();
    try {
      const browser = new Browser();
      const client = await register(s.base, browser);
      const first = await (await browser.fetch(authorizeUrl(s.base, client.client_id, 'one'))).text();
      const second = await (await browser.fetch(authorizeUrl(s.base, client.client_id, 'two'))).text();
      assert.equal(browser.jar.size, 1);
      for (const [page, state] of [
        [second, 'two'],
        [first, 'one'],
      ]) {
        let r = await approve(browser, s.base, page);
        assert.equal(r.status, 302);
        r = await browser.fetch(callbackOn(s.base, await upstreamLogin(r.headers.get('location'))));
        const back = new URL(r.headers.get('location'));
        assert.equal(back.searchParams.get('state'), state);
        assert.ok(back.searchParams.get('code'));
        assert.equal(back.searchParams.get('iss'), s.base);
      }
      // A replayed approval is refused (the page's token is spent).
      const r = await approve(browser, s.base, first);
      assert.ok(r.status >= 400);
    } finally {
      await s.stop();
    }
  });

  test('revocation and oversized bodies through the mounted routes', async () => {
    const s = await start();
    try {
      const { client, tokens } = await obtainTokens(s.base);
      let r = await fetch(`${s.base}/oauth/revoke`, {
        body: new URLSearchParams({
          client_id: client.client_id,
          client_secret: client.client_secret,
          token: tokens.refresh_token,
        }).toString(),
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        method: 'POST',
      });
      assert.equal(r.status, 200);
      r = await fetch(`${s.base}/oauth/token`, {
        body: new URLSearchParams({
          client_id: client.client_id,
          client_secret: client.client_secret,
          grant_type: 'refresh_token',
          refresh_token: tokens.refresh_token,
        }).toString(),
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        method: 'POST',
      });
      assert.equal(r.status, 400);
      assert.equal((await r.json()).error, 'invalid_grant');
      r = await fetch(`${s.base}/oauth/revoke`, {
        body: 'token=x',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        method: 'POST',
      });
      assert.equal(r.status, 401);
      r = await fetch(`${s.base}/oauth/register`, {
        body: JSON.stringify({ client_name: 'x'.repeat(100_000), redirect_uris: [REDIRECT] }),
        headers: { 'Content-Type': 'application/json' },
        method: 'POST',
      });
      assert.equal(r.status, 413);
      // Nesting deeper than the core parses: a 400 in our words, never a 500 or a crash.
      r = await fetch(`${s.base}/oauth/register`, {
        body: `{"redirect_uris":["${REDIRECT}"],"client_name":${'['.repeat(5000)}${']'.repeat(5000)}}`,
        headers: { 'Content-Type': 'application/json' },
        method: 'POST',
      });
      assert.equal(r.status, 400);
      r = await fetch(`${s.base}/oauth/register`, {
        body: JSON.stringify({ redirect_uris: ['https://attacker.example/.example.com/cb'] }),
        headers: { 'Content-Type': 'application/json' },
        method: 'POST',
      });
      assert.equal(r.status, 400);
      assert.equal((await r.json()).error, 'invalid_redirect_uri');
    } finally {
      await s.stop();
    }
  });

  test('the redirect URI policy matches by component', async () => {
    const config = {
      allowedRedirectUriPatterns: ['https://*.example.com/*', 'http://127.0.0.1:*'],
      baseUrl: 'http://127.0.0.1:9',
      ...upstreamConfig(idp.url),
    };
    const proxy = new OAuthProxy(config);
    try {
      for (const uri of [
        'https://attacker.example/.example.com/cb',
        'https://attacker.example?.example.com/cb',
        'https://app.example.com@attacker.example/',
        'https://attacker.example\\@app.example.com/',
        'https://app.example.com/cb\r\nSet-Cookie: x=y',
        'https://app.example.com/cb#frag',
        'http://app.example.com/cb',
        'http://127.0.0.1.attacker.example/cb',
      ]) {
        await assert.rejects(proxy.registerClient({ redirect_uris: [uri] }), (e) => e.code === 'invalid_redirect_uri', uri);
      }
      assert.ok((await proxy.registerClient({ redirect_uris: ['https://APP.example.com./cb'] })).client_id);
    } finally {
      proxy.destroy();
    }
    assert.throws(
      () => new OAuthProxy({ ...config, allowedRedirectUriPatterns: ['https://a*b.example.com/'] }),
      /a\*b\.example\.com/,
    );
  });
});
