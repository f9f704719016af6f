// The real thing: a FastMCP TypeScript server (npm `fastmcp`) on 127.0.0.1 with OAuth enabled, driven over HTTP by
// an MCP client and a "browser" against the loopback mock identity provider.
//  (a) our OAuthProxy inside FastMCP: register, authorize, consent, callback, token, MCP tool call with the Bearer
//      JWT (401 without), refresh; then a restarted proxy on the same DiskStore still accepts the tokens.
//  (b) fastmcp's own OAuthProxy with our DiskStore / EncryptedTokenStorage as `tokenStorage`: the same flow.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { FastMCP } from 'fastmcp';
import * as theirsAuth from 'fastmcp/auth';
import { OAuthProxy as FastmcpOAuthProxy, JWTIssuer as JWTIssuerPeer } from 'fastmcp/auth';

import { DiskStore, EncryptedTokenStorage, JWTIssuer, MemoryTokenStorage, OAuthProxy, OAuthProxyError } from '../index.js';
import { exampleEnv, freePort, obtainTokens, refreshTokens, startIdp, tempDir, upstreamConfig } from '../test-support/helpers.mjs';

const SIGNING_KEY = 'node-test-signing-key-0123456789abcdef';
const STORAGE_KEY = 'node-test-storage-key';

let idp;
before(async () => {
  idp = await startIdp();
});
after(async () => {
  await idp.close();
});

function proxyConfig(base, extra = {}) {
  return {
    baseUrl: base,
    encryptionKey: STORAGE_KEY,
    jwtSigningKey: SIGNING_KEY,
    scopes: ['openid'],
    ...upstreamConfig(idp.url),
    ...extra,
  };
}

const quiet = { debug() {}, error() {}, info() {}, log() {}, warn() {} };

/**
 * A FastMCP server with OAuth through `proxy` (ours: mounted with `proxy.mount(server)`, as the README says;
 * fastmcp's: its built-in routes); its one tool answers with the session's upstream access token.
 */
async function serve(proxy, port) {
  const base = `http://127.0.0.1:${port}`;
  const server = new FastMCP({
    authenticate: async (request) => {
      const h = request?.headers?.authorization;
      const upstream = h?.startsWith('Bearer ') ? await proxy.loadUpstreamTokens(h.slice(7)) : null;
      if (!upstream) throw new Response(null, { status: 401, statusText: 'Unauthorized' });
      return { upstreamAccessToken: upstream.accessToken };
    },
    logger: quiet,
    name: 'fastmcp-auth-node-test',
    oauth: {
      authorizationServer: proxy.getAuthorizationServerMetadata(),
      enabled: true,
      protectedResource: { authorizationServers: [base], resource: base },
      proxy,
    },
    version: '1.0.0',
  });
  if (typeof proxy.mount === 'function') proxy.mount(server);
  server.addTool({
    description: 'The upstream access token behind the caller',
    execute: async (_args, { session }) => session.upstreamAccessToken,
    name: 'upstream_token',
  });
  await server.start({ httpStream: { host: '127.0.0.1', port }, transportType: 'httpStream' });
  return server;
}

