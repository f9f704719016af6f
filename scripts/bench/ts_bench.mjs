// Times fastmcp TS (npm) on the operations core/examples/bench_compare.rs times. Args: peers dir, work dir, sweep dir.
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const [peers, work, sweepDir] = process.argv.slice(2).map((p) => resolve(p));
const { JWTIssuer, DiskStore } = await import(pathToFileURL(`${peers}/node_modules/fastmcp/dist/auth/index.js`).href);

async function perOp(n, f) {
  for (let i = 0; i < n / 10; i++) await f(i);
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await f(i);
  return Number(process.hrtime.bigint() - t) / 1e3 / n;
}

const iss = new JWTIssuer({ issuer: "https://mcp.example.com", audience: "https://mcp.example.com", signingKey: "bench-signing-key" });
const issue = await perOp(200000, () => iss.issueAccessToken("client-123", ["read", "write"]));
const tok = iss.issueAccessToken("client-123", ["read", "write"]);
const verify = await perOp(200000, () => iss.verify(tok));
const s = new DiskStore({ directory: work });
const v = { accessToken: "a".repeat(200), refreshToken: "r".repeat(200), expiresIn: 3600 };
const n = 5000;
const save = await perOp(n, (k) => s.save(`mapping-${k}`, v, 3600));
const get = await perOp(n, (k) => s.get(`mapping-${k % n}`));
const take = await perOp(n, (k) => s.take(`mapping-${k}`));
s.destroy();
const d = new DiskStore({ directory: sweepDir });
const t = process.hrtime.bigint();
await d.cleanup();
const sweep = Number(process.hrtime.bigint() - t) / 1e6;
d.destroy();
console.log(JSON.stringify({ issue_us: issue, verify_us: verify, save_us: save, get_us: get, take_us: take, sweep_ms: sweep }));
process.exit(0);
