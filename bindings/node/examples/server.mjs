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

/**
 * A variable the server cannot start without.
 * @param {Record<string, string | undefined>} env
 * @param {string} name
 * @returns {string}
 */
function required(env, name) {
  const value = env[name];
  if (!value) throw new Error(`examples/server.mjs: set ${name} (see the comment at the top of the file)`);
  return value;
}

/** `proxyOptions`: more OAuthProxy options (tests use it for `enableCimd` and `cimd`). */
export function createServer(env = process.env, proxyOptions = {}) {
  const port = Number(env.PORT ?? 8000);
  const baseUrl = env.BASE_URL ?? `http://127.0.0.1:${port}`;
  const storage = new DiskStore({ directory: env.OAUTH_DIR ?? './oauth-data' });
  const proxy = new OAuthProxy({
    baseUrl,
    encryptionKey: env.ENCRYPTION_KEY,
    jwtSigningKey: env.JWT_SIGNING_KEY,
    // Client ID Metadata Documents: Claude, VS Code and the MCP SDKs identify themselves by a URL (the spec's
    // recommended registration); fetched SSRF-safe and cached in the storage.
    enableCimd: true,
    scopes: (env.SCOPES ?? 'openid').split(' '),
    tokenStorage: storage,
    upstreamAuthorizationEndpoint: required(env, 'UPSTREAM_AUTHORIZATION_ENDPOINT'),
    upstreamClientId: required(env, 'UPSTREAM_CLIENT_ID'),
    upstreamClientSecret: required(env, 'UPSTREAM_CLIENT_SECRET'),
    upstreamTokenEndpoint: required(env, 'UPSTREAM_TOKEN_ENDPOINT'),
    ...proxyOptions,
  });
  // The MCP endpoint is the resource our tokens are for (RFC 8707); clients discover us from its 401.
  const resource = `${baseUrl}/mcp`;
  const server = new FastMCP({
    // Every MCP request carries our JWT; the proxy checks it for this resource and maps it to the upstream
    // tokens. Without a valid one, the proxy's 401 (with `WWW-Authenticate: Bearer resource_metadata=…`, RFC 9728)
    // is thrown as it is, and FastMCP sends it with its headers, so spec-following clients find the login.
    authenticate: async (request) => {
      const r = await proxy.checkBearer(request, resource);
      if (!r.ok) throw r.response;
      return { accessToken: r.upstream.accessToken, scopes: r.upstream.scope };
    },
    name: 'fastmcp-auth example',
    oauth: {
      authorizationServer: proxy.getAuthorizationServerMetadata(),
      enabled: true,
      protectedResource: proxy.protectedResourceMetadata(resource),
    },
    version: '1.0.0',
  });
  // Every OAuth route served by the proxy itself, with every header both ways (the browser-binding cookie, the
  // consent page's anti-framing headers): FastMCP's built-in /oauth/* handlers would drop them.
  proxy.mount(server);
  server.addTool({
    description: 'Which upstream scopes this session holds',
    execute: async (_args, { session }) => `scopes: ${session?.scopes.join(' ') ?? ''}`,
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
