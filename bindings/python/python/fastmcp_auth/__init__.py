"""fastmcp_auth: the Rust core of fastmcp-auth for Python — token stores, fastmcp Python's JWTIssuer and
derive_jwt_key, PKCE, and the OAuth proxy with token swap. Blocking calls release the GIL."""

from ._native import (
    DiskStore,
    EncryptedStore,
    JWTIssuer,
    MemoryStore,
    OAuthProxy,
    RedisStore,
    Store,
    __version__,
    derive_jwt_key,
    derive_key,
    generate_challenge,
    generate_verifier,
    validate_challenge,
)
from .errors import (
    FastMCPAuthError,
    InvalidArgumentError,
    InvalidTokenError,
    NotADirectoryStoreError,
    OAuthProxyError,
    StorageError,
)

__all__ = [
    "DiskStore",
    "EncryptedStore",
    "FastMCPAuthError",
    "InvalidArgumentError",
    "InvalidTokenError",
    "JWTIssuer",
    "MemoryStore",
    "NotADirectoryStoreError",
    "OAuthProxy",
    "OAuthProxyError",
    "RedisStore",
    "StorageError",
    "Store",
    "__version__",
    "derive_jwt_key",
    "derive_key",
    "generate_challenge",
    "generate_verifier",
    "validate_challenge",
]
