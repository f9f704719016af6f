// fastmcp/auth's provider classes (AuthProvider, OAuthProvider, GitHubProvider, GoogleProvider, AzureProvider) on
// our proxy. FastMCP TypeScript servers written as fastmcp's README writes them — `new FastMCP({ auth: new
// GoogleProvider({...}) })`, a tool reading `getAuthSession(session)` — are generated twice, importing the provider
// and helpers from `fastmcp` and from this package (the only difference between the two files), and each is driven
// over HTTP against the loopback mock provider: registration, authorize, consent, the upstream login, callback,
// token, an MCP tool call reading the session, a refresh. The provider endpoints point at the mock by overriding the
// providers' getAuthorizationEndpoint / getTokenEndpoint on the prototype (fastmcp's extension point; the example
// text itself is untouched).
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import * as theirs from 'fastmcp';
import * as theirsAuth from 'fastmcp/auth';

import * as ours from '../index.js';
import { Browser, freePort, obtainTokens, refreshTokens, startIdp } from '../test-support/helpers.mjs';

const OURS = pathToFileURL(join(import.meta.dirname, '..', 'index.js')).href;
const ID_CLAIMS = { email: 'ada@example.com', email_verified: true, sub: 'user-1', upn: 'ada@contoso.example' };

let idp;
before(async () => {
  idp = await startIdp({ idToken: ID_CLAIMS });
});
after(async () => {
  await idp.close();
});

/**
 * fastmcp's README example (Authentication → OAuth with Pre-configured Providers) for `provider`, importing the
 * provider and the session helpers from `from`. `extra`: the provider's own options (AzureProvider's tenantId).
 */
function exampleSource(provider, from, extra = '') {
  const authImport =
    from === 'fastmcp'
      ? `import { FastMCP, getAuthSession, ${provider}, requireAuth } from "fastmcp";`
      : `import { FastMCP } from "fastmcp";\nimport { getAuthSession, ${provider}, requireAuth } from ${JSON.stringify(from)};`;
  return `${authImport}

const server = new FastMCP({
  auth: new ${provider}({
    allowedRedirectUriPatterns: ["http://127.0.0.1:*"],
    baseUrl: process.env.BASE_URL,
    clientId: process.env.CLIENT_ID,
    clientSecret: process.env.CLIENT_SECRET,${extra}
  }),
  name: "My Server",
  version: "1.0.0",
});

server.addTool({
  canAccess: requireAuth,
  description: "Get user profile",
  execute: async (_args, { session }) => {
    const { accessToken, email, expiresAt, refreshToken, scopes, upn } = getAuthSession(session);
    return JSON.stringify({ accessToken, email, expiresAt, hasRefreshToken: Boolean(refreshToken), scopes, upn });
  },
  name: "get-profile",
});

await server.start({ httpStream: { host: "127.0.0.1", port: Number(process.env.PORT) }, transportType: "httpStream" });
export { server };
`;
}

// Under this package, so that `fastmcp` resolves from the generated files as from a user's project (git-ignored).
const generated = join(import.meta.dirname, '..', '.generated');
mkdirSync(generated, { recursive: true });
process.on('exit', () => rmSync(generated, { force: true, recursive: true }));
let serial = 0;

/** Points `module`'s provider class at the mock provider; returns the undo. */
function pointAtMock(cls) {
  const proto = cls.prototype;
  const saved = [Object.getOwnPropertyDescriptor(proto, 'getAuthorizationEndpoint'), Object.getOwnPropertyDescriptor(proto, 'getTokenEndpoint')];
  proto.getAuthorizationEndpoint = () => `${idp.url}/authorize`;
  proto.getTokenEndpoint = () => `${idp.url}/token`;
  return () => {
    Object.defineProperty(proto, 'getAuthorizationEndpoint', saved[0]);
    Object.defineProperty(proto, 'getTokenEndpoint', saved[1]);
  };
}

