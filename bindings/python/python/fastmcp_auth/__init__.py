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
    set_log_level,
    validate_challenge,
)
from ._native import _install_logging, _stop_logging
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
    "set_log_level",
    "validate_challenge",
]

# The core's warnings and errors ("no jwt_signing_key: tokens die with this process", "refresh token replay
# detected", "upstream unreachable", ...) go to `logging`, logger `fastmcp_auth.<module>`; `set_log_level("debug")`
# sends more. Records never hold a token, secret or key.
import atexit as _atexit
import os as _os

_install_logging("warning")
_atexit.register(_stop_logging)
# A forked worker (gunicorn --preload, multiprocessing) has no log thread: it starts its own.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_install_logging)
