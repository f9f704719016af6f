"""fastmcp Python integration: ``OAuthProxy`` and the GitHub / Google / Azure providers with fastmcp 4.2's
constructors, every route and token check served by fastmcp-auth's Rust core.

    from fastmcp import FastMCP
    from fastmcp_auth.fastmcp import GitHubProvider          # was: fastmcp.server.auth.providers.github

    mcp = FastMCP("My App", auth=GitHubProvider(client_id=..., client_secret=..., base_url="https://my-server.com"))

Registration (RFC 7591), authorization with consent and browser binding, the upstream callback, the token endpoint
(code exchange with single-use codes and PKCE, refresh rotation with a grace window), revocation (RFC 7009) and the
RFC 8414 / RFC 9728 metadata are the core's; each route here only hands the request's parts to it and sends back the
answer it built (status, every header, body). ``verify_token`` checks our JWT (signature, expiry, audience = this MCP
endpoint) and loads the upstream tokens in the core, then asks ``token_verifier`` about the upstream access token, as
fastmcp does, so ``get_access_token()`` in a tool is what fastmcp's would be.

Requires ``fastmcp`` (imported here, not by ``fastmcp_auth`` itself). Differences from fastmcp's proxy are listed in
the README ("fastmcp Python: the whole proxy"); an argument the core cannot honour raises ``NotImplementedError``
naming it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import weakref
from typing import Any, Dict, List, Literal, Optional, Union
from urllib.parse import urlsplit

from fastmcp.server.auth.auth import AccessToken, OAuthProvider, TokenVerifier
from mcp.server.auth.routes import cors_middleware
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import _native
from .aio import AsyncStore
from .errors import OAuthProxyError

logger = logging.getLogger("fastmcp_auth.fastmcp")

#: Longest request body the routes read (bytes), the core's own limit; more is refused with 413 unread.
MAX_BODY_BYTES = 64 * 1024

#: fastmcp Python's default callback path (``redirect_path``).
DEFAULT_REDIRECT_PATH = "/auth/callback"

_JSON_NO_STORE = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}


class _KeyValueBridge:
    """The core's store operations over a py-key-value ``AsyncKeyValue`` (fastmcp's default storage, or a user's
    Redis / DynamoDB / ... store): one collection, values as ``{"json": <text>}`` (the core's records, already
    encrypted by the core). ``take`` (single-use codes) is atomic within this process — a lock per key — and
    get-then-delete across processes; for several replicas use ``fastmcp_auth.aio.AsyncRedisStore`` (atomic
    everywhere) or accept what fastmcp itself does on such stores."""

    _fastmcp_auth_bridge = True
    COLLECTION = "fastmcp-auth"

    def __init__(self, kv: Any) -> None:
        self._kv = kv
        self._locks: "weakref.WeakValueDictionary[str, asyncio.Lock]" = weakref.WeakValueDictionary()

    async def save(self, key: str, text: str, ttl: Optional[float]) -> None:
        await self._kv.put(key, {"json": text}, collection=self.COLLECTION, ttl=ttl)

    async def get(self, key: str) -> Optional[str]:
        v = await self._kv.get(key, collection=self.COLLECTION)
        t = v.get("json") if isinstance(v, dict) else None
        return t if isinstance(t, str) else None

    async def delete(self, key: str) -> bool:
        return bool(await self._kv.delete(key, collection=self.COLLECTION))

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def take(self, key: str) -> Optional[str]:
        async with self._lock(key):
            v = await self.get(key)
            if v is not None:
                await self._kv.delete(key, collection=self.COLLECTION)
            return v

    async def replace(self, key: str, expected: str, new: str) -> Optional[str]:
        """Compare-and-swap (single-use codes): ``new`` under ``key`` only if the value there is still ``expected``
        (compared as JSON), keeping the entry's remaining lifetime; ``"replaced"``, ``"changed"`` or ``"absent"``.
        Atomic within this process (the key's lock, shared with ``take``); ``None`` when the store cannot tell an
        entry's remaining lifetime (no ``ttl()``), and the core then keeps to ``take``."""
        if not callable(getattr(self._kv, "ttl", None)):
            return None
        async with self._lock(key):
            value, ttl = await self._kv.ttl(key, collection=self.COLLECTION)
            text = value.get("json") if isinstance(value, dict) else None
            if not isinstance(text, str):
                return "absent"
            if json.loads(text) != json.loads(expected):
                return "changed"
            if ttl is not None and ttl <= 0:
                return "absent"
            await self._kv.put(key, {"json": new}, collection=self.COLLECTION, ttl=ttl)
            return "replaced"


def _storage_of(client_storage: Any) -> Any:
    """What the core is given: our store natively, anything else through the bridge."""
    if isinstance(client_storage, _native.Store):
        return client_storage
    if isinstance(client_storage, AsyncStore):
        return client_storage.store
    for method in ("get", "put", "delete"):
        if not callable(getattr(client_storage, method, None)):
            raise TypeError("client_storage must be a py-key-value AsyncKeyValue or a fastmcp_auth store")
    return _KeyValueBridge(client_storage)


def _text_key(value: Union[str, bytes], name: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise NotImplementedError(
                f"{name}: bytes that are not UTF-8 text are not supported yet; pass the key as a str, or as the "
                "text derive_jwt_key returns"
            ) from None
    return value


def _origin(url: str) -> tuple:
    u = urlsplit(url)
    return (u.scheme.lower(), (u.hostname or "").lower(), u.port)


def _answer(r: Dict[str, Any]) -> Response:
    """The core's answer as it is: status, every header (``Set-Cookie``, CSP, ``Location``, ...), body."""
    body = r.get("body")
    resp = Response(content=body.encode("utf-8") if body is not None else b"", status_code=r["status"])
    for k, v in r["headers"]:
        resp.headers.append(k, v)
    return resp


def _json(value: Any, status: int = 200) -> Response:
    import json

    resp = Response(content=json.dumps(value).encode("utf-8"), status_code=status)
    for k, v in _JSON_NO_STORE.items():
        resp.headers[k] = v
    return resp


async def _body(request: Request) -> Optional[bytes]:
    """The request body, or None past ``MAX_BODY_BYTES`` (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: List[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> Response:
    return _json({"error": "invalid_request", "error_description": f"request body larger than {MAX_BODY_BYTES} bytes"}, 413)


def _addr(request: Request) -> Optional[str]:
    return request.client.host if request.client else None


class OAuthProxy(OAuthProvider):
    """fastmcp's ``OAuthProxy`` (same keyword arguments and meanings, fastmcp 4.2.3) served by the Rust core.

    Extras (keyword-only): ``refresh_grace_window`` (seconds a rotated refresh token still answers, default 30),
    ``previous_jwt_signing_keys`` (keys still accepted when verifying, for rotation), ``core_options`` (a dict of any
    other member of the core's ``OAuthProxyConfig``, e.g. ``{"rate_limits": {...}, "strict": True}``).

    Raises ``NotImplementedError`` naming the argument for what the core cannot do yet: ``upstream_revocation_endpoint``,
    ``extra_token_params``, ``consent_csp_policy``, ``token_expiry_threshold_seconds`` other than 0,
    ``identity_assertion``, an ``issuer_url`` other than ``base_url``, no ``upstream_client_secret``, and
    ``token_endpoint_auth_method="none"``.
    """

    #: The core's provider preset (``"github"``, ``"google"``, ``"azure"``) the provider subclasses set.
    _preset: Optional[str] = None

    def __init__(
        self,
        *,
        upstream_authorization_endpoint: str,
        upstream_token_endpoint: str,
        upstream_client_id: str,
        upstream_client_secret: Optional[str] = None,
        upstream_revocation_endpoint: Optional[str] = None,
        token_verifier: TokenVerifier,
        base_url: Any,
        resource_base_url: Any = None,
        redirect_path: Optional[str] = None,
        issuer_url: Any = None,
        service_documentation_url: Any = None,
        allowed_client_redirect_uris: Optional[List[str]] = None,
        valid_scopes: Optional[List[str]] = None,
        forward_pkce: bool = True,
        forward_resource: bool = True,
        token_endpoint_auth_method: Optional[str] = None,
        extra_authorize_params: Optional[Dict[str, str]] = None,
        extra_token_params: Optional[Dict[str, str]] = None,
        client_storage: Any = None,
        jwt_signing_key: Union[str, bytes, None] = None,
        require_authorization_consent: Union[bool, Literal["remember", "external"]] = True,
        consent_csp_policy: Optional[str] = None,
        fallback_access_token_expiry_seconds: Optional[int] = None,
        fallback_refresh_token_expiry_seconds: Optional[int] = None,
        fastmcp_access_token_expiry_seconds: Optional[int] = None,
        token_expiry_threshold_seconds: int = 0,
        enable_cimd: bool = True,
        identity_assertion: Any = None,
        refresh_grace_window: Optional[float] = None,
        previous_jwt_signing_keys: Optional[List[Union[str, bytes]]] = None,
        core_options: Optional[Dict[str, Any]] = None,
    ) -> None:
        unsupported = {
            "upstream_revocation_endpoint": upstream_revocation_endpoint is not None,
            "extra_token_params": bool(extra_token_params),
            "consent_csp_policy": consent_csp_policy is not None,
            "token_expiry_threshold_seconds": token_expiry_threshold_seconds != 0,
            "identity_assertion": identity_assertion is not None,
            "upstream_client_secret": upstream_client_secret is None,
            "token_endpoint_auth_method": token_endpoint_auth_method == "none",
        }
        for name, given in unsupported.items():
            if given:
                raise NotImplementedError(
                    f"fastmcp_auth.fastmcp.OAuthProxy: {name} is not supported yet by fastmcp-auth's core "
                    "(see the README, 'fastmcp Python: the whole proxy'); use fastmcp's own OAuthProxy for it"
                )
        base = str(base_url).rstrip("/")
        if issuer_url is not None and str(issuer_url).rstrip("/") != base:
            raise NotImplementedError(
                "fastmcp_auth.fastmcp.OAuthProxy: an issuer_url other than base_url is not supported yet"
            )
        default_scopes = list(valid_scopes or token_verifier.required_scopes or [])
        super().__init__(
            base_url=base_url,
            resource_base_url=resource_base_url,
            issuer_url=issuer_url,
            service_documentation_url=service_documentation_url,
            client_registration_options=ClientRegistrationOptions(
                enabled=True, valid_scopes=default_scopes or None, default_scopes=default_scopes or None
            ),
            revocation_options=RevocationOptions(enabled=True),
            required_scopes=token_verifier.required_scopes,
        )
        self._token_validator = token_verifier
        self._redirect_path = (
            DEFAULT_REDIRECT_PATH
            if not redirect_path
            else redirect_path if redirect_path.startswith("/") else f"/{redirect_path}"
        )
        # fastmcp's key handling: bytes as they are; a str through PBKDF2; none: HKDF of the upstream secret.
        if jwt_signing_key is None:
            key = _native.derive_jwt_key(high_entropy_material=upstream_client_secret, salt="fastmcp-jwt-signing-key")
        elif isinstance(jwt_signing_key, str):
            if len(jwt_signing_key) < 12:
                logger.warning("jwt_signing_key is less than 12 characters; use a longer string")
            key = _native.derive_jwt_key(low_entropy_material=jwt_signing_key, salt="fastmcp-jwt-signing-key")
        else:
            key = jwt_signing_key
        key_text = _text_key(key, "jwt_signing_key")
        self._jwt_signing_key = key
        # The core encrypts every record it stores; the key is derived from the signing key as fastmcp derives its
        # storage key, so state survives a restart with the same configuration.
        storage_key = _native.derive_jwt_key(high_entropy_material=key_text, salt="fastmcp-storage-encryption-key")
        if client_storage is None:
            from fastmcp import settings

            directory = settings.home / "oauth-proxy-rs" / hashlib.sha256(storage_key).hexdigest()[:12]
            directory.mkdir(parents=True, exist_ok=True)
            storage = _native.DiskStore(str(directory))
        else:
            storage = _storage_of(client_storage)
        self._storage = storage
        if require_authorization_consent == "remember":
            logger.info(
                "require_authorization_consent='remember': fastmcp-auth shows the consent page on every authorization"
            )
        if allowed_client_redirect_uris is None:
            logger.info(
                "allowed_client_redirect_uris not set: clients may register loopback redirect URIs only (RFC 8252); "
                "list web clients' callbacks (e.g. https://claude.ai/api/mcp/auth_callback) to admit them"
            )
        config: Dict[str, Any] = {
            "base_url": base,
            "upstream_authorization_endpoint": upstream_authorization_endpoint,
            "upstream_token_endpoint": upstream_token_endpoint,
            "upstream_client_id": upstream_client_id,
            "upstream_client_secret": upstream_client_secret,
            "jwt_signing_key": key_text,
            "encryption_key": storage_key.decode("ascii"),
            "claim_layout": "py",
            "route_layout": "py",
            "redirect_path": self._redirect_path,
            "scopes": default_scopes,
            "forward_pkce": bool(forward_pkce),
            "forward_resource": bool(forward_resource),
            "consent_required": require_authorization_consent not in (False, "external"),
            "cimd": {"enabled": bool(enable_cimd)},
        }
        if valid_scopes is not None:
            config["valid_scopes"] = list(valid_scopes)
        if allowed_client_redirect_uris is not None:
            config["allowed_redirect_uri_patterns"] = list(allowed_client_redirect_uris)
        if token_endpoint_auth_method is not None:
            config["upstream_token_endpoint_auth_method"] = token_endpoint_auth_method
        if extra_authorize_params:
            config["extra_authorization_params"] = dict(extra_authorize_params)
        if fallback_access_token_expiry_seconds is not None:
            # fastmcp: the lifetime whenever upstream gives no expires_in, with or without a refresh token.
            config["fallback_access_token_expiry_seconds"] = fallback_access_token_expiry_seconds
            config["access_token_ttl"] = fallback_access_token_expiry_seconds
        if fallback_refresh_token_expiry_seconds is not None:
            config["refresh_token_ttl"] = fallback_refresh_token_expiry_seconds
        if fastmcp_access_token_expiry_seconds is not None:
            config["fastmcp_access_token_expiry_seconds"] = fastmcp_access_token_expiry_seconds
        if refresh_grace_window is not None:
            config["refresh_grace_window"] = refresh_grace_window
        if previous_jwt_signing_keys:
            config["previous_jwt_signing_keys"] = [_text_key(k, "previous_jwt_signing_keys") for k in previous_jwt_signing_keys]
        if self._preset is not None:
            config["preset"] = self._preset
        for k, v in (core_options or {}).items():
            if k in config and k not in ("preset", "forward_resource"):
                raise ValueError(f"core_options: `{k}` is set from the fastmcp arguments; pass it there")
            config[k] = v
        self._config = config
        self._core = _native.OAuthProxy(config, storage)
        self._core_resources: List[str] = []

    # ---- fastmcp's hooks ---------------------------------------------------------------------------------------

    def set_mcp_path(self, mcp_path: Optional[str]) -> None:
        """As fastmcp's: fixes the resource URL (``resource_base_url`` or ``base_url`` + ``mcp_path``), which our
        tokens are bound to (RFC 8707 audience). A resource on another origin than ``base_url`` is accepted by the
        core only when listed, so the core is rebuilt with it."""
        super().set_mcp_path(mcp_path)
        resource = str(self._resource_url) if self._resource_url else None
        if resource and _origin(resource) != _origin(self._config["base_url"]) and self._core_resources != [resource]:
            self._core.close()
            self._core_resources = [resource]
            self._core = _native.OAuthProxy({**self._config, "accepted_resources": [resource]}, self._storage)

    def _resource(self) -> str:
        if self._resource_url is None:
            self.set_mcp_path(self._mcp_path)
        return str(self._resource_url) if self._resource_url else self._config["base_url"]

    async def verify_token(self, token: str) -> Optional[AccessToken]:  # type: ignore[override]
        """Our access token for this MCP endpoint → fastmcp's ``AccessToken``, or None (bad signature, expired,
        revoked, another audience, no upstream tokens, or ``token_verifier`` refusing the upstream access token).
        Like fastmcp's, the result is ``token_verifier``'s ``AccessToken`` for the upstream token, with our token's
        ``upstream_claims`` (if any) under ``claims["upstream_claims"]``."""
        if not isinstance(token, str) or not token:
            return None
        resource = self._resource()
        try:
            found = self._core.verify_inline(token, resource)
            if found is NotImplemented:
                found = await self._core.verify_async(token, resource)
        except OAuthProxyError as e:
            # A storage failure: refuse (401), and say so without the token.
            logger.warning("token check failed: %s", e.code)
            return None
        if found is None:
            return None
        upstream = found.get("upstream") or {}
        access = upstream.get("accessToken")
        if not isinstance(access, str) or not access:
            return None
        validated = await self._token_validator.verify_token(access)
        if validated is None:
            return None
        claims = found.get("claims") or {}
        upstream_claims = claims.get("upstream_claims")
        if upstream_claims:
            validated = validated.model_copy(deep=True)
            if validated.claims is None:
                validated.claims = {}
            validated.claims["upstream_claims"] = upstream_claims
        return validated

    async def load_access_token(self, token: str) -> Optional[AccessToken]:  # type: ignore[override]
        return await self.verify_token(token)

    # ---- routes ------------------------------------------------------------------------------------------------

    def _metadata(self) -> Dict[str, Any]:
        m = dict(self._core.authorization_server_metadata())
        if self.service_documentation_url is not None:
            m["service_documentation"] = str(self.service_documentation_url)
        return m

    def get_routes(self, mcp_path: Optional[str] = None) -> List[Route]:
        """fastmcp's routes at fastmcp's paths, each served by the core: RFC 8414 metadata, ``/authorize``,
        ``/consent`` (POST), ``/token``, ``/register``, ``/revoke``, the callback at ``redirect_path`` and, with an
        MCP path, the RFC 9728 metadata at ``/.well-known/oauth-protected-resource<mcp path>``."""
        self.set_mcp_path(mcp_path)

        # Fixed for the life of the routes: built once, not per discovery request.
        as_metadata = self._metadata()

        async def metadata(request: Request) -> Response:
            return _json(as_metadata)

        async def authorize(request: Request) -> Response:
            query = request.url.query
            if request.method == "POST":
                body = await _body(request)
                if body is None:
                    return _too_large()
                query = body.decode("utf-8", "replace")
            cookie = request.headers.get("cookie")
            return _answer(await self._core.serve_authorize(query, cookie, _addr(request)))

        async def consent(request: Request) -> Response:
            body = await _body(request)
            if body is None:
                return _too_large()
            return _answer(await self._core.serve_consent(body, request.headers.get("cookie"), _addr(request)))

        async def callback(request: Request) -> Response:
            cookie = request.headers.get("cookie")
            return _answer(await self._core.serve_callback(request.url.query, cookie, _addr(request)))

        async def token(request: Request) -> Response:
            body = await _body(request)
            if body is None:
                return _too_large()
            auth = request.headers.get("authorization")
            return _answer(await self._core.serve_token(body, auth, _addr(request)))

        async def register(request: Request) -> Response:
            body = await _body(request)
            if body is None:
                return _too_large()
            return _answer(await self._core.serve_register(body, _addr(request)))

        async def revoke(request: Request) -> Response:
            body = await _body(request)
            if body is None:
                return _too_large()
            auth = request.headers.get("authorization")
            return _answer(await self._core.serve_revoke(body, auth, _addr(request)))

        routes = [
            Route("/.well-known/oauth-authorization-server", cors_middleware(metadata, ["GET", "OPTIONS"]),
                  methods=["GET", "OPTIONS"]),
            Route("/authorize", authorize, methods=["GET", "POST"]),
            Route("/consent", consent, methods=["POST"]),
            Route(self._redirect_path, callback, methods=["GET"]),
            Route("/token", cors_middleware(token, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
            Route("/register", cors_middleware(register, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
            Route("/revoke", cors_middleware(revoke, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
        ]
        if self._resource_url is not None:
            resource = str(self._resource_url)
            prm = dict(self._core.protected_resource_metadata(resource))

            async def protected_resource(request: Request) -> Response:
                return _json(prm)

            path = urlsplit(resource).path.rstrip("/")
            routes.append(
                Route(f"/.well-known/oauth-protected-resource{path}",
                      cors_middleware(protected_resource, ["GET", "OPTIONS"]), methods=["GET", "OPTIONS"])
            )
        return routes

    @property
    def jwt_issuer(self) -> Any:
        """As fastmcp's: the issuer of our tokens (``fastmcp_auth.JWTIssuer``, fastmcp Python's claim layout),
        ``iss`` = ``base_url``, ``aud`` = the MCP endpoint; ``verify_token`` on it checks signature, expiry, issuer
        and audience (not revocation: use the provider's ``verify_token`` for that)."""
        return _native.JWTIssuer(self._config["base_url"], self._resource(), self._jwt_signing_key)

    # ---- extras ------------------------------------------------------------------------------------------------

    @property
    def core(self) -> Any:
        """The native ``fastmcp_auth.OAuthProxy`` serving this provider (metrics_text(), health(), ...)."""
        return self._core

    def close(self) -> None:
        """Stops the core's background work (the store's sweeper)."""
        self._core.close()


#: The arguments fastmcp's providers pass on to ``OAuthProxy`` unchanged.
_PASSED_ON = (
    "base_url", "resource_base_url", "redirect_path", "allowed_client_redirect_uris", "client_storage",
    "jwt_signing_key", "require_authorization_consent", "consent_csp_policy", "fallback_refresh_token_expiry_seconds",
    "fastmcp_access_token_expiry_seconds", "token_expiry_threshold_seconds", "enable_cimd", "identity_assertion",
)


def _passed_on(args: Dict[str, Any]) -> Dict[str, Any]:
    """A provider constructor's arguments that go to ``OAuthProxy`` as they are (``issuer_url`` defaults to
    ``base_url``, as in fastmcp)."""
    out = {k: args[k] for k in _PASSED_ON}
    out["issuer_url"] = args["issuer_url"] or args["base_url"]
    return out


class GitHubProvider(OAuthProxy):
    """fastmcp's ``GitHubProvider`` (same constructor, fastmcp 4.2.3) on the core: GitHub's endpoints, the secret
    sent in the body, the one-year lifetime GitHub OAuth Apps' non-expiring tokens get, and fastmcp's own
    ``GitHubTokenVerifier`` (GitHub's ``/user``: ``login``, ``name``, ``email`` reach ``get_access_token().claims``).
    ``upstream_authorization_endpoint`` / ``upstream_token_endpoint`` are class attributes (GitHub Enterprise: a
    subclass names its host)."""

    _preset = "github"
    upstream_authorization_endpoint = "https://github.com/login/oauth/authorize"
    upstream_token_endpoint = "https://github.com/login/oauth/access_token"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        base_url: Any,
        resource_base_url: Any = None,
        issuer_url: Any = None,
        redirect_path: Optional[str] = None,
        required_scopes: Optional[List[str]] = None,
        timeout_seconds: int = 10,
        cache_ttl_seconds: Optional[int] = None,
        max_cache_size: Optional[int] = None,
        allowed_client_redirect_uris: Optional[List[str]] = None,
        client_storage: Any = None,
        jwt_signing_key: Union[str, bytes, None] = None,
        require_authorization_consent: Union[bool, Literal["remember", "external"]] = True,
        consent_csp_policy: Optional[str] = None,
        forward_resource: bool = True,
        fallback_refresh_token_expiry_seconds: Optional[int] = None,
        fastmcp_access_token_expiry_seconds: Optional[int] = None,
        token_expiry_threshold_seconds: int = 0,
        http_client: Any = None,
        enable_cimd: bool = True,
        identity_assertion: Any = None,
        **extras: Any,
    ) -> None:
        from fastmcp.server.auth.providers.github import GitHubTokenVerifier
        from fastmcp.utilities.auth import parse_scopes

        scopes = parse_scopes(required_scopes) if required_scopes is not None else ["user"]
        verifier = GitHubTokenVerifier(
            required_scopes=scopes, timeout_seconds=timeout_seconds, cache_ttl_seconds=cache_ttl_seconds,
            max_cache_size=max_cache_size, http_client=http_client,
        )
        super().__init__(
            upstream_authorization_endpoint=self.upstream_authorization_endpoint,
            upstream_token_endpoint=self.upstream_token_endpoint,
            upstream_client_id=client_id, upstream_client_secret=client_secret, token_verifier=verifier,
            forward_resource=forward_resource, **_passed_on(locals()), **extras,
        )


class GoogleProvider(OAuthProxy):
    """fastmcp's ``GoogleProvider`` (same constructor, fastmcp 4.2.3) on the core: Google's endpoints, offline
    access (``access_type=offline``, ``prompt=consent``, yours on top), scope shorthands normalised as fastmcp does,
    and fastmcp's own ``GoogleTokenVerifier`` (audience = ``client_id``)."""

    _preset = "google"
    upstream_authorization_endpoint = "https://accounts.google.com/o/oauth2/v2/auth"
    upstream_token_endpoint = "https://oauth2.googleapis.com/token"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: Optional[str] = None,
        base_url: Any,
        resource_base_url: Any = None,
        issuer_url: Any = None,
        redirect_path: Optional[str] = None,
        required_scopes: Optional[List[str]] = None,
        valid_scopes: Optional[List[str]] = None,
        timeout_seconds: int = 10,
        cache_ttl_seconds: Optional[int] = None,
        max_cache_size: Optional[int] = None,
        allowed_client_redirect_uris: Optional[List[str]] = None,
        client_storage: Any = None,
        jwt_signing_key: Union[str, bytes, None] = None,
        require_authorization_consent: Union[bool, Literal["remember", "external"]] = True,
        consent_csp_policy: Optional[str] = None,
        forward_resource: bool = True,
        fallback_refresh_token_expiry_seconds: Optional[int] = None,
        fastmcp_access_token_expiry_seconds: Optional[int] = None,
        token_expiry_threshold_seconds: int = 0,
        extra_authorize_params: Optional[Dict[str, str]] = None,
        http_client: Any = None,
        enable_cimd: bool = True,
        identity_assertion: Any = None,
        **extras: Any,
    ) -> None:
        from fastmcp.server.auth.providers.google import GoogleTokenVerifier, _normalize_google_scope
        from fastmcp.utilities.auth import parse_scopes

        scopes = parse_scopes(required_scopes) if required_scopes is not None else ["openid"]
        valid = [_normalize_google_scope(x) for x in parse_scopes(valid_scopes)] if valid_scopes is not None else None
        verifier = GoogleTokenVerifier(
            required_scopes=scopes, timeout_seconds=timeout_seconds, cache_ttl_seconds=cache_ttl_seconds,
            max_cache_size=max_cache_size, http_client=http_client, audience=client_id,
        )
        params = {"access_type": "offline", "prompt": "consent", **(extra_authorize_params or {})}
        super().__init__(
            upstream_authorization_endpoint=self.upstream_authorization_endpoint,
            upstream_token_endpoint=self.upstream_token_endpoint,
            upstream_client_id=client_id, upstream_client_secret=client_secret, token_verifier=verifier,
            forward_resource=forward_resource, extra_authorize_params=params, valid_scopes=valid,
            **_passed_on(locals()), **extras,
        )