async function callTool(base, accessToken) {
  const client = new Client({ name: 'provider-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
    requestInit: { headers: accessToken ? { Authorization: `Bearer ${accessToken}` } : {} },
  });
  await client.connect(transport);
  try {
    const r = await client.callTool({ arguments: {}, name: 'get-profile' });
    assert.notEqual(r.isError, true, JSON.stringify(r));
    return JSON.parse(r.content[0].text);
  } finally {
    await client.close();
  }
}

const PROVIDERS = {
  AzureProvider: { extra: '\n    tenantId: "contoso.example",', scopes: ['openid', 'profile', 'email'] },
  GitHubProvider: { extra: '', scopes: ['read:user', 'user:email'] },
  GoogleProvider: { extra: '', scopes: ['openid', 'profile', 'email'] },
};

describe("fastmcp's README example with the import changed: the full flow through FastMCP", () => {
  const sessions = {};
  for (const [provider, { extra, scopes }] of Object.entries(PROVIDERS)) {
    for (const [name, from, module] of [
      ['fastmcp', 'fastmcp', theirs],
      ['fastmcp-auth', OURS, ours],
    ]) {
      test(`${provider} from ${name}`, async () => {
        const port = await freePort();
        const base = `http://127.0.0.1:${port}`;
        process.env.BASE_URL = base;
        process.env.CLIENT_ID = 'upstream-client';
        process.env.CLIENT_SECRET = 'upstream secret+/=';
        process.env.PORT = String(port);
        const file = join(generated, `${provider}-${name}-${serial++}.mjs`);
        writeFileSync(file, exampleSource(provider, from, extra));
        const undo = pointAtMock(module[provider]);
        let server;
        try {
          ({ server } = await import(pathToFileURL(file).href));
          const browser = new Browser();
          const { client, tokens } = await obtainTokens(base, browser, { scope: scopes.join(' ') });
          if (name === 'fastmcp-auth') {
            // Mounted by `new FastMCP({ auth })` itself: the browser-binding cookie was set and required.
            assert.ok([...browser.jar.keys()].includes('fastmcp_auth_browser'), 'our routes served the flow');
          }
          await assert.rejects(callTool(base), 'no Bearer token: refused');
          const session = await callTool(base, tokens.access_token);
          assert.match(session.accessToken, /^up-at-/, 'the tool saw the upstream access token');
          // The scopes upstream granted (the mock grants its own set), as fastmcp's provider reports them.
          assert.ok(Array.isArray(session.scopes) && session.scopes.length > 0, 'scopes: an array');
          sessions[`${provider} ${name}`] = session.scopes;
          if (name === 'fastmcp-auth') assert.deepEqual(session.scopes, sessions[`${provider} fastmcp`]);
          assert.equal(session.hasRefreshToken, true);
          assert.ok(session.expiresAt > Date.now() / 1000, 'expiresAt in Unix seconds, in the future');
          if (name === 'fastmcp-auth') {
            // Beyond fastmcp (which declares these fields and never fills them): from the ID token.
            if (provider === 'GoogleProvider') assert.equal(session.email, ID_CLAIMS.email);
            if (provider === 'AzureProvider') assert.equal(session.upn, ID_CLAIMS.upn);
          }
          const refreshed = await refreshTokens(base, client, tokens.refresh_token);
          assert.notEqual(refreshed.access_token, tokens.access_token);
          assert.match((await callTool(base, refreshed.access_token)).accessToken, /^up-at-/);
        } finally {
          undo();
          await server?.stop();
          server?.options.auth.getProxy().destroy();
        }
      });
    }
  }

  test('OAuthProvider (any OAuth 2.0 provider) from fastmcp-auth: the README example', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const { FastMCP } = theirs;
    const server = new FastMCP({
      auth: new ours.OAuthProvider({
        authorizationEndpoint: `${idp.url}/authorize`,
        baseUrl: base,
        clientId: 'upstream-client',
        clientSecret: 'upstream secret+/=',
        scopes: ['openid', 'profile'],
        tokenEndpoint: `${idp.url}/token`,
      }),
      logger: { debug() {}, error() {}, info() {}, log() {}, warn() {} },
      name: 'My Server',
      version: '1.0.0',
    });
    server.addTool({
      canAccess: ours.requireScopes('openid'),
      execute: async (_args, { session }) => JSON.stringify(ours.getAuthSession(session)),
      name: 'get-profile',
    });
    await server.start({ httpStream: { host: '127.0.0.1', port }, transportType: 'httpStream' });
    try {
      const { tokens } = await obtainTokens(base, new Browser(), { scope: 'openid profile' });
      const session = await callTool(base, tokens.access_token);
      assert.match(session.accessToken, /^up-at-/);
      assert.ok(Array.isArray(session.scopes));
    } finally {
      await server.stop();
      server.options.auth.getProxy().destroy();
    }
  });
});

