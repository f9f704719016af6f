// Types of fastmcp-auth: the same names and signatures as fastmcp/auth (npm `fastmcp` 4.x), plus extras marked so.

/** fastmcp's TokenStorage interface; every store here implements it. */
export interface TokenStorage {
  cleanup(): Promise<void>;
  delete(key: string): Promise<void>;
  get(key: string): Promise<null | unknown>;
  /** `ttl` in seconds; absent or 0: never expires. */
  save(key: string, value: unknown, ttl?: number): Promise<void>;
  take?(key: string): Promise<null | unknown>;
}

/** A library error with a stable `code` (`invalid_key`, `invalid_argument`, `storage_io`, `store_closed`, ...). */
export declare class FastMCPAuthError extends Error {
  code: string;
  constructor(code: string, message: string);
}

declare class NativeTokenStorage implements TokenStorage {
  cleanup(): Promise<void>;
  delete(key: string): Promise<void>;
  get(key: string): Promise<null | unknown>;
  save(key: string, value: unknown, ttl?: number): Promise<void>;
  /** Atomic get-and-delete: among concurrent callers in any process sharing the store, at most one gets the value. */
  take(key: string): Promise<null | unknown>;
  /** Extra: the stored keys. */
  keys(): Promise<string[]>;
  /** Extra: resolves once the store is open (rejects with the open error, e.g. code `not_a_directory`). */
  ready(): Promise<void>;
  /** Stops background work; later operations reject with code `store_closed`. */
  destroy(): void;
}

export declare class MemoryTokenStorage extends NativeTokenStorage {
  constructor(cleanupIntervalMs?: number);
  size(): number;
}

export interface DiskStoreOptions {
  /** @default 60000 */
  cleanupIntervalMs?: number;
  directory: string;
  /** @default ".json" */
  fileExtension?: string;
  /** Extra: fsync each write (and the directory) before it resolves. @default false */
  fsync?: boolean;
  /** Extra: 'fastmcp' (fastmcp's names, readable by fastmcp's DiskStore; colliding keys kept apart) or 'safe'. @default "fastmcp" */
  fileNames?: 'fastmcp' | 'safe';
  /** Extra: refuse (instead of warning about) a directory writable by group/others or owned by another user. */
  strictPermissions?: boolean;
}

export declare class DiskStore extends NativeTokenStorage {
  constructor(options: DiskStoreOptions);
  size(): Promise<number>;
}

/** Extra: Redis (>= 6.2), shared by several server replicas. */
export interface RedisStoreOptions {
  /** redis://, rediss:// (TLS), with credentials and database in the URL. */
  url: string;
  /** @default "fastmcp:" */
  prefix?: string;
  /** Connection and response timeout. @default 5000 */
  timeoutMs?: number;
}

export declare class RedisStore extends NativeTokenStorage {
  constructor(options: RedisStoreOptions);
  size(): Promise<number>;
}

export interface EncryptedTokenStorageOptions {
  /** Extra: keys that still decrypt during a key rotation. */
  previousKeys?: string[];
}

export declare class EncryptedTokenStorage extends NativeTokenStorage {
  constructor(backend: TokenStorage, encryptionKey: string, options?: EncryptedTokenStorageOptions);
  size(): Promise<number | undefined>;
}

export interface JWTClaims {
  [key: string]: unknown;
  aud: string;
  client_id: string;
  exp: number;
  iat: number;
  iss: string;
  jti: string;
  scope: string[];
}

export interface JWTIssuerConfig {
  /** @default 3600 */
  accessTokenTtl?: number;
  audience: string;
  issuer: string;
  /** @default 2592000 */
  refreshTokenTtl?: number;
  signingKey: string;
  /** Extra: keys (or `{ key, kid }`) whose tokens still verify during a rotation. */
  previousKeys?: Array<string | { key: string; kid?: string }>;
  /** Extra: `kid` header of issued tokens. */
  kid?: string;
  /** Extra: seconds of clock skew accepted. @default 0 */
  leeway?: number;
  /** Extra: claim layout, fastmcp TS's ('ts') or fastmcp Python's ('py'). @default "ts" */
  claimLayout?: 'ts' | 'py';
  /** Extra (tests, vectors): a fixed "now" in Unix seconds for issuing and verifying. */
  fixedTime?: number;
}

