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
