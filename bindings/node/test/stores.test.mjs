// Our stores through fastmcp's TokenStorage interface: behaviour, TTLs, atomic take, bad input (hostile keys,
// corrupt files, wrong keys, unstorable values), closed stores, Redis, and the event loop staying responsive.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DiskStore, EncryptedTokenStorage, FastMCPAuthError, MemoryTokenStorage, RedisStore } from '../index.js';
import { startRedis, tempDir } from '../test-support/helpers.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let redis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.close();
});

const kinds = {
  disk: () => new DiskStore({ directory: tempDir() }),
  'encrypted disk': () => new EncryptedTokenStorage(new DiskStore({ directory: tempDir() }), 'k1'),
  memory: () => new MemoryTokenStorage(),
  redis: () => new RedisStore({ prefix: `t${Math.random().toString(36).slice(2)}:`, url: redis.url }),
};

for (const [name, make] of Object.entries(kinds)) {
  describe(`${name} store`, () => {
    test('save, get, take, delete, size', async (t) => {
      if (name === 'redis' && !redis) return t.skip('redis-server not installed');
      const s = make();
      try {
        const value = { a: [1, 2, { b: 'ü' }], n: null, x: 1.5 };
        await s.save('client:1', value);
        assert.deepEqual(await s.get('client:1'), value);
        assert.equal(await s.get('missing'), null);
        const size = await s.size();
        assert.equal(size, 1);
        assert.deepEqual(await s.take('client:1'), value);
        assert.equal(await s.take('client:1'), null);
        await s.save('k', 'v');
        await s.delete('k');
        assert.equal(await s.get('k'), null);
        await s.save('undef', undefined);
        assert.equal(await s.get('undef'), null);
      } finally {
        s.destroy();
      }
    });

    test('TTLs in seconds, as fastmcp: expired entries read as absent and are cleaned up', async (t) => {
      if (name === 'redis' && !redis) return t.skip('redis-server not installed');
      const s = make();
      try {
        await s.save('short', 1, 0.05);
        await s.save('long', 2, 3600);
        await s.save('forever', 3, 0);
        await sleep(120);
        assert.equal(await s.get('short'), null);
        assert.equal(await s.get('long'), 2);
        assert.equal(await s.get('forever'), 3);
        await s.cleanup();
        assert.equal(await s.size(), 2);
      } finally {
        s.destroy();
      }
    });

    test('take is atomic: 64 concurrent takers, one winner', async (t) => {
      if (name === 'redis' && !redis) return t.skip('redis-server not installed');
      const s = make();
      try {
        await s.save('code:abc', { once: true });
        const got = await Promise.all(Array.from({ length: 64 }, () => s.take('code:abc')));
        assert.equal(got.filter((v) => v !== null).length, 1);
      } finally {
        s.destroy();
      }
    });

    test('bad input: empty and huge keys, unstorable values, bad TTLs', async (t) => {
      if (name === 'redis' && !redis) return t.skip('redis-server not installed');
      const s = make();
      try {
        await assert.rejects(s.save('', 1), (e) => e instanceof FastMCPAuthError && e.code === 'invalid_key');
        await assert.rejects(s.get('x'.repeat(70000)), (e) => e.code === 'invalid_key');
        await assert.rejects(s.save('big', 1n), TypeError);
        const circular = {};
        circular.self = circular;
        await assert.rejects(s.save('c', circular), TypeError);
        await assert.rejects(s.save('t', 1, -1), (e) => e.code === 'invalid_argument');
        await assert.rejects(s.save('t', 1, Number.NaN), (e) => e.code === 'invalid_argument');
      } finally {
        s.destroy();
      }
    });

    test('after destroy(), operations reject with code "store_closed"', async (t) => {
      if (name === 'redis' && !redis) return t.skip('redis-server not installed');
      const s = make();
      await s.save('a', 1);
      s.destroy();
      await assert.rejects(s.get('a'), (e) => e.code === 'store_closed');
    });
  });
}

