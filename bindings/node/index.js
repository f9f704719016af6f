'use strict';
// fastmcp-auth for Node: fastmcp/auth's classes (same names, constructors, options and method signatures) on the
// Rust core. This file only converts: JS values <-> JSON text, fastmcp's camelCase options -> the core's names,
// Request/Response objects <-> plain parts, native errors -> error classes. All logic lives in the core (../../core).

const { existsSync } = require('node:fs');
const { join } = require('node:path');

function loadNative() {
  // The addon comes from the platform package npm installed beside this one (`fastmcp-auth-linux-x64-gnu`, …: an
  // optional dependency per platform, as napi-rs packages are published), or, in a checkout, from a file built
  // next to this one (`npm run build` / scripts/build-cargo.sh). On Linux, glibc is told from musl by the C
  // library's loader file (no process.report at start-up: it gathers a whole diagnostic report just for that).
  const libc =
    process.platform !== 'linux'
      ? ''
      : existsSync(`/lib/ld-musl-${process.arch === 'x64' ? 'x86_64' : 'aarch64'}.so.1`)
        ? '-musl'
        : '-gnu';
  const abi = process.platform === 'win32' ? '-msvc' : libc;
  const platform = `${process.platform}-${process.arch}${abi}`;
  const local = join(__dirname, `fastmcp-auth.${platform}.node`);
  if (existsSync(local)) {
    try {
      return require(local);
    } catch (e) {
      throw new Error(`fastmcp-auth: cannot load the native addon ${local}: ${e.message}`);
    }
  }
  const pkg = `fastmcp-auth-${platform}`;
  try {
    return require(pkg);
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(pkg)) {
      throw new Error(
        `fastmcp-auth: the native addon for ${platform} is missing: install the package ${pkg} (npm installs it ` +
          `as an optional dependency unless optional dependencies are omitted, e.g. --omit=optional or a lockfile ` +
          `made on another platform), or build it from a checkout with \`npm run build\`. Published platforms: ` +
          `linux-x64-gnu, linux-arm64-gnu, linux-x64-musl, linux-arm64-musl, darwin-x64, darwin-arm64, win32-x64-msvc.`,
      );
    }
    throw new Error(`fastmcp-auth: cannot load the native addon ${pkg}: ${e.message}`);
  }
}

const native = loadNative();

// ---- logging -----------------------------------------------------------------------------------------------------
// The core's records ("jwt_signing_key is not set: tokens die with this process", "refresh token replay detected",
// "upstream token endpoint unreachable", ...) go to a logger, `console` by default, warnings and errors only. The
// records are the process's (one core per process): `setLogger` / the `logger` option of the last OAuthProxy built
// decides where they go. A record never holds a token, secret or key.
const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'];
let logger = console;
let logLevel = 'warn';

function forward(level, target, message) {
  const l = logger;
  if (l == null) return;
  const fn = l[level] ?? (level === 'trace' ? l.debug : undefined) ?? l.log;
  try {
    if (typeof fn === 'function') fn.call(l, `[fastmcp-auth] ${message} (${target})`);
  } catch {
    // A logger's own failure is not ours to raise in the middle of a request.
  }
}

/**
 * Where the library's log records go: a console-like object (`error`, `warn`, `info`, `debug` methods; `log` as
 * the fallback), or `null` for nowhere. `level`: the most verbose level sent, `'warn'` by default.
 */
function setLogger(next, { level = 'warn' } = {}) {
  if (next !== null && (typeof next !== 'object' || next === undefined)) {
    throw new TypeError('setLogger: logger must be a console-like object or null');
  }
  if (!LOG_LEVELS.includes(level)) throw new TypeError(`logger level (setLogger's level, OAuthProxy's logLevel) must be one of ${LOG_LEVELS.join(', ')}`);
  logger = next;
  logLevel = level;
  native.setLogSink(next === null ? null : forward, level);
}

/** A record of this JS layer itself (target `fastmcp_auth::node`), at the same level threshold as the core's. */
function jsLog(level, message) {
  if (LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(logLevel)) forward(level, 'fastmcp_auth::node', message);
}

// The default sink is the main thread's: a worker thread loading this module must not take the process's records
// (its thread-safe function dies with the worker). A worker that wants them calls setLogger itself.
if (require('node:worker_threads').isMainThread) native.setLogSink(forward, 'warn');

// ---- errors ------------------------------------------------------------------------------------------------------

/** A library error; `code` is stable (`invalid_key`, `storage_io`, `store_closed`, `not_a_directory`, ...). */
class FastMCPAuthError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'FastMCPAuthError';
    this.code = code;
  }
}

/** fastmcp's OAuthProxyError: an OAuth error code, description and HTTP status. */
class OAuthProxyError extends Error {
  /** `retryAfter` (extra): seconds to wait, on a 429 from the rate limits; sent as `Retry-After`. */
  constructor(code, description, statusCode = 400, retryAfter = undefined) {
    super(code);
    this.code = code;
    this.description = description;
    this.statusCode = statusCode;
    if (retryAfter !== undefined && retryAfter !== null) this.retryAfter = retryAfter;
    this.name = 'OAuthProxyError';
  }

  toJSON() {
    return { error: this.code, error_description: this.description };
  }

  /** The headers of this error's answer besides `Content-Type`: `Retry-After` on a 429. */
  headers() {
    return this.retryAfter === undefined ? {} : { 'Retry-After': String(this.retryAfter) };
  }

  toResponse() {
    return new Response(JSON.stringify(this.toJSON()), {
      headers: { 'Content-Type': 'application/json', ...this.headers() },
      status: this.statusCode,
    });
  }
}

/** The native layer reports errors as JSON in the message; turn them into the classes above. */
function lift(e) {
  if (!(e instanceof Error) || typeof e.message !== 'string' || e.message.charCodeAt(0) !== 123 /* { */) {
    return e;
  }
  let body;
  try {
    body = JSON.parse(e.message);
  } catch {
    return e;
  }
  if (body.oauth) {
    return new OAuthProxyError(body.code, body.description ?? undefined, body.status, body.retry_after ?? undefined);
  }
  return new FastMCPAuthError(body.code, body.message);
}

function rethrow(e) {
  throw lift(e);
}

function parseOrNull(text) {
  return text == null ? null : JSON.parse(text);
}

/** JSON text of a value to store; `undefined` is stored as null (JSON has no undefined). */
function toJsonText(value) {
  const text = JSON.stringify(value);
  return text === undefined ? 'null' : text;
}

function ttlSeconds(ttl) {
  return ttl == null ? undefined : Number(ttl);
}

// ---- stores --------------------------------------------------------------------------------------------------------

const kNative = Symbol('fastmcp-auth.native');

/**
 * What every store here shares: fastmcp's TokenStorage methods over a native store. Values are JSON data
 * (stored as copies, as in a DiskStore). Subclasses pass either the native store or a Promise of it (stores that
 * open on a worker).
 */
class NativeTokenStorage {
  constructor(nativeOrPromise) {
    if (typeof nativeOrPromise?.then === 'function') {
      this[kNative] = null;
      this._opening = nativeOrPromise.then(
        (n) => {
          this[kNative] = n;
          if (this._destroyed) n.close();
          return n;
        },
        rethrow,
      );
      // The error surfaces at the first operation; never as an unhandled rejection.
      this._opening.catch(() => {});
    } else {
      this[kNative] = nativeOrPromise;
      this._opening = Promise.resolve(nativeOrPromise);
    }
  }

  /** Resolves once the store is open (rejects with the open error, e.g. `not_a_directory`). */
  ready() {
    return this._opening.then(() => undefined);
  }