describe("the provider classes match fastmcp's", () => {
  const config = { baseUrl: 'https://mcp.example.com', clientId: 'cid', clientSecret: 'secret' };
  const cases = [
    ['GitHubProvider', {}],
    ['GoogleProvider', {}],
    ['AzureProvider', {}],
    ['AzureProvider', { tenantId: 'contoso.onmicrosoft.com' }],
    ['OAuthProvider', { authorizationEndpoint: 'https://idp.example.com/auth', tokenEndpoint: 'https://idp.example.com/token' }],
  ];
  for (const [name, extra] of cases) {
    test(`${name} ${JSON.stringify(extra)}: endpoints, default scopes, getOAuthConfig()`, () => {
      const a = new ours[name]({ ...config, ...extra });
      const b = new theirs[name]({ ...config, ...extra });
      for (const m of ['getAuthorizationEndpoint', 'getTokenEndpoint', 'getDefaultScopes']) {
        assert.deepEqual(a[m](), b[m](), m);
      }
      const oa = a.getOAuthConfig();
      const ob = b.getOAuthConfig();
      assert.equal(oa.enabled, ob.enabled);
      assert.deepEqual(oa.protectedResource, ob.protectedResource);
      assert.equal(oa.proxy, a.getProxy());
      assert.ok(oa.proxy instanceof ours.OAuthProxy);
      for (const k of ['issuer', 'authorizationEndpoint', 'tokenEndpoint', 'registrationEndpoint']) {
        assert.equal(oa.authorizationServer[k], ob.authorizationServer[k], k);
      }
      assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort().filter((k) => Object.keys(a).includes(k)));
      a.getProxy().destroy();
      b.getProxy().destroy();
    });
  }

  test('the defaults are the DEFAULT_* constants, fastmcp\'s values', () => {
    for (const k of Object.keys(theirs).filter((k) => k.startsWith('DEFAULT_'))) assert.equal(ours[k], theirs[k], k);
  });

  test('AuthProvider is abstract; bad configs are clear errors', () => {
    assert.throws(() => new ours.AuthProvider({ ...config }), /abstract/);
    assert.throws(() => new ours.GitHubProvider(), /config must be an object/);
    assert.throws(() => new ours.AzureProvider({ ...config, tenantId: '../evil?x=' }), /tenantId/);
    // What fastmcp's types require is checked at construction (a missing secret would only show at the callback).
    for (const k of ['baseUrl', 'clientId', 'clientSecret']) {
      assert.throws(() => new ours.GoogleProvider({ ...config, [k]: undefined }), new RegExp(`GoogleProvider: ${k} is required`));
      assert.throws(() => new ours.GoogleProvider({ ...config, [k]: '' }), new RegExp(`${k} is required`));
    }
    // The proxy's upstream options belong to the provider: refused with what to use instead, never ignored.
    for (const [k, hint] of [
      ['upstreamAuthorizationEndpoint', /getAuthorizationEndpoint/],
      ['upstreamTokenEndpoint', /getTokenEndpoint/],
      ['upstreamClientId', /use clientId/],
      ['upstreamClientSecret', /use clientSecret/],
    ]) {
      assert.throws(() => new ours.GitHubProvider({ ...config, [k]: 'https://evil.example/x' }), hint, k);
    }
    // Our OAuthProxy options pass through; a typo is refused, never dropped.
    const p = new ours.GitHubProvider({ ...config, refreshGraceWindow: 5 });
    assert.ok(p.getProxy() instanceof ours.OAuthProxy);
    p.getProxy().destroy();
    assert.throws(() => new ours.GitHubProvider({ ...config, refreshGraceWindw: 5 }).getProxy(), /refresh_grace_windw/);
  });

  test('authenticate: undefined without a request, a Bearer token of ours, or a live one', async () => {
    const p = new ours.GitHubProvider({ ...config, jwtSigningKey: 'a-signing-key-of-enough-length-0123456789' });
    assert.equal(await p.authenticate(undefined), undefined);
    assert.equal(await p.authenticate({ headers: {} }), undefined);
    assert.equal(await p.authenticate({ headers: { authorization: 'Basic abc' } }), undefined);
    assert.equal(await p.authenticate({ headers: { authorization: 'Bearer not-a-jwt' } }), undefined);
    p.getProxy().destroy();
  });
});

