// Failures never leave a Promise pending, and numbers from JS never wrap on their way into the addon.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import { JWTIssuer } from '../index.js';

const require = createRequire(import.meta.url);
const native = require(`../fastmcp-auth.${process.platform}-${process.arch}${process.platform === 'linux' ? '-gnu' : ''}.node`);

const settlesWithin = (p, ms) =>
  Promise.race([p.then(() => 'resolved', () => 'rejected'), new Promise((r) => setTimeout(() => r('pending'), ms))]);

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
