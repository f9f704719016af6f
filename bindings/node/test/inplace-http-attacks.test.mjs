// Hostile Authorization headers against a real FastMCP TypeScript server (npm `fastmcp`) whose auth is our
// OAuthProvider on a DiskStore: the provider's `authenticate` tries `checkBearerInline` (in place, from the kernel's
// caches) before the waiting path. The store's entry files are attacked between requests (deleted, evicted from the
// page cache, replaced by a symlink, a FIFO or a file too large for the in-place read). Every answer must be what
// the waiting path gives: 200 for a live token, 401 for anything else, never a 5xx, never a token in the body.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { FastMCP } from 'fastmcp';

import { DiskStore, JWTIssuer, OAuthProvider } from '../index.js';
import { ROOT, freePort, obtainTokens, startIdp, tempDir } from '../test-support/helpers.mjs';

const SIGNING_KEY = 'node-inplace-attack-signing-key-0123456789';
const PY = join(ROOT, '.peers', 'venv', 'bin', 'python');
const linux = process.platform === 'linux';

// A spy on the addon's in-place check (the module index.js loaded: same object from require's cache): per bearer
// check, whether it was answered in place (true) or declined (false: the waiting path answered).
const inlineSeen = [];
if (linux) {
  const addon = createRequire(import.meta.url)(join(ROOT, 'bindings', 'node', `fastmcp-auth.linux-${process.arch}-gnu.node`));
  const proto = addon.NativeProxy.prototype;
  const original = proto.checkBearerInline;
  proto.checkBearerInline = function (...args) {
    const r = original.apply(this, args);
    inlineSeen.push(r !== null);
    return r;
  };
}

/** mcp() recording whether its bearer check was answered in place. */
async function mcpSeen(authorization) {
  const n = inlineSeen.length;
  const r = await mcp(authorization);
  return { ...r, seen: inlineSeen.slice(n) };
}

let idp;
let server;
let storage;
let provider;
let base;
let dir;

const INIT = { id: 1, jsonrpc: '2.0', method: 'initialize', params: { capabilities: {}, clientInfo: { name: 'inplace', version: '1' }, protocolVersion: '2025-06-18' } };

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString());
}
const claimsOf = (jwt) => b64urlJson(jwt.split('.')[1]);

/** fsync + POSIX_FADV_DONTNEED (node has no posix_fadvise: the test venv's Python does it). */
function evict(...paths) {
  execFileSync(PY, ['-c', `import os,sys
for p in sys.argv[1:]:
    fd=os.open(p,os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED); os.close(fd)`, ...paths]);
}