export interface TokenValidationResult {
  claims?: JWTClaims;
  /** fastmcp's text: "Invalid token format", "Invalid signature", "Token expired", "Invalid issuer", ... */
  error?: string;
  /** Extra: a stable reason (`malformed_token`, `invalid_signature`, `token_expired`, `unsupported_algorithm`, ...). */
  code?: string;
  valid: boolean;
}

export declare class JWTIssuer {
  constructor(config: JWTIssuerConfig);
  static deriveKey(secret: string, iterations?: number): Promise<string>;
  issueAccessToken(
    clientId: string,
    scope: string[],
    additionalClaims?: Record<string, unknown>,
    expiresIn?: number,
  ): string;
  issueRefreshToken(
    clientId: string,
    scope: string[],
    additionalClaims?: Record<string, unknown>,
    expiresIn?: number,
  ): string;
  verify(token: string, expectedTokenUse?: 'access' | 'refresh'): Promise<TokenValidationResult>;
}

/** Extra: fastmcp Python's `derive_jwt_key` (exactly one material), urlsafe base64 text. */
export declare function deriveJwtKey(options: {
  highEntropyMaterial?: string;
  lowEntropyMaterial?: string;
  salt: string;
}): Promise<string>;

export interface PKCEPair {
  challenge: string;
  verifier: string;
}

export declare class PKCEUtils {
  static generateChallenge(verifier: string, method?: 'plain' | 'S256'): string;
  static generatePair(method?: 'plain' | 'S256'): PKCEPair;
  static generateVerifier(length?: number): string;
  static validateChallenge(verifier: string, challenge: string, method: string): boolean;
}

export interface OAuthError {
  error: string;
  error_description?: string;
}

export declare class OAuthProxyError extends Error {
  code: string;
  description?: string;
  statusCode: number;
  /** Seconds to wait (a 429 from the rate limits); sent as `Retry-After`. */
  retryAfter?: number;
  constructor(code: string, description?: string, statusCode?: number, retryAfter?: number);
  toJSON(): OAuthError;
  /** `{ 'Retry-After': … }` when `retryAfter` is set, else `{}`. */
  headers(): Record<string, string>;
  toResponse(): Response;
}

/** fastmcp's `CustomClaimsPassthroughConfig`. */
export interface CustomClaimsPassthroughConfig {
  /** Copy arrays and objects too (default false). */
  allowComplexClaims?: boolean;
  /** Only these claims (default: any that is not protected). */
  allowedClaims?: string[];
  /** Never these claims. */
  blockedClaims?: string[];
  /** Prefix for copied claim names (default none). */
  claimPrefix?: false | string;
  /** Read the upstream access token when it is a JWT (default true). */
  fromAccessToken?: boolean;
  /** Read the upstream ID token (default true). */
  fromIdToken?: boolean;
  /** Longest string / serialised value copied, in UTF-16 units (default 2000). */
  maxClaimValueSize?: number;
}

/** One endpoint's rate limit: `perMinute` requests sustained, up to `burst` at once, per key. */
export interface RateLimit {
  perMinute: number;
  burst: number;
}

/**
 * Rate limits (`OAuthProxyConfig.rateLimits`), per caller address (as `mount` sees it) and per client id (a URL
 * client id only by address). Over a limit: `OAuthProxyError` with `statusCode` 429 and `retryAfter` (seconds),
 * answered as HTTP 429 with `Retry-After`. `false` turns one endpoint (or, at the top, all) off.
 */
export interface RateLimitsOptions {
  /** Default true. */
  enabled?: boolean;
  /** Default { perMinute: 30, burst: 30 } (without an address, all registrations share it). */
  register?: RateLimit | false;
  /** Default { perMinute: 120, burst: 60 }. */
  authorize?: RateLimit | false;
  /** Default { perMinute: 60, burst: 30 }, per address only. */
  consent?: RateLimit | false;
  /** Default { perMinute: 60, burst: 30 }, per address only. */
  callback?: RateLimit | false;
  /** Default { perMinute: 300, burst: 100 }. */
  token?: RateLimit | false;
  /** Default { perMinute: 120, burst: 60 }. */
  revoke?: RateLimit | false;
  /** Requests a failed client authentication or refused grant counts as. Default 5. */
  failureCost?: number;
}

