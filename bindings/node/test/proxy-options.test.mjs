// No option silently dropped: every key of npm fastmcp's `OAuthProxyConfig` — read from its installed `.d.ts` at
// test time, so a fastmcp upgrade that adds one fails here until it is handled — is honoured (a behaviour test
// below, observed at a recording upstream and at the proxy's answers) or refused with a clear error.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { JWTIssuer as TheirJWTIssuer } from 'fastmcp/auth';

import { OAuthProvider, OAuthProxy, OAuthProxyError } from '../index.js';
import { REDIRECT, hiddenField, pkcePair } from '../test-support/helpers.mjs';

const SIGNING_KEY = 'options-test-signing-key-0123456789abcdef';
const BASE = 'http://127.0.0.1:8123';

/** The keys of fastmcp's OAuthProxyConfig, from its declarations. */
function fastmcpConfigKeys() {
  const dist = dirname(createRequire(import.meta.url).resolve('fastmcp/auth'));
  const dir = join(dist, '..');
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.d.ts'))) {
    const m = readFileSync(join(dir, f), 'utf8').match(/interface OAuthProxyConfig \{([\s\S]*?)\n\}/);
    if (m) return [...m[1].matchAll(/^ {4}(\w+)\??:/gm)].map((x) => x[1]);
  }
  throw new Error("fastmcp's OAuthProxyConfig not found");
}

/** A JWT-shaped (unsigned) token carrying `claims`, as providers' access tokens are. */
const jwtShaped = (claims) =>
  `${Buffer.from('{"alg":"RS256","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

/**
 * The upstream provider, recording what it is sent. `/hang/token` accepts and never answers; `/noexp/token` gives
 * no `expires_in`.
 */
let upstream;
before(async () => {
  const seen = { authorize: [], token: [] };
  let n = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/authorize') {
      seen.authorize.push(url);
      const back = new URL(url.searchParams.get('redirect_uri'));
      back.searchParams.set('code', `up-code-${++n}`);
      back.searchParams.set('state', url.searchParams.get('state'));
      res.writeHead(302, { Location: back.href }).end();
      return;
    }
    if (url.pathname === '/hang/token') return; // never answers
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.token.push({ body: new URLSearchParams(body), headers: req.headers, path: url.pathname });
      const k = ++n;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(
        JSON.stringify({
          access_token: jwtShaped({ department: 'engineering', exp: Math.floor(Date.now() / 1000) + 3600, sub: `user-${k}` }),
          expires_in: url.pathname === '/noexp/token' ? undefined : 3600,
          refresh_token: `up-rt-${k}`,
          scope: 'openid',
          token_type: 'Bearer',
        }),
      );
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  upstream = { close: () => new Promise((r) => server.close(r)), seen, url: `http://127.0.0.1:${server.address().port}` };
});
after(async () => {
  await upstream.close();
});

function config(extra = {}) {
  return {
    baseUrl: BASE,
    encryptionKey: 'options-test-encryption-key',
    jwtSigningKey: SIGNING_KEY,
    logger: null,
    scopes: ['openid'],
    upstreamAuthorizationEndpoint: `${upstream.url}/authorize`,
    upstreamClientId: 'upstream-client',
    upstreamClientSecret: 'upstream-secret',
    upstreamTokenEndpoint: `${upstream.url}/token`,
    ...extra,
  };
}

const cookieOf = (r, jar) => {
  for (const c of r.headers.getSetCookie()) jar.push(c.split(';')[0]);
  return jar.join('; ');
};

/** The consent form of `html` approved, POSTed with the browser's `cookie`. */
function consentPost(html, cookie) {
  return new Request(`${BASE}/oauth/consent`, {
    body: new URLSearchParams({
      action: 'approve',
      csrf_token: hiddenField(html, 'csrf_token'),
      transaction_id: hiddenField(html, 'transaction_id'),
    }).toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookie },
    method: 'POST',
  });
}

