// The official MCP TypeScript SDK's own OAuth client (`@modelcontextprotocol/sdk`: StreamableHTTPClientTransport
// with an OAuthClientProvider) against the example FastMCP server on our proxy (examples/server.mjs). The SDK does
// the protocol — discovery from the 401's `resource_metadata`, RFC 9728 and RFC 8414 metadata, dynamic
// registration, authorize with PKCE and `resource`, the code exchange, the tool call, the refresh; the test only
// plays the browser (consent page, upstream login at the mock provider, following the callback) and the native
// app's loopback listener, which binds another port than the one it registered (RFC 8252 §7.3).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { createServer } from '../examples/server.mjs';
import { approve, Browser, exampleEnv, freePort, startIdp } from '../test-support/helpers.mjs';

let idp;
before(async () => {
  idp = await startIdp();
});
after(async () => {
  await idp.close();
});

/** An OAuthClientProvider as a desktop MCP client implements it: state in memory, the browser played by `open`. */
class DesktopClient {
  constructor(registeredPort, listeningPort, open) {
    this.registered = `http://127.0.0.1:${registeredPort}/callback`;
    this.listening = `http://127.0.0.1:${listeningPort}/callback`;
    this.open = open;
    this.saved = {};
    this.tokenSaves = 0;
  }
  // The loopback listener of this run: another port than at registration.
  get redirectUrl() {
    return this.listening;
  }
  get clientMetadata() {
    return {
      client_name: 'MCP SDK desktop client',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [this.registered],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return this.saved.client;
  }
  saveClientInformation(info) {
    this.saved.client = info;
  }
  tokens() {
    return this.saved.tokens;
  }
  saveTokens(tokens) {
    this.saved.tokens = tokens;
    this.tokenSaves += 1;
  }
  redirectToAuthorization(url) {
    this.authorizationUrl = url;
    return this.open(url);
  }
  saveCodeVerifier(v) {
    this.saved.verifier = v;
  }
  codeVerifier() {
    return this.saved.verifier;
  }
}

test('the MCP SDK OAuth client logs in, calls a tool and refreshes through FastMCP on our proxy', async () => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const app = createServer({
    ...exampleEnv(idp.url, port, { encryption: 'sdk-test-storage-key', signing: 'sdk-test-signing-key-0123456789abcdef' }),
    BASE_URL: base,
    SCOPES: 'openid',
  });
  await app.start();
  try {
    // The 401 tells where the login is (RFC 9728 §5.1).
    const bare = await fetch(`${base}/mcp`, {
      body: JSON.stringify({ id: 1, jsonrpc: '2.0', method: 'initialize', params: {} }),
      headers: { Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json' },
      method: 'POST',
    });
    assert.equal(bare.status, 401);
    assert.equal(
      bare.headers.get('www-authenticate'),
      `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`,
    );

    const browser = new Browser();
    let redirected;
    const desktop = new DesktopClient(await freePort(), await freePort(), async (url) => {
      // The user's browser: our consent page, the upstream login, back through our callback to the app.
      const page = await browser.fetch(url.toString());
      assert.equal(page.status, 200, 'consent page');
      let r = await approve(browser, base, await page.text());
      assert.equal(r.status, 302);
      const callback = await (await fetch(r.headers.get('location'), { redirect: 'manual' })).headers.get('location');
      const cb = new URL(callback);
      r = await browser.fetch(`${base}${cb.pathname}${cb.search}`);
      assert.equal(r.status, 302);
      redirected = new URL(r.headers.get('location'));
    });

    const connect = async () => {
      const client = new Client({ name: 'sdk-test', version: '1.0.0' });
      const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { authProvider: desktop });
      await client.connect(transport);
      return { client, transport };
    };
    // First connection: the SDK discovers, registers and sends the browser to authorize; then it waits for us.
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { authProvider: desktop });
    await assert.rejects(new Client({ name: 'sdk-test', version: '1.0.0' }).connect(transport), UnauthorizedError);
    const auth = desktop.authorizationUrl;
    assert.equal(auth.origin + auth.pathname, `${base}/oauth/authorize`);
    assert.equal(auth.searchParams.get('resource'), `${base}/mcp`, 'the SDK names the resource (RFC 8707)');
    assert.equal(auth.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(auth.searchParams.get('redirect_uri'), desktop.listening);
    assert.notEqual(desktop.listening, desktop.registered);
    // The code went to the port the app listens on this time, with our issuer (RFC 9207).
    assert.equal(redirected.origin + redirected.pathname, desktop.listening);
    assert.equal(redirected.searchParams.get('iss'), base);
    await transport.finishAuth(redirected.searchParams.get('code'));
    assert.ok(desktop.saved.tokens.access_token && desktop.saved.tokens.refresh_token);
    const [, payload] = desktop.saved.tokens.access_token.split('.');
    assert.equal(JSON.parse(Buffer.from(payload, 'base64url')).aud, `${base}/mcp`, 'aud is the resource');

    // The tool call with the SDK's token.
    let { client } = await connect();
    const r = await client.callTool({ arguments: {}, name: 'whoami' });
    assert.match(r.content[0].text, /^scopes: /);
    await client.close();

    // The access token stops working (here: the app's copy is damaged); the SDK refreshes by itself and retries.
    const saves = desktop.tokenSaves;
    desktop.saved.tokens = { ...desktop.saved.tokens, access_token: `${desktop.saved.tokens.access_token}x` };
    ({ client } = await connect());
    assert.ok(desktop.tokenSaves > saves, 'new tokens were saved after the refresh');
    const again = await client.callTool({ arguments: {}, name: 'whoami' });
    assert.match(again.content[0].text, /^scopes: /);
    await client.close();
  } finally {
    await app.stop();
  }
});
