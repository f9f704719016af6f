// fastmcp TS OAuthProxy code exchange and refresh throughput with a DiskStore, against the running mock identity
// provider. Args: peers dir, idp base url, dir, n. Prints one JSON object.
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { createHash, randomBytes } from "node:crypto";

const [peers, idp, dir, nText] = process.argv.slice(2);
const n = Number(nText);
const { OAuthProxy, DiskStore } = await import(pathToFileURL(`${resolve(peers)}/node_modules/fastmcp/dist/auth/index.js`).href);
const REDIRECT = "http://127.0.0.1:33418/callback";
const store = new DiskStore({ directory: resolve(dir) });
const proxy = new OAuthProxy({
  baseUrl: "http://127.0.0.1:8000",
  upstreamAuthorizationEndpoint: `${idp}/authorize`,
  upstreamTokenEndpoint: `${idp}/token`,
  upstreamClientId: "upstream-client",
  upstreamClientSecret: "upstream secret+/=",
  tokenStorage: store,
  encryptionKey: "bench-encryption-key",
  jwtSigningKey: "bench-jwt-key",
  consentRequired: false,
});
const reg = await proxy.registerClient({ redirect_uris: [REDIRECT] });
const codes = [];
for (let i = 0; i < n; i++) {
  const verifier = randomBytes(48).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const r = await proxy.authorize({ client_id: reg.client_id, redirect_uri: REDIRECT, response_type: "code", code_challenge: challenge, code_challenge_method: "S256" });
  const up = await fetch(r.headers.get("Location"), { redirect: "manual" });
  const cb = await proxy.handleCallback(new Request(up.headers.get("Location")));
  const code = new URL(cb.headers.get("Location")).searchParams.get("code");
  codes.push([code, verifier]);
}
let t = process.hrtime.bigint();
const rts = [];
for (const [code, verifier] of codes) {
  const r = await proxy.exchangeAuthorizationCode({ grant_type: "authorization_code", code, code_verifier: verifier, client_id: reg.client_id, redirect_uri: REDIRECT });
  rts.push(r.refresh_token);
}
const exchange = Number(process.hrtime.bigint() - t) / 1e9;
t = process.hrtime.bigint();
for (const rt of rts) {
  await proxy.exchangeRefreshToken({ grant_type: "refresh_token", refresh_token: rt, client_id: reg.client_id });
}
const refresh = Number(process.hrtime.bigint() - t) / 1e9;
proxy.destroy();
store.destroy();
console.log(JSON.stringify({ exchange_per_s: n / exchange, refresh_per_s: n / refresh }));
process.exit(0);