/** Client ID Metadata Document options (`OAuthProxyConfig.cimd`). */
export interface CimdOptions {
  /** Fetch from loopback/private/link-local addresses. Tests and private deployments only. Default false. */
  allowPrivateNetworksForTesting?: boolean;
  /** PEM CA certificates trusted besides the public web roots (e.g. a private CA). Default none. */
  extraRootCertificates?: string[];
  /** Timeout of one fetch, connect to last byte, in milliseconds. Default 5000 (at most 60000). */
  fetchTimeoutMs?: number;
  /** Largest document, counted while it streams, in bytes. Default 65536 (512..1048576). */
  maxDocumentBytes?: number;
  /** Freshness (seconds) of a document whose `Cache-Control` has no `max-age`. Default 3600. */
  cacheTtl?: number;
  /** Floor of a document's freshness in seconds (also for `no-cache`/`no-store`). Default 60. */
  minCacheTtl?: number;
  /**
   * Ceiling of freshness and lifetime of the cached copy, in seconds: while the copy lives, a fetch that fails
   * (network, timeout, 5xx) uses it; a 4xx or an invalid document drops it. Default 86400.
   */
  maxCacheTtl?: number;
  /** After a failed fetch, fetches from that host fail at once for this long, in milliseconds. Default 10000; 0: off. */
  failureCooldownMs?: number;
}

export interface OAuthProxyConfig {
  accessTokenTtl?: number;
  allowedRedirectUriPatterns?: string[];
  allowPlainPkce?: boolean;
  authorizationCodeTtl?: number;
  baseUrl: string;
  consentRequired?: boolean;
  /** Accepted for compatibility; approval is recorded server-side, there is no consent cookie. */
  consentSigningKey?: string;
  /** Upstream access/ID token claims copied into our JWTs, as fastmcp (default true). */
  customClaimsPassthrough?: boolean | CustomClaimsPassthroughConfig;
  /**
   * Accept Client ID Metadata Documents: an `https` URL as `client_id`, whose JSON document the proxy fetches
   * (SSRF-safe: public addresses only, checked after DNS resolution and connected to as checked; no redirects;
   * size and time bounded) and caches in `tokenStorage`. Advertised as `client_id_metadata_document_supported`.
   * Default false (fastmcp's). Tuning and test switches: `cimd`.
   */
  enableCimd?: boolean;
  /** Options of `enableCimd` (fastmcp-auth's own; fastmcp has none). */
  cimd?: CimdOptions;
  /** Refuse to start on a weak or missing key, or plain http to a non-loopback host (default false: warnings). */
  strict?: boolean;
  /** Rate limits of the endpoints (fastmcp-auth's own), or `false` for none. */
  rateLimits?: RateLimitsOptions | boolean;
  /**
   * Also count issued tokens per client in `metrics()` (`fastmcp_auth_tokens_issued_by_client_total{client_id,
   * grant}`; the first 1,000 client ids, later ones as `(other)`). Default false: every registration adds a series.
   */
  metricsClientIds?: boolean;
  /**
   * Where the library's log records go (fastmcp-auth's own): a console-like object, or `null` for nowhere. Default
   * `console`. Records are process-wide: the last proxy built with `logger`/`logLevel` (or `setLogger`) decides.
   */
  logger?: LoggerLike | null;
  /** The most verbose level sent to `logger`: `'error'`, `'warn'` (default), `'info'`, `'debug'`, `'trace'`. */
  logLevel?: LogLevel;
  enableTokenSwap?: boolean;
  encryptionKey?: false | string;
  extraAuthorizationParams?: Record<string, string>;
  /** Accepted for compatibility; the proxy always uses its own S256 PKCE upstream. */
  forwardPkce?: boolean;
  jwtSigningKey?: string;
  redirectPath?: string;
  refreshTokenTtl?: number;
  scopes?: string[];
  /** Any TokenStorage: this package's stores run natively, others (fastmcp's, yours) are called from the core. */
  tokenStorage?: TokenStorage;
  transactionTtl?: number;
  upstreamAuthorizationEndpoint: string;
  upstreamClientId: string;
  upstreamClientSecret: string;
  upstreamRequestTimeoutMs?: number;
  upstreamTokenEndpoint: string;
  upstreamTokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post';
  /** Extra: signing keys whose tokens still verify (rotation). */
  previousJwtSigningKeys?: string[];
  /** Extra: storage keys that still decrypt (rotation). */
  previousEncryptionKeys?: string[];
  /** Extra: require PKCE from clients (OAuth 2.1). @default true */
  requirePkce?: boolean;
  /** Extra: seconds a just-rotated refresh token may be presented again (retries, racing replicas). @default 30 */
  refreshGraceWindow?: number;
  /** Extra: claim layout of issued JWTs. @default "ts" */
  claimLayout?: 'ts' | 'py';
  /** Extra: provider name on the consent page. */
  providerName?: string;
}