/**
 * The whole login through the proxy's methods, as `mount` serves them: registration, authorize (and consent when
 * shown), the upstream login, the callback, the code exchange. Returns what each step saw.
 */
async function login(proxy, { challengeMethod = 'S256' } = {}) {
  const client = await proxy.registerClient({
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: 'client_secret_post',
  });
  const { challenge, verifier } = pkcePair();
  const jar = [];
  let r = await proxy.authorize({
    client_id: client.client_id,
    code_challenge: challengeMethod === 'plain' ? verifier : challenge,
    code_challenge_method: challengeMethod,
    redirect_uri: REDIRECT,
    response_type: 'code',
    scope: 'openid',
    state: 'st',
  });
  let cookie = cookieOf(r, jar);
  const consentShown = r.status === 200;
  if (consentShown) {
    const html = await r.text();
    r = await proxy.handleConsent(consentPost(html, cookie));
    cookie = cookieOf(r, jar);
  }
  const upstreamAuthorize = r.headers.get('location');
  assert.ok(upstreamAuthorize?.startsWith(upstream.url), `to upstream: ${r.status}`);
  const atUpstream = await fetch(upstreamAuthorize, { redirect: 'manual' });
  const callback = atUpstream.headers.get('location');
  r = await proxy.handleCallback(new Request(callback, { headers: { Cookie: cookie } }));
  const back = new URL(r.headers.get('location'));
  const code = back.searchParams.get('code');
  assert.ok(code, `no code: ${back}`);
  const tokens = await proxy.exchangeAuthorizationCode({
    client_id: client.client_id,
    client_secret: client.client_secret,
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT,
  });
  return {
    callback: new URL(callback),
    client,
    consentShown,
    tokenRequest: upstream.seen.token.at(-1),
    tokens,
    upstreamAuthorize: new URL(upstreamAuthorize),
  };
}

/** Runs `fn` on a proxy of `extra` config, destroying it afterwards. */
async function withProxy(extra, fn) {
  const proxy = new OAuthProxy(config(extra));
  try {
    return await fn(proxy);
  } finally {
    proxy.destroy();
  }
}

const payload = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TokenStorage of the user's: a Map. */
class MapStorage {
  m = new Map();
  async save(k, v) {
    this.m.set(k, structuredClone(v));
  }
  async get(k) {
    return this.m.has(k) ? structuredClone(this.m.get(k)) : null;
  }
  async delete(k) {
    this.m.delete(k);
  }
  async cleanup() {}
}

