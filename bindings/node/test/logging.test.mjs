// The core's log records reach a JS logger (console by default): through a FastMCP server with our proxy mounted, a
// whole login with failures, every record collected — warnings arrive, and none holds a token, secret or key.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { FastMCP } from 'fastmcp';

import { OAuthProxy, setLogger } from '../index.js';
import { freePort, obtainTokens, startIdp, tokenRequest, upstreamConfig, UPSTREAM_CLIENT_SECRET } from '../test-support/helpers.mjs';

let idp;
before(async () => {
  idp = await startIdp();
});
after(async () => {
  setLogger(console);
  await idp.close();
});

function collector() {
  const records = [];
  const push = (level) => (message) => records.push({ level, message });
  return { records, logger: { error: push('error'), warn: push('warn'), info: push('info'), debug: push('debug') } };
}

const settle = () => new Promise((r) => setTimeout(r, 100));

test('warnings reach the logger option; null silences; bad arguments are TypeErrors', async () => {
  const { logger, records } = collector();
  const keyless = { ...upstreamConfig(idp.url), baseUrl: 'http://127.0.0.1:8000', logger };
  new OAuthProxy(keyless).destroy();
  await settle();
  assert.ok(
    records.some((r) => r.level === 'warn' && r.message.startsWith('[fastmcp-auth] ') && r.message.includes('jwt_signing_key is not set')),
    JSON.stringify(records),
  );
  const n = records.length;
  setLogger(null);
  new OAuthProxy({ ...upstreamConfig(idp.url), baseUrl: 'http://127.0.0.1:8000' }).destroy();
  await settle();
  assert.equal(records.length, n, 'nothing after setLogger(null)');
  assert.throws(() => setLogger(logger, { level: 'loud' }), TypeError);
  assert.throws(() => setLogger(42), TypeError);
  // A logger that throws breaks nothing.
  setLogger({ warn: () => { throw new Error('logger bug'); } });
  new OAuthProxy(keyless).destroy();
  await settle();
});

test('a login with failures through FastMCP: no record holds a secret or token', async () => {
  const { logger, records } = collector();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const keys = { jwtSigningKey: 'node-log-test-signing-key-0123456789', encryptionKey: 'node-log-test-encryption-key-012345' };
  const proxy = new OAuthProxy({ ...upstreamConfig(idp.url), ...keys, baseUrl: base, logger, logLevel: 'debug' });
  const server = new FastMCP({ name: 'logging-test', version: '1.0.0' });
  proxy.mount(server);
  await server.start({ httpStream: { host: '127.0.0.1', port }, transportType: 'httpStream' });
  try {
    const { client, tokens } = await obtainTokens(base);
    const refresh = { client_id: client.client_id, client_secret: client.client_secret, grant_type: 'refresh_token' };
    await tokenRequest(base, { ...refresh, refresh_token: tokens.refresh_token });
    await assert.rejects(tokenRequest(base, { ...refresh, client_secret: 'wrong', refresh_token: tokens.refresh_token }));
    await assert.rejects(tokenRequest(base, { ...refresh, refresh_token: 'not-a-token' }));
    await settle();
    const text = records.map((r) => r.message).join('\n');
    for (const s of [client.client_secret, tokens.access_token, tokens.refresh_token, UPSTREAM_CLIENT_SECRET, keys.jwtSigningKey, keys.encryptionKey]) {
      assert.ok(!text.includes(s), `a record holds ${s.slice(0, 8)}…`);
    }
    assert.ok(!text.includes('eyJ'));
  } finally {
    await server.stop();
    proxy.destroy();
    setLogger(console);
  }
});
