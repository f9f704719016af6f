// Wire compatibility with npm `fastmcp` in both directions: DiskStore directories, EncryptedTokenStorage
// ciphertexts, JWTs, derived keys and PKCE challenges.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as theirs from 'fastmcp/auth';

import * as ours from '../index.js';
import { tempDir } from '../test-support/helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const ENTRIES = {
  'client:abc': { clientId: 'abc', redirectUris: ['http://127.0.0.1:1/cb'], registeredAt: '2026-01-01T00:00:00.000Z' },
  'mapping:jti-1': { jti: 'jti-1', scope: ['openid', 'profile'], upstreamTokenKey: 'upstream:u1' },
  plain: 'a string',
  'unicode:ключ': { 'ü': [1, 2.5, null, true] },
};

async function writeAll(store) {
  for (const [k, v] of Object.entries(ENTRIES)) await store.save(k, v, 3600);
  await store.save('forever', 42);
  await store.save('short-lived', 'gone soon', 0.05);
}

async function readAll(store) {
  for (const [k, v] of Object.entries(ENTRIES)) assert.deepEqual(await store.get(k), v, k);
  assert.equal(await store.get('forever'), 42);
  assert.equal(await store.get('short-lived'), null, 'the TTL written by the other side is honoured');
}

describe('DiskStore directories', () => {
  test("fastmcp's DiskStore writes, ours reads", async () => {
    const dir = tempDir();
    const w = new theirs.DiskStore({ directory: dir });
    await writeAll(w);
    w.destroy();
    await sleep(100);
    const r = new ours.DiskStore({ directory: dir });
    await readAll(r);
    assert.deepEqual(await r.take('client:abc'), ENTRIES['client:abc']);
    r.destroy();
  });

  test("our DiskStore writes, fastmcp's reads", async () => {
    const dir = tempDir();
    const w = new ours.DiskStore({ directory: dir });
    await writeAll(w);
    w.destroy();
    await sleep(100);
    const r = new theirs.DiskStore({ directory: dir });
    await readAll(r);
    assert.deepEqual(await r.take('mapping:jti-1'), ENTRIES['mapping:jti-1']);
    r.destroy();
  });
});

describe('EncryptedTokenStorage ciphertexts', () => {
  const KEY = 'shared-encryption-key';

  test("fastmcp encrypts into a DiskStore, ours decrypts (and the other way round)", async () => {
    const dir = tempDir();
    const theirDisk = new theirs.DiskStore({ directory: dir });
    const theirEnc = new theirs.EncryptedTokenStorage(theirDisk, KEY);
    await writeAll(theirEnc);
    await sleep(100);
    const ourDisk = new ours.DiskStore({ directory: dir });
    const ourEnc = new ours.EncryptedTokenStorage(ourDisk, KEY);
    await readAll(ourEnc);
    await ourEnc.save('from-us', { secret: 'x' }, 60);
    assert.deepEqual(await theirEnc.get('from-us'), { secret: 'x' });
    theirDisk.destroy();
    ourDisk.destroy();
  });

  test("ours over fastmcp's MemoryTokenStorage (a JS backend); fastmcp decrypts what we stored there", async () => {
    const mem = new theirs.MemoryTokenStorage();
    const ourEnc = new ours.EncryptedTokenStorage(mem, KEY);
    await writeAll(ourEnc);
    await sleep(100);
    await readAll(new theirs.EncryptedTokenStorage(mem, KEY));
    await new theirs.EncryptedTokenStorage(mem, KEY).save('back', [1, 2, 3]);
    assert.deepEqual(await ourEnc.take('back'), [1, 2, 3]);
    assert.equal(await mem.get('back'), null, 'take went through to the backend');
    assert.equal(await new ours.EncryptedTokenStorage(mem, 'another-key').get('plain'), null);
    mem.destroy();
  });
});