  /** Runs `f` on the native store once it is open; native errors become FastMCPAuthError. */
  async #call(f) {
    const n = this[kNative] ?? (await this._opening);
    try {
      return await f(n);
    } catch (e) {
      throw lift(e);
    }
  }

  async save(key, value, ttl) {
    await this.#call((n) => n.save(key, toJsonText(value), ttlSeconds(ttl)));
  }

  async get(key) {
    return parseOrNull(await this.#call((n) => n.get(key)));
  }

  /** Atomic get-and-delete: among concurrent callers in any process sharing the store, at most one gets the value. */
  async take(key) {
    return parseOrNull(await this.#call((n) => n.take(key)));
  }

  async delete(key) {
    await this.#call((n) => n.delete(key));
  }

  async cleanup() {
    await this.#call((n) => n.cleanup());
  }

  /** The stored keys (extra). */
  keys() {
    return this.#call((n) => n.keys());
  }

  size() {
    return this.#call((n) => n.size());
  }

  /** Stops background work (the sweep); later operations reject with code `store_closed`. */
  destroy() {
    this._destroyed = true;
    this[kNative]?.close();
  }
}

/** fastmcp's MemoryTokenStorage: in-memory with TTLs, swept every `cleanupIntervalMs` on a native thread. */
class MemoryTokenStorage extends NativeTokenStorage {
  constructor(cleanupIntervalMs = 60000) {
    let n;
    try {
      n = native.openMemory(cleanupIntervalMs);
    } catch (e) {
      throw lift(e);
    }
    super(n);
  }

  /** The number of stored items (synchronous, as fastmcp's). */
  size() {
    try {
      return this[kNative].sizeNow();
    } catch (e) {
      throw lift(e);
    }
  }
}

/**
 * fastmcp's DiskStore: one JSON file per key in fastmcp's format, readable by fastmcp's DiskStore and the other way
 * round. Extra options: `strictPermissions` (default false): refuse a directory writable by group/others or owned by
 * another user (otherwise a warning); `fsync` (default false): flush each write to disk before it resolves; `fileNames`:
 * 'fastmcp' (default: fastmcp's file names, so fastmcp's DiskStore reads the directory too; unlike fastmcp, keys
 * that map to the same name never overwrite each other) or 'safe' (keys outside [A-Za-z0-9_-] percent-encoded).
 * Either reads both.
 */
class DiskStore extends NativeTokenStorage {
  constructor(options) {
    if (!options || typeof options.directory !== 'string' || options.directory === '') {
      throw new TypeError('DiskStore: options.directory must be a non-empty string');
    }
    const { directory, cleanupIntervalMs = 60000, fileExtension = '.json', fsync = false } = options;
    const fileNames = options.fileNames ?? 'fastmcp';
    const strict = Boolean(options.strictPermissions);
    super(callNative(() => native.openDisk(directory, cleanupIntervalMs, fileExtension, Boolean(fsync), fileNames, strict)));
  }
}

/** Extra: Redis (>= 6.2) shared by several server replicas. `{ url, prefix = 'fastmcp:', timeoutMs = 5000 }`. */
class RedisStore extends NativeTokenStorage {
  constructor(options) {
    if (!options || typeof options.url !== 'string') {
      throw new TypeError('RedisStore: options.url must be a redis:// or rediss:// URL');
    }
    const { url, prefix = 'fastmcp:', timeoutMs = 5000 } = options;
    super(native.openRedis(url, prefix, timeoutMs));
  }
}

/**
 * fastmcp's EncryptedTokenStorage: AES-256-GCM with a scrypt-derived key, byte-compatible with fastmcp's. Over one
 * of our stores it runs natively; over any other TokenStorage (fastmcp's own, or yours) it encrypts here and calls
 * that backend. Extra option `{ previousKeys }`: keys that still decrypt during a key rotation.
 */
class EncryptedTokenStorage extends NativeTokenStorage {
  constructor(backend, encryptionKey, options = {}) {
    if (typeof encryptionKey !== 'string' || encryptionKey === '') {
      throw new TypeError('EncryptedTokenStorage: encryptionKey must be a non-empty string');
    }
    const previous = options.previousKeys ?? [];
    if (backend instanceof NativeTokenStorage) {
      const wrap = (n) => {
        try {
          return n.encrypted(encryptionKey, previous);
        } catch (e) {
          throw lift(e);
        }
      };
      super(backend[kNative] ? wrap(backend[kNative]) : backend._opening.then(wrap));
      this._backend = null;
    } else if (backend && typeof backend.get === 'function' && typeof backend.save === 'function') {
      super(null);
      this._backend = backend;
      try {
        this._keyring = new native.NativeKeyring(encryptionKey, previous);
      } catch (e) {
        throw lift(e);
      }
    } else {
      throw new TypeError('EncryptedTokenStorage: backend must be a TokenStorage');
    }
  }

  _open(stored) {
    if (typeof stored !== 'string' || stored === '') return null;
    try {
      return JSON.parse(this._keyring.decrypt(stored));
    } catch {
      // Undecryptable (wrong key, tampered): absent, as fastmcp. The value is never logged.
      return null;
    }
  }

  async save(key, value, ttl) {
    if (!this._backend) return super.save(key, value, ttl);
    let sealed;
    try {
      sealed = this._keyring.encrypt(toJsonText(value));
    } catch (e) {
      throw lift(e);
    }
    await this._backend.save(key, sealed, ttl);
  }

  async get(key) {
    if (!this._backend) return super.get(key);
    return this._open(await this._backend.get(key));
  }

  async take(key) {
    if (!this._backend) return super.take(key);
    if (typeof this._backend.take === 'function') return this._open(await this._backend.take(key));
    const value = await this.get(key);
    if (value !== null) await this._backend.delete(key);
    return value;
  }

  async delete(key) {
    if (!this._backend) return super.delete(key);
    await this._backend.delete(key);
  }

  async cleanup() {
    if (!this._backend) return super.cleanup();
    await this._backend.cleanup();
  }

  async size() {
    if (!this._backend) return super.size();
    return this._backend.size?.();
  }

  destroy() {
    if (this._backend) this._backend.destroy?.();
    else super.destroy();
  }
}

// ---- JWT, keys, PKCE ---------------------------------------------------------------------------------------------

/**
 * fastmcp's JWTIssuer: HS256, same claims, byte-compatible tokens. Extra config: `previousKeys` (strings or
 * `{ key, kid }`, still verify during a rotation), `kid`, `leeway` (seconds of clock skew allowed).
 */
class JWTIssuer {
  #n;

  constructor(config) {
    if (!config || typeof config.signingKey !== 'string') {
      throw new TypeError('JWTIssuer: config.signingKey must be a string');
    }
    const opts = {};
    if (config.accessTokenTtl) opts.access_token_ttl = config.accessTokenTtl;
    if (config.refreshTokenTtl) opts.refresh_token_ttl = config.refreshTokenTtl;
    if (config.kid != null) opts.kid = config.kid;
    if (config.leeway != null) opts.leeway = config.leeway;
    if (config.claimLayout != null) opts.layout = config.claimLayout;
    if (config.fixedTime != null) opts.fixed_time = config.fixedTime;
    if (config.previousKeys) {
      opts.previous_keys = config.previousKeys.map((k) => (typeof k === 'string' ? { key: k } : k));
    }
    try {
      this.#n = native.jwtIssuerNew(
        String(config.issuer),
        String(config.audience),
        config.signingKey,
        JSON.stringify(opts),
      );
    } catch (e) {
      throw lift(e);
    }
  }

  /** PBKDF2-SHA256 (salt "fastmcp-oauth-proxy", 32 bytes), base64: fastmcp's key for a secret. Off the event loop. */
  static deriveKey(secret, iterations = 100000) {
    return Promise.resolve()
      .then(() => native.deriveKey(String(secret), integerIn(iterations, 1, 2 ** 31 - 1, 'iterations')))
      .then(undefined, rethrow);
  }

  issueAccessToken(clientId, scope, additionalClaims, expiresIn) {
    return this.#issue(false, clientId, scope, additionalClaims, expiresIn);
  }

  issueRefreshToken(clientId, scope, additionalClaims, expiresIn) {
    return this.#issue(true, clientId, scope, additionalClaims, expiresIn);
  }

  #issue(refresh, clientId, scope, additionalClaims, expiresIn) {
    if (!Array.isArray(scope)) throw new TypeError('scope must be an array of strings');
    try {
      return native.jwtIssue(
        this.#n,
        refresh,
        String(clientId),
        scope,
        additionalClaims == null ? undefined : JSON.stringify(additionalClaims),
        expiresIn ?? undefined,
      );
    } catch (e) {
      throw lift(e);
    }
  }

  /**
   * `{ valid, claims?, error? }` as fastmcp's (error texts included); extra: `code`, a stable reason, and
   * `expectedTokenUse` ('access' | 'refresh'), checked when the token says (the 'py' layout always does).
   */
  async verify(token, expectedTokenUse) {
    const r = native.jwtVerify(this.#n, typeof token === 'string' ? token : '', expectedTokenUse ?? undefined);
    if (typeof r === 'string') return { claims: JSON.parse(r), valid: true };
    const out = { code: r.code, error: r.error, valid: false };
    if (r.payload != null) out.claims = JSON.parse(r.payload);
    return out;
  }
}

/** fastmcp Python's `derive_jwt_key` (exactly one of the materials), urlsafe base64 text. Off the event loop. */
function deriveJwtKey({ highEntropyMaterial, lowEntropyMaterial, salt }) {
  return Promise.resolve()
    .then(() => native.deriveJwtKey(highEntropyMaterial ?? undefined, lowEntropyMaterial ?? undefined, String(salt)))
    .then(undefined, rethrow);
}

/**
 * `n` as an integer in [min, max], else a RangeError as Node's own crypto throws (fastmcp's behaviour): numbers
 * cross to the addon as 32-bit integers, where 2**32 + 1 would silently become 1 and -1 become 4,294,967,295.
 */
function integerIn(n, min, max, name) {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`The value of "${name}" is out of range. It must be an integer >= ${min} and <= ${max}. Received ${String(n)}`);
  }
  return n;
}

function callNative(f) {
  try {
    return f();
  } catch (e) {
    throw lift(e);
  }
}

/** fastmcp's PKCEUtils (RFC 7636). */
class PKCEUtils {
  static generateChallenge(verifier, method = 'S256') {
    if (method !== 'S256' && method !== 'plain') throw new Error(`Unsupported challenge method: ${method}`);
    return callNative(() => native.pkceGenerateChallenge(String(verifier), method));
  }

