// Types of fastmcp-auth: the same names and signatures as fastmcp/auth (npm `fastmcp` 4.x), plus extras marked so.

// FastMCP types its `auth` option as fastmcp's own AuthProvider class, whose private members no other class can
// match: our provider classes are declared as its subclasses so that `new FastMCP({ auth: new GitHubProvider(...) })`
// type-checks (at run time they are this package's classes). This makes npm `fastmcp` (an optional peer dependency)
// a requirement of these typings.
import type { IncomingMessage } from 'node:http';
import { AuthProvider as FastmcpAuthProvider, OAuthProxy as FastmcpOAuthProxy } from 'fastmcp/auth';

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
  /**
   * Accepted and not needed: fastmcp signs its consent cookie with it; ours binds the browser with a random id
   * whose SHA-256 is stored with the transaction, and a per-page CSRF token (nothing to sign). Must be a string.
   */
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
  /**
   * fastmcp's meaning: false (default) sends upstream the proxy's own S256 PKCE challenge (and its verifier at the
   * code exchange); true sends upstream no PKCE (for providers that refuse it). The client's own PKCE is checked by
   * the proxy either way (a token-swap proxy cannot forward it: the client's verifier arrives after the upstream
   * exchange).
   */
  forwardPkce?: boolean;
  jwtSigningKey?: string;
  redirectPath?: string;
  refreshTokenTtl?: number;
  scopes?: string[];
  /** Any TokenStorage: this package's stores run natively, others (fastmcp's, yours) are called from the core. */
  tokenStorage?: TokenStorage;
  /**
   * Checks the upstream access token on every use (fastmcp accepts it and never calls it): `loadUpstreamTokens`,
   * `checkBearer` and the providers' `authenticate` answer "not authenticated" unless `verify()` resolves
   * `{ valid: true }` (a throw counts as invalid); its `claims` reach the provider session's `claims`.
   */
  tokenVerifier?: TokenVerifier;
  /** Extra: milliseconds a `tokenVerifier` may take; later, the token counts as invalid. @default 5000 */
  tokenVerifierTimeoutMs?: number;
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
  /**
   * Extra: a provider's settings from the core's presets (how the secret is sent upstream, the consent page's name,
   * Google's offline access), under the options given; endpoints and scopes stay as given.
   */
  preset?: 'github' | 'google' | 'azure';
  /** Extra (fastmcp Python's `valid_scopes`): the scopes a client may request; others are refused. Unset: any. */
  validScopes?: string[];
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
  /** When the upstream access token expires, Unix seconds. */
  expiresAt?: number;
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

// ---- providers ------------------------------------------------------------------------------------------------------

/** fastmcp's TokenVerifier: a check of an upstream token. */
export interface TokenVerifier {
  verify(token: string): Promise<TokenVerificationResult>;
}

export interface TokenVerificationResult {
  claims?: Record<string, unknown>;
  error?: string;
  valid: boolean;
}

/** fastmcp's AuthProviderConfig. */
export interface AuthProviderConfig {
  /** Redirect URI patterns registration accepts. Unset: loopback only (fastmcp: none at all). */
  allowedRedirectUriPatterns?: string[];
  /** Where the MCP server is reached (the issuer, and the callback's base). */
  baseUrl: string;
  /** The upstream OAuth client id. */
  clientId: string;
  /** The upstream OAuth client secret. */
  clientSecret: string;
  /** Show the consent page (default true). */
  consentRequired?: boolean;
  /** Key of the token storage encryption (random when unset: stored tokens die with the process), false for none. */
  encryptionKey?: false | string;
  /** JWT signing key (random when unset: issued tokens die with the process). */
  jwtSigningKey?: string;
  /** Scopes asked upstream (defaults per provider). */
  scopes?: string[];
  /** Token storage (default: in memory). */
  tokenStorage?: TokenStorage;
}

/** Extra: a provider's config may carry any OAuthProxy option (`rateLimits`, `tokenVerifier`, `logger`, ...). */
export type AuthProviderOptions = AuthProviderConfig &
  Partial<Omit<OAuthProxyConfig, keyof AuthProviderConfig | 'upstreamAuthorizationEndpoint' | 'upstreamTokenEndpoint' | 'upstreamClientId' | 'upstreamClientSecret'>>;

/** fastmcp's GenericOAuthProviderConfig. */
export interface GenericOAuthProviderConfig extends AuthProviderOptions {
  authorizationEndpoint: string;
  tokenEndpoint: string;
  /** Default `client_secret_basic`. */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post';
}

/** fastmcp's AzureProviderConfig. */
export interface AzureProviderConfig extends AuthProviderOptions {
  /** A tenant id or domain, or `common` (default), `organizations`, `consumers`. */
  tenantId?: string;
}

export interface GitHubSession extends OAuthSession {
  /** Declared by fastmcp, filled by neither (it needs a call to GitHub's /user). */
  username?: string;
}

export interface GoogleSession extends OAuthSession {
  /** From Google's ID token, when `email_verified` (extra: fastmcp declares it and leaves it empty). */
  email?: string;
}

export interface AzureSession extends OAuthSession {
  /** The ID token's optional `upn` claim (extra: fastmcp declares it and leaves it empty). */
  upn?: string;
}