class AzureProvider(OAuthProxy):
    """fastmcp's ``AzureProvider`` (Microsoft Entra ID, same constructor, fastmcp 4.2.3) on the core: the tenant's
    v2 endpoints under ``base_authority``, the API's scopes prefixed with ``identifier_uri`` upstream and stripped
    from what Entra grants, ``additional_authorize_scopes`` (+ ``offline_access``) on the authorization request and
    only their OIDC ones on token requests (the core's ``upstream_scope_prefix`` rules, AADSTS28000 / AADSTS28003),
    no ``resource`` parameter upstream (v2 endpoints take scopes instead), ``prompt=select_account`` unless
    ``extra_authorize_params`` is given, and fastmcp's own ``JWTVerifier`` on the tenant's JWKS (audience: the
    client id or ``identifier_uri``; only non-OIDC scopes enforced). Not yet: ``from_b2c`` and the On-Behalf-Of
    helpers (``get_obo_credential``), which raise ``NotImplementedError``."""

    _preset = "azure"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: Optional[str] = None,
        tenant_id: str,
        required_scopes: List[str],
        base_url: str,
        resource_base_url: Any = None,
        identifier_uri: Optional[str] = None,
        issuer_url: Optional[str] = None,
        redirect_path: Optional[str] = None,
        additional_authorize_scopes: Optional[List[str]] = None,
        allowed_client_redirect_uris: Optional[List[str]] = None,
        client_storage: Any = None,
        jwt_signing_key: Union[str, bytes, None] = None,
        require_authorization_consent: Union[bool, Literal["remember", "external"]] = True,
        consent_csp_policy: Optional[str] = None,
        forward_resource: bool = True,
        fallback_refresh_token_expiry_seconds: Optional[int] = None,
        fastmcp_access_token_expiry_seconds: Optional[int] = None,
        token_expiry_threshold_seconds: int = 0,
        base_authority: str = "login.microsoftonline.com",
        token_issuer: Optional[str] = None,
        extra_authorize_params: Optional[Dict[str, str]] = None,
        http_client: Any = None,
        enable_cimd: bool = True,
        identity_assertion: Any = None,
        **extras: Any,
    ) -> None:
        from fastmcp.server.auth.providers.azure import OIDC_SCOPES
        from fastmcp.server.auth.providers.jwt import JWTVerifier
        from fastmcp.utilities.auth import parse_scopes

        # Beyond fastmcp, which pastes it into the URLs as given: a tenant is a GUID, a domain or common /
        # organizations / consumers — letters, digits, `.` and `-`, and not only dots (no `..`, no `%2e%2e`).
        if not re.fullmatch(r"[A-Za-z0-9.-]+", tenant_id or "") or set(tenant_id) == {"."}:
            raise ValueError("tenant_id must be a tenant id, a domain, or one of common / organizations / consumers")
        scopes = parse_scopes(required_scopes) or []
        additional = list(parse_scopes(additional_authorize_scopes) or []) if additional_authorize_scopes else []
        if "offline_access" not in additional:
            additional.append("offline_access")
        self._tenant_id = tenant_id
        self._base_authority = base_authority
        self.identifier_uri = identifier_uri or f"api://{client_id}"
        self.additional_authorize_scopes = additional
        validation_scopes = [x for x in scopes if x not in OIDC_SCOPES]
        if not validation_scopes:
            raise ValueError(
                "AzureProvider requires at least one non-OIDC scope in required_scopes (e.g., 'read', 'write'). "
                "OIDC scopes like 'openid', 'profile', 'email', and 'offline_access' are not included in Azure "
                "access token claims and cannot be used for scope enforcement."
            )
        verifier = JWTVerifier(
            jwks_uri=f"https://{base_authority}/{tenant_id}/discovery/v2.0/keys",
            issuer=token_issuer or f"https://{base_authority}/{tenant_id}/v2.0",
            audience=[client_id, self.identifier_uri],
            algorithm="RS256",
            required_scopes=validation_scopes,
            http_client=http_client,
        )
        if extra_authorize_params is None:
            extra_authorize_params = {"prompt": "select_account"}
        core = dict(extras.pop("core_options", None) or {})
        core.setdefault("upstream_scope_prefix", f"{self.identifier_uri.rstrip('/')}/")
        core.setdefault("additional_authorize_scopes", additional)
        # Entra v2 takes scopes, not RFC 8707 resources (fastmcp drops `resource` upstream for Azure too), whatever
        # `forward_resource` says; our own tokens stay bound to this server's resource.
        super().__init__(
            upstream_authorization_endpoint=self.upstream_authorization_endpoint_for(base_authority, tenant_id),
            upstream_token_endpoint=self.upstream_token_endpoint_for(base_authority, tenant_id),
            upstream_client_id=client_id, upstream_client_secret=client_secret, token_verifier=verifier,
            forward_resource=False, extra_authorize_params=extra_authorize_params, valid_scopes=scopes,
            core_options=core, **_passed_on(locals()), **extras,
        )

    @staticmethod
    def upstream_authorization_endpoint_for(base_authority: str, tenant_id: str) -> str:
        """The tenant's v2 authorization endpoint (a subclass may point elsewhere, e.g. a test double)."""
        return f"https://{base_authority}/{tenant_id}/oauth2/v2.0/authorize"

    @staticmethod
    def upstream_token_endpoint_for(base_authority: str, tenant_id: str) -> str:
        """The tenant's v2 token endpoint."""
        return f"https://{base_authority}/{tenant_id}/oauth2/v2.0/token"

    @classmethod
    def from_b2c(cls, *args: Any, **kwargs: Any) -> "AzureProvider":
        raise NotImplementedError("fastmcp_auth.fastmcp.AzureProvider.from_b2c is not supported yet; use fastmcp's")

    async def get_obo_credential(self, user_assertion: str) -> Any:
        raise NotImplementedError(
            "fastmcp_auth.fastmcp.AzureProvider: On-Behalf-Of credentials are not supported yet; use fastmcp's"
        )


__all__ = ["OAuthProxy", "GitHubProvider", "GoogleProvider", "AzureProvider"]