  static generatePair(method = 'S256') {
    const verifier = PKCEUtils.generateVerifier();
    return { challenge: PKCEUtils.generateChallenge(verifier, method), verifier };
  }

  static generateVerifier(length = 128) {
    if (!(length >= 43 && length <= 128)) throw new Error('PKCE verifier length must be between 43 and 128');
    return callNative(() => native.pkceGenerateVerifier(length));
  }

  static validateChallenge(verifier, challenge, method) {
    if (typeof verifier !== 'string' || typeof challenge !== 'string' || typeof method !== 'string') return false;
    return native.pkceValidateChallenge(verifier, challenge, method);
  }
}

// ---- the OAuth proxy ---------------------------------------------------------------------------------------------

const snake = (k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

/** Our `cimd` options (camelCase; durations in ms, lifetimes in seconds) -> the core's `cimd` members. */
const CIMD_OPTIONS = {
  allowPrivateNetworksForTesting: ['allow_private_networks_for_testing', (v) => v],
  extraRootCertificates: ['extra_root_certificates_pem', (v) => v],
  fetchTimeoutMs: ['fetch_timeout', (v) => (typeof v === 'number' ? v / 1000 : v)],
  maxDocumentBytes: ['max_document_bytes', (v) => v],
  cacheTtl: ['cache_ttl', (v) => v],
  minCacheTtl: ['min_cache_ttl', (v) => v],
  maxCacheTtl: ['max_cache_ttl', (v) => v],
  failureCooldownMs: ['failure_cooldown', (v) => (typeof v === 'number' ? v / 1000 : v)],
};

function cimdConfig(enabled, options) {
  const out = { enabled };
  if (options === undefined || options === null) return out;
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError('OAuthProxy: cimd must be an object of CIMD options');
  }
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue;
    const m = CIMD_OPTIONS[k];
    if (!m) throw new TypeError(`OAuthProxy: unknown cimd option \`${k}\``);
    out[m[0]] = m[1](v);
  }
  return out;
}

/** fastmcp's OAuthProxyConfig (camelCase) -> the core's config JSON. */
function coreConfig(config) {
  // fastmcp's default: upstream claims pass through unless `customClaimsPassthrough: false`. CIMD is off unless
  // `enableCimd: true` (fastmcp TS's default; the core's own default is on).
  const out = { custom_claims_passthrough: true };
  out.cimd = cimdConfig(config.enableCimd === true, config.cimd);
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    switch (k) {
      case 'tokenStorage':
      case 'logger':
      case 'logLevel':
        break;
      case 'encryptionKey':
        if (v === false) out.encryption_disabled = true;
        else out.encryption_key = v;
        break;
      case 'upstreamRequestTimeoutMs':
        out.upstream_request_timeout = v / 1000;
        break;
      // fastmcp TS's `forwardPkce` (default false): false sends upstream the proxy's own S256 challenge (and its
      // verifier at the code exchange); true sends upstream no code_challenge at all (fastmcp 4.20.16's
      // OAuthProxy.authorize: `if (!forwardPkce) set code_challenge`). The client's own PKCE cannot be forwarded by
      // a token-swap proxy: its verifier reaches us only at /token, after the upstream exchange. The core's
      // `forward_pkce` is fastmcp Python's switch, "send the proxy's own PKCE upstream" — the negation.
      case 'forwardPkce':
        out.forward_pkce = !v;
        break;
      // Upstream token claims copied into our JWTs (on by default, as in fastmcp); the options object maps
      // member by member (camelCase -> snake_case).
      case 'customClaimsPassthrough':
        out.custom_claims_passthrough =
          v !== null && typeof v === 'object'
            ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([n, x]) => [snake(n), x]))
            : v;
        break;
      // Accepted and not needed: fastmcp signs a consent cookie with it; our browser-binding cookie is a random id
      // whose SHA-256 is stored with the transaction (nothing to sign, nothing to forge). `ConsentManager` (below)
      // is where a signing key is used.
      case 'consentSigningKey':
        if (typeof v !== 'string') throw new TypeError('OAuthProxy: consentSigningKey must be a string');
        break;
      // Rate limits (ours): { enabled, failureCost, register | authorize | consent | callback | token | revoke:
      // false or { perMinute, burst } }.
      case 'rateLimits':
        out.rate_limits =
          v !== null && typeof v === 'object' && !Array.isArray(v)
            ? Object.fromEntries(
                Object.entries(v)
                  .filter(([, x]) => x !== undefined)
                  .map(([n, x]) => [
                    snake(n),
                    x !== null && typeof x === 'object' && !Array.isArray(x)
                      ? Object.fromEntries(Object.entries(x).map(([m, y]) => [snake(m), y]))
                      : x,
                  ]),
              )
            : v;
        break;
      // Client ID Metadata Documents: mapped above (cimdConfig).
      case 'enableCimd':
      case 'cimd':
        break;
      // Ours: how long a tokenVerifier may take before the token counts as invalid (ms, default 5000).
      case 'tokenVerifierTimeoutMs':
        if (!Number.isInteger(v) || v < 1 || v > 600_000) {
          throw new TypeError('OAuthProxy: tokenVerifierTimeoutMs must be an integer number of milliseconds (1..600000)');
        }
        break;
      // Checked in JS (OAuthProxy#upstreamSession): the verifier is the user's object.
      case 'tokenVerifier':
        if (v === null || typeof v !== 'object' || typeof v.verify !== 'function') {
          throw new TypeError('OAuthProxy: tokenVerifier must be a TokenVerifier (an object with verify(token))');
        }
        break;
      default:
        out[snake(k)] = v;
    }
  }
  return out;
}

function isTokenStorage(s) {
  return s != null && ['save', 'get', 'delete'].every((m) => typeof s[m] === 'function');
}

const jsonOrNull = (v) => (v == null ? null : JSON.stringify(v));

/**
 * A TokenStorage written in JS as a native store handle: the core calls `dispatch` (on the JS thread) and awaits
 * its Promise. fastmcp's interface has no `take`: where the storage has none, it is `get` then `delete`, which is
 * what fastmcp's own proxy does (atomic only as far as the storage makes it).
 */
function jsBackedStore(storage) {
  const number = (n) => (typeof n === 'number' && Number.isFinite(n) && n >= 0 ? String(Math.floor(n)) : null);
  return native.openJsStore(async (op, key, json, ttl) => {
    switch (op) {
      case 'save':
        await storage.save(key, JSON.parse(json), ttl ?? undefined);
        return null;
      case 'get':
        return jsonOrNull(await storage.get(key));
      case 'take': {
        if (typeof storage.take === 'function') return jsonOrNull(await storage.take(key));
        const v = await storage.get(key);
        if (v != null) await storage.delete(key);
        return jsonOrNull(v);
      }
      case 'delete': {
        const r = await storage.delete(key);
        return typeof r === 'boolean' ? String(r) : null;
      }
      case 'cleanup':
        return typeof storage.cleanup === 'function' ? number(await storage.cleanup()) : null;
      case 'size':
        return typeof storage.size === 'function' ? number(await storage.size()) : null;
      case 'keys':
        return typeof storage.keys === 'function' ? JSON.stringify(await storage.keys()) : null;
      default:
        throw new Error(`unknown storage operation ${op}`);
    }
  });
}

function toResponse(text) {
  const r = JSON.parse(text);
  return new Response(r.body === '' || r.status === 302 ? null : r.body, {
    headers: r.headers,
    status: r.status,
  });
}

/** The `Cookie` header of a Request (or a Headers / plain headers object), or undefined. */
function cookieOf(request) {
  const h = request?.headers;
  if (!h) return undefined;
  const v = typeof h.get === 'function' ? h.get('cookie') : (h.cookie ?? h.Cookie);
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Longest request body the mounted routes read (bytes); more is refused with 413 (the core has the same limit). */
const MAX_BODY_BYTES = 64 * 1024;

/** The body of `request` as text, refusing more than `MAX_BODY_BYTES` without reading it all. */
async function readBody(request) {
  const declared = Number(request.headers.get('content-length'));
  if (declared > MAX_BODY_BYTES) return null;
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const NO_STORE = { 'Cache-Control': 'no-store', 'Content-Type': 'application/json', Pragma: 'no-cache' };

function jsonResponse(value, status = 200) {
  return new Response(JSON.stringify(value), { headers: NO_STORE, status });
}

/** An error of ours as the JSON answer RFC 6749 §5.2 describes; anything else is a 500 that reveals nothing. */
function errorResponse(e) {
  if (e instanceof OAuthProxyError) {
    const headers = { ...NO_STORE, ...e.headers() };
    if (e.statusCode === 401) headers['WWW-Authenticate'] = 'Basic realm="oauth"';
    return new Response(JSON.stringify(e.toJSON()), { headers, status: e.statusCode });
  }
  // A request the core could not take (too deep, not JSON, a bad value): the client's mistake, in our words.
  if (e instanceof FastMCPAuthError && (e.code === 'invalid_argument' || e.code === 'invalid_json')) {
    return jsonResponse({ error: 'invalid_request', error_description: e.message }, 400);
  }
  return jsonResponse({ error: 'server_error', error_description: 'internal error' }, 500);
}

const VERIFIER_TIMED_OUT = Symbol('tokenVerifier timed out');

function form(fields) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v != null && v !== '') p.append(k, String(v));
  return p.toString();
}

