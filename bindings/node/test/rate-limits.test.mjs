// Rate limits through the Node face: a FastMCP server with our proxy mounted, flooded over HTTP. Over a limit the
// answer is HTTP 429 with `Retry-After` and an RFC 6749-shaped body; other callers (told apart by the address the
// mount's `remoteAddress` option reports: here a test header) are served meanwhile.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { FastMCP } from 'fastmcp';

import { OAuthProxy, OAuthProxyError } from '../index.js';
import { freePort, startIdp, upstreamConfig } from '../test-support/helpers.mjs';

let idp;
before(async () => {
  idp = await startIdp();
});
after(async () => {
  await idp.close();
});

async function serve(rateLimits) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proxy = new OAuthProxy({ ...upstreamConfig(idp.url), baseUrl: base, rateLimits });
  const server = new FastMCP({ name: 'rate-limit-test', version: '1.0.0' });
  proxy.mount(server, {
    metricsPath: '/metrics',
    remoteAddress: (request) => request.headers.get('x-test-addr') ?? undefined,
  });
  await server.start({ httpStream: { host: '127.0.0.1', port }, transportType: 'httpStream' });
  return { base, proxy, stop: () => server.stop() };
}

const register = (base, addr) =>
  fetch(`${base}/oauth/register`, {
    body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:33418/cb'], token_endpoint_auth_method: 'none' }),
    headers: { 'Content-Type': 'application/json', 'X-Test-Addr': addr },
    method: 'POST',
  });

test('a registration flood gets 429 with Retry-After; another address registers meanwhile', async () => {
  const { base, stop } = await serve({ register: { burst: 5, perMinute: 60 } });
  try {
    const answers = [];
    for (let i = 0; i < 200; i++) answers.push(await register(base, '198.51.100.7'));
    const ok = answers.filter((r) => r.status === 201).length;
    assert.ok(ok >= 5 && ok <= 7, `${ok} accepted`);
    const refused = answers.find((r) => r.status === 429);
    assert.ok(refused, 'refused with 429');
    const wait = Number(refused.headers.get('retry-after'));
    assert.ok(Number.isInteger(wait) && wait >= 1 && wait <= 60, `Retry-After ${wait}`);
    assert.deepEqual(await refused.json(), {
      error: 'temporarily_unavailable',
      error_description: 'too many requests; try again later',
    });
    assert.equal((await register(base, '203.0.113.9')).status, 201);
    // The refusals are in the metrics the mount serves; no address is.
    const m = await fetch(`${base}/metrics`);
    assert.match(m.headers.get('content-type'), /openmetrics-text/);
    const text = await m.text();
    assert.match(text, /fastmcp_auth_rate_limited_total\{endpoint="register"\} \d+/);
    assert.match(text, /fastmcp_auth_registrations_total [67]/);
    assert.ok(!text.includes('198.51.100.7'));
  } finally {
    await stop();
  }
});

test('bad token requests get slow_down 429; the methods reject with retryAfter', async () => {
  const { base, proxy, stop } = await serve({ failureCost: 5, token: { burst: 10, perMinute: 60 } });
  try {
    const guess = () =>
      fetch(`${base}/oauth/token`, {
        body: 'grant_type=authorization_code&code=guessed&code_verifier=' + 'v'.repeat(43) + '&client_id=c1',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Test-Addr': '198.51.100.7' },
        method: 'POST',
      });
    const statuses = [];
    for (let i = 0; i < 50; i++) statuses.push((await guess()).status);
    assert.ok(statuses.filter((s) => s !== 429).length <= 3, statuses.join(','));
    const r = await guess();
    assert.equal(r.status, 429);
    assert.equal((await r.json()).error, 'slow_down');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    // Without an address (a direct call), the client id the request names is the key: 1 + 5 cells per failure.
    const direct = () => proxy.exchangeAuthorizationCode({ client_id: 'c1', code: 'x', code_verifier: 'v'.repeat(43) });
    for (let i = 0; i < 2; i++) await assert.rejects(direct(), (e) => e.statusCode === 401);
    await assert.rejects(direct(), (e) => {
      assert.ok(e instanceof OAuthProxyError);
      assert.equal(e.statusCode, 429);
      assert.ok(e.retryAfter >= 1);
      assert.equal(e.toResponse().headers.get('retry-after'), String(e.retryAfter));
      return true;
    });
  } finally {
    await stop();
  }
});

test('rateLimits options are checked', () => {
  const make = (rateLimits) => new OAuthProxy({ ...upstreamConfig(idp.url), baseUrl: 'http://127.0.0.1:8000', rateLimits });
  make(false).destroy();
  make({ enabled: false }).destroy();
  make({ authorize: false, token: { burst: 1, perMinute: 1 } }).destroy();
  assert.throws(() => make({ tokens: false }), /rate_limits\.tokens/);
  assert.throws(() => make({ token: { perMinute: 0, burst: 1 } }), /rate_limits\.token\.per_minute/);
  assert.throws(() => make({ token: { perMinute: 5 } }), /rate_limits\.token\.burst/);
});

test('health, configWarnings and strict', async () => {
  const p = new OAuthProxy({ ...upstreamConfig(idp.url), baseUrl: 'http://127.0.0.1:8000' });
  const h = await p.health({ timeoutMs: 1000 });
  assert.equal(h.ok, true);
  assert.equal(h.store, 'ok');
  assert.ok(h.latencyMs >= 0);
  assert.deepEqual(h.warnings, p.configWarnings());
  // Available at once, before a native storage has opened.
  const { DiskStore } = await import('../index.js');
  const { tempDir } = await import('../test-support/helpers.mjs');
  const early = new OAuthProxy({ ...upstreamConfig(idp.url), baseUrl: 'http://127.0.0.1:8000', tokenStorage: new DiskStore({ directory: tempDir() }) });
  assert.ok(early.configWarnings().length > 0);
  early.destroy();
  await assert.rejects(p.health({ timeoutMs: -1 }), /timeoutMs/);
  p.destroy();
  assert.throws(
    () => new OAuthProxy({ ...upstreamConfig(idp.url), baseUrl: 'http://mcp.example.com', strict: true }),
    /strict: .*base_url is plain http/,
  );
});
