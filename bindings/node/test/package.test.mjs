// The packages as a user installs them: scripts/pack.sh --zig packs the main package and this platform's package
// (the release addon, linked against glibc 2.17 with zig), a fresh directory installs both tarballs with npm
// `fastmcp` and TypeScript from the registry, then: the README's snippet type-checks with `tsc --strict` against the
// installed types, a FastMCP server on our proxy (only installed packages) serves a whole login with a refresh, and
// without the platform package the import fails naming it.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { freePort, obtainTokens, refreshTokens, startIdp, tempDir, UPSTREAM_CLIENT_ID, UPSTREAM_CLIENT_SECRET } from '../test-support/helpers.mjs';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const FASTMCP = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).devDependencies.fastmcp;
let dir;
let idp;

before(async () => {
  idp = await startIdp();
  dir = tempDir('fastmcp-auth-install-');
  const out = join(dir, 'tarballs');
  // As released: the release addon linked against glibc 2.17 with zig.
  const tarballs = execFileSync('bash', [join(here, 'scripts', 'pack.sh'), '--zig', '--out', out], { encoding: 'utf8' })
    .trim()
    .split('\n');
  const app = join(dir, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  execFileSync(
    'npm',
    ['install', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs, `fastmcp@${FASTMCP}`, 'typescript@5', '@types/node@20'],
    { cwd: app, stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 },
  );
});

after(async () => {
  await idp?.close();
  if (dir) rmSync(dir, { force: true, recursive: true });
});

test('the addon needs nothing newer than glibc 2.17, and the platform package carries the licences', () => {
  const pkg = join(dir, 'app', 'node_modules', 'fastmcp-auth-linux-x64-gnu');
  const symbols = execFileSync('objdump', ['-T', join(pkg, 'fastmcp-auth.linux-x64-gnu.node')], { encoding: 'utf8' });
  const versions = [...symbols.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => Number(m[1]) * 1000 + Number(m[2]));
  assert.ok(Math.max(...versions) <= 2017, `needs GLIBC ${Math.max(...versions)}`);
  for (const f of ['LICENSE-MIT', 'LICENSE-APACHE', 'README.md']) {
    assert.ok(readFileSync(join(pkg, f)).length > 0, f);
    assert.ok(readFileSync(join(dir, 'app', 'node_modules', 'fastmcp-auth', f)).length > 0, f);
  }
});

test('the README snippet type-checks with tsc --strict against the installed types', () => {
  const app = join(dir, 'app');
  const readme = readFileSync(join(here, '..', '..', 'README.md'), 'utf8');
  const snippet = readme.split('## Node')[1].split('```js\n')[1].split('```')[0];
  const declared =
    "const baseUrl = 'http://127.0.0.1:8000';\nconst upstreamAuthorizationEndpoint = 'https://idp.example/a';\n" +
    "const upstreamTokenEndpoint = 'https://idp.example/t';\nconst upstreamClientId = 'id';\nconst upstreamClientSecret = 's';\n";
  const imports = snippet.split('\n').filter((l) => l.startsWith('import '));
  const body = snippet.split('\n').filter((l) => !l.startsWith('import '));
  writeFileSync(join(app, 'check.ts'), `${imports.join('\n')}\n${declared}${body.join('\n')}\n`);
  execFileSync(
    join(app, 'node_modules', '.bin', 'tsc'),
    ['--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', 'check.ts'],
    { cwd: app, encoding: 'utf8' },
  );
});

test("fastmcp's own README examples of its providers, with the import changed, type-check with tsc --strict", async () => {
  const app = join(dir, 'app');
  const exported = new Set(Object.keys(await import(join(app, 'node_modules', 'fastmcp-auth', 'index.js'))).concat(['default']));
  /** `import { A, B } from "fastmcp" | "fastmcp/auth"`: every name this package exports comes from it instead. */
  const swap = (code) =>
    code.replace(/^import \{([^}]*)\} from ["']fastmcp(?:\/auth)?["'];?$/gm, (_, names) => {
      const all = names.split(',').map((n) => n.trim()).filter(Boolean);
      const ours = all.filter((n) => exported.has(n) && n !== 'FastMCP');
      const theirs = all.filter((n) => !ours.includes(n));
      return [
        theirs.length ? `import { ${theirs.join(', ')} } from "fastmcp";` : '',
        ours.length ? `import { ${ours.join(', ')} } from "fastmcp-auth";` : '',
      ].join('\n');
    });
  const theirReadme = readFileSync(join(app, 'node_modules', 'fastmcp', 'README.md'), 'utf8');
  const ourReadme = readFileSync(join(here, '..', '..', 'README.md'), 'utf8');
  const blocks = [...theirReadme.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((m) => m[1])
    .filter((b) => /Provider\(\{/.test(b) && /^import /m.test(b))
    .map(swap);
  assert.ok(blocks.length >= 3, `fastmcp's README has ${blocks.length} provider examples`);
  assert.ok(blocks.every((b) => b.includes('from "fastmcp-auth"')), 'the import was changed in every example');
  blocks.push(ourReadme.split('**Providers.**')[1].split('```ts\n')[1].split('```')[0]);
  const files = blocks.map((b, i) => {
    writeFileSync(join(app, `provider-example-${i}.ts`), b);
    return `provider-example-${i}.ts`;
  });
  execFileSync(
    join(app, 'node_modules', '.bin', 'tsc'),
    ['--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', ...files],
    { cwd: app, encoding: 'utf8' },
  );
});

test('examples/server.mjs, importing the installed package, type-checks with tsc --strict (checkJs)', () => {
  const app = join(dir, 'app');
  const example = readFileSync(join(here, 'examples', 'server.mjs'), 'utf8').replace("from '../index.js'", "from 'fastmcp-auth'");
  writeFileSync(join(app, 'example.mjs'), example);
  execFileSync(
    join(app, 'node_modules', '.bin', 'tsc'),
    ['--strict', '--allowJs', '--checkJs', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', 'example.mjs'],
    { cwd: app, encoding: 'utf8' },
  );
});

test('a FastMCP server built only from the installed packages serves a login and a refresh', async () => {
  const app = join(dir, 'app');
  writeFileSync(
    join(app, 'server.mjs'),
    `import { FastMCP } from 'fastmcp';
import { DiskStore, OAuthProxy } from 'fastmcp-auth';
const [port, idp, data] = process.argv.slice(2);
const proxy = new OAuthProxy({
  baseUrl: 'http://127.0.0.1:' + port,
  upstreamAuthorizationEndpoint: idp + '/authorize', upstreamTokenEndpoint: idp + '/token',
  upstreamClientId: ${JSON.stringify(UPSTREAM_CLIENT_ID)}, upstreamClientSecret: ${JSON.stringify(UPSTREAM_CLIENT_SECRET)},
  jwtSigningKey: 'installed-test-signing-key-0123456789abcdef', encryptionKey: 'installed-test-encryption-key-0123456789',
  tokenStorage: new DiskStore({ directory: data }), logger: null,
});
const server = new FastMCP({ name: 'installed', version: '1.0.0' });
proxy.mount(server);
await server.start({ httpStream: { host: '127.0.0.1', port: Number(port) }, transportType: 'httpStream' });
console.log('ready');
`,
  );
  const port = await freePort();
  const child = spawn('node', ['server.mjs', String(port), idp.url, join(dir, 'data')], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise((resolve, reject) => {
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      child.stdout.on('data', (d) => String(d).includes('ready') && resolve());
      child.on('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
    });
    const base = `http://127.0.0.1:${port}`;
    const { client, tokens } = await obtainTokens(base);
    assert.ok(tokens.access_token && tokens.refresh_token);
    const refreshed = await refreshTokens(base, client, tokens.refresh_token);
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
  } finally {
    child.kill();
  }
});

test('without the platform package, the import names the package to install', () => {
  const app = join(dir, 'app');
  rmSync(join(app, 'node_modules', 'fastmcp-auth-linux-x64-gnu'), { force: true, recursive: true });
  let message = '';
  try {
    execFileSync('node', ['-e', "require('fastmcp-auth')"], { cwd: app, encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    message = String(e.stderr);
  }
  assert.match(message, /the native addon for linux-x64-gnu is missing: install the package fastmcp-auth-linux-x64-gnu/);
});