/**
 * fastmcp's OAuthProxy: DCR in front of a provider without it, with token swap (our short-lived JWTs stand for the
 * upstream tokens, which stay encrypted in the store). Same config and methods; `tokenStorage` is any TokenStorage
 * (this package's stores run natively; others, fastmcp's or yours, are called from the core). Extras: `previousJwtSigningKeys`, `previousEncryptionKeys`, `requirePkce` (default true),
 * `refreshGraceWindow` (seconds, default 30), `claimLayout` ('ts' | 'py'), `providerName`; methods `token(body,
 * authorization)` for a raw token request and `revoke(token, clientId, clientSecret)`.
 */
class OAuthProxy {
  #n = null;
  #opening;
  #ownsStore;
  #metadata;
  #configJson;
  #callbackUrl;
  #verifier;
  #verifierTimeoutMs;

  constructor(config) {
    if (!config || typeof config !== 'object') throw new TypeError('OAuthProxy: config must be an object');
    // Before the core sees the config, so that its findings (missing keys, plain http) reach this logger.
    if (config.logger !== undefined || config.logLevel !== undefined) {
      setLogger(config.logger === undefined ? logger : config.logger, { level: config.logLevel ?? logLevel });
    }
    const json = JSON.stringify(coreConfig(config));
    // Validates the config (errors throw here, as fastmcp's) and fixes the metadata, which needs no store.
    this.#metadata = callNative(() => native.proxyMetadata(json));
    this.#configJson = json;
    this.#verifier = config.tokenVerifier;
    this.#verifierTimeoutMs = config.tokenVerifierTimeoutMs ?? 5000;
    this.#callbackUrl = `${String(config.baseUrl).replace(/\/+$/, '')}${config.redirectPath ?? '/oauth/callback'}`;
    const storage = config.tokenStorage;
    // Our stores run natively; any other TokenStorage (fastmcp's own, yours, or our EncryptedTokenStorage over
    // one of those) is called from the core through a thread-safe function.
    const isNative = storage instanceof NativeTokenStorage && !storage._backend;
    if (storage !== undefined && !isNative && !isTokenStorage(storage)) {
      throw new TypeError('OAuthProxy: tokenStorage must be a TokenStorage (save, get, delete)');
    }
    this.#ownsStore = storage === undefined;
    const make = (store) => {
      try {
        return new native.NativeProxy(json, store ?? undefined);
      } catch (e) {
        throw lift(e);
      }
    };
    if (storage === undefined || (isNative && storage[kNative])) {
      this.#n = make(storage?.[kNative]);
      this.#opening = Promise.resolve(this.#n);
    } else if (isNative) {
      this.#opening = storage._opening.then((s) => (this.#n = make(s)));
      this.#opening.catch(() => {});
    } else {
      this.#n = make(jsBackedStore(storage));
      this.#opening = Promise.resolve(this.#n);
    }
  }