export interface DCRRequest {
  redirect_uris: string[];
  client_name?: string;
  grant_types?: string[];
  response_types?: string[];
  scope?: string;
  token_endpoint_auth_method?: string;
  [key: string]: unknown;
}

export interface DCRResponse {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  [key: string]: unknown;
}

export interface TokenRequest {
  client_id: string;
  client_secret?: string;
  code: string;
  code_verifier?: string;
  grant_type: 'authorization_code';
  redirect_uri: string;
}

export interface RefreshRequest {
  client_id: string;
  client_secret?: string;
  grant_type: 'refresh_token';
  refresh_token: string;
  scope?: string;
}

export interface TokenResponse {
  access_token: string;
  expires_in: number;
  id_token?: string;
  refresh_token?: string;
  scope?: string;
  token_type: string;
}

export interface UpstreamTokenSet {
  accessToken: string;
  expiresIn: number;
  idToken?: string;
  issuedAt: Date;
  refreshExpiresIn?: number;
  refreshToken?: string;
  scope: string[];
  tokenType: string;
}

export declare class OAuthProxy {
  constructor(config: OAuthProxyConfig);
  /**
   * The authorization endpoint. The Response carries a `Set-Cookie` binding the authorization to the browser;
   * send all its headers. `request` (extra): the browser's Request, whose `Cookie` header is read.
   */
  authorize(params: Record<string, string | undefined>, request?: Request): Promise<Response>;
  destroy(): void;
  exchangeAuthorizationCode(request: TokenRequest): Promise<TokenResponse>;
  exchangeRefreshToken(request: RefreshRequest): Promise<TokenResponse>;
  getAuthorizationServerMetadata(): {
    authorizationEndpoint: string;
    codeChallengeMethodsSupported?: string[];
    grantTypesSupported?: string[];
    issuer: string;
    registrationEndpoint?: string;
    responseTypesSupported: string[];
    revocationEndpoint?: string;
    scopesSupported?: string[];
    tokenEndpoint: string;
    tokenEndpointAuthMethodsSupported?: string[];
    [key: string]: unknown;
  };
  /** The upstream callback; a browser other than the one that started the authorization gets a 403 page. */
  /** `remoteAddress` (extra): the caller's address, for the rate limits (`mount` passes it). */
  handleCallback(request: Request, remoteAddress?: string): Promise<Response>;
  /** The consent POST; one not from our page in the browser that started the authorization gets a 403 page. */
  handleConsent(request: Request): Promise<Response>;
  /**
   * Extra: serves every route of the proxy from `server.getApp()` (FastMCP's Hono app, consulted before its
   * built-in `/oauth/*` handlers, which drop the browser's cookies and the proxy's security headers): GET
   * `/oauth/authorize`, POST `/oauth/consent`, GET the callback, POST `/oauth/register`, `/oauth/token`,
   * `/oauth/revoke`, GET `/.well-known/oauth-authorization-server`. Returns `server`.
   */
  /** Readiness: one storage round trip within `timeoutMs` (default 2000). Never rejects for an unhealthy store. */
  health(options?: { timeoutMs?: number }): Promise<{ ok: boolean; store: string; latencyMs: number; warnings: string[] }>;
  /** The proxy's metrics, Prometheus text exposition (no label carries a token, secret, client id or address). */
  metrics(): string;
  /** The production checklist's findings at construction (option names, never values); `strict: true` refuses instead. */
  configWarnings(): string[];
  mount<S extends { getApp(): unknown }>(
    server: S,
    options?: {
      resource?: string;
      /**
       * The caller's address for the rate limits. Default: the socket's peer. Behind a reverse proxy, return the
       * address it forwarded (only from a proxy you trust).
       */
      remoteAddress?: (request: Request, context: unknown) => string | undefined;
      /** Serve `metrics()` at this path (e.g. '/metrics'); unauthenticated: expose it only where operators reach. */
      metricsPath?: string;
    },
  ): S;
  /** Extra: RFC 9728 protected resource metadata of `resource`, camelCase (for FastMCP's `oauth.protectedResource`). */
  protectedResourceMetadata(resource: string): {
    authorizationServers: string[];
    bearerMethodsSupported: string[];
    resource: string;
    scopesSupported: string[];
    [key: string]: unknown;
  };
  /**
   * Extra: the bearer check of a request to `resource`: the claims and upstream tokens of a live token of ours for
   * this resource with every required scope, or the 401/403 Response (with `WWW-Authenticate`) to throw.
   */
  checkBearer(
    request: Request | string | { headers?: Record<string, string | string[] | undefined> } | undefined,
    resource: string,
    requiredScopes?: string[],
  ): Promise<
    | { ok: true; claims: Record<string, unknown>; upstream: UpstreamTokenSet }
    | { ok: false; response: Response }
  >;
  loadUpstreamTokens(fastmcpToken: string): Promise<null | UpstreamTokenSet>;
  registerClient(request: DCRRequest): Promise<DCRResponse>;
  /** Extra: resolves once the token storage is open. */
  ready(): Promise<void>;
  /** Extra: RFC 7009 revocation by the token's client. */
  revoke(token: string, clientId: string, clientSecret?: string): Promise<void>;
  /** Extra: a raw token request (urlencoded body, optional Authorization header), any grant. */
  /** `remoteAddress` (extra): the caller's address, for the rate limits (`mount` passes it). */
  token(body: string, authorization?: string, remoteAddress?: string): Promise<TokenResponse>;
}