/** Each fastmcp option: how it is seen to be honoured. */
const HONOURED = {
  // As fastmcp: the lifetime of our access token when upstream gives no `expires_in` (else upstream's).
  accessTokenTtl: () =>
    withProxy({ accessTokenTtl: 120, upstreamTokenEndpoint: `${upstream.url}/noexp/token` }, async (p) => {
      const { tokens } = await login(p);
      assert.equal(tokens.expires_in, 120);
      const c = payload(tokens.access_token);
      assert.equal(c.exp - c.iat, 120);
    }),
  allowedRedirectUriPatterns: () =>
    withProxy({ allowedRedirectUriPatterns: ['https://app.example.com/*'] }, async (p) => {
      await assert.rejects(p.registerClient({ redirect_uris: [REDIRECT] }), OAuthProxyError);
      const ok = await p.registerClient({ redirect_uris: ['https://app.example.com/cb'] });
      assert.ok(ok.client_id);
    }),
  allowPlainPkce: async () => {
    await withProxy({}, (p) => assert.rejects(login(p, { challengeMethod: 'plain' })));
    await withProxy({ allowPlainPkce: true }, async (p) => {
      assert.ok((await login(p, { challengeMethod: 'plain' })).tokens.access_token);
    });
  },
  authorizationCodeTtl: () =>
    withProxy({ authorizationCodeTtl: 1 }, async (p) => {
      // The code lives 1 s: exchanged after 2 s, refused.
      const real = p.exchangeAuthorizationCode.bind(p);
      p.exchangeAuthorizationCode = async (req) => {
        await sleep(2100);
        return real(req);
      };
      await assert.rejects(login(p), (e) => e instanceof OAuthProxyError && e.code === 'invalid_grant');
    }),
  baseUrl: () =>
    withProxy({}, (p) => {
      const m = p.getAuthorizationServerMetadata();
      assert.equal(m.issuer, BASE);
      assert.equal(m.tokenEndpoint, `${BASE}/oauth/token`);
    }),
  consentRequired: async () => {
    await withProxy({}, async (p) => assert.equal((await login(p)).consentShown, true));
    await withProxy({ consentRequired: false }, async (p) => assert.equal((await login(p)).consentShown, false));
  },
  consentSigningKey: async () => {
    // Accepted, nothing to sign (see its documentation): the login works and is bound the same way.
    await withProxy({ consentSigningKey: 'a-consent-key' }, async (p) => assert.ok((await login(p)).tokens.access_token));
    assert.throws(() => new OAuthProxy(config({ consentSigningKey: 42 })), /consentSigningKey must be a string/);
  },
  customClaimsPassthrough: async () => {
    await withProxy({}, async (p) => assert.equal(payload((await login(p)).tokens.access_token).department, 'engineering'));
    await withProxy({ customClaimsPassthrough: false }, async (p) =>
      assert.equal(payload((await login(p)).tokens.access_token).department, undefined),
    );
  },
  enableCimd: async () => {
    await withProxy({}, (p) => assert.notEqual(p.getAuthorizationServerMetadata().clientIdMetadataDocumentSupported, true));
    await withProxy({ enableCimd: true }, (p) =>
      assert.equal(p.getAuthorizationServerMetadata().clientIdMetadataDocumentSupported, true),
    );
  },
  enableTokenSwap: async () => {
    await withProxy({ enableTokenSwap: false }, async (p) => {
      const { tokens } = await login(p);
      assert.equal(payload(tokens.access_token).department, 'engineering');
      assert.equal(payload(tokens.access_token).iss, undefined, 'the upstream token itself');
    });
  },
  encryptionKey: async () => {
    const encrypted = new MapStorage();
    await withProxy({ tokenStorage: encrypted }, login);
    assert.doesNotMatch(JSON.stringify([...encrypted.m.values()]), /up-rt-/);
    const plain = new MapStorage();
    await withProxy({ encryptionKey: false, tokenStorage: plain }, login);
    assert.match(JSON.stringify([...plain.m.values()]), /up-rt-/);
  },
  extraAuthorizationParams: () =>
    withProxy({ extraAuthorizationParams: { audience: 'https://api.example.com', prompt: 'login' } }, async (p) => {
      const { upstreamAuthorize } = await login(p);
      assert.equal(upstreamAuthorize.searchParams.get('audience'), 'https://api.example.com');
      assert.equal(upstreamAuthorize.searchParams.get('prompt'), 'login');
    }),
  // fastmcp 4.20.16: `if (!forwardPkce) set code_challenge` — false (default) sends the proxy's own S256 challenge,
  // true sends none.
  forwardPkce: async () => {
    for (const [value, sent] of [
      [undefined, true],
      [false, true],
      [true, false],
    ]) {
      await withProxy({ forwardPkce: value }, async (p) => {
        const { tokenRequest, upstreamAuthorize } = await login(p);
        assert.equal(upstreamAuthorize.searchParams.has('code_challenge'), sent, `forwardPkce ${value}`);
        if (sent) assert.equal(upstreamAuthorize.searchParams.get('code_challenge_method'), 'S256');
        assert.equal(tokenRequest.body.has('code_verifier'), sent, `forwardPkce ${value}: verifier`);
      });
    }
  },
  jwtSigningKey: () =>
    withProxy({}, async (p) => {
      const { tokens } = await login(p);
      const theirs = new TheirJWTIssuer({ audience: BASE, issuer: BASE, signingKey: SIGNING_KEY });
      assert.equal((await theirs.verify(tokens.access_token)).valid, true);
      const wrong = new TheirJWTIssuer({ audience: BASE, issuer: BASE, signingKey: `${SIGNING_KEY}x` });
      assert.equal((await wrong.verify(tokens.access_token)).valid, false);
    }),
  redirectPath: () =>
    withProxy({ redirectPath: '/auth/upstream-callback' }, async (p) => {
      const { callback, upstreamAuthorize } = await login(p);
      assert.equal(upstreamAuthorize.searchParams.get('redirect_uri'), `${BASE}/auth/upstream-callback`);
      assert.equal(callback.pathname, '/auth/upstream-callback');
    }),
  refreshTokenTtl: () =>
    withProxy({ refreshTokenTtl: 7200 }, async (p) => {
      const c = payload((await login(p)).tokens.refresh_token);
      assert.equal(c.exp - c.iat, 7200);
    }),
  scopes: () =>
    withProxy({ scopes: ['openid', 'email'] }, async (p) => {
      assert.deepEqual(p.getAuthorizationServerMetadata().scopesSupported, ['openid', 'email']);
      const { upstreamAuthorize } = await login(p);
      assert.equal(upstreamAuthorize.searchParams.get('scope'), 'openid');
    }),
  tokenStorage: async () => {
    const storage = new MapStorage();
    await withProxy({ tokenStorage: storage }, login);
    assert.ok(storage.m.size > 0, 'the proxy kept its state in the given storage');
  },
  // Beyond fastmcp (which accepts it and never calls it): the upstream access token must pass it on every use.
  tokenVerifier: async () => {
    const calls = [];
    const verdicts = [
      [{ valid: true, claims: { login: 'octocat' } }, true],
      [{ valid: false, error: 'revoked' }, false],
      ['throw', false],
      ['hang', false],
      [{ claims: 'not an object', valid: true }, false],
      [{ valid: 'true' }, false],
    ];
    for (const [verdict, accepted] of verdicts) {
      const tokenVerifier = {
        verify: async (token) => {
          calls.push(token);
          if (verdict === 'throw') throw new Error(`boom ${token}`);
          if (verdict === 'hang') return new Promise(() => {});
          return verdict;
        },
      };
      await withProxy({ tokenVerifier, tokenVerifierTimeoutMs: 200 }, async (p) => {
        const { tokens } = await login(p);
        const up = await p.loadUpstreamTokens(tokens.access_token);
        assert.equal(up !== null, accepted, JSON.stringify(verdict));
        if (up) assert.equal(calls.at(-1), up.accessToken, 'verify() saw the upstream access token');
        const bearer = await p.checkBearer(`Bearer ${tokens.access_token}`, BASE);
        assert.equal(bearer.ok, accepted);
        if (!accepted) assert.equal(bearer.response.status, 401);
      });
      // Through a provider: FastMCP's `authenticate` answers no session, or one carrying the verifier's claims.
      const provider = new OAuthProvider({
        authorizationEndpoint: `${upstream.url}/authorize`,
        baseUrl: BASE,
        clientId: 'upstream-client',
        clientSecret: 'upstream-secret',
        jwtSigningKey: SIGNING_KEY,
        logger: null,
        tokenEndpoint: `${upstream.url}/token`,
        tokenVerifier,
        tokenVerifierTimeoutMs: 200,
      });
      try {
        const { tokens } = await login(provider.getProxy());
        const session = await provider.authenticate({ headers: { authorization: `Bearer ${tokens.access_token}` } });
        assert.equal(session !== undefined, accepted);
        if (session) assert.deepEqual(session.claims, { login: 'octocat' });
      } finally {
        provider.getProxy().destroy();
      }
    }
    assert.ok(calls.every((t) => payload(t).department === 'engineering'), 'called with the upstream access token');
    assert.throws(() => new OAuthProxy(config({ tokenVerifier: {} })), /tokenVerifier must be a TokenVerifier/);
    for (const bad of [0, -1, 1.5, '100', 1e9]) {
      assert.throws(() => new OAuthProxy(config({ tokenVerifierTimeoutMs: bad })), /tokenVerifierTimeoutMs/, String(bad));
    }
  },
  transactionTtl: () =>
    withProxy({ transactionTtl: 1 }, async (p) => {
      const client = await p.registerClient({ redirect_uris: [REDIRECT] });
      const { challenge } = pkcePair();
      const r = await p.authorize({
        client_id: client.client_id,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        redirect_uri: REDIRECT,
        response_type: 'code',
        state: 's',
      });
      const html = await r.text();
      await sleep(2100);
      const late = await p.handleConsent(consentPost(html, r.headers.getSetCookie()[0].split(';')[0])).catch((e) => e);
      assert.ok(late instanceof OAuthProxyError || late.status >= 400, 'an expired transaction approves nothing');
    }),
  upstreamAuthorizationEndpoint: () =>
    withProxy({}, async (p) => {
      const { upstreamAuthorize } = await login(p);
      assert.equal(`${upstreamAuthorize.origin}${upstreamAuthorize.pathname}`, `${upstream.url}/authorize`);
    }),
  upstreamClientId: () =>
    withProxy({ upstreamClientId: 'the-upstream-id' }, async (p) => {
      const { tokenRequest, upstreamAuthorize } = await login(p);
      assert.equal(upstreamAuthorize.searchParams.get('client_id'), 'the-upstream-id');
      const basic = Buffer.from(tokenRequest.headers.authorization.slice(6), 'base64').toString();
      assert.equal(decodeURIComponent(basic.split(':')[0]), 'the-upstream-id');
    }),
  upstreamClientSecret: () =>
    withProxy({ upstreamClientSecret: 'the upstream secret' }, async (p) => {
      const basic = Buffer.from((await login(p)).tokenRequest.headers.authorization.slice(6), 'base64').toString();
      assert.equal(decodeURIComponent(basic.split(':')[1].replace(/\+/g, ' ')), 'the upstream secret');
    }),
  upstreamRequestTimeoutMs: () =>
    withProxy({ upstreamRequestTimeoutMs: 300, upstreamTokenEndpoint: `${upstream.url}/hang/token` }, async (p) => {
      const t0 = Date.now();
      await assert.rejects(login(p));
      assert.ok(Date.now() - t0 < 5000, `gave up after ${Date.now() - t0} ms`);
    }),
  upstreamTokenEndpoint: () =>
    withProxy({ upstreamTokenEndpoint: `${upstream.url}/other/token` }, async (p) => {
      assert.equal((await login(p)).tokenRequest.path, '/other/token');
    }),
  upstreamTokenEndpointAuthMethod: async () => {
    await withProxy({}, async (p) => {
      const { tokenRequest } = await login(p);
      assert.match(tokenRequest.headers.authorization, /^Basic /, 'default client_secret_basic');
      assert.equal(tokenRequest.body.has('client_secret'), false);
    });
    await withProxy({ upstreamTokenEndpointAuthMethod: 'client_secret_post' }, async (p) => {
      const { tokenRequest } = await login(p);
      assert.equal(tokenRequest.headers.authorization, undefined);
      assert.equal(tokenRequest.body.get('client_secret'), 'upstream-secret');
    });
    assert.throws(() => new OAuthProxy(config({ upstreamTokenEndpointAuthMethod: 'private_key_jwt' })));
  },
};

describe("every option of fastmcp's OAuthProxyConfig", () => {
  const keys = fastmcpConfigKeys();
  test('is read from fastmcp and each has a behaviour test here', () => {
    assert.ok(keys.length >= 20, `found ${keys.length} keys`);
    assert.deepEqual(keys.filter((k) => !HONOURED[k]), [], 'options of fastmcp without a test');
  });
  for (const key of keys) {
    if (HONOURED[key]) test(key, HONOURED[key]);
  }
});
