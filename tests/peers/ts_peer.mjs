// Drives npm `fastmcp` (fastmcp/auth) for live compatibility checks. Reads a JSON array of operations on stdin,
// prints a JSON array of results. Used by core/tests/peers.rs; installed by scripts/install-peers.sh.
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const root = resolve(process.argv[2] ?? ".peers/node");
const auth = await import(pathToFileURL(`${root}/node_modules/fastmcp/dist/auth/index.js`).href);
const { JWTIssuer, DiskStore, EncryptedTokenStorage, MemoryTokenStorage, PKCEUtils } = auth;

const input = JSON.parse(await new Promise((ok) => {
  let s = "";
  process.stdin.on("data", (d) => (s += d));
  process.stdin.on("end", () => ok(s));
}));

const out = [];
const cleanups = [];
for (const op of input) {
  switch (op.op) {
    case "issue": {
      const i = new JWTIssuer({ issuer: op.issuer, audience: op.audience, signingKey: op.key });
      const f = op.refresh ? i.issueRefreshToken.bind(i) : i.issueAccessToken.bind(i);
      out.push(f(op.clientId, op.scopes, op.claims ?? undefined, op.expiresIn ?? undefined));
      break;
    }
    case "verify": {
      const i = new JWTIssuer({ issuer: op.issuer, audience: op.audience, signingKey: op.key });
      out.push(await i.verify(op.token));
      break;
    }
    case "deriveKey":
      out.push(await JWTIssuer.deriveKey(op.secret, op.iterations));
      break;
    case "challenge":
      out.push(PKCEUtils.generateChallenge(op.verifier, op.method ?? "S256"));
      break;
    case "encrypt": {
      const mem = new MemoryTokenStorage();
      cleanups.push(() => mem.destroy());
      const enc = new EncryptedTokenStorage(mem, op.key);
      await enc.save("k", op.value);
      out.push(await mem.get("k"));
      break;
    }
    case "decrypt": {
      const mem = new MemoryTokenStorage();
      cleanups.push(() => mem.destroy());
      await mem.save("k", op.stored);
      const enc = new EncryptedTokenStorage(mem, op.key);
      out.push(await enc.get("k"));
      break;
    }
    case "diskWrite": {
      const d = new DiskStore({ directory: op.dir });
      cleanups.push(() => d.destroy());
      for (const e of op.entries) {
        const backend = op.encryptionKey ? new EncryptedTokenStorage(d, op.encryptionKey) : d;
        await backend.save(e.key, e.value, e.ttl ?? undefined);
      }
      out.push(true);
      break;
    }
    case "diskRead": {
      const d = new DiskStore({ directory: op.dir });
      cleanups.push(() => d.destroy());
      const backend = op.encryptionKey ? new EncryptedTokenStorage(d, op.encryptionKey) : d;
      const values = [];
      for (const k of op.keys) values.push(await backend.get(k));
      out.push(values);
      break;
    }
    default:
      throw new Error(`unknown op ${op.op}`);
  }
}
for (const c of cleanups) c();
process.stdout.write(JSON.stringify(out));
process.exit(0);