/** Options of `mount` (OAuthProxy.mount's). */
export interface MountOptions {
  /** The MCP endpoint URL: its RFC 9728 document is served from the proxy too. */
  resource?: string;
  /** Path serving `metrics()` (Prometheus text). */
  metricsPath?: string;
  /** The caller's address for the rate limits (behind a reverse proxy: its forwarded address). */
  remoteAddress?: (request: Request, context: unknown) => string | undefined;
}

/** This package's OAuthProxy, typed so that it also fits where fastmcp's is expected (FastMCP's `oauth.proxy`). */
export type ProviderProxy = OAuthProxy & FastmcpOAuthProxy;

/**
 * fastmcp's AuthProvider on this package's OAuthProxy. Declared as a subclass of fastmcp's (FastMCP's `auth`
 * option names that class). `new FastMCP({ auth })` mounts the proxy's routes on that server itself.
 */
export declare abstract class AuthProvider<TSession extends OAuthSession = OAuthSession> extends FastmcpAuthProvider<TSession> {
  constructor(config: AuthProviderOptions);
  protected get proxy(): ProviderProxy;
  /** The proxy: this package's OAuthProxy (`mount`, `checkBearer`, `metrics`, ... available). */
  getProxy(): ProviderProxy;
  protected createProxy(): ProviderProxy;
  authenticate(request: IncomingMessage | undefined): Promise<TSession | undefined>;
  /**
   * Extra: serves the proxy's routes from `server` (done by `new FastMCP({ auth: provider })` itself; needed only
   * when the proxy is wired by hand, e.g. `oauth: { proxy: provider.getProxy() }`). Returns `server`.
   */
  mount<S extends { getApp(): unknown }>(server: S, options?: MountOptions): S;
}

/** fastmcp's OAuthProvider: any OAuth 2.0 provider (default scopes `["openid"]`). */
export declare class OAuthProvider<TSession extends OAuthSession = OAuthSession> extends AuthProvider<TSession> {
  protected genericConfig: GenericOAuthProviderConfig;
  constructor(config: GenericOAuthProviderConfig);
  protected createProxy(): ProviderProxy;
  protected getAuthorizationEndpoint(): string;
  protected getDefaultScopes(): string[];
  protected getTokenEndpoint(): string;
}

/** GitHub OAuth Apps (default scopes `read:user`, `user:email`). Callback: `{baseUrl}/oauth/callback`. */
export declare class GitHubProvider extends AuthProvider<GitHubSession> {
  constructor(config: AuthProviderOptions);
  protected createProxy(): ProviderProxy;
  protected getAuthorizationEndpoint(): string;
  protected getDefaultScopes(): string[];
  protected getTokenEndpoint(): string;
}

/** Google (default scopes `openid`, `profile`, `email`; asks for offline access). Callback: `{baseUrl}/oauth/callback`. */
export declare class GoogleProvider extends AuthProvider<GoogleSession> {
  constructor(config: AuthProviderOptions);
  protected createProxy(): ProviderProxy;
  protected getAuthorizationEndpoint(): string;
  protected getDefaultScopes(): string[];
  protected getTokenEndpoint(): string;
}

/** Microsoft Entra ID v2.0 (default scopes `openid`, `profile`, `email`). Callback: `{baseUrl}/oauth/callback`. */
export declare class AzureProvider extends AuthProvider<AzureSession> {
  private tenantId;
  constructor(config: AzureProviderConfig);
  protected createProxy(): ProviderProxy;
  protected getAuthorizationEndpoint(): string;
  protected getDefaultScopes(): string[];
  protected getTokenEndpoint(): string;
}

/** fastmcp's ConsentData. */
export interface ConsentData {
  clientName: string;
  provider: string;
  scope: string[];
  /** Milliseconds since the epoch. */
  timestamp: number;
  transactionId: string;
}

/**
 * fastmcp's ConsentManager: a consent page and HMAC-SHA256 signed consent cookies in fastmcp's format (cookies
 * signed by either verify in the other; valid 5 minutes). Not used by OAuthProxy (its consent is the core's).
 */
export declare class ConsentManager {
  /** `signingKey`: the HMAC key; unset, a random 256-bit key. */
  constructor(signingKey?: string);
  createConsentResponse(transaction: { id: string; scope: string[] }, provider: string): Response;
  generateConsentScreen(data: ConsentData): string;
  signConsentCookie(data: ConsentData): string;
  validateConsentCookie(cookie: string): ConsentData | null;
}

/** fastmcp's JWKSVerifierConfig. Durations in milliseconds. */
export interface JWKSVerifierConfig {
  audience?: string;
  /** @default 3600000 */
  cacheDuration?: number;
  /** @default 30000 */
  cooldownDuration?: number;
  issuer?: string;
  jwksUri: string;
}

export interface JWKSVerificationResult {
  claims?: Record<string, unknown>;
  error?: string;
  valid: boolean;
}

/**
 * fastmcp's JWKSVerifier (with the optional peer dependency `jose`, as fastmcp): JWTs checked against a JWKS
 * endpoint's keys. Usable as an OAuthProxy `tokenVerifier`.
 */
export declare class JWKSVerifier implements TokenVerifier {
  constructor(config: JWKSVerifierConfig);
  getJwksUri(): string;
  refreshKeys(): Promise<void>;
  verify(token: string): Promise<JWKSVerificationResult>;
}