describe('JWTs', () => {
  const cfg = { audience: 'https://mcp.example.com', issuer: 'https://mcp.example.com', signingKey: 'jwt-key' };

  test('ours verify in fastmcp, fastmcp\'s verify in ours, claims identical', async () => {
    const a = new ours.JWTIssuer(cfg);
    const b = new theirs.JWTIssuer(cfg);
    for (const [issuer, verifier] of [
      [a, b],
      [b, a],
      [a, a],
    ]) {
      const at = issuer.issueAccessToken('client-1', ['read', 'write'], { email: 'u@example.com' });
      const rt = issuer.issueRefreshToken('client-1', ['read'], undefined, 120);
      const va = await verifier.verify(at);
      assert.equal(va.valid, true, JSON.stringify(va));
      assert.deepEqual(va.claims.scope, ['read', 'write']);
      assert.equal(va.claims.email, 'u@example.com');
      const vr = await verifier.verify(rt);
      assert.equal(vr.valid, true);
      assert.equal(vr.claims.exp - vr.claims.iat, 120);
    }
    // Same header and claim order: our token for the same claims is fastmcp's token byte for byte.
    const t = a.issueAccessToken('c', ['s']);
    const [h] = t.split('.');
    assert.equal(h, b.issueAccessToken('c', ['s']).split('.')[0]);
  });

  test('verdicts and error texts match fastmcp for bad tokens', async () => {
    const a = new ours.JWTIssuer(cfg);
    const b = new theirs.JWTIssuer(cfg);
    const other = new theirs.JWTIssuer({ ...cfg, signingKey: 'other' });
    const wrongIss = new theirs.JWTIssuer({ ...cfg, issuer: 'https://evil.example.com' });
    const wrongAud = new theirs.JWTIssuer({ ...cfg, audience: 'https://other.example.com' });
    const good = b.issueAccessToken('c', ['s']);
    const cases = {
      'not a JWT': 'abc',
      'two parts': 'a.b',
      'wrong key': other.issueAccessToken('c', ['s']),
      'tampered payload': good.replace(/\.(.)/, (m, c) => `.${c === 'A' ? 'B' : 'A'}`),
      expired: b.issueAccessToken('c', ['s'], undefined, -10),
      'wrong issuer': wrongIss.issueAccessToken('c', ['s']),
      'wrong audience': wrongAud.issueAccessToken('c', ['s']),
    };
    for (const [name, token] of Object.entries(cases)) {
      const x = await a.verify(token);
      const y = await b.verify(token);
      assert.equal(x.valid, false, name);
      assert.equal(x.error, y.error, name);
    }
    // Where we are stricter than fastmcp: alg none, RS256 headers and oversized tokens are refused outright.
    const payload = good.split('.')[1];
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`;
    const rs = `${Buffer.from('{"alg":"RS256","typ":"JWT"}').toString('base64url')}.${payload}.${good.split('.')[2]}`;
    assert.equal((await a.verify(none)).valid, false);
    assert.equal((await a.verify(rs)).code, 'unsupported_algorithm');
    assert.equal((await a.verify(`${'a'.repeat(20000)}.b.c`)).code, 'token_too_large');
    assert.equal((await a.verify(undefined)).valid, false);
  });

  test('tokens of every length and text cross intact (short and long native string paths, non-ASCII claims)', async () => {
    // The addon reads short tokens through a 2 KiB stack buffer and longer ones the long way; payloads cross as
    // Latin-1 when ASCII and as UTF-8 otherwise. Lengths around the buffer edge, multi-byte text and fastmcp's
    // tokens must all verify with identical claims.
    const a = new ours.JWTIssuer(cfg);
    const b = new theirs.JWTIssuer(cfg);
    const lengths = [0, 1, 3000, 11000, ...Array.from({ length: 12 }, (_, i) => 1298 + i)]; // 1298-1309: tokens of 2038-2053 chars
    for (const n of lengths) {
      for (const text of ['x'.repeat(n), 'é€😀'.repeat(Math.ceil(n / 9))]) {
        for (const [issuer, verifier] of [[a, a], [b, a], [a, b]]) {
          const t = issuer.issueAccessToken('c', ['s'], { note: text });
          const v = await verifier.verify(t);
          assert.equal(v.valid, true, `${n} ${t.length}`);
          assert.equal(v.claims.note, text);
        }
      }
    }
    // A string that is not Latin-1 / not a token: a clean verdict, never a mangled match.
    const good = a.issueAccessToken('c', ['s']);
    for (const bad of [`${good}€`, `€${good}`, good.replace(/.$/, '\u0100'), '\ud800'.repeat(3000), 'é'.repeat(2047)]) {
      const v = await a.verify(bad);
      assert.equal(v.valid, false);
      assert.ok(['malformed_token', 'invalid_signature', 'token_too_large'].includes(v.code), v.code);
    }
  });

  test('key rotation: tokens under a previous key still verify (extra)', async () => {
    const old = new ours.JWTIssuer(cfg);
    const t = old.issueAccessToken('c', ['s']);
    const rotated = new ours.JWTIssuer({ ...cfg, previousKeys: ['jwt-key'], signingKey: 'new-key' });
    assert.equal((await rotated.verify(t)).valid, true);
    assert.equal((await new ours.JWTIssuer({ ...cfg, signingKey: 'new-key' }).verify(t)).valid, false);
  });

  test('reserved claims cannot be overridden by additional claims (stricter than fastmcp)', async () => {
    const a = new ours.JWTIssuer(cfg);
    const t = a.issueAccessToken('c', ['s'], { aud: 'evil', exp: 1, iss: 'evil', role: 'admin' });
    const v = await a.verify(t);
    assert.equal(v.valid, true);
    assert.equal(v.claims.role, 'admin');
    assert.equal(v.claims.aud, cfg.audience);
    assert.throws(() => a.issueAccessToken('c', 'not-an-array'), TypeError);
  });

  test('deriveKey gives fastmcp\'s key', async () => {
    for (const [secret, it] of [
      ['s3cret', 1000],
      ['ünïcode secret', 100000],
    ]) {
      assert.equal(await ours.JWTIssuer.deriveKey(secret, it), await theirs.JWTIssuer.deriveKey(secret, it));
    }
    assert.equal(await ours.JWTIssuer.deriveKey('x'), await theirs.JWTIssuer.deriveKey('x'));
    // Out-of-range iteration counts: a RangeError on both sides (Node's crypto range, [1, 2^31 - 1]).
    for (const n of [0, -1, 2 ** 32 + 1]) {
      await assert.rejects(ours.JWTIssuer.deriveKey('x', n), RangeError);
      await assert.rejects(theirs.JWTIssuer.deriveKey('x', n), RangeError);
    }
  });
});

describe('PKCE', () => {
  test('challenges match fastmcp\'s; validation agrees both ways', () => {
    for (let i = 0; i < 20; i += 1) {
      const v = theirs.PKCEUtils.generateVerifier(43 + i * 4);
      assert.equal(ours.PKCEUtils.generateChallenge(v), theirs.PKCEUtils.generateChallenge(v));
      assert.equal(ours.PKCEUtils.generateChallenge(v, 'plain'), v);
    }
    const mine = ours.PKCEUtils.generatePair();
    assert.equal(mine.verifier.length, 128);
    assert.equal(theirs.PKCEUtils.validateChallenge(mine.verifier, mine.challenge, 'S256'), true);
    const theirsPair = theirs.PKCEUtils.generatePair();
    assert.equal(ours.PKCEUtils.validateChallenge(theirsPair.verifier, theirsPair.challenge, 'S256'), true);
    assert.equal(ours.PKCEUtils.validateChallenge(theirsPair.verifier, mine.challenge, 'S256'), false);
    assert.equal(ours.PKCEUtils.validateChallenge('', '', 'plain'), false);
    assert.equal(ours.PKCEUtils.validateChallenge('a'.repeat(43), 'a'.repeat(43), 'bogus'), false);
    assert.throws(() => ours.PKCEUtils.generateVerifier(42));
    assert.throws(() => ours.PKCEUtils.generateChallenge('x', 'MD5'));
  });
});