describe('DiskStore on disk', () => {
  test('hostile keys stay inside the directory and round-trip', async () => {
    const dir = tempDir();
    const s = new DiskStore({ directory: join(dir, 'store') });
    try {
      for (const key of ['../escape', '../../etc/passwd', 'a/b', 'nul\0byte', '.', '..', 'mapping:x', 'ü:ß']) {
        await s.save(key, { key });
        assert.deepEqual(await s.get(key), { key }, key);
      }
      assert.deepEqual(readdirSync(dir), ['store'], 'nothing was written outside the store directory');
      assert.equal(existsSync('/etc/passwd.json'), false);
    } finally {
      s.destroy();
    }
  });

  test('a corrupt entry file reads as absent and is left in place', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bad.json'), '{"value": {"trunc');
    writeFileSync(join(dir, 'notobj.json'), '[1,2]');
    const s = new DiskStore({ directory: dir });
    try {
      assert.equal(await s.get('bad'), null);
      assert.equal(await s.get('notobj'), null);
      assert.equal(await s.take('bad'), null);
      assert.equal(readFileSync(join(dir, 'bad.json'), 'utf8'), '{"value": {"trunc');
      await s.save('good', 1);
      assert.equal(await s.get('good'), 1);
    } finally {
      s.destroy();
    }
  });

  test('a path that is a file: the first operation rejects with "not_a_directory"', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), 'x');
    const s = new DiskStore({ directory: join(dir, 'file') });
    await assert.rejects(s.ready(), (e) => e.code === 'not_a_directory');
    await assert.rejects(s.get('k'), (e) => e.code === 'not_a_directory');
    assert.throws(() => new DiskStore({}), TypeError);
  });

  test('values survive a restart', async () => {
    const dir = tempDir();
    const a = new DiskStore({ directory: dir });
    await a.save('upstream:1', { accessToken: 'x' }, 3600);
    a.destroy();
    const b = new DiskStore({ directory: dir });
    assert.deepEqual(await b.get('upstream:1'), { accessToken: 'x' });
    b.destroy();
  });
});

describe('EncryptedTokenStorage', () => {
  test('wrong key and tampered ciphertext read as absent; previous keys still decrypt', async () => {
    const dir = tempDir();
    const plain = new DiskStore({ directory: dir });
    const enc = new EncryptedTokenStorage(plain, 'old-key');
    await enc.save('secret', { token: 'abc' });
    const stored = await plain.get('secret');
    assert.match(stored, /^[0-9a-f]{32}:[0-9a-f]{32}:[0-9a-f]+$/);
    assert.ok(!stored.includes('token'), 'no plaintext on disk');
    assert.equal(await new EncryptedTokenStorage(plain, 'wrong-key').get('secret'), null);
    const rotated = new EncryptedTokenStorage(plain, 'new-key', { previousKeys: ['old-key'] });
    assert.deepEqual(await rotated.get('secret'), { token: 'abc' });
    const [iv, tag, ct] = stored.split(':');
    const flipped = ct.slice(0, -1) + (ct.at(-1) === '0' ? '1' : '0');
    await plain.save('tampered', `${iv}:${tag}:${flipped}`);
    await plain.save('truncated', `${iv}:${tag}`);
    await plain.save('not-hex', 'zz:zz:zz');
    for (const k of ['tampered', 'truncated', 'not-hex']) assert.equal(await enc.get(k), null, k);
    assert.throws(() => new EncryptedTokenStorage(plain, ''), TypeError);
    assert.throws(() => new EncryptedTokenStorage({}, 'k'), TypeError);
    plain.destroy();
  });
});

describe('the event loop stays responsive', () => {
  for (const [name, make] of Object.entries(kinds)) {
    test(`${name}: a timer keeps firing while 1,000 operations are in flight`, async (t) => {
      if (name === 'redis' && !redis) return t.skip('redis-server not installed');
      const s = make();
      let ticks = 0;
      let last = performance.now();
      let maxGap = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
        ticks += 1;
      }, 1);
      try {
        let pending = 1000;
        let ticksWhilePending = 0;
        const ops = Array.from({ length: 1000 }, (_, i) =>
          (i % 2 ? s.save(`k${i}`, { i, pad: 'x'.repeat(200) }) : s.get(`k${i - 1}`)).finally(() => {
            pending -= 1;
            if (pending > 0) ticksWhilePending = ticks;
          }),
        );
        await Promise.all(ops);
        assert.equal(await s.size(), 500);
        // The work ran off the event loop: the loop went on turning (the timer fired) before the last result.
        t.diagnostic(`ticks while pending: ${ticksWhilePending}, longest gap between ticks: ${maxGap.toFixed(1)} ms`);
        assert.ok(ticksWhilePending > 0, 'the timer never fired while operations were in flight');
      } finally {
        clearInterval(timer);
        s.destroy();
      }
    });
  }
});
