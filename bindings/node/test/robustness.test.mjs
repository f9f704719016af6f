// Failures never leave a Promise pending, and numbers from JS never wrap on their way into the addon.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import { JWTIssuer } from '../index.js';

const require = createRequire(import.meta.url);
const native = require(`../fastmcp-auth.${process.platform}-${process.arch}${process.platform === 'linux' ? '-gnu' : ''}.node`);

async function settlesWithin(p, ms) {
  let timer;
  const pending = new Promise((r) => {
    timer = setTimeout(() => r('pending'), ms);
  });
  try {
    return await Promise.race([p.then(() => 'resolved', () => 'rejected'), pending]);
  } finally {
    clearTimeout(timer);
  }
}

test('a panic inside the core rejects the Promise (runtime task and libuv worker)', async () => {
  for (const onWorker of [false, true]) {
    assert.equal(await settlesWithin(native.testPanic(onWorker), 5000), 'rejected', `onWorker=${onWorker}`);
  }
});

test('deriveKey refuses iteration counts that would wrap (RangeError, as Node crypto and fastmcp)', async () => {
  for (const n of [2 ** 32 + 1, -1, 0, 1.5, 2 ** 31, Number.NaN, '100000']) {
    await assert.rejects(JWTIssuer.deriveKey('secret', n), RangeError, String(n));
  }
  assert.equal(typeof (await JWTIssuer.deriveKey('secret', 1)), 'string');
});

test('a JS storage whose save fails once loses nothing: the retry of a refresh and of a code exchange succeeds', async () => {
  const { FastMCP } = await import('fastmcp');
  const { MemoryTokenStorage } = await import('fastmcp/auth');
  const { OAuthProxy } = await import('../index.js');
  const h = await import('../test-support/helpers.mjs');
  const idp = await h.startIdp();
  // fastmcp's own MemoryTokenStorage behind a wrapper that fails the n-th save from when it is armed, once.
  const inner = new MemoryTokenStorage();
  let countdown = 0;
  const storage = {
    cleanup: () => inner.cleanup(),
    delete: (k) => inner.delete(k),
    get: (k) => inner.get(k),
    save: async (k, v, ttl) => {
      if (--countdown === 0) throw new Error('ENOSPC: no space left on device (injected)');
      return inner.save(k, v, ttl);
    },
  };
  const port = await h.freePort();
  const base = `http://127.0.0.1:${port}`;
  const proxy = new OAuthProxy({
    baseUrl: base,
    encryptionKey: 'robustness-storage-key',
    jwtSigningKey: 'robustness-signing-key-0123456789',
    tokenStorage: storage,
    ...h.upstreamConfig(idp.url),
  });
  const quiet = { debug() {}, error() {}, info() {}, log() {}, warn() {} };
  const server = new FastMCP({ logger: quiet, name: 'robustness', version: '1.0.0' });
  proxy.mount(server);
  await server.start({ httpStream: { host: '127.0.0.1', port }, transportType: 'httpStream' });
  try {
    let failures = 0;
    for (let n = 1; n <= 6; n++) {
      const { client, tokens } = await h.obtainTokens(base);
      const refresh = {
        client_id: client.client_id,
        client_secret: client.client_secret,
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token,
      };
      countdown = n;
      const first = await h.tokenRequest(base, refresh).catch((e) => e);
      countdown = 0;
      if (first instanceof Error) {
        failures += 1;
        assert.equal(first.json.error, 'server_error', `save ${n}`);
        const started = Date.now();
        const retry = await h.tokenRequest(base, refresh);
        assert.ok(retry.access_token, `save ${n}: the retry succeeds`);
        assert.ok(Date.now() - started < 2000, `save ${n}: the retry did not wait`);
      }
    }
    assert.ok(failures >= 1, 'the injected failures reached the client');
  } finally {
    await server.stop();
    proxy.destroy();
    inner.destroy(); // fastmcp's sweep timer
    await idp.close();
  }
});

test('DiskStore strictPermissions refuses a directory anyone can write to', async () => {
  const { chmodSync } = await import('node:fs');
  const { DiskStore } = await import('../index.js');
  const { tempDir } = await import('../test-support/helpers.mjs');
  const shared = tempDir();
  chmodSync(shared, 0o777);
  const lax = new DiskStore({ directory: shared });
  await lax.save('k', { v: 1 });
  lax.destroy();
  const strict = new DiskStore({ directory: shared, strictPermissions: true });
  await assert.rejects(strict.get('k'), (e) => e.code === 'invalid_argument');
});

test('the metadata FastMCP serves itself advertises no revocation endpoint (it has none)', async () => {
  const { OAuthProxy } = await import('../index.js');
  const p = new OAuthProxy({
    baseUrl: 'http://127.0.0.1:9',
    upstreamAuthorizationEndpoint: 'http://127.0.0.1:9/a',
    upstreamClientId: 'x',
    upstreamClientSecret: 'y',
    upstreamTokenEndpoint: 'http://127.0.0.1:9/t',
  });
  const meta = p.getAuthorizationServerMetadata();
  assert.equal(meta.revocationEndpoint, undefined);
  assert.equal(meta.tokenEndpoint, 'http://127.0.0.1:9/oauth/token');
  p.destroy();
});