/** Levels of the library's log records. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** A console-like logger: called with one string, `[fastmcp-auth] <message> (<module>)`. */
export interface LoggerLike {
  error?(message: string): void;
  warn?(message: string): void;
  info?(message: string): void;
  debug?(message: string): void;
  log?(message: string): void;
}

/**
 * Where the library's log records go (warnings and errors by default, to `console`): a console-like object or
 * `null` for nowhere; `level` is the most verbose level sent. Process-wide. Records never hold a token, secret or key.
 */
export declare function setLogger(logger: LoggerLike | null, options?: { level?: LogLevel }): void;

// ---- fastmcp/auth's constants and session helpers (same values and behaviour as fastmcp 4.20.16's) ----------------

/** Access token lifetime, seconds (the proxy's default `accessTokenTtl`). */
export declare const DEFAULT_ACCESS_TOKEN_TTL = 3600;
/** Access token lifetime when upstream gave no refresh token, seconds (one year). */
export declare const DEFAULT_ACCESS_TOKEN_TTL_NO_REFRESH = 31536000;
/** Authorization code lifetime, seconds. */
export declare const DEFAULT_AUTHORIZATION_CODE_TTL = 300;
/** Refresh token lifetime, seconds (30 days). */
export declare const DEFAULT_REFRESH_TOKEN_TTL = 2592000;
/** Authorization transaction lifetime, seconds. */
export declare const DEFAULT_TRANSACTION_TTL = 600;

/** What FastMCP hands tools as the session's auth (the value `authenticate` returned), if any. */
export type SessionAuth = Record<string, unknown> | undefined;

/** The session as fastmcp's OAuth providers fill it. */
export interface OAuthSession {
  accessToken: string;
  claims?: Record<string, unknown>;
  expiresAt?: Date;
  idToken?: string;
  refreshToken?: string;
  scopes?: string[];
  [key: string]: unknown;
}

/** The session, or throws `Error('Session is not authenticated')`. */
export declare function getAuthSession<T extends OAuthSession = OAuthSession>(session: SessionAuth): T;
/** A check passing when every check passes (functions of the session, or booleans). */
export declare function requireAll<T extends SessionAuth>(...checks: Array<((auth: T) => boolean) | boolean>): (auth: T) => boolean;
/** A check passing when any check passes. */
export declare function requireAny<T extends SessionAuth>(...checks: Array<((auth: T) => boolean) | boolean>): (auth: T) => boolean;
/** Whether there is a session. */
export declare function requireAuth<T extends SessionAuth>(auth: T): boolean;
/** A check passing when the session's `role` is one of `allowedRoles`. */
export declare function requireRole<T extends SessionAuth>(...allowedRoles: string[]): (auth: T) => boolean;
/** A check passing when the session's `scopes` (array or Set) hold every one of `requiredScopes`. */
export declare function requireScopes<T extends SessionAuth>(...requiredScopes: string[]): (auth: T) => boolean;