async function callTool(base, accessToken) {
  const client = new Client({ name: 'node-test', version: '1.0.0' });
  const headers = accessToken ? { Authorization: `Bearer ${accessToken}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers } });
  await client.connect(transport);
  try {
    const r = await client.callTool({ arguments: {}, name: 'upstream_token' });
    return r.content[0].text;
  } finally {
    await client.close();
  }
}

async function fullFlow(base) {
  const meta = await (await fetch(`${base}/.well-known/oauth-authorization-server`)).json();
  assert.equal(meta.token_endpoint, `${base}/oauth/token`);
  const { client, tokens } = await obtainTokens(base);
  assert.equal(tokens.token_type, 'Bearer');
  assert.ok(tokens.refresh_token);
  const upstream = await callTool(base, tokens.access_token);
  assert.match(upstream, /^up-at-/, 'the tool saw the upstream token behind our JWT');
  await assert.rejects(callTool(base), 'no Bearer token: 401');
  await assert.rejects(callTool(base, `${tokens.access_token}x`), 'a forged token: 401');
  const refreshed = await refreshTokens(base, client, tokens.refresh_token);
  assert.notEqual(refreshed.access_token, tokens.access_token);
  assert.match(await callTool(base, refreshed.access_token), /^up-at-/);
  return { client, refreshed, tokens };
}

/** Our OAuthProxy with `extra` config in a FastMCP server: the full flow, then everything stopped. */
async function flowWithOurProxy(extra) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proxy = new OAuthProxy(proxyConfig(base, extra));
  const server = await serve(proxy, port);
  try {
    return await fullFlow(base);
  } finally {
    await server.stop();
    proxy.destroy();
  }
}

describe('our OAuthProxy in a real FastMCP server', () => {
  test('register, consent, callback, token, MCP tool call with the Bearer JWT, refresh, restart', async () => {
    const dir = tempDir();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const storage = new DiskStore({ directory: dir });
    const proxy = new OAuthProxy(proxyConfig(base, { tokenStorage: storage }));
    const server = await serve(proxy, port);
    let refreshed;
    try {
      ({ refreshed } = await fullFlow(base));
      // Our JWTs are fastmcp JWTs: fastmcp's own JWTIssuer verifies them with the same key.
      const theirs = new JWTIssuerPeer({ audience: base, issuer: base, signingKey: SIGNING_KEY });
      assert.equal((await theirs.verify(refreshed.access_token)).valid, true);
    } finally {
      await server.stop();
      proxy.destroy();
      storage.destroy();
    }
    assert.ok(readdirSync(dir).length > 0, 'state lives in the DiskStore directory');
    // A restart: a new store and proxy on the same directory and keys still honour the tokens.
    const storage2 = new DiskStore({ directory: dir });
    const proxy2 = new OAuthProxy(proxyConfig(base, { tokenStorage: storage2 }));
    const up = await proxy2.loadUpstreamTokens(refreshed.access_token);
    assert.match(up.accessToken, /^up-at-/);
    assert.ok(up.issuedAt instanceof Date);
    storage2.destroy();
  });

  test('with the default (memory) storage', async () => {
    await flowWithOurProxy({});
  });
});

describe('our OAuthProxy on a TokenStorage written in JS', () => {
  /** A user's own storage: a Map with fastmcp's TokenStorage methods (no take, no size). */
  class MapStorage {
    constructor() {
      this.m = new Map();
      this.calls = 0;
    }
    async save(key, value, ttl) {
      this.calls += 1;
      this.m.set(key, { expiresAt: ttl ? Date.now() + ttl * 1000 : Infinity, value: structuredClone(value) });
    }
    async get(key) {
      this.calls += 1;
      const e = this.m.get(key);
      return e && e.expiresAt > Date.now() ? structuredClone(e.value) : null;
    }
    async delete(key) {
      this.calls += 1;
      this.m.delete(key);
    }
    async cleanup() {}
  }
  const cases = {
    "fastmcp's MemoryTokenStorage": () => new theirsAuth.MemoryTokenStorage(),
    "fastmcp's DiskStore": (dir) => new theirsAuth.DiskStore({ directory: dir }),
    "our EncryptedTokenStorage over fastmcp's MemoryTokenStorage": () =>
      new EncryptedTokenStorage(new theirsAuth.MemoryTokenStorage(), STORAGE_KEY),
    'a Map-backed storage of the user': () => new MapStorage(),
  };
  for (const [name, make] of Object.entries(cases)) {
    test(`${name}: the full flow`, async () => {
      const tokenStorage = make(tempDir());
      try {
        await flowWithOurProxy({ tokenStorage });
      } finally {
        tokenStorage.destroy?.();
      }
      if (tokenStorage instanceof MapStorage) {
        assert.ok(tokenStorage.calls > 5, 'the proxy kept its state in the JS storage');
        // Encrypted by default (encryptionKey): no upstream token in the clear in the user's storage.
        assert.doesNotMatch(JSON.stringify([...tokenStorage.m.values()]), /up-at-|up-rt-/);
      }
    });
  }

  test('a storage that fails: a clean OAuth error, never its error text', async () => {
    const broken = {
      delete: async () => {},
      get: async () => {
        throw new Error('db password is hunter2');
      },
      save: async () => {
        throw new Error('db password is hunter2');
      },
    };
    const proxy = new OAuthProxy(proxyConfig('http://127.0.0.1:9', { tokenStorage: broken }));
    const e = await proxy.registerClient({ redirect_uris: ['http://127.0.0.1:5/cb'] }).then(
      () => null,
      (x) => x,
    );
    assert.ok(e instanceof OAuthProxyError, String(e));
    assert.equal(e.statusCode, 503);
    assert.doesNotMatch(JSON.stringify(e.toJSON()) + e.message, /hunter2/);
    proxy.destroy();
    assert.throws(() => new OAuthProxy(proxyConfig('http://127.0.0.1:9', { tokenStorage: { get() {} } })), TypeError);
  });
});

describe("fastmcp's own OAuthProxy on our stores", () => {
  const cases = {
    'our DiskStore (fastmcp encrypts)': (dir) => new DiskStore({ directory: dir }),
    'our EncryptedTokenStorage over our DiskStore (encryptionKey: false)': (dir) =>
      new EncryptedTokenStorage(new DiskStore({ directory: dir }), STORAGE_KEY),
    'our MemoryTokenStorage': () => new MemoryTokenStorage(),
  };
  for (const [name, make] of Object.entries(cases)) {
    test(name, async () => {
      const dir = tempDir();
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const tokenStorage = make(dir);
      const encrypted = tokenStorage instanceof EncryptedTokenStorage;
      const proxy = new FastmcpOAuthProxy(
        proxyConfig(base, { encryptionKey: encrypted ? false : STORAGE_KEY, tokenStorage }),
      );
      const server = await serve(proxy, port);
      let refreshed;
      try {
        ({ refreshed } = await fullFlow(base));
      } finally {
        await server.stop();
        proxy.destroy();
        tokenStorage.destroy();
      }
      // The JWTs fastmcp's proxy issued verify with our JWTIssuer.
      const ours = new JWTIssuer({ audience: base, issuer: base, signingKey: SIGNING_KEY });
      assert.equal((await ours.verify(refreshed.access_token)).valid, true);
    });
  }
});

describe('upstream claims passthrough (customClaimsPassthrough)', () => {
  const upstreamClaims = {
    accessToken: { aud: 'upstream', email: 'ada@example.com', groups: ['admins'], iss: 'https://idp', sub: 'u-1' },
    idToken: { email: 'id@example.com', name: 'Ada Lovelace', nonce: null, picture: 'https://x/p.png' },
  };
  let claimsIdp;
  before(async () => {
    claimsIdp = await startIdp(upstreamClaims);
  });
  after(async () => {
    await claimsIdp.close();
  });

  /** The non-reserved claims of the access and refresh tokens a proxy built by `make(config)` issues. */
  async function customClaims(make, option) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const config = {
      ...proxyConfig(base),
      upstreamAuthorizationEndpoint: `${claimsIdp.url}/authorize`,
      upstreamTokenEndpoint: `${claimsIdp.url}/token`,
    };
    if (option !== undefined) config.customClaimsPassthrough = option;
    const proxy = make(config);
    const server = await serve(proxy, port);
    try {
      const { tokens } = await obtainTokens(base);
      const reserved = new Set(['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'nbf', 'scope', 'token_use']);
      const custom = (t) =>
        Object.fromEntries(
          Object.entries(JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString())).filter(([k]) => !reserved.has(k)),
        );
      // Our reserved claims are never replaced by upstream's.
      const payload = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url').toString());
      assert.equal(payload.iss, base);
      assert.equal(payload.aud, base);
      return { access: custom(tokens.access_token), refresh: custom(tokens.refresh_token) };
    } finally {
      await server.stop();
      proxy.destroy();
    }
  }

  const ours = (c) => new OAuthProxy(c);
  const theirs = (c) => new FastmcpOAuthProxy(c);
  for (const [name, option] of Object.entries({
    'default (on)': undefined,
    off: false,
    'options object': { allowComplexClaims: true, blockedClaims: ['picture'], claimPrefix: 'up_', fromIdToken: true },
    'allow-list, ID token only': { allowedClaims: ['email', 'name'], fromAccessToken: false },
  })) {
    test(`${name}: our JWTs carry the same upstream claims as fastmcp's`, async () => {
      const a = await customClaims(ours, option);
      const b = await customClaims(theirs, option);
      assert.deepEqual(a, b);
      if (option === undefined) {
        assert.deepEqual(a.access, { email: 'ada@example.com', name: 'Ada Lovelace', picture: 'https://x/p.png', sub: 'u-1' });
      }
      if (option === false) assert.deepEqual(a.access, {});
    });
  }
});

describe('the example server (examples/server.mjs)', () => {
  test('serves the full flow and a tool call', async () => {
    const { createServer } = await import('../examples/server.mjs');
    const port = await freePort();
    const app = createServer({
      ...exampleEnv(idp.url, port, { encryption: STORAGE_KEY, signing: SIGNING_KEY }),
    });
    await app.start();
    try {
      const base = `http://127.0.0.1:${port}`;
      const { tokens } = await obtainTokens(base);
      const client = new Client({ name: 'node-test', version: '1.0.0' });
      const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${tokens.access_token}` } },
      });
      await client.connect(transport);
      const r = await client.callTool({ arguments: {}, name: 'whoami' });
      assert.match(r.content[0].text, /^scopes: /);
      await client.close();
    } finally {
      await app.stop();
    }
  });
});
