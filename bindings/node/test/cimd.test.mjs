// Client ID Metadata Documents through the Node face: `enableCimd` (fastmcp TS's name) and our `cimd` options,
// documents served over real HTTPS (tests/mock-idp's doc host, its own CA), the official MCP SDK's OAuth client
// identifying itself by URL (`clientMetadataUrl`) against a FastMCP server on our proxy, hostile documents refused.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { OAuthProxy } from '../index.js';
import { createServer } from '../examples/server.mjs';
import { approve, Browser, exampleEnv, freePort, pkcePair, startDocHost, startIdp, upstreamConfig } from '../test-support/helpers.mjs';

let idp;
let docs;
before(async () => {
  idp = await startIdp();
  docs = await startDocHost();
});
after(async () => {
  await docs.close();
  await idp.close();
});

const testCimd = () => ({
  allowPrivateNetworksForTesting: true,
  extraRootCertificates: [docs.caPem],
  failureCooldownMs: 0,
  fetchTimeoutMs: 1000,
});

function proxy(extra = {}) {
  return new OAuthProxy({
    ...upstreamConfig(idp.url),
    baseUrl: 'http://127.0.0.1:8000',
    enableCimd: true,
    cimd: testCimd(),
    ...extra,
  });
}

function authorizeParams(clientId, redirectUri = 'http://127.0.0.1:41234/callback') {
  const { challenge } = pkcePair();
  return {
    client_id: clientId,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    redirect_uri: redirectUri,
    response_type: 'code',
    state: 's',
  };
}

test('enableCimd advertises support; off (the default) a URL client id is unknown', async () => {
  const on = proxy();
  assert.equal(on.getAuthorizationServerMetadata().clientIdMetadataDocumentSupported, true);
  const off = proxy({ enableCimd: undefined });
  assert.equal(off.getAuthorizationServerMetadata().clientIdMetadataDocumentSupported, undefined);
  await assert.rejects(off.authorize(authorizeParams(docs.url('good.json'))), (e) => {
    assert.equal(e.code, 'invalid_client');
    return true;
  });
  on.destroy();
  off.destroy();
});

test('good documents give the consent page with the client host and the redirect host', async () => {
  const p = proxy();
  for (const name of docs.good) {
    const r = await p.authorize(authorizeParams(docs.url(name)));
    assert.equal(r.status, 200, name);
    const html = await r.text();
    assert.match(html, /published by <strong>localhost<\/strong>/);
    assert.match(html, /sent to <strong>127\.0\.0\.1:41234<\/strong>/);
  }
  p.destroy();
});

test('every hostile document is refused with a clear OAuth error', async () => {
  const p = proxy();
  for (const [name, fragment] of docs.hostile) {
    await assert.rejects(p.authorize(authorizeParams(docs.url(name))), (e) => {
      assert.ok(['invalid_client', 'temporarily_unavailable'].includes(e.code), `${name}: ${e.code}`);
      assert.ok(e.description.includes(fragment), `${name}: ${e.description}`);
      return true;
    });
  }
  // A redirect URI the document does not list.
  await assert.rejects(p.authorize(authorizeParams(docs.url('good.json'), 'https://attacker.example/cb')), (e) => {
    assert.equal(e.code, 'invalid_request');
    return true;
  });
  p.destroy();
});

test('loopback hosts are refused without the test switch; bad cimd options throw', async () => {
  const p = proxy({ cimd: { extraRootCertificates: [docs.caPem] } });
  await assert.rejects(p.authorize(authorizeParams(docs.url('good.json'))), (e) => {
    assert.match(e.description, /non-public address/);
    return true;
  });
  p.destroy();
  assert.throws(() => proxy({ cimd: { allowPrivateNetworks: true } }), /unknown cimd option `allowPrivateNetworks`/);
  assert.throws(() => proxy({ cimd: 'yes' }), TypeError);
  assert.throws(() => proxy({ cimd: { fetchTimeoutMs: 0 } }), /cimd\.fetch_timeout/);
  assert.throws(() => proxy({ cimd: { extraRootCertificates: ['nope'] } }), /PEM/);
});

test('the MCP SDK client identified by its metadata document logs in, calls a tool and refreshes through FastMCP', async () => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const app = createServer(
    {
      ...exampleEnv(idp.url, port, { encryption: 'cimd-test-storage-key', signing: 'cimd-test-signing-key-0123456789ab' }),
      BASE_URL: base,
      SCOPES: 'openid',
    },
    { cimd: testCimd() },
  );
  await app.start();
  try {
    const meta = await (await fetch(`${base}/.well-known/oauth-authorization-server`)).json();
    assert.equal(meta.client_id_metadata_document_supported, true);
    const listening = `http://127.0.0.1:${await freePort()}/callback`;
    const browser = new Browser();
    let redirected;
    const saved = {};
    let consentHtml;
    const provider = {
      clientMetadataUrl: docs.url('good.json'),
      get redirectUrl() {
        return listening;
      },
      get clientMetadata() {
        return { client_name: 'unused: the document speaks for the client', redirect_uris: [listening] };
      },
      clientInformation: () => saved.client,
      saveClientInformation: (info) => {
        saved.client = info;
      },
      tokens: () => saved.tokens,
      saveTokens: (t) => {
        saved.tokens = t;
        saved.saves = (saved.saves ?? 0) + 1;
      },
      saveCodeVerifier: (v) => {
        saved.verifier = v;
      },
      codeVerifier: () => saved.verifier,
      redirectToAuthorization: async (url) => {
        saved.authorizationUrl = url;
        const page = await browser.fetch(url.toString());
        assert.equal(page.status, 200, 'consent page');
        consentHtml = await page.text();
        let r = await approve(browser, base, consentHtml);
        assert.equal(r.status, 302);
        const callback = (await fetch(r.headers.get('location'), { redirect: 'manual' })).headers.get('location');
        const cb = new URL(callback);
        r = await browser.fetch(`${base}${cb.pathname}${cb.search}`);
        assert.equal(r.status, 302);
        redirected = new URL(r.headers.get('location'));
      },
    };
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { authProvider: provider });
    await assert.rejects(new Client({ name: 'cimd-test', version: '1.0.0' }).connect(transport), UnauthorizedError);
    assert.equal(saved.authorizationUrl.searchParams.get('client_id'), docs.url('good.json'), 'the URL is the client id');
    assert.match(consentHtml, /Doc Host Client/);
    assert.match(consentHtml, /published by <strong>localhost<\/strong>/);
    assert.equal(redirected.origin + redirected.pathname, listening);
    await transport.finishAuth(redirected.searchParams.get('code'));
    assert.ok(saved.tokens.access_token && saved.tokens.refresh_token);

    const connect = async () => {
      const client = new Client({ name: 'cimd-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { authProvider: provider }));
      return client;
    };
    let client = await connect();
    assert.match((await client.callTool({ arguments: {}, name: 'whoami' })).content[0].text, /^scopes: /);
    await client.close();
    // The access token stops working; the SDK refreshes with its URL client id and retries.
    const saves = saved.saves;
    saved.tokens = { ...saved.tokens, access_token: `${saved.tokens.access_token}x` };
    client = await connect();
    assert.ok(saved.saves > saves, 'refreshed');
    assert.match((await client.callTool({ arguments: {}, name: 'whoami' })).content[0].text, /^scopes: /);
    await client.close();
  } finally {
    await app.stop();
  }
});
