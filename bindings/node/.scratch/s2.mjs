import { FastMCP } from 'fastmcp';
import * as fa from '../index.js';
import * as fm from 'fastmcp';
const base = 'http://127.0.0.1:9';
const good = { baseUrl: base, clientId: 'id', clientSecret: 's', jwtSigningKey: 'k'.repeat(32), encryptionKey: 'e'.repeat(32) };
const cases = {
  'missing clientSecret': { baseUrl: base, clientId: 'id' },
  'clientSecret empty': { ...good, clientSecret: '' },
  'missing clientId': { baseUrl: base, clientSecret: 's' },
  'missing baseUrl': { clientId: 'id', clientSecret: 's' },
  'typo clientID': { baseUrl: base, clientID: 'id', clientSecret: 's' },
  'typo scope (singular)': { ...good, scope: ['x'] },
  'typo jwtSigningkey': { ...good, jwtSigningkey: 'x' },
  'upstreamClientId (proxy name on provider)': { ...good, upstreamClientId: 'x' },
  'tokenVerifier {}': { ...good, tokenVerifier: {} },
  'tokenVerifier fn': { ...good, tokenVerifier: async () => ({ valid: true }) },
  'tokenVerifier verifyToken': { ...good, tokenVerifier: { verifyToken: async () => ({ valid: true }) } },
  'tokenVerifierTimeoutMs "5s"': { ...good, tokenVerifierTimeoutMs: '5s' },
  'tokenVerifierTimeoutMs -1': { ...good, tokenVerifierTimeoutMs: -1 },
  'scopes string': { ...good, scopes: 'read:user' },
  'baseUrl not url': { ...good, baseUrl: 'mcp.example.com' },
  'baseUrl trailing slash': { ...good, baseUrl: base + '/' },
  'jwtSigningKey short': { ...good, jwtSigningKey: 'short' },
  'accessTokenTtl 3600 (proxy opt)': { ...good, accessTokenTtl: 3600 },
  'allowedRedirectUriPatterns string': { ...good, allowedRedirectUriPatterns: 'http://localhost:*' },
  'consentRequired "no"': { ...good, consentRequired: 'no' },
};
const quiet = { debug() {}, error() {}, info() {}, log() {}, warn() {} };
for (const [name, cfg] of Object.entries(cases)) {
  for (const [lib, mod] of [['ours', fa], ['fastmcp', fm]]) {
    let stage = 'ctor';
    try {
      const p = new mod.GitHubProvider(cfg);
      stage = 'new FastMCP';
      const s = new FastMCP({ auth: p, name: 'x', version: '1', logger: quiet });
      stage = 'getProxy';
      p.getProxy();
      console.log(`${name} [${lib}]: OK (no error)`);
    } catch (e) {
      console.log(`${name} [${lib}]: ${stage} threw ${e?.constructor?.name}: ${e?.message}`);
    }
  }
}
