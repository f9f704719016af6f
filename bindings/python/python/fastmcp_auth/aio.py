"""Async stores for fastmcp Python: py-key-value-aio's ``AsyncKeyValue`` protocol over fastmcp-auth's Rust stores.

Pass one as ``client_storage=`` to fastmcp's OAuthProxy and providers::

    from fastmcp_auth.aio import AsyncDiskStore
    storage = AsyncDiskStore("/var/lib/fastmcp/oauth")

Every coroutine awaits a native operation and the event loop never waits on disk or Redis: a disk read whose entry
is in the kernel's caches is answered in place (``openat2`` ``RESOLVE_CACHED`` + ``preadv2`` ``RWF_NOWAIT``, Linux;
at most 2 ms of such reads per turn of the loop, the rest in later turns); other disk work runs on the library's
blocking pool (one thread hop each way, its threads at a lower CPU priority than the loop's); Redis on its tokio
runtime. The GIL is not held while the store works. Entries are stored as ``{"value": {...}, "expiresAt": t}``
(seconds since the epoch, or None) under ``"<collection>::<key>"``, so ``ttl()`` can report what is left.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Awaitable, Dict, List, Optional, SupportsFloat, Tuple, Union

from ._native import DiskStore, EncryptedStore, MemoryStore, RedisStore, Store

DEFAULT_COLLECTION = "default_collection"

Entry = Optional[Dict[str, Any]]


class AsyncStore:
    """``AsyncKeyValue`` over any fastmcp-auth ``Store``."""

    def __init__(self, store: Store, *, default_collection: Optional[str] = None) -> None:
        self.store = store
        self.default_collection = default_collection or DEFAULT_COLLECTION

    def _key(self, key: str, collection: Optional[str]) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty str")
        return f"{collection or self.default_collection}::{key}"

    @staticmethod
    def _unwrap(raw: Any) -> Tuple[Entry, Optional[float]]:
        if not isinstance(raw, dict) or not isinstance(raw.get("value"), dict):
            return None, None
        expires = raw.get("expiresAt")
        if expires is None:
            return raw["value"], None
        left = float(expires) - time.time()
        if left <= 0:
            return None, None
        return raw["value"], left

    def _entry(self, value: Mapping[str, Any], ttl: Optional[SupportsFloat]) -> Tuple[Dict[str, Any], Optional[float]]:
        # `type(...) is dict` first: the ABC check costs a microsecond, which 2,000 concurrent puts pay at once.
        if type(value) is not dict:
            if not isinstance(value, Mapping):
                raise TypeError("value must be a mapping")
            value = dict(value)
        if ttl is None:
            return {"value": value, "expiresAt": None}, None
        seconds = float(ttl)
        if not seconds > 0:
            raise ValueError("ttl must be positive")
        return {"value": value, "expiresAt": time.time() + seconds}, seconds

    async def get(self, key: str, *, collection: Optional[str] = None) -> Entry:
        """The value under ``key`` in ``collection``, or None."""
        k = self._key(key, collection)
        return self._unwrap(await self.store.get_async(k))[0]

    async def ttl(self, key: str, *, collection: Optional[str] = None) -> Tuple[Entry, Optional[float]]:
        """``(value, seconds left)``; ``(None, None)`` when absent."""
        k = self._key(key, collection)
        return self._unwrap(await self.store.get_async(k))

    def put(
        self, key: str, value: Mapping[str, Any], *, collection: Optional[str] = None, ttl: Optional[SupportsFloat] = None
    ) -> Awaitable[None]:
        """Stores ``value`` (a mapping of JSON data), optionally for ``ttl`` seconds. Returns the native awaitable
        directly (no coroutine frame per call); a bad argument raises ``TypeError`` / ``ValueError`` at the call."""
        k = self._key(key, collection)
        entry, seconds = self._entry(value, ttl)
        return self.store.save_async(k, entry, seconds)

    async def delete(self, key: str, *, collection: Optional[str] = None) -> bool:
        """Removes ``key``; True when it existed."""
        k = self._key(key, collection)
        return bool(await self.store.delete_async(k))

    async def get_many(self, keys: Sequence[str], *, collection: Optional[str] = None) -> List[Entry]:
        return [await self.get(k, collection=collection) for k in keys]

    async def ttl_many(
        self, keys: Sequence[str], *, collection: Optional[str] = None
    ) -> List[Tuple[Entry, Optional[float]]]:
        return [await self.ttl(k, collection=collection) for k in keys]

    async def put_many(
        self,
        keys: Sequence[str],
        values: Sequence[Mapping[str, Any]],
        *,
        collection: Optional[str] = None,
        ttl: Optional[SupportsFloat] = None,
    ) -> None:
        if len(keys) != len(values):
            raise ValueError("keys and values differ in length")
        for k, v in zip(keys, values):
            await self.put(k, v, collection=collection, ttl=ttl)

    async def delete_many(self, keys: Sequence[str], *, collection: Optional[str] = None) -> int:
        return sum([await self.delete(k, collection=collection) for k in keys])

    async def take(self, key: str, *, collection: Optional[str] = None) -> Entry:
        """Atomic get-and-delete (not in the protocol; single-use codes)."""
        k = self._key(key, collection)
        return self._unwrap(await self.store.take_async(k))[0]


class AsyncMemoryStore(AsyncStore):
    def __init__(self, *, cleanup_interval: float = 60.0, default_collection: Optional[str] = None) -> None:
        super().__init__(MemoryStore(cleanup_interval), default_collection=default_collection)


class AsyncDiskStore(AsyncStore):
    def __init__(
        self,
        directory: Union[str, "Any"],
        *,
        cleanup_interval: float = 60.0,
        encryption_key: Optional[str] = None,
        default_collection: Optional[str] = None,
    ) -> None:
        store: Store = DiskStore(directory, cleanup_interval=cleanup_interval)
        if encryption_key is not None:
            store = EncryptedStore(store, encryption_key)
        super().__init__(store, default_collection=default_collection)


class AsyncRedisStore(AsyncStore):
    def __init__(
        self, url: str, *, prefix: str = "fastmcp:", encryption_key: Optional[str] = None, default_collection: Optional[str] = None
    ) -> None:
        store: Store = RedisStore(url, prefix=prefix)
        if encryption_key is not None:
            store = EncryptedStore(store, encryption_key)
        super().__init__(store, default_collection=default_collection)


__all__ = ["AsyncStore", "AsyncMemoryStore", "AsyncDiskStore", "AsyncRedisStore"]