async function mcp(authorization) {
  const headers = { Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json' };
  if (authorization !== undefined) headers.Authorization = authorization;
  const r = await fetch(`${base}/mcp`, { body: JSON.stringify(INIT), headers, method: 'POST' });
  if (r.status === 200) {
    // An accepted initialize answers on an event stream that stays open: the status is the answer.
    await r.body?.cancel();
    return { headers: r.headers, status: r.status, text: '' };
  }
  const text = await r.text();
  assert.ok(r.status < 500, `5xx: ${r.status} ${text.slice(0, 200)}`);
  const token = authorization?.startsWith('Bearer ') ? authorization.slice(7).trim() : '';
  if (token.length > 8) assert.ok(!text.includes(token), 'the token is echoed in the body');
  return { headers: r.headers, status: r.status, text };
}

function assert401(r, what) {
  assert.equal(r.status, 401, `${what}: ${r.status} ${r.text.slice(0, 200)}`);
}

async function newGrant() {
  const before = new Set(readdirSync(dir).filter((f) => f.startsWith('upstream_')));
  const { client, tokens } = await obtainTokens(base);
  const fresh = readdirSync(dir).filter((f) => f.startsWith('upstream_') && !before.has(f));
  assert.equal(fresh.length, 1, String(fresh));
  const g = {
    access: tokens.access_token,
    client,
    mapping: join(dir, `mapping_${claimsOf(tokens.access_token).jti}.json`),
    refresh: tokens.refresh_token,
    upstream: join(dir, fresh[0]),
  };
  assert.ok(existsSync(g.mapping), 'the mapping file is where expected');
  // warm: the entries in the kernel's caches
  assert.equal((await mcp(`Bearer ${g.access}`)).status, 200);
  assert.equal((await mcp(`Bearer ${g.access}`)).status, 200);
  return g;
}

async function revoke(g, token) {
  const body = new URLSearchParams({ client_id: g.client.client_id, client_secret: g.client.client_secret, token });
  const r = await fetch(`${base}/oauth/revoke`, { body, headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, method: 'POST' });
  assert.equal(r.status, 200, await r.text());
}

function replace(path, make) {
  const aside = `${path}.aside`;
  renameSync(path, aside);
  make(path);
  return () => {
    execFileSync('rm', ['-rf', path]);
    renameSync(aside, path);
  };
}

describe('in-place bearer checks over HTTP in a real FastMCP TypeScript server', { skip: !linux && 'Linux only' }, () => {
  before(async () => {
    idp = await startIdp();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    dir = tempDir('fastmcp-auth-inplace-');
    storage = new DiskStore({ directory: dir });
    provider = new OAuthProvider({
      authorizationEndpoint: `${idp.url}/authorize`,
      baseUrl: base,
      clientId: 'upstream-client',
      clientSecret: 'upstream secret+/=',
      encryptionKey: 'node-inplace-attack-storage-key',
      jwtSigningKey: SIGNING_KEY,
      rateLimits: { enabled: false },
      scopes: ['openid'],
      tokenEndpoint: `${idp.url}/token`,
      tokenStorage: storage,
    });
    server = new FastMCP({ auth: provider, logger: { debug() {}, error() {}, info() {}, log() {}, warn() {} }, name: 'inplace', version: '1.0.0' });
    server.addTool({ description: 'ping', execute: async () => 'pong', name: 'ping' });
    await server.start({ httpStream: { host: '127.0.0.1', port }, transportType: 'httpStream' });
  });
  after(async () => {
    await server?.stop();
    provider?.getProxy().destroy();
    storage?.destroy();
    await idp?.close();
  });

  test('hostile bearers after a cached good one: 401', async () => {
    const g = await newGrant();
    const c = claimsOf(g.access);
    const [h, p] = g.access.split('.');
    const none = `${Buffer.from(JSON.stringify({ ...b64urlJson(h), alg: 'none' })).toString('base64url')}.${p}.`;
    // The grant's own claims (its jti: the store entries are the live ones) re-signed, with one claim changed.
    const derived = await JWTIssuer.deriveKey(SIGNING_KEY);
    const candidates = [Buffer.from(SIGNING_KEY), Buffer.from(derived), Buffer.from(derived, 'base64')];
    let key;
    const sign = (over = {}, k = key) => {
      const body = Buffer.from(JSON.stringify({ ...c, ...over })).toString('base64url');
      return `${h}.${body}.${createHmac('sha256', k).update(`${h}.${body}`).digest('base64url')}`;
    };
    for (const k of candidates) {
      if ((await mcp(`Bearer ${sign({}, k)}`)).status === 200) {
        key = k;
        break;
      }
    }
    assert.ok(key, "control: the grant's claims re-signed with the server's key are accepted");
    const now = Math.floor(Date.now() / 1000);
    const cases = {
      'alg-none': `Bearer ${none}`,
      expired: `Bearer ${sign({ exp: now - 60, iat: now - 3660 })}`,
      'forged-signature': `Bearer ${g.access.slice(0, -4)}${g.access.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`,
      garbage: 'Bearer not-a-jwt',
      'no-header': undefined,
      'other-audience': `Bearer ${sign({ aud: 'https://attacker.example/mcp' })}`,
      'other-issuer': `Bearer ${sign({ iss: 'https://attacker.example' })}`,
      'other-key': `Bearer ${sign({}, Buffer.from('another-servers-signing-key-0123456789abc'))}`,
      'refresh-jti-as-access': `Bearer ${sign({ jti: claimsOf(g.refresh).jti })}`,
      'token-use-refresh': `Bearer ${sign({ token_use: 'refresh' })}`,
      'refresh-token': `Bearer ${g.refresh}`,
      'two-tokens': `Bearer ${g.refresh} ${g.access}`,
    };
    for (const [name, authz] of Object.entries(cases)) {
      assert.equal((await mcp(`Bearer ${g.access}`)).status, 200, `control before ${name}`);
      assert401(await mcp(authz), name);
    }
  });

  test('revoked access token: refused at once though its entries were cached', async () => {
    const g = await newGrant();
    await revoke(g, g.access);
    assert401(await mcp(`Bearer ${g.access}`), 'revoked');
  });

  test('revoked refresh token: the grant ends at once', async () => {
    const g = await newGrant();
    await revoke(g, g.refresh);
    assert401(await mcp(`Bearer ${g.access}`), 'grant revoked');
  });

  for (const which of ['mapping', 'upstream']) {
    test(`${which} entry deleted between requests: 401`, async () => {
      const g = await newGrant();
      unlinkSync(g[which]);
      assert401(await mcp(`Bearer ${g.access}`), 'deleted');
      assert401(await mcp(`Bearer ${g.access}`), 'deleted, again');
    });

    test(`${which} entry evicted from the page cache: still 200 (the waiting path)`, async () => {
      const g = await newGrant();
      const warmAgain = await mcpSeen(`Bearer ${g.access}`);
      assert.deepEqual([warmAgain.status, warmAgain.seen], [200, [true]], 'a cached live token is answered in place');
      evict(g[which]);
      const r = await mcpSeen(`Bearer ${g.access}`);
      assert.deepEqual([r.status, r.seen], [200, [false]], 'evicted: declined in place, 200 from the waiting path');
      evict(g[which]);
      unlinkSync(g[which]);
      assert401(await mcp(`Bearer ${g.access}`), 'evicted then deleted');
    });

    test(`${which} entry replaced by a symlink to its own content, a FIFO, a huge or padded file`, async () => {
      const g = await newGrant();
      const path = g[which];
      const copy = join(tempDir(), 'copy.json');
      copyFileSync(path, copy);
      let restore = replace(path, (p) => symlinkSync(copy, p));
      assert401(await mcp(`Bearer ${g.access}`), 'symlink');
      evict(copy);
      assert401(await mcp(`Bearer ${g.access}`), 'symlink, target evicted');
      restore();
      assert.equal((await mcp(`Bearer ${g.access}`)).status, 200, 'restored');

      restore = replace(path, (p) => execFileSync('mkfifo', ['-m', '600', p]));
      const t = Date.now();
      assert401(await mcp(`Bearer ${g.access}`), 'fifo');
      if (which === 'upstream') {
        evict(g.mapping); // the in-place check declines first: the waiting path meets the FIFO
        assert401(await mcp(`Bearer ${g.access}`), 'fifo, waiting path');
      }
      assert.ok(Date.now() - t < 5000, 'no hang on a FIFO');
      restore();

      restore = replace(path, (p) => {
        writeFileSync(p, '');
        truncateSync(p, 17 * 1024 * 1024);
      });
      assert401(await mcp(`Bearer ${g.access}`), '17 MiB sparse');
      restore();

      // The same entry padded to 100 KiB: valid, declined in place, read by the waiting path.
      const data = readFileSync(path);
      writeFileSync(`${path}.tmp`, Buffer.concat([data, Buffer.alloc(100 * 1024, ' ')]));
      renameSync(`${path}.tmp`, path);
      assert.equal((await mcp(`Bearer ${g.access}`)).status, 200, 'padded entry');
      assert.equal((await mcp(`Bearer ${g.access}`)).status, 200, 'padded entry, cached');
    });
  }

  test('200 concurrent MCP requests mixing valid and invalid tokens: each its own answer', async () => {
    const live = [await newGrant(), await newGrant()];
    const evicted = await newGrant();
    const revoked = await newGrant();
    await revoke(revoked, revoked.access);
    const deleted = await newGrant();
    unlinkSync(deleted.upstream);
    evict(evicted.mapping, evicted.upstream);
    const g0 = live[0];
    const cases = [
      ...live.map((g) => [`Bearer ${g.access}`, 200]),
      [`Bearer ${evicted.access}`, 200],
      [`Bearer ${revoked.access}`, 401],
      [`Bearer ${deleted.access}`, 401],
      [`Bearer ${g0.refresh}`, 401],
      [`Bearer ${g0.access.slice(0, -4)}${g0.access.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`, 401],
      ['Bearer junk', 401],
      [undefined, 401],
    ];
    const plan = Array.from({ length: 200 }, (_, i) => cases[i % cases.length]);
    const got = await Promise.all(plan.map(([a]) => mcp(a)));
    const wrong = plan.map(([, want], i) => [i, got[i].status, want]).filter(([, s, w]) => s !== w);
    assert.deepEqual(wrong, []);
  });

  for (const kind of ['access', 'refresh']) {
    test(`token used concurrently with its revocation (${kind}): every request sent after the revocation is 401`, async () => {
      const g = await newGrant();
      const results = [];
      let stop = false;
      let revokedAt;
      const worker = async () => {
        while (!stop) {
          const t = performance.now();
          const r = await mcp(`Bearer ${g.access}`);
          results.push([t, r.status]);
        }
      };
      const workers = Array.from({ length: 8 }, worker);
      await new Promise((r) => setTimeout(r, 1200));
      await revoke(g, g[kind]);
      revokedAt = performance.now();
      // An accepted initialize takes FastMCP about a second: let the workers send refused ones after it.
      await new Promise((r) => setTimeout(r, 1500));
      stop = true;
      await Promise.all(workers);
      assert.deepEqual([...new Set(results.map(([, s]) => s))].filter((s) => s !== 200 && s !== 401), []);
      assert.ok(results.some(([t, s]) => t < revokedAt && s === 200), 'the race was exercised');
      const late = results.filter(([t]) => t > revokedAt);
      assert.ok(late.length > 0);
      assert.equal(late.filter(([, s]) => s === 200).length, 0, `${late.length} late requests`);
    });
  }
});
