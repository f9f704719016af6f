// fastmcp/auth's constants and session helpers: ours against fastmcp 4.20.16's own, case by case (the import swap
// must behave the same), and the constants against the proxy's defaults.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as theirs from 'fastmcp/auth';

import * as ours from '../index.js';

const CONSTANTS = [
  'DEFAULT_ACCESS_TOKEN_TTL',
  'DEFAULT_ACCESS_TOKEN_TTL_NO_REFRESH',
  'DEFAULT_AUTHORIZATION_CODE_TTL',
  'DEFAULT_REFRESH_TOKEN_TTL',
  'DEFAULT_TRANSACTION_TTL',
];

test("the DEFAULT_* constants equal fastmcp's", () => {
  for (const name of CONSTANTS) assert.equal(ours[name], theirs[name], name);
});

const SESSIONS = [
  undefined,
  null,
  {},
  { scopes: ['read', 'write'] },
  { scopes: new Set(['read']) },
  { scopes: 'read write' },
  { scopes: [] },
  { role: 'admin' },
  { role: ['admin'] },
  { role: 'user', scopes: ['read'] },
  { accessToken: 't' },
];

test("requireAuth, requireScopes, requireRole, requireAll, requireAny, getAuthSession behave as fastmcp's", () => {
  const checks = (m) => [
    m.requireAuth,
    m.requireScopes('read'),
    m.requireScopes('read', 'write'),
    m.requireScopes(),
    m.requireRole('admin'),
    m.requireRole('admin', 'user'),
    m.requireRole(),
    m.requireAll(m.requireAuth, m.requireScopes('read')),
    m.requireAll(true, m.requireRole('user')),
    m.requireAll(),
    m.requireAny(false, m.requireRole('admin'), m.requireScopes('write')),
    m.requireAny(),
  ];
  const a = checks(ours);
  const b = checks(theirs);
  for (const session of SESSIONS) {
    a.forEach((check, i) => assert.equal(check(session), b[i](session), `check ${i} on ${JSON.stringify(session)}`));
    let mine;
    let fastmcps;
    try {
      mine = ours.getAuthSession(session);
    } catch (e) {
      mine = `throws ${e.message}`;
    }
    try {
      fastmcps = theirs.getAuthSession(session);
    } catch (e) {
      fastmcps = `throws ${e.message}`;
    }
    assert.deepEqual(mine, fastmcps);
  }
});

test("the JWTIssuer's default lifetimes are those constants", async () => {
  const issuer = new ours.JWTIssuer({ issuer: 'https://a', audience: 'https://a/mcp', signingKey: 'k'.repeat(40) });
  const claims = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString());
  const access = claims(await issuer.issueAccessToken('client', ['read']));
  const refresh = claims(await issuer.issueRefreshToken('client', ['read']));
  assert.equal(access.exp - access.iat, ours.DEFAULT_ACCESS_TOKEN_TTL);
  assert.equal(refresh.exp - refresh.iat, ours.DEFAULT_REFRESH_TOKEN_TTL);
});