describe('mounting, found by review', () => {
  const quiet = { debug() {}, error() {}, info() {}, log() {}, warn() {} };
  const providerConfig = (base, extra = {}) => ({
    authorizationEndpoint: `${idp.url}/authorize`,
    baseUrl: base,
    clientId: 'upstream-client',
    clientSecret: 'upstream secret+/=',
    jwtSigningKey: 'mount-test-signing-key-0123456789abcdef',
    tokenEndpoint: `${idp.url}/token`,
    ...extra,
  });
  const start = async (options, port) => {
    const server = new theirs.FastMCP({ logger: quiet, name: 'm', version: '1.0.0', ...options });
    await server.start({ httpStream: { host: '127.0.0.1', port }, transportType: 'httpStream' });
    return server;
  };

  test('one provider given to a second server (a restart in the same process): mounted there too', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const provider = new ours.OAuthProvider(providerConfig(base));
    for (const round of [1, 2]) {
      const server = await start({ auth: provider }, port);
      try {
        const browser = new Browser();
        const { tokens } = await obtainTokens(base, browser);
        assert.ok(tokens.access_token, `round ${round}`);
        assert.ok(browser.jar.has('fastmcp_auth_browser'), `round ${round}: our routes`);
      } finally {
        await server.stop();
        // Let the client's pooled keep-alive sockets see the old server close before the new one starts.
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    provider.getProxy().destroy();
  });

  test('`oauth` given by hand next to `auth` (FastMCP never asks the provider): a warning names provider.mount', async () => {
    const seen = [];
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const provider = new ours.OAuthProvider(providerConfig(base, { logger: { warn: (m) => seen.push(m) } }));
    const server = await start({ auth: provider, oauth: { enabled: true, proxy: provider.getProxy() } }, port);
    try {
      await assert.rejects(fetch(`${base}/mcp`, { method: 'POST' }).then((r) => (r.status === 401 ? Promise.reject(new Error('401')) : r)));
      await provider.authenticate({ headers: {} });
      assert.equal(seen.filter((m) => m.includes('provider.mount(server)')).length, 1, seen.join('\n'));
      // Mounted by hand, it serves the flow.
      provider.mount(server);
      assert.ok((await obtainTokens(base)).tokens.access_token);
    } finally {
      await server.stop();
      provider.getProxy().destroy();
      ours.setLogger(console);
    }
  });

  test('a token of ours issued for another resource opens nothing here (RFC 8707 audience binding)', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const other = 'https://other-mcp.example.com/mcp';
    const provider = new ours.OAuthProvider(providerConfig(base, { acceptedResources: [other] }));
    const server = await start({ auth: provider }, port);
    try {
      for (const [resource, opens] of [
        [undefined, true],
        [base, true],
        [`${base}/mcp`, true],
        [`${base}/admin-only`, false],
        [other, false],
      ]) {
        const { tokens } = await obtainTokens(base, new Browser(), { resource });
        const session = await provider.authenticate({ headers: { authorization: `Bearer ${tokens.access_token}` }, url: '/mcp' });
        assert.equal(session !== undefined, opens, String(resource));
        if (!opens) await assert.rejects(callTool(base, tokens.access_token), String(resource));
      }
    } finally {
      await server.stop();
      provider.getProxy().destroy();
    }
  });

  test("a subclass whose createProxy() returns fastmcp's own proxy gets fastmcp's behaviour, not a crash", async () => {
    class Mine extends ours.OAuthProvider {
      createProxy() {
        return new theirsAuth.OAuthProxy({
          baseUrl: this.config.baseUrl,
          consentRequired: false,
          upstreamAuthorizationEndpoint: `${idp.url}/authorize`,
          upstreamClientId: 'upstream-client',
          upstreamClientSecret: 'upstream secret+/=',
          upstreamTokenEndpoint: `${idp.url}/token`,
        });
      }
    }
    const p = new Mine(providerConfig('http://127.0.0.1:1'));
    const server = new theirs.FastMCP({ auth: p, logger: quiet, name: 'm', version: '1.0.0' });
    assert.ok(server);
    assert.equal(await p.authenticate({ headers: { authorization: 'Bearer nope' } }), undefined);
    p.getProxy().destroy();
  });

  test('Google keeps offline access beside extra upstream parameters; Azure tenant ids are names, not paths', () => {
    const g = new ours.GoogleProvider({ baseUrl: 'https://m.example', clientId: 'a', clientSecret: 'b', extraAuthorizationParams: { hd: 'example.com' } });
    const cfg = g.proxyConfig({ extraAuthorizationParams: { access_type: 'offline', prompt: 'consent' } });
    assert.deepEqual(cfg.extraAuthorizationParams, { access_type: 'offline', hd: 'example.com', prompt: 'consent' });
    for (const tenantId of ['..', '.', 'a..b', '.a', 'a/b', 'a?b', '']) {
      assert.throws(() => new ours.AzureProvider({ baseUrl: 'https://m.example', clientId: 'a', clientSecret: 'b', tenantId }), /tenantId/, tenantId);
    }
    for (const tenantId of ['common', 'contoso.onmicrosoft.com', '72f988bf-86f1-41af-91ab-2d7cd011db47']) {
      assert.ok(new ours.AzureProvider({ baseUrl: 'https://m.example', clientId: 'a', clientSecret: 'b', tenantId }));
    }
  });

  test('session identity fields only from trustworthy claims (email_verified; upn, never preferred_username)', () => {
    const idToken = (claims) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;
    const up = (claims) => ({ accessToken: 'a', expiresIn: 60, idToken: idToken(claims), issuedAt: new Date(), scope: [] });
    const g = new ours.GoogleProvider({ baseUrl: 'https://m.example', clientId: 'a', clientSecret: 'b' });
    assert.equal(g.createSession(up({ email: 'a@x', email_verified: true })).email, 'a@x');
    assert.equal(g.createSession(up({ email: 'a@x', email_verified: false })).email, undefined);
    assert.equal(g.createSession(up({ email: 'a@x' })).email, undefined);
    const a = new ours.AzureProvider({ baseUrl: 'https://m.example', clientId: 'a', clientSecret: 'b' });
    assert.equal(a.createSession(up({ upn: 'u@x' })).upn, 'u@x');
    assert.equal(a.createSession(up({ preferred_username: 'u@x' })).upn, undefined);
    assert.equal(a.createSession({ accessToken: 'a', scope: [] }).upn, undefined, 'no ID token');
  });
});
