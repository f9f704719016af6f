// Through a real FastMCP TypeScript server over HTTP: our provider vs fastmcp's, same mock identity provider, same
// run. Each side is `new FastMCP({ auth: new OAuthProvider({...}) })` (the class from `fastmcp-auth` or from
// `fastmcp`, nothing else differs) in a child process of its own; this process is the load: 16 concurrent clients.
// Measured: code exchanges/s (POST /oauth/token, authorization_code), refreshes/s (POST /oauth/token,
// refresh_token; upstream is called on each, as both proxies do), authenticated MCP tool calls/s (a session per
// client, calls in a loop: FastMCP runs `authenticate` on every request). Also, in the server process, the time
// `authenticate` itself takes per call, to say how much of a tool call is the provider's.
// Usage (scripts/bench-fastmcp-server.sh builds the release addon first): node bench/fastmcp-server.mjs [codes=400]
// [seconds of tool calls=5] (env ROUNDS, default 3). Prints the median of the rounds, with the ratios (ours /
// fastmcp's throughput, fastmcp's / our server CPU per operation: > 1 means we are faster).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { approve, authorizeUrl, Browser, freePort, hiddenField, pkcePair, REDIRECT, startIdp, tokenRequest } from '../test-support/helpers.mjs';

const CONCURRENCY = 16;
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const here = fileURLToPath(import.meta.url);

// ---- the server (child process) ---------------------------------------------------------------------------------
if (process.argv[2] === '--serve') {
  const [, , , side, port, idp] = process.argv;
  const { FastMCP } = await import('fastmcp');
  const auth = side === 'ours' ? await import('../index.js') : await import('fastmcp/auth');
  const base = `http://127.0.0.1:${port}`;
  const provider = new auth.OAuthProvider({
    allowedRedirectUriPatterns: ['http://127.0.0.1:*'],
    authorizationEndpoint: `${idp}/authorize`,
    baseUrl: base,
    clientId: 'upstream-client',
    clientSecret: 'upstream secret+/=',
    consentRequired: true,
    encryptionKey: 'bench-encryption-key-0123456789abcdef',
    jwtSigningKey: 'bench-jwt-signing-key-0123456789abcdef',
    ...(side === 'ours' ? { logger: null, rateLimits: false } : {}),
    tokenEndpoint: `${idp}/token`,
  });
  // Time spent in `authenticate` (the provider's share of a tool call), summed in this process.
  let authNs = 0n;
  let authCalls = 0;
  const authenticate = provider.authenticate.bind(provider);
  provider.authenticate = async (request) => {
    const t = process.hrtime.bigint();
    try {
      return await authenticate(request);
    } finally {
      authNs += process.hrtime.bigint() - t;
      authCalls += 1;
    }
  };
  const quiet = { debug() {}, error() {}, info() {}, log() {}, warn() {} };
  const server = new FastMCP({ auth: provider, logger: quiet, name: 'bench', version: '1.0.0' });
  server.addTool({ execute: async (_args, { session }) => String(Boolean(session?.accessToken)), name: 'whoami' });
  await server.start({ httpStream: { host: '127.0.0.1', port: Number(port) }, transportType: 'httpStream' });
  console.log('ready');
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'cpu') {
      const u = process.cpuUsage();
      console.log(JSON.stringify({ us: u.user + u.system }));
    } else if (line === 'auth-stats') {
      console.log(JSON.stringify({ calls: authCalls, meanUs: authCalls ? Number(authNs / BigInt(authCalls)) / 1000 : 0 }));
      authNs = 0n;
      authCalls = 0;
    }
  });
  process.stdin.on('end', () => process.exit(0));
} else {
  await main();
}

