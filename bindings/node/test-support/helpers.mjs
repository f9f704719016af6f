// Test fixtures: the loopback mock identity provider (tests/mock-idp), free ports, a real redis-server, and the
// OAuth flow a browser and an MCP client walk through, driven over real HTTP.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const UPSTREAM_CLIENT_ID = 'upstream-client';
export const UPSTREAM_CLIENT_SECRET = 'upstream secret+/=';
export const REDIRECT = 'http://127.0.0.1:33418/callback';

const made = [];
process.on('exit', () => {
  for (const d of made) rmSync(d, { force: true, recursive: true });
});

/** A fresh temporary directory, removed when the test process exits. */
export function tempDir(prefix = 'fastmcp-auth-node-') {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/**
 * Starts tests/mock-idp; resolves to { url, close }. `claims.accessToken` / `claims.idToken`: JWT-shaped upstream
 * access tokens / ID tokens carrying those claims.
 */
export async function startIdp(claims = {}) {
  const exe = join(ROOT, 'target', 'debug', 'mock-idp');
  if (!existsSync(exe)) {
    const r = spawnSync('cargo', ['build', '-q', '-p', 'fastmcp-auth-mock-idp', '--bin', 'mock-idp'], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    if (r.status !== 0) throw new Error('could not build the mock identity provider');
  }
  const env = { ...process.env };
  if (claims.accessToken) env.MOCK_IDP_ACCESS_TOKEN_CLAIMS = JSON.stringify(claims.accessToken);
  if (claims.idToken) env.MOCK_IDP_ID_TOKEN_CLAIMS = JSON.stringify(claims.idToken);
  const proc = spawn(exe, [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = createInterface({ input: proc.stdout });
  const url = await new Promise((resolve, reject) => {
    rl.once('line', resolve);
    proc.once('error', reject);
    proc.once('exit', (c) => reject(new Error(`mock-idp exited with ${c}`)));
  });
  return {
    url,
    close: () =>
      new Promise((resolve) => {
        proc.once('exit', resolve);
        proc.stdin.end();
      }),
  };
}

/**
 * Starts tests/mock-idp's HTTPS Client ID Metadata Document host (`mock-idp doc-host`, its own CA); resolves to
 * { baseUrl, caPem, good, hostile, url(name), close }. `hostile`: [[document name, fragment of the proxy's error]].
 */
export async function startDocHost() {
  const exe = join(ROOT, 'target', 'debug', 'mock-idp');
  if (!existsSync(exe)) await startIdp().then((i) => i.close());
  const proc = spawn(exe, ['doc-host'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = createInterface({ input: proc.stdout });
  const info = JSON.parse(
    await new Promise((resolve, reject) => {
      rl.once('line', resolve);
      proc.once('error', reject);
      proc.once('exit', (c) => reject(new Error(`mock-idp doc-host exited with ${c}`)));
    }),
  );
  return {
    baseUrl: info.base_url,
    caPem: info.ca_pem,
    good: info.good,
    hostile: info.hostile,
    url: (name) => `${info.base_url}/${name}`,
    close: () =>
      new Promise((resolve) => {
        proc.once('exit', resolve);
        proc.stdin.end();
      }),
  };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A real redis-server on a free loopback port: { url, close }, or null when redis-server is not installed. */
export async function startRedis() {
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) return null;
  const port = await freePort();
  const dir = tempDir('fastmcp-auth-redis-');
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 10000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = connect(port, '127.0.0.1', () => c.write('PING\r\n'));
      c.once('data', (d) => {
        c.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      c.once('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        proc.once('exit', resolve);
        proc.kill();
      }),
  };
}

/** The upstream half of an OAuthProxy config for the mock provider at `idpUrl` (fastmcp's option names). */
export function upstreamConfig(idpUrl) {
  return {
    upstreamAuthorizationEndpoint: `${idpUrl}/authorize`,
    upstreamClientId: UPSTREAM_CLIENT_ID,
    upstreamClientSecret: UPSTREAM_CLIENT_SECRET,
    upstreamTokenEndpoint: `${idpUrl}/token`,
  };
}

/** The environment of examples/server.mjs for the mock provider at `idpUrl`, a free `port` and fresh keys. */
export function exampleEnv(idpUrl, port, keys) {
  return {
    ENCRYPTION_KEY: keys.encryption,
    JWT_SIGNING_KEY: keys.signing,
    OAUTH_DIR: tempDir(),
    PORT: String(port),
    UPSTREAM_AUTHORIZATION_ENDPOINT: `${idpUrl}/authorize`,
    UPSTREAM_CLIENT_ID,
    UPSTREAM_CLIENT_SECRET,
    UPSTREAM_TOKEN_ENDPOINT: `${idpUrl}/token`,
  };
}

export function pkcePair() {
  const verifier = randomBytes(48).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { challenge, verifier };
}

/**
 * A browser's cookie jar, as far as these tests need one: `fetch` sends the jar's cookies and keeps what
 * `Set-Cookie` answers (name=value; the attributes are checked by the tests that care).
 */
export class Browser {
  jar = new Map();

  async fetch(url, init = {}) {
    const headers = new Headers(init.headers ?? {});
    if (this.jar.size) headers.set('Cookie', [...this.jar].map(([k, v]) => `${k}=${v}`).join('; '));
    const r = await fetch(url, { redirect: 'manual', ...init, headers });
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      this.jar.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
    return r;
  }
}

/** The hidden field `name` of a consent page. */
export function hiddenField(html, name) {
  return new RegExp(`name="${name}" value="([^"]+)"`).exec(html)?.[1];
}

/** POSTs the consent form of `html` (as the page would) in `browser`. */
export function approve(browser, base, html, action = 'approve') {
  const fields = { action, transaction_id: hiddenField(html, 'transaction_id') };
  const csrf = hiddenField(html, 'csrf_token');
  if (csrf) fields.csrf_token = csrf;
  return browser.fetch(`${base}/oauth/consent`, {
    body: new URLSearchParams(fields).toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    method: 'POST',
  });
}

/** The authorization URL at `base` for `client` (redirect REDIRECT, S256 `challenge`). */
export function authorizeUrl(base, client, challenge, { resource, scope = 'openid', state = 'st-1' } = {}) {
  const q = new URLSearchParams({
    client_id: client.client_id,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    redirect_uri: REDIRECT,
    response_type: 'code',
    scope,
    state,
  });
  if (resource) q.set('resource', resource);
  return `${base}/oauth/authorize?${q}`;
}

/**
 * An MCP client's and a user's walk through the proxy served at `base` (a FastMCP server): registration,
 * authorize, the consent page (approved), the upstream login at the mock provider, the callback, the code exchange,
 * all in one browser, asking for `scope`. Returns { client, tokens }.
 */
export async function obtainTokens(base, browser = new Browser(), { resource, scope = 'openid' } = {}) {
  let r = await fetch(`${base}/oauth/register`, {
    body: JSON.stringify({
      client_name: 'node-test',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'client_secret_post',
    }),
    headers: { 'Content-Type': 'application/json' },
    method: 'POST',
  });
  if (r.status !== 201) throw new Error(`register: ${r.status} ${await r.text()}`);
  const client = await r.json();
  const { challenge, verifier } = pkcePair();
  r = await browser.fetch(authorizeUrl(base, client, challenge, { resource, scope, state: 'st-1' }));
  let upstream = r.headers.get('location');
  if (!upstream) {
    // The consent page: approve it, as the user would.
    const html = await r.text();
    if (r.status !== 200) throw new Error(`authorize: ${r.status} ${html}`);
    if (!hiddenField(html, 'transaction_id')) throw new Error('no transaction_id on the consent page');
    r = await approve(browser, base, html);
    upstream = r.headers.get('location');
    if (!upstream) throw new Error(`consent: ${r.status} ${await r.text()}`);
  }
  // The browser at the provider: it signs the user in and sends them back to our callback.
  r = await fetch(upstream, { redirect: 'manual' });
  const callback = r.headers.get('location');
  if (!callback) throw new Error(`upstream authorize: ${r.status} ${await r.text()}`);
  const cb = new URL(callback);
  r = await browser.fetch(`${base}${cb.pathname}${cb.search}`);
  const back = r.headers.get('location');
  if (!back) throw new Error(`callback: ${r.status} ${await r.text()}`);
  const backUrl = new URL(back);
  if (backUrl.searchParams.get('state') !== 'st-1') throw new Error(`state lost: ${back}`);
  const code = backUrl.searchParams.get('code');
  if (!code) throw new Error(`no code: ${back}`);
  const tokens = await tokenRequest(base, {
    client_id: client.client_id,
    client_secret: client.client_secret,
    code,
    code_verifier: verifier,
    grant_type: 'authorization_code',
    redirect_uri: REDIRECT,
    resource,
  });
  return { client, tokens };
}

/** A refresh-token request of a registered confidential `client`. */
export function refreshTokens(base, client, refreshToken) {
  return tokenRequest(base, {
    client_id: client.client_id,
    client_secret: client.client_secret,
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
  });
}

export async function tokenRequest(base, fields) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v != null) body.append(k, v);
  const r = await fetch(`${base}/oauth/token`, {
    body: body.toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    method: 'POST',
  });
  const json = await r.json();
  if (r.status !== 200) throw Object.assign(new Error(`token: ${r.status} ${JSON.stringify(json)}`), { json });
  return json;
}
