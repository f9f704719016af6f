// A FastMCP server whose OAuth runs on fastmcp-auth: our OAuthProxy (token swap) with a DiskStore, so tokens
// survive restarts. Configure the upstream provider through the environment:
//
//   UPSTREAM_AUTHORIZATION_ENDPOINT, UPSTREAM_TOKEN_ENDPOINT, UPSTREAM_CLIENT_ID, UPSTREAM_CLIENT_SECRET
//   BASE_URL (default http://127.0.0.1:8000), PORT (default 8000), OAUTH_DIR (default ./oauth-data)
//   JWT_SIGNING_KEY, ENCRYPTION_KEY (set both in production: random ones do not survive a restart)
//
//   node examples/server.mjs
import { FastMCP } from 'fastmcp';

import { DiskStore, OAuthProxy } from '../index.js';

export function createServer(env = process.env) {
  const port = Number(env.PORT ?? 8000);
  const baseUrl = env.BASE_URL ?? `http://127.0.0.1:${port}`;
  const storage = new DiskStore({ directory: env.OAUTH_DIR ?? './oauth-data' });
  const proxy = new OAuthProxy({
    baseUrl,
    encryptionKey: env.ENCRYPTION_KEY,
    jwtSigningKey: env.JWT_SIGNING_KEY,
    scopes: (env.SCOPES ?? 'openid').split(' '),
    tokenStorage: storage,
    upstreamAuthorizationEndpoint: env.UPSTREAM_AUTHORIZATION_ENDPOINT,
    upstreamClientId: env.UPSTREAM_CLIENT_ID,
    upstreamClientSecret: env.UPSTREAM_CLIENT_SECRET,
    upstreamTokenEndpoint: env.UPSTREAM_TOKEN_ENDPOINT,
  });
  const server = new FastMCP({
    // Every MCP request carries our JWT; the proxy maps it to the upstream tokens (null: unknown, expired, forged).
    authenticate: async (request) => {
      const header = request?.headers?.authorization;
      const upstream = header?.startsWith('Bearer ') ? await proxy.loadUpstreamTokens(header.slice(7)) : null;
      if (!upstream) throw new Response(null, { status: 401, statusText: 'Unauthorized' });
      return { accessToken: upstream.accessToken, scopes: upstream.scope };
    },
    name: 'fastmcp-auth example',
    oauth: {
      authorizationServer: proxy.getAuthorizationServerMetadata(),
      enabled: true,
      protectedResource: { authorizationServers: [baseUrl], resource: baseUrl },
    },
    version: '1.0.0',
  });
  // Every OAuth route served by the proxy itself, with every header both ways (the browser-binding cookie, the
  // consent page's anti-framing headers): FastMCP's built-in /oauth/* handlers would drop them.
  proxy.mount(server);
  server.addTool({
    description: 'Which upstream scopes this session holds',
    execute: async (_args, { session }) => `scopes: ${session.scopes.join(' ')}`,
    name: 'whoami',
  });
  return {
    port,
    proxy,
    server,
    start: () => server.start({ httpStream: { host: '127.0.0.1', port }, transportType: 'httpStream' }),
    stop: async () => {
      await server.stop();
      storage.destroy();
    },
    storage,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const app = createServer();
  await app.start();
  console.log(`MCP server with OAuth on http://127.0.0.1:${app.port}/mcp`);
}