async function startSide(side, idp) {
  const port = await freePort();
  const child = spawn(process.execPath, [here, '--serve', side, String(port), idp], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const next = () => new Promise((resolve) => lines.once('line', resolve));
  const ready = await next();
  if (ready !== 'ready') throw new Error(`${side}: ${ready}`);
  return {
    cpu: async () => {
      child.stdin.write('cpu\n');
      return JSON.parse(await next()).us;
    },
    authStats: async () => {
      child.stdin.write('auth-stats\n');
      return JSON.parse(await next());
    },
    base: `http://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => child.once('exit', resolve) && child.stdin.end()),
  };
}

/** One authorization code of `client` (consent approved, upstream login at the mock, callback followed). */
async function code(base, client) {
  const browser = new Browser();
  const { challenge, verifier } = pkcePair();
  let r = await browser.fetch(authorizeUrl(base, client, challenge));
  const html = await r.text();
  if (!hiddenField(html, 'transaction_id')) throw new Error(`authorize: ${r.status}`);
  r = await approve(browser, base, html);
  r = await fetch(r.headers.get('location'), { redirect: 'manual' });
  const cb = new URL(r.headers.get('location'));
  r = await browser.fetch(`${base}${cb.pathname}${cb.search}`);
  return { code: new URL(r.headers.get('location')).searchParams.get('code'), verifier };
}

/**
 * Runs `job(i)` for i in [0, n) with CONCURRENCY in flight; resolves to { rate: operations per second, cpuUs: the
 * server process's CPU time per operation in µs }.
 */
async function throughput(side, n, job) {
  let i = 0;
  const cpu0 = await side.cpu();
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (i < n) await job(i++);
    }),
  );
  const rate = n / (Number(process.hrtime.bigint() - t0) / 1e9);
  return { cpuUs: ((await side.cpu()) - cpu0) / n, rate };
}

/** Tool calls for `seconds` by CONCURRENCY MCP clients, each with its own session; resolves to calls per second. */
async function toolCalls(base, accessTokens, seconds) {
  const clients = await Promise.all(
    accessTokens.slice(0, CONCURRENCY).map(async (token) => {
      const client = new Client({ name: 'bench', version: '1.0.0' });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }),
      );
      return client;
    }),
  );
  for (const c of clients) await c.callTool({ arguments: {}, name: 'whoami' }); // warm
  let calls = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    clients.map(async (c) => {
      while (Date.now() < end) {
        const r = await c.callTool({ arguments: {}, name: 'whoami' });
        if (r.content[0].text !== 'true') throw new Error('no session in the tool');
        calls += 1;
      }
    }),
  );
  const rate = calls / (Number(process.hrtime.bigint() - t0) / 1e9);
  await Promise.all(clients.map((c) => c.close()));
  return rate;
}

async function measure(side, idp, n, seconds) {
  const s = await startSide(side, idp);
  try {
    const reg = await fetch(`${s.base}/oauth/register`, {
      body: JSON.stringify({
        grant_types: ['authorization_code', 'refresh_token'],
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'client_secret_post',
      }),
      headers: { 'Content-Type': 'application/json' },
      method: 'POST',
    });
    const client = await reg.json();
    const codes = [];
    for (let k = 0; k < n; k += CONCURRENCY) {
      codes.push(...(await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n - k) }, () => code(s.base, client)))));
    }
    const tokens = new Array(n);
    const exchange = await throughput(s, n, async (k) => {
      tokens[k] = await tokenRequest(s.base, {
        client_id: client.client_id,
        client_secret: client.client_secret,
        code: codes[k].code,
        code_verifier: codes[k].verifier,
        grant_type: 'authorization_code',
        redirect_uri: REDIRECT,
      });
    });
    const refreshed = new Array(n);
    const refresh = await throughput(s, n, async (k) => {
      refreshed[k] = await tokenRequest(s.base, {
        client_id: client.client_id,
        client_secret: client.client_secret,
        grant_type: 'refresh_token',
        refresh_token: tokens[k].refresh_token,
      });
    });
    await s.authStats(); // reset
    const cpu0 = await s.cpu();
    const rate = await toolCalls(s.base, refreshed.map((t) => t.access_token), seconds);
    const auth = await s.authStats();
    const calls = { cpuUs: ((await s.cpu()) - cpu0) / auth.calls, rate };
    return { auth, calls, exchange, refresh };
  } finally {
    await s.stop();
  }
}

async function main() {
  const n = Number(process.argv[2] ?? 400);
  const seconds = Number(process.argv[3] ?? 5);
  const idp = await startIdp();
  try {
    // This 2-core machine's throughput drifts from minute to minute: ROUNDS rounds, the sides alternating (each in
    // a fresh process with a fresh store), and the median of each figure.
    const runs = { ours: [], theirs: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const side of r % 2 ? ['ours', 'theirs'] : ['theirs', 'ours']) runs[side].push(await measure(side, idp.url, n, seconds));
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const summary = (rs) => {
      const m = (k) => ({ cpuUs: median(rs.map((x) => x[k].cpuUs)), rate: median(rs.map((x) => x[k].rate)) });
      return { auth: { meanUs: median(rs.map((x) => x.auth.meanUs)) }, calls: m('calls'), exchange: m('exchange'), refresh: m('refresh') };
    };
    const ours = summary(runs.ours);
    const theirs = summary(runs.theirs);
    console.log(`median of ${ROUNDS} rounds, sides alternating`);
    const row = (name, a, b) =>
      console.log(
        `${name.padEnd(40)} ${a.rate.toFixed(0).padStart(7)}/s ${b.rate.toFixed(0).padStart(7)}/s ${(a.rate / b.rate).toFixed(2).padStart(6)}×` +
          `   ${a.cpuUs.toFixed(0).padStart(6)} µs ${b.cpuUs.toFixed(0).padStart(6)} µs ${(b.cpuUs / a.cpuUs).toFixed(2).padStart(6)}×`,
      );
    console.log(
      `${'through FastMCP over HTTP, 16 clients'.padEnd(40)} ${'ours'.padStart(9)} ${'fastmcp'.padStart(9)}  ratio` +
        `   server CPU per op: ours, fastmcp, ratio`,
    );
    row(`code exchanges (${n})`, ours.exchange, theirs.exchange);
    row(`refreshes (${n}, upstream called)`, ours.refresh, theirs.refresh);
    row(`authenticated tool calls (${seconds} s)`, ours.calls, theirs.calls);
    const share = (x) => ((x.auth.meanUs / (1e6 / (x.calls.rate / CONCURRENCY))) * 100).toFixed(1);
    console.log(
      `authenticate per call (wall time, incl. waiting for the event loop): ours ${ours.auth.meanUs.toFixed(0)} µs ` +
        `(${share(ours)}% of a call's latency), fastmcp ${theirs.auth.meanUs.toFixed(0)} µs (${share(theirs)}%)`,
    );
    const fastmcpVersion = JSON.parse(readFileSync(new URL('../node_modules/fastmcp/package.json', import.meta.url), 'utf8')).version;
    console.log(`node ${process.version}, fastmcp ${fastmcpVersion}`);
  } finally {
    await idp.close();
  }
}
