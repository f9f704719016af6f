import { FastMCP } from 'fastmcp';
import { getAuthSession, GitHubProvider, requireAuth } from '../index.js';
import { startIdp, obtainTokens, Browser, freePort } from '../test-support/helpers.mjs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const idp = await startIdp();
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
class MockGitHub extends GitHubProvider {
  getAuthorizationEndpoint() { return `${idp.url}/authorize`; }
  getTokenEndpoint() { return `${idp.url}/token`; }
}
process.env.GITHUB_CLIENT_ID = 'upstream-client';
process.env.GITHUB_CLIENT_SECRET = 'upstream secret+/=';
const server = new FastMCP({
  auth: new MockGitHub({ baseUrl: base, clientId: process.env.GITHUB_CLIENT_ID,
                         clientSecret: process.env.GITHUB_CLIENT_SECRET,
                         jwtSigningKey: process.env.JWT_SIGNING_KEY, encryptionKey: process.env.ENCRYPTION_KEY }),
  name: 'My Server', version: '1.0.0',
});
server.addTool({ name: 'whoami', canAccess: requireAuth,
  execute: async (_args, { session }) => getAuthSession(session).accessToken.slice(0, 4) });
server.addTool({ name: 'dump', canAccess: requireAuth,
  execute: async (_args, { session }) => JSON.stringify(getAuthSession(session)) });
await server.start({ transportType: 'httpStream', httpStream: { port, host: '127.0.0.1' } });
try {
  for (const p of ['/.well-known/oauth-authorization-server', '/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
    const r = await fetch(base + p); console.log(p, r.status, (await r.text()).slice(0, 600));
  }
  const r0 = await fetch(base + '/mcp', { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }) });
  console.log('unauth /mcp', r0.status, r0.headers.get('www-authenticate'), (await r0.text()).slice(0,200));
  const t0 = Math.floor(Date.now() / 1000);
  const { tokens } = await obtainTokens(base, new Browser(), { scope: 'read:user' });
  console.log('tokens', Object.keys(tokens), tokens.expires_in, tokens.scope);
  const client = new Client({ name: 'c', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(base + '/mcp'), { requestInit: { headers: { Authorization: `Bearer ${tokens.access_token}` } } }));
  console.log('tools', (await client.listTools()).tools.map((t) => t.name));
  console.log('whoami', JSON.stringify((await client.callTool({ name: 'whoami', arguments: {} })).content));
  const d = JSON.parse((await client.callTool({ name: 'dump', arguments: {} })).content[0].text);
  console.log('session', d, 'now', t0, 'expiresAt-now', d.expiresAt - t0);
  await client.close();
} finally { await server.stop(); await idp.close(); }
