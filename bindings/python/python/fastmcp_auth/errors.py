"""Exception classes of fastmcp_auth. The native module raises these (looked up once, by name).

Every exception carries a stable ``code`` (the core's error code; messages may change, codes do not).
``InvalidTokenError`` subclasses joserfc's ``JoseError`` when joserfc is installed, so code written for fastmcp
Python's ``JWTIssuer.verify_token`` (``except JoseError``) keeps working.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

try:  # pragma: no cover - depends on the environment
    from joserfc.errors import JoseError as _TokenBase
except ImportError:  # pragma: no cover
    _TokenBase = Exception  # type: ignore[assignment,misc]


class FastMCPAuthError(Exception):
    """Base class: ``code`` is the stable error code, ``description`` the human text."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(description or code)
        self.code = code
        self.description = description


class InvalidArgumentError(FastMCPAuthError, ValueError):
    """An argument, key or JSON value was refused."""


class StorageError(FastMCPAuthError, OSError):
    """The store failed (disk, Redis unreachable, closed store)."""


class NotADirectoryStoreError(FastMCPAuthError, NotADirectoryError):
    """The DiskStore path exists and is not a directory."""


class InvalidTokenError(_TokenBase):  # type: ignore[misc,valid-type]
    """A JWT was rejected; ``code`` says why (``invalid_token`` or ``token_expired``)."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(description or code)
        self.code = code
        self.description = description


class OAuthProxyError(Exception):
    """An OAuth error of the proxy, as fastmcp's: ``code`` (RFC 6749), ``description``, ``status_code``; and ours,
    ``retry_after``: seconds to wait on a 429 from the rate limits (send it as ``Retry-After``, see ``headers()``)."""

    def __init__(
        self, code: str, description: Optional[str] = None, status_code: int = 400, retry_after: Optional[int] = None
    ) -> None:
        super().__init__(code)
        self.code = code
        self.description = description
        self.status_code = status_code
        self.retry_after = retry_after

    def headers(self) -> Dict[str, str]:
        """The answer's headers besides ``Content-Type``: ``{"Retry-After": "<seconds>"}`` on a 429, else ``{}``."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def to_dict(self) -> Dict[str, Any]:
        """``{"error": code, "error_description": description}`` (the token endpoint's JSON body)."""
        out: Dict[str, Any] = {"error": self.code}
        if self.description is not None:
            out["error_description"] = self.description
        return out


__all__ = [
    "FastMCPAuthError",
    "InvalidArgumentError",
    "StorageError",
    "NotADirectoryStoreError",
    "InvalidTokenError",
    "OAuthProxyError",
]