  async #proxy() {
    return this.#n ?? this.#opening;
  }

  async registerClient(request) {
    return this.#register(request, undefined);
  }

  async #register(request, remoteAddress) {
    const n = await this.#proxy();
    return JSON.parse(
      await callNative(() => n.registerClient(JSON.stringify(request ?? {}), remoteAddress)).then(undefined, rethrow),
    );
  }

  /**
   * The authorization endpoint: the query parameters in, a consent page or a redirect out, with a `Set-Cookie`
   * that binds the authorization to the browser. `request` (extra, optional): the browser's Request, whose
   * `Cookie` header lets one browser keep one binding. Send the Response with all its headers (`mount` does).
   */
  async authorize(params, request) {
    return this.#authorizeQuery(form(params ?? {}), cookieOf(request));
  }

  async #authorizeQuery(query, cookie, remoteAddress) {
    const n = await this.#proxy();
    return toResponse(await callNative(() => n.authorize(query, cookie, remoteAddress)).then(undefined, rethrow));
  }

  /** The consent form's POST (a Request, with the browser's `Cookie` header). */
  async handleConsent(request) {
    return this.#consent(await request.text(), cookieOf(request), undefined);
  }

  async #consent(body, cookie, remoteAddress) {
    const n = await this.#proxy();
    return toResponse(await callNative(() => n.handleConsent(body, cookie, remoteAddress)).then(undefined, rethrow));
  }

  /** The upstream provider's redirect back to us (a Request, with the browser's `Cookie` header). */
  async handleCallback(request, remoteAddress = undefined) {
    const n = await this.#proxy();
    const query = new URL(request.url).search.slice(1);
    return toResponse(
      await callNative(() => n.handleCallback(query, cookieOf(request), remoteAddress)).then(undefined, rethrow),
    );
  }

  /**
   * Extra: serves every route of the proxy from a FastMCP server's Hono app (`server.getApp()`), which FastMCP
   * consults before its built-in `/oauth/*` handlers. Those handlers hand the proxy a Request without the
   * browser's headers and send back only `Location` or the body, so the browser-binding cookie, the consent
   * page's CSP and X-Frame-Options, and `Cache-Control: no-store` would all be lost; through `mount` every header
   * goes both ways. Routes (under `baseUrl`'s path): GET `/oauth/authorize`, POST `/oauth/consent`, GET the
   * callback (`redirectPath`, default `/oauth/callback`), POST `/oauth/register`, POST `/oauth/token`, POST
   * `/oauth/revoke` (RFC 7009), GET `/.well-known/oauth-authorization-server` (RFC 8414); with
   * `options.resource` (the MCP endpoint URL) also its RFC 9728 metadata at
   * `/.well-known/oauth-protected-resource<path>`. Returns `server`.
   */
  mount(server, options = {}) {
    const app = server?.getApp?.();
    if (!app || typeof app.get !== 'function' || typeof app.post !== 'function') {
      throw new TypeError('OAuthProxy.mount: server must be a FastMCP server (with getApp())');
    }
    const meta = JSON.parse(this.#metadata);
    const base = new URL(meta.issuer);
    const prefix = base.pathname.replace(/\/+$/, '');
    const callbackPath = new URL(this.#callbackUrl).pathname;
    // The caller's address for the rate limits: the socket's peer (FastMCP serves with @hono/node-server), or what
    // `options.remoteAddress(request, context)` says (behind a reverse proxy: its forwarded address).
    const addressOf =
      typeof options.remoteAddress === 'function'
        ? (c) => options.remoteAddress(c.req.raw, c) ?? undefined
        : (c) => c.env?.incoming?.socket?.remoteAddress ?? undefined;
    const guard = (handler) => async (c) => {
      try {
        const addr = addressOf(c);
        return await handler(c.req.raw, typeof addr === 'string' ? addr : undefined);
      } catch (e) {
        return errorResponse(lift(e));
      }
    };
    const tooLarge = () =>
      jsonResponse({ error: 'invalid_request', error_description: `request body larger than ${MAX_BODY_BYTES} bytes` }, 413);
    app.get(
      `${prefix}/oauth/authorize`,
      guard((req, addr) => this.#authorizeQuery(new URL(req.url).search.slice(1), cookieOf(req), addr)),
    );
    app.post(
      `${prefix}/oauth/consent`,
      guard(async (req, addr) => {
        const body = await readBody(req);
        if (body === null) return tooLarge();
        return this.#consent(body, cookieOf(req), addr);
      }),
    );
    app.get(
      callbackPath,
      guard((req, addr) => this.handleCallback(req, addr)),
    );
    app.post(
      `${prefix}/oauth/register`,
      guard(async (req, addr) => {
        const body = await readBody(req);
        if (body === null) return tooLarge();
        let request;
        try {
          request = JSON.parse(body);
        } catch {
          return jsonResponse({ error: 'invalid_client_metadata', error_description: 'body must be JSON' }, 400);
        }
        try {
          return jsonResponse(await this.#register(request, addr), 201);
        } catch (e) {
          // JSON nested deeper than the engine's stack (or than the core reads): the client's mistake.
          if (e instanceof RangeError) {
            return jsonResponse({ error: 'invalid_client_metadata', error_description: 'request nested too deeply' }, 400);
          }
          throw e;
        }
      }),
    );
    app.post(
      `${prefix}/oauth/token`,
      guard(async (req, addr) => {
        const body = await readBody(req);
        if (body === null) return tooLarge();
        return jsonResponse(await this.token(body, req.headers.get('authorization') ?? undefined, addr));
      }),
    );
    app.post(
      `${prefix}/oauth/revoke`,
      guard(async (req, addr) => {
        const body = await readBody(req);
        if (body === null) return tooLarge();
        const n = await this.#proxy();
        const auth = req.headers.get('authorization') ?? undefined;
        await callNative(() => n.revokeRequest(body, auth, addr)).then(undefined, rethrow);
        return new Response(null, { headers: { 'Cache-Control': 'no-store' }, status: 200 });
      }),
    );
    const metadata = () => jsonResponse(meta);
    if (options.resource) {
      const resource = String(options.resource);
      const path = new URL(resource).pathname.replace(/\/+$/, '');
      const prm = guard(async () =>
        jsonResponse(JSON.parse(callNative(() => native.proxyResourceMetadata(this.#configJson, resource)))),
      );
      app.get(`/.well-known/oauth-protected-resource${path}`, prm);
      if (path) app.get('/.well-known/oauth-protected-resource', prm);
    }
    if (options.metricsPath) {
      app.get(
        String(options.metricsPath),
        guard(
          async () =>
            new Response((await this.#proxy()).metrics(), {
              headers: { 'Content-Type': 'application/openmetrics-text; version=1.0.0; charset=utf-8' },
            }),
        ),
      );
    }
    app.get(`/.well-known/oauth-authorization-server${prefix}`, metadata);
    if (prefix) app.get(`${prefix}/.well-known/oauth-authorization-server`, metadata);
    return server;
  }

  async exchangeAuthorizationCode(request) {
    return this.#token('authorization_code', { ...request, grant_type: 'authorization_code' });
  }

  async exchangeRefreshToken(request) {
    return this.#token('refresh_token', { ...request, grant_type: 'refresh_token' });
  }

  /** Extra: a raw token request (urlencoded body, optional Authorization header), any grant. */
  async token(body, authorization, remoteAddress = undefined) {
    const n = await this.#proxy();
    return JSON.parse(
      await callNative(() => n.token('any', String(body), authorization, remoteAddress)).then(undefined, rethrow),
    );
  }

  async #token(grant, fields) {
    const n = await this.#proxy();
    return JSON.parse(await callNative(() => n.token(grant, form(fields), undefined)).then(undefined, rethrow));
  }

  /**
   * The upstream tokens behind one of our access tokens, or null (expired, revoked, forged, unknown; or, with a
   * `tokenVerifier`, an upstream access token it does not find valid).
   */
  async loadUpstreamTokens(fastmcpToken) {
    return (await this._upstreamSession(fastmcpToken))?.upstream ?? null;
  }

  /**
   * Internal (AuthProvider): `{ upstream, claims }` behind one of our access tokens, or null. With a `tokenVerifier`
   * (fastmcp accepts the option and never calls it; we do), the upstream access token must pass its `verify()`
   * (a rejection or a throw counts as invalid: refusing beats guessing), and `claims` are what it returned.
   */
  async _upstreamSession(fastmcpToken) {
    // In memory the core answers in place (µs, no hop to its runtime and back through the event loop); any other
    // store is read off the event loop.
    const n = await this.#proxy();
    const inline = callNative(() => n.loadUpstreamTokensInline(String(fastmcpToken)));
    const text =
      inline !== null ? inline : await callNative(() => n.loadUpstreamTokens(String(fastmcpToken))).then(undefined, rethrow);
    const t = parseOrNull(text);
    if (!t) return null;
    t.issuedAt = new Date(t.issuedAt);
    const claims = await this.#verifiedClaims(t.accessToken);
    return claims === null ? null : { claims, upstream: t };
  }

  /** The verifier's claims for an upstream access token (undefined without a verifier), or null when refused. */
  async #verifiedClaims(upstreamAccessToken) {
    if (!this.#verifier) return undefined;
    let r;
    let timer;
    try {
      r = await Promise.race([
        this.#verifier.verify(upstreamAccessToken),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(VERIFIER_TIMED_OUT), this.#verifierTimeoutMs);
          timer.unref?.();
        }),
      ]);
    } catch (e) {
      // The verifier's error text may quote the token: not logged, not returned.
      jsLog(
        'warn',
        e === VERIFIER_TIMED_OUT
          ? `tokenVerifier did not answer within ${this.#verifierTimeoutMs} ms; the request is refused`
          : 'tokenVerifier threw; the request is refused',
      );
      return null;
    } finally {
      clearTimeout(timer);
    }
    if (r?.valid !== true) return null;
    if (r.claims === undefined || r.claims === null) return {};
    // A verifier's claims must be a plain object (the session's `claims`); anything else is a broken verifier.
    if (typeof r.claims !== 'object' || Array.isArray(r.claims)) {
      jsLog('warn', 'tokenVerifier returned claims that are not an object; the request is refused');
      return null;
    }
    return r.claims;
  }

  /** Extra: RFC 7009 revocation by the token's client. */
  async revoke(token, clientId, clientSecret) {
    const n = await this.#proxy();
    await callNative(() => n.revoke(String(token), String(clientId), clientSecret ?? undefined)).then(undefined, rethrow);
  }

  /**
   * Extra: RFC 9728 protected resource metadata of `resource` (the MCP endpoint, e.g.
   * `https://mcp.example.com/mcp`), with camelCase names for FastMCP's `oauth.protectedResource` (FastMCP converts
   * them back to snake_case). Never lists `offline_access`.
   */
  protectedResourceMetadata(resource) {
    const meta = JSON.parse(callNative(() => native.proxyResourceMetadata(this.#configJson, String(resource))));
    const out = {};
    for (const [k, v] of Object.entries(meta)) out[camel(k)] = v;
    return out;
  }

  /**
   * Extra: the bearer check of a request to `resource` (RFC 6750 §3, RFC 9728 §5.1). `request`: a Request, a
   * headers object, or the `Authorization` header value. Resolves to `{ ok: true, claims, upstream }` (a live
   * token of ours, for this resource, with every scope in `requiredScopes`), or `{ ok: false, response }`: the
   * 401/403 Response with its `WWW-Authenticate` challenge, to throw from FastMCP's `authenticate` as it is.
   */
  async checkBearer(request, resource, requiredScopes = []) {
    const { verifiedClaims, ...r } = await this.#bearer(request, resource, requiredScopes);
    void verifiedClaims;
    return r;
  }

  /** checkBearer, with the tokenVerifier's claims (`verifiedClaims`) when the token passes. */
  async #bearer(request, resource, requiredScopes) {
    const n = await this.#proxy();
    const header =
      typeof request === 'string'
        ? request
        : typeof request?.headers?.get === 'function'
          ? request.headers.get('authorization')
          : (request?.headers?.authorization ?? request?.authorization);
    const args = [typeof header === 'string' ? header : undefined, String(resource), requiredScopes.map(String)];
    // In memory the core answers in place (see loadUpstreamTokens); any other store off the event loop.
    const inline = callNative(() => n.checkBearerInline(...args));
    const r = JSON.parse(inline !== null ? inline : await callNative(() => n.checkBearer(...args)).then(undefined, rethrow));
    if (!r.authorized) return { ok: false, response: toResponse(JSON.stringify(r.response)) };
    r.upstream.issuedAt = new Date(r.upstream.issuedAt);
    const verified = await this.#verifiedClaims(r.upstream.accessToken);
    if (verified === null) {
      // RFC 6750 §3.1: the token is no longer good upstream.
      return {
        ok: false,
        response: new Response(JSON.stringify({ error: 'invalid_token', error_description: 'upstream token rejected' }), {
          headers: {
            'Content-Type': 'application/json',
            'WWW-Authenticate': 'Bearer error="invalid_token", error_description="upstream token rejected"',
          },
          status: 401,
        }),
      };
    }
    return { claims: r.claims, ok: true, upstream: r.upstream, verifiedClaims: verified };
  }

  /**
   * Internal (AuthProvider): `{ upstream, claims }` (the tokenVerifier's claims) behind a request's Authorization
   * header when it is a live token of ours for `resource` (RFC 8707 audience binding, RFC 9728; MCP authorization,
   * "Token Audience Binding"), else null.
   */
  async _bearerSession(authorization, resource) {
    const r = await this.#bearer(String(authorization), resource, []);
    return r.ok ? { claims: r.verifiedClaims, upstream: r.upstream } : null;
  }

  /** RFC 8414 metadata with fastmcp's camelCase names (FastMCP converts them back to snake_case). */
  getAuthorizationServerMetadata() {
    const out = {};
    for (const [k, v] of Object.entries(JSON.parse(this.#metadata))) out[camel(k)] = v;
    // This document is what FastMCP serves from its own routes, which have no revocation endpoint: advertise only
    // what is served (RFC 8414 §2). `mount(server)` serves the full document, revocation endpoint included, from
    // the route that serves `/oauth/revoke` too.
    delete out.revocationEndpoint;
    delete out.revocationEndpointAuthMethodsSupported;
    return out;
  }

  /**
   * Extra: readiness for a probe — one write/read/delete round trip through the storage within `timeoutMs`
   * (default 2000). Resolves to `{ ok, store: 'ok' | what failed, latencyMs, warnings }`; never rejects for an
   * unhealthy store.
   */
  async health({ timeoutMs = 2000 } = {}) {
    const n = await this.#proxy();
    const h = JSON.parse(await callNative(() => n.health(Number(timeoutMs))).then(undefined, rethrow));
    return { latencyMs: h.latency_ms, ok: h.ok, store: h.store, warnings: h.warnings };
  }

  /**
   * Extra: the proxy's metrics in the Prometheus text exposition format (no label carries a token, secret,
   * client id or address). `mount(server, { metricsPath: '/metrics' })` serves it.
   */
  metrics() {
    // Before the storage has opened nothing has been counted: an empty exposition.
    return this.#n ? this.#n.metrics() : '# EOF\n';
  }

  /**
   * Extra: what the production checklist found in the config at construction (a weak or missing key, plain http
   * to a non-loopback host): sentences naming the option, never its value. `strict: true` refuses to start instead.
   */
  configWarnings() {
    // From the config alone: available before the storage has opened.
    return JSON.parse(callNative(() => native.proxyConfigWarnings(this.#configJson)));
  }

  /** Resolves once the proxy's storage is open. */
  ready() {
    return this.#opening.then(() => undefined);
  }

  /** Stops background work the proxy owns (its own default store); a store you passed in stays yours. */
  destroy() {
    if (this.#ownsStore) this.#n?.close();
  }
}

// ---- fastmcp/auth's constants and session helpers -----------------------------------------------------------------
// Same values and behaviour as npm fastmcp 4.20.16's (test/auth-helpers.test.mjs compares them case by case); the
// constants are also the proxy's defaults (access_token_ttl, refresh_token_ttl, authorization_code_ttl,
// transaction_ttl, fallback_access_token_expiry_seconds in the core), in seconds.
const DEFAULT_ACCESS_TOKEN_TTL = 3600;
const DEFAULT_ACCESS_TOKEN_TTL_NO_REFRESH = 31_536_000;
const DEFAULT_AUTHORIZATION_CODE_TTL = 300;
const DEFAULT_REFRESH_TOKEN_TTL = 2_592_000;
const DEFAULT_TRANSACTION_TTL = 600;

/** The session, or an Error "Session is not authenticated" when there is none. */
function getAuthSession(session) {
  if (!session) throw new Error('Session is not authenticated');
  return session;
}

/** A check passing when every check (function of the session, or boolean) passes. */
function requireAll(...checks) {
  return (auth) => checks.every((check) => (typeof check === 'function' ? check(auth) : check));
}

/** A check passing when any check (function of the session, or boolean) passes. */
function requireAny(...checks) {
  return (auth) => checks.some((check) => (typeof check === 'function' ? check(auth) : check));
}

/** Whether there is a session at all. */
function requireAuth(auth) {
  return auth !== undefined && auth !== null;
}

/** A check passing when the session's `role` (a string) is one of `allowedRoles`. */
function requireRole(...allowedRoles) {
  return (auth) => {
    if (!auth) return false;
    const role = auth.role;
    return typeof role === 'string' && allowedRoles.includes(role);
  };
}

/** A check passing when the session's `scopes` (array or Set) hold every one of `requiredScopes`. */
function requireScopes(...requiredScopes) {
  return (auth) => {
    if (!auth) return false;
    const scopes = auth.scopes;
    if (!scopes) return false;
    const set = Array.isArray(scopes) ? new Set(scopes) : scopes instanceof Set ? scopes : new Set();
    return requiredScopes.every((scope) => set.has(scope));
  };
}

// ---- fastmcp/auth's provider classes --------------------------------------------------------------------------------
// AuthProvider / OAuthProvider / GitHubProvider / GoogleProvider / AzureProvider with npm fastmcp 4.20.16's
// constructors, methods and defaults, on our OAuthProxy: `new FastMCP({ auth: new GitHubProvider({...}) })` works
// with the import changed.
//
// Mounting. FastMCP serves `auth`'s proxy from built-in /oauth/* handlers that pass the proxy no request headers and
// send back only `Location` or a body: the browser-binding cookie (MCP Security Best Practices, "Confused Deputy";
// RFC 9700 §4.7) can neither be set nor read there, so our consent and callback would refuse every browser. Our
// routes must be in the server's Hono app (`server.getApp()`, consulted first), which `proxy.mount(server)` does —
// but FastMCP hands `auth` no reference to the server. It does call `auth.getOAuthConfig()` from its constructor,
// after `this.options = options`. So while a provider waits for its server, we note each FastMCP under
// construction (through EventEmitter.init, which every EventEmitter constructor calls, FastMCP's ESM and CJS builds
// alike), and `getOAuthConfig()` mounts on the noted server whose `options.auth` is this very provider — an
// identity check, nothing guessed — once per server. The note is a WeakRef; the hook notes nothing while no
// provider is alive. Where it cannot work (a FastMCP that is no EventEmitter, `oauth` given by hand next to `auth`,
// `oauth: { proxy: provider.getProxy() }`), call `provider.mount(server)` yourself; a warning says so.
const events = require('node:events');
let liveProviders = 0;
let underConstruction = null;
let hooked = false;
// A provider counts until it is garbage-collected (one may serve several servers in turn, e.g. across restarts).
const providerGone = new FinalizationRegistry(() => {
  liveProviders -= 1;
  if (liveProviders === 0) underConstruction = null;
});

function looksLikeFastMCP(o) {
  return o != null && typeof o.getApp === 'function' && typeof o.addTool === 'function' && typeof o.start === 'function';
}

/**
 * Notes FastMCP servers under construction while any provider lives. Installed once and never removed: removing it
 * could unhook another copy of this package that wrapped it afterwards; with no provider alive it only counts.
 */
function watchForServers(provider) {
  liveProviders += 1;
  providerGone.register(provider, undefined);
  if (hooked || typeof events.init !== 'function') return;
  hooked = true;
  const init = events.init;
  events.init = function fastmcpAuthInit(...args) {
    if (liveProviders > 0 && looksLikeFastMCP(this)) underConstruction = new WeakRef(this);
    return init.apply(this, args);
  };
}

/** OAuthProxy options a provider sets itself, and what to use instead. */
const PROVIDER_OWNED = {
  upstreamAuthorizationEndpoint: 'override getAuthorizationEndpoint() (OAuthProvider: authorizationEndpoint)',
  upstreamClientId: 'use clientId',
  upstreamClientSecret: 'use clientSecret',
  upstreamTokenEndpoint: 'override getTokenEndpoint() (OAuthProvider: tokenEndpoint)',
};

const AUTH_PROVIDER_KEYS = new Set([
  'allowedRedirectUriPatterns',
  'baseUrl',
  'clientId',
  'clientSecret',
  'consentRequired',
  'encryptionKey',
  'jwtSigningKey',
  'scopes',
  'tokenStorage',
]);

/** The payload of a JWT (not verified: see createSession), or undefined. */
function jwtPayload(token) {
  if (typeof token !== 'string') return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const p = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return p !== null && typeof p === 'object' && !Array.isArray(p) ? p : undefined;
  } catch {
    return undefined;
  }
}

/**
 * fastmcp's AuthProvider: an OAuthProxy (created lazily by `createProxy()`), FastMCP's `authenticate` and its
 * `oauth` config. Subclasses give `getAuthorizationEndpoint()`, `getTokenEndpoint()`, `getDefaultScopes()`.
 * Config: fastmcp's AuthProviderConfig; any other key is one of our OAuthProxy options (`rateLimits`, `logger`,
 * `previousJwtSigningKeys`, `tokenVerifier`, ...) and goes to the proxy, where an unknown one is an error.
 */
class AuthProvider {
  /** The servers (FastMCP or any with getApp()) this provider's routes are mounted on. */
  #mountedOn = new WeakSet();
  #everMounted = false;
  #warned = false;

  constructor(config) {
    if (new.target === AuthProvider) throw new TypeError('AuthProvider is abstract: use a provider class');
    const name = new.target.name;
    if (!config || typeof config !== 'object') throw new TypeError(`${name}: config must be an object`);
    // What fastmcp's types require, checked now rather than at the first login (a missing secret would only show
    // as a failed upstream code exchange).
    for (const k of ['baseUrl', 'clientId', 'clientSecret']) {
      if (typeof config[k] !== 'string' || config[k] === '') throw new TypeError(`${name}: ${k} is required (a non-empty string)`);
    }
    // The proxy's upstream options are the provider's own: refused, never silently replaced.
    for (const [k, instead] of Object.entries(PROVIDER_OWNED)) {
      if (config[k] !== undefined) throw new TypeError(`${name}: ${k} is not an option of a provider; ${instead}`);
    }
    this.config = config;
    this._proxy = undefined;
    watchForServers(this);
  }

  /** The proxy, created on first use. */
  get proxy() {
    if (!this._proxy) this._proxy = this.createProxy();
    return this._proxy;
  }

  /**
   * Our OAuthProxy options for this provider: the subclass's `extra`, the user's own OAuthProxy options (every key
   * that is neither AuthProviderConfig's nor in `ownKeys`, the subclass's), then fastmcp's mapping.
   */
  proxyConfig(extra = {}, ownKeys = []) {
    const c = this.config;
    const passThrough = Object.fromEntries(
      Object.entries(c).filter(([k]) => !AUTH_PROVIDER_KEYS.has(k) && !ownKeys.includes(k)),
    );
    return {
      ...extra,
      ...passThrough,
      // The subclass's upstream parameters (Google's offline access) stay unless the user sets the same names.
      extraAuthorizationParams:
        extra.extraAuthorizationParams || passThrough.extraAuthorizationParams
          ? { ...extra.extraAuthorizationParams, ...passThrough.extraAuthorizationParams }
          : undefined,
      // fastmcp: no fallback list; unset, our proxy's default (loopback redirect URIs only) applies.
      allowedRedirectUriPatterns: c.allowedRedirectUriPatterns,
      baseUrl: c.baseUrl,
      consentRequired: c.consentRequired ?? true,
      encryptionKey: c.encryptionKey,
      jwtSigningKey: c.jwtSigningKey,
      scopes: c.scopes ?? this.getDefaultScopes(),
      // fastmcp falls back to memory for a null storage too.
      tokenStorage: c.tokenStorage ?? undefined,
      upstreamAuthorizationEndpoint: this.getAuthorizationEndpoint(),
      upstreamClientId: c.clientId,
      upstreamClientSecret: c.clientSecret,
      upstreamTokenEndpoint: this.getTokenEndpoint(),
    };
  }

  createProxy() {
    return new OAuthProxy(this.proxyConfig());
  }

  /**
   * FastMCP's `authenticate`: the Bearer token of `request` (an IncomingMessage) → the session behind it, or
   * undefined (no token, or not one of ours that is live).
   */
  async authenticate(request) {
    if (!request) return undefined;
    this.#warnUnmounted('authenticate() is called by a server');
    const header = request.headers?.authorization;
    if (typeof header !== 'string' || !header.startsWith('Bearer ')) return undefined;
    const proxy = this.proxy;
    // A subclass's createProxy() may return fastmcp's own OAuthProxy: then fastmcp's behaviour.
    if (typeof proxy._upstreamSession !== 'function') {
      const upstream = await proxy.loadUpstreamTokens(header.slice(7));
      return upstream ? this.createSession(upstream) : undefined;
    }
    // The token must have been issued for this server: the MCP endpoint the request went to, or `baseUrl` (what
    // getOAuthConfig() advertises as the resource). A token of ours for another resource is refused (RFC 8707),
    // which fastmcp's authenticate does not check.
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    const found = await proxy._bearerSession(header, `${new URL(this.config.baseUrl).origin}${path}`);
    if (!found) return undefined;
    const session = this.createSession(found.upstream);
    if (found.claims !== undefined) session.claims = found.claims;
    return session;
  }

  /**
   * Once per provider: a warning when a server uses it and our routes were never mounted anywhere (FastMCP built
   * with `oauth` given by hand next to `auth`, which skips getOAuthConfig(); or getOAuthConfig() called outside
   * FastMCP's constructor): FastMCP's built-in OAuth routes drop the browser-binding cookie and refuse every login.
   */
  #warnUnmounted(when) {
    if (this.#everMounted || this.#warned || typeof this.proxy.mount !== 'function') return;
    this.#warned = true;
    jsLog(
      'warn',
      `${this.constructor.name}: ${when} but its OAuth routes are not mounted on any server; call provider.mount(server), or FastMCP's built-in OAuth routes (which drop cookies) will refuse every login`,
    );
  }

  /**
   * FastMCP's `oauth` option for this provider (fastmcp's shape). Called by FastMCP's constructor: mounts our
   * routes on that server (see above).
   */
  getOAuthConfig() {
    const proxy = this.proxy;
    const server = underConstruction?.deref();
    if (server && server.options?.auth === this && typeof proxy.mount === 'function') {
      // Every server this provider is given to (a shared provider, a restart in the same process) gets the routes.
      if (!this.#mountedOn.has(server)) this.mount(server);
    } else {
      this.#warnUnmounted('getOAuthConfig() was called outside a FastMCP constructor');
    }
    return {
      authorizationServer: proxy.getAuthorizationServerMetadata(),
      enabled: true,
      protectedResource: {
        authorizationServers: [this.config.baseUrl],
        resource: this.config.baseUrl,
        scopesSupported: this.config.scopes ?? this.getDefaultScopes(),
      },
      proxy,
    };
  }

  /** The OAuthProxy (advanced use). */
  getProxy() {
    return this.proxy;
  }

  /**
   * Extra: serves the proxy's routes from `server` (`proxy.mount(server, options)`); done by `new FastMCP({ auth })`
   * itself, needed only where the server was built otherwise. Returns `server`.
   */
  mount(server, options = {}) {
    this.proxy.mount(server, options);
    this.#mountedOn.add(server);
    this.#everMounted = true;
    return server;
  }

  /**
   * The session of an upstream token set: fastmcp's fields (`accessToken`, `expiresAt` in Unix seconds, `idToken`,
   * `refreshToken`, `scopes`). `expiresAt` counts from when upstream issued the token (fastmcp counts from now).
   */
  createSession(upstreamTokens) {
    const issued = upstreamTokens.issuedAt instanceof Date ? upstreamTokens.issuedAt.getTime() : Date.now();
    return {
      accessToken: upstreamTokens.accessToken,
      expiresAt: upstreamTokens.expiresIn ? Math.floor(issued / 1000) + upstreamTokens.expiresIn : undefined,
      idToken: upstreamTokens.idToken,
      refreshToken: upstreamTokens.refreshToken,
      scopes: upstreamTokens.scope,
    };
  }

  getAuthorizationEndpoint() {
    throw new TypeError(`${this.constructor.name} must implement getAuthorizationEndpoint()`);
  }

  getDefaultScopes() {
    throw new TypeError(`${this.constructor.name} must implement getDefaultScopes()`);
  }

  getTokenEndpoint() {
    throw new TypeError(`${this.constructor.name} must implement getTokenEndpoint()`);
  }
}

/** Any OAuth 2.0 provider: fastmcp's GenericOAuthProviderConfig (`authorizationEndpoint`, `tokenEndpoint`). */
class OAuthProvider extends AuthProvider {
  constructor(config) {
    super(config);
    this.genericConfig = config;
  }

  createProxy() {
    return new OAuthProxy(
      this.proxyConfig(
        { upstreamTokenEndpointAuthMethod: this.genericConfig.tokenEndpointAuthMethod ?? 'client_secret_basic' },
        ['authorizationEndpoint', 'tokenEndpoint', 'tokenEndpointAuthMethod'],
      ),
    );
  }

  getAuthorizationEndpoint() {
    return this.genericConfig.authorizationEndpoint;
  }

  getDefaultScopes() {
    return ['openid'];
  }

  getTokenEndpoint() {
    return this.genericConfig.tokenEndpoint;
  }
}

/**
 * GitHub OAuth Apps. As the core's GitHub preset (fastmcp Python's): the client secret in the token request body,
 * the consent page naming GitHub. `username` is not filled (it needs a call to GitHub's /user, which fastmcp does
 * not make either); give a `tokenVerifier` for it to reach `session.claims`.
 */
class GitHubProvider extends AuthProvider {
  createProxy() {
    return new OAuthProxy(this.proxyConfig({ preset: 'github' }));
  }

  getAuthorizationEndpoint() {
    return 'https://github.com/login/oauth/authorize';
  }

  getDefaultScopes() {
    return ['read:user', 'user:email'];
  }

  getTokenEndpoint() {
    return 'https://github.com/login/oauth/access_token';
  }
}

/**
 * Google. As the core's Google preset: `access_type=offline` and `prompt=consent` upstream, without which Google
 * issues no refresh token and every login ends with its first access token (an hour). `email` from the ID token.
 */
class GoogleProvider extends AuthProvider {
  createProxy() {
    return new OAuthProxy(this.proxyConfig({ preset: 'google' }));
  }

  /**
   * fastmcp's session plus `email` from the ID token Google sent straight to us over TLS (OIDC Core §3.1.3.7), only
   * when Google says it is verified (`email_verified`).
   */
  createSession(upstreamTokens) {
    const session = super.createSession(upstreamTokens);
    const claims = jwtPayload(upstreamTokens.idToken);
    if (typeof claims?.email === 'string' && claims.email_verified === true) session.email = claims.email;
    return session;
  }

  getAuthorizationEndpoint() {
    return 'https://accounts.google.com/o/oauth2/v2/auth';
  }

  getDefaultScopes() {
    return ['openid', 'profile', 'email'];
  }

  getTokenEndpoint() {
    return 'https://oauth2.googleapis.com/token';
  }
}

/**
 * Microsoft Entra ID (Azure AD) v2.0, `tenantId` default `common`. As the core's Azure preset: the client secret in
 * the body. fastmcp's default scopes have no `offline_access`: add it to `scopes` for upstream refresh tokens.
 */
class AzureProvider extends AuthProvider {
  constructor(config) {
    const tenantId = config?.tenantId ?? 'common';
    // It goes into the endpoints' path: nothing but a tenant id or domain.
    if (typeof tenantId !== 'string' || !/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(tenantId)) {
      throw new TypeError('AzureProvider: tenantId must be a tenant id, a domain, or common / organizations / consumers');
    }
    super(config);
    this.tenantId = tenantId;
  }

  createProxy() {
    return new OAuthProxy(this.proxyConfig({ preset: 'azure' }, ['tenantId']));
  }

  /**
   * fastmcp's session plus `upn` from the ID token's `upn` claim (an optional claim of the app registration).
   * Never from `preferred_username`, which Microsoft documents as mutable and not for authorization decisions.
   */
  createSession(upstreamTokens) {
    const session = super.createSession(upstreamTokens);
    const upn = jwtPayload(upstreamTokens.idToken)?.upn;
    if (typeof upn === 'string') session.upn = upn;
    return session;
  }

  getAuthorizationEndpoint() {
    return `https://login.microsoftonline.com/${this.tenantId}/oauth2/v2.0/authorize`;
  }

  getDefaultScopes() {
    return ['openid', 'profile', 'email'];
  }

  getTokenEndpoint() {
    return `https://login.microsoftonline.com/${this.tenantId}/oauth2/v2.0/token`;
  }
}

// ---- ConsentManager -----------------------------------------------------------------------------------------------
const { createHmac, randomBytes: cryptoRandomBytes, timingSafeEqual } = require('node:crypto');

const HTML_ESCAPES = { '"': '&quot;', '&': '&amp;', "'": '&#x27;', '/': '&#x2F;', '<': '&lt;', '>': '&gt;' };
const escapeHtml = (text) => String(text).replace(/[&<>"'/]/g, (c) => HTML_ESCAPES[c]);
const SCOPE_TEXT = {
  email: 'Access your email address',
  openid: 'Verify your identity',
  profile: 'View your basic profile information',
  'read:user': 'Read your user information',
  'write:user': 'Modify your user information',
};
const CONSENT_COOKIE_MAX_AGE_MS = 5 * 60 * 1000;
const CONSENT_CLOCK_SKEW_MS = 60 * 1000;

/**
 * fastmcp's ConsentManager: a consent page and an HMAC-SHA256 signed consent cookie, in fastmcp's format
 * (`base64(JSON).hex(HMAC)`), so cookies signed by either verify in the other. Without a key, a random 256-bit one
 * (fastmcp's default is built from the clock and Math.random). The OAuthProxy does not use it (its consent page is
 * the core's, bound to the browser and to a per-page CSRF token); it is for servers that build their own flow.
 */
class ConsentManager {
  #key;

  constructor(signingKey) {
    this.#key = signingKey || cryptoRandomBytes(32).toString('base64url');
  }

  /** A 200 text/html Response with the consent page of `transaction` (fastmcp's OAuthTransaction). */
  createConsentResponse(transaction, provider) {
    const html = this.generateConsentScreen({
      clientName: 'MCP Client',
      provider,
      scope: transaction.scope,
      timestamp: Date.now(),
      transactionId: transaction.id,
    });
    return new Response(html, {
      headers: {
        'Cache-Control': 'no-store',
        'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        'Content-Type': 'text/html; charset=utf-8',
        'X-Frame-Options': 'DENY',
      },
      status: 200,
    });
  }

  /** The consent page (HTML) for `data`: every value escaped; the form POSTs `transaction_id` and `action`. */
  generateConsentScreen(data) {
    const { clientName, provider, scope = [], transactionId } = data;
    const items = scope
      .map((s) => `<li>${escapeHtml(SCOPE_TEXT[s] ?? String(s).replace(/_/g, ' ').replace(/:/g, ' - '))}</li>`)
      .join('');
    return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="UTF-8"><meta name="viewport" content="width=device-width, initial-scale=1.0"><title>Authorization Request</title>
<style>body{font-family:system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem}button{padding:.6rem 1.2rem;margin-right:.5rem}</style></head>
<body>
<h1>Authorization Request</h1>
<p>via ${escapeHtml(provider)}</p>
<h2>${escapeHtml(clientName || 'An application')} requests access</h2>
<p>This will allow the app to:</p>
<ul>${items}</ul>
<p><strong>Only approve if you trust this application.</strong></p>
<form method="POST" action="/oauth/consent">
<input type="hidden" name="transaction_id" value="${escapeHtml(transactionId)}">
<button type="submit" name="action" value="deny">Deny</button>
<button type="submit" name="action" value="approve">Approve</button>
</form>
</body>
</html>`;
  }

  /** `data` signed for a cookie: `base64(JSON).hex(HMAC-SHA256)` (fastmcp's format). */
  signConsentCookie(data) {
    const payload = JSON.stringify(data);
    return `${Buffer.from(payload).toString('base64')}.${this.#sign(payload)}`;
  }

  /** The data of a cookie this key signed less than 5 minutes ago (or up to 1 minute ahead), else null; constant-time. */
  validateConsentCookie(cookie) {
    try {
      if (typeof cookie !== 'string') return null;
      const [payloadB64, signature, extra] = cookie.split('.');
      if (!payloadB64 || !signature || extra !== undefined) return null;
      const payload = Buffer.from(payloadB64, 'base64').toString('utf8');
      const expected = Buffer.from(this.#sign(payload), 'utf8');
      const given = Buffer.from(signature, 'utf8');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
      const data = JSON.parse(payload);
      if (data === null || typeof data !== 'object' || typeof data.timestamp !== 'number') return null;
      const age = Date.now() - data.timestamp;
      // Up to a minute from the future: managers sharing a key on hosts whose clocks differ a little.
      return age >= -CONSENT_CLOCK_SKEW_MS && age <= CONSENT_COOKIE_MAX_AGE_MS ? data : null;
    } catch {
      return null;
    }
  }

  #sign(payload) {
    return createHmac('sha256', this.#key).update(payload).digest('hex');
  }
}

// ---- JWKSVerifier -------------------------------------------------------------------------------------------------

/**
 * fastmcp's JWKSVerifier: verifies a JWT against a JWKS endpoint with the optional peer dependency `jose`
 * (`npm install jose`), as fastmcp does; its result shape (`{ valid, claims }` / `{ valid: false, error }`) and claim
 * normalisation (`client_id` from `sub`, `scope` as an array). Usable as an OAuthProxy `tokenVerifier`.
 * `cacheDuration` / `cooldownDuration` in milliseconds (defaults 1 hour / 30 s).
 */
class JWKSVerifier {
  #config;
  #jose;
  #jwks;

  constructor(config) {
    if (!config || typeof config.jwksUri !== 'string') throw new TypeError('JWKSVerifier: jwksUri is required');
    new URL(config.jwksUri); // a clear TypeError now rather than at the first verification
    this.#config = {
      cacheDuration: 3_600_000,
      cooldownDuration: 30_000,
      ...config,
      audience: config.audience || '',
      issuer: config.issuer || '',
    };
  }

  getJwksUri() {
    return this.#config.jwksUri;
  }

  /** Forgets the cached keys: the next verification fetches the JWKS again. */
  async refreshKeys() {
    await this.#load();
    this.#jwks = this.#remoteSet();
  }

  async verify(token) {
    try {
      await this.#load();
      const options = {};
      if (this.#config.audience) options.audience = this.#config.audience;
      if (this.#config.issuer) options.issuer = this.#config.issuer;
      const { payload } = await this.#jose.jwtVerify(token, this.#jwks, options);
      const claims = {
        ...payload,
        aud: payload.aud,
        client_id: payload.client_id || payload.sub,
        exp: payload.exp,
        iat: payload.iat,
        iss: payload.iss,
        jti: payload.jti || '',
        scope: parseScope(payload.scope),
      };
      return { claims, valid: true };
    } catch (error) {
      return { error: error?.message || 'Token verification failed', valid: false };
    }
  }

  #remoteSet() {
    return this.#jose.createRemoteJWKSet(new URL(this.#config.jwksUri), {
      cacheMaxAge: this.#config.cacheDuration,
      cooldownDuration: this.#config.cooldownDuration,
    });
  }

  async #load() {
    if (this.#jose) return;
    try {
      this.#jose = await import('jose');
    } catch (e) {
      throw new Error(`JWKS verification requires the 'jose' package.\nInstall it with: npm install jose\n\n${e?.message ?? ''}`);
    }
    this.#jwks = this.#remoteSet();
  }
}

function parseScope(scope) {
  if (Array.isArray(scope)) return scope.filter((s) => typeof s === 'string');
  if (typeof scope === 'string') return scope.split(' ').filter(Boolean);
  return [];
}

module.exports = {
  AuthProvider,
  AzureProvider,
  ConsentManager,
  DEFAULT_ACCESS_TOKEN_TTL,
  DEFAULT_ACCESS_TOKEN_TTL_NO_REFRESH,
  DEFAULT_AUTHORIZATION_CODE_TTL,
  DEFAULT_REFRESH_TOKEN_TTL,
  DEFAULT_TRANSACTION_TTL,
  DiskStore,
  EncryptedTokenStorage,
  FastMCPAuthError,
  GitHubProvider,
  GoogleProvider,
  JWKSVerifier,
  JWTIssuer,
  MemoryTokenStorage,
  OAuthProvider,
  OAuthProxy,
  OAuthProxyError,
  PKCEUtils,
  RedisStore,
  deriveJwtKey,
  getAuthSession,
  requireAll,
  requireAny,
  requireAuth,
  requireRole,
  requireScopes,
  setLogger,
};
