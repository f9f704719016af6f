// The Node face (npm package fastmcp-auth, bindings/node) in the conformance suite: a JSON array of operations on
// stdin, a JSON array of results on stdout (protocol: tests/conformance/README.md).
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const fa = require(join(root, 'bindings', 'node', 'index.js'));

const input = JSON.parse(await new Promise((ok) => {
  let s = '';
  process.stdin.on('data', (d) => (s += d));
  process.stdin.on('end', () => ok(s));
}));

function issuer(op) {
  return new fa.JWTIssuer({
    audience: op.audience,
    claimLayout: op.layout ?? 'ts',
    fixedTime: op.now ?? undefined,
    issuer: op.issuer,
    signingKey: op.key,
  });
}

async function run(op) {
  switch (op.op) {
    case 'issue': {
      const i = issuer(op);
      const f = op.refresh ? i.issueRefreshToken.bind(i) : i.issueAccessToken.bind(i);
      return f(op.clientId, op.scopes, op.claims ?? undefined, op.expiresIn ?? undefined);
    }
    case 'verify': {
      const v = await issuer(op).verify(op.token, op.expected ?? 'access');
      return { claims: v.claims ?? null, reason: v.valid ? null : v.code, valid: v.valid };
    }
    case 'deriveKey':
      return fa.JWTIssuer.deriveKey(op.secret, op.iterations);
    case 'deriveJwtKey':
      return fa.deriveJwtKey({
        highEntropyMaterial: op.mode === 'high_entropy_material' ? op.material : undefined,
        lowEntropyMaterial: op.mode === 'low_entropy_material' ? op.material : undefined,
        salt: op.salt,
      });
    case 'challenge':
      return fa.PKCEUtils.generateChallenge(op.verifier, op.method ?? 'S256');
    case 'encrypt': {
      // Over a plain JS backend: the stored string is exactly what EncryptedTokenStorage writes.
      const backend = new Map();
      const enc = new fa.EncryptedTokenStorage(
        { delete: async (k) => backend.delete(k), get: async (k) => backend.get(k) ?? null, save: async (k, v) => backend.set(k, v) },
        op.key,
      );
      await enc.save('k', op.value);
      return backend.get('k');
    }
    case 'decrypt': {
      const enc = new fa.EncryptedTokenStorage(
        { delete: async () => {}, get: async () => op.stored, save: async () => {} },
        op.key,
      );
      const v = await enc.get('k');
      return v === null ? { error: 'decrypt_failed' } : v;
    }
    case 'diskWrite': {
      mkdirSync(op.dir, { recursive: true });
      const d = new fa.DiskStore({ cleanupIntervalMs: 0, directory: op.dir });
      try {
        for (const e of op.entries) await d.save(e.key, e.value, e.ttl ?? undefined);
      } finally {
        d.destroy();
      }
      return true;
    }
    case 'diskRead': {
      const d = new fa.DiskStore({ cleanupIntervalMs: 0, directory: op.dir });
      try {
        const out = [];
        for (const k of op.keys) out.push(await d.get(k));
        return out;
      } finally {
        d.destroy();
      }
    }
    case 'proxyAuthorize': {
      // The core's snake_case config as the Node face takes it: fastmcp's camelCase names, `enableCimd` and our
      // camelCase `cimd` options (durations in ms).
      const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
      const config = {};
      for (const [k, v] of Object.entries(op.config)) if (k !== 'cimd') config[camel(k)] = v;
      const c = op.config.cimd ?? {};
      config.enableCimd = c.enabled !== false;
      config.cimd = {
        allowPrivateNetworksForTesting: c.allow_private_networks_for_testing,
        extraRootCertificates: c.extra_root_certificates_pem,
        failureCooldownMs: c.failure_cooldown === undefined ? undefined : c.failure_cooldown * 1000,
        fetchTimeoutMs: c.fetch_timeout === undefined ? undefined : c.fetch_timeout * 1000,
      };
      const p = new fa.OAuthProxy(config);
      try {
        const r = await p.authorize(Object.fromEntries(new URLSearchParams(op.query)));
        return { status: r.status };
      } catch (e) {
        if (!(e instanceof fa.OAuthProxyError)) throw e;
        return { error: e.code, error_description: e.description, status: e.statusCode };
      } finally {
        p.destroy();
      }
    }
    default:
      throw Object.assign(new Error(`unknown op ${op.op}`), { code: 'invalid_argument' });
  }
}

const out = [];
for (const op of input) {
  try {
    out.push(await run(op));
  } catch (e) {
    out.push({ error: e.code ?? 'error' });
  }
}
process.stdout.write(JSON.stringify(out));
