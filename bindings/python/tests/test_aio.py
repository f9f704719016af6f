"""fastmcp_auth.aio: py-key-value-aio's AsyncKeyValue protocol, never blocking the event loop."""

import asyncio

import pytest
from key_value.aio.protocols.key_value import AsyncKeyValue

from fastmcp_auth.aio import AsyncDiskStore, AsyncMemoryStore


def run(coro):
    return asyncio.run(coro)


def test_protocol_and_behaviour(tmp_path):
    for store in [AsyncMemoryStore(), AsyncDiskStore(tmp_path / "d", encryption_key="k")]:
        assert isinstance(store, AsyncKeyValue)

        async def scenario():
            await store.put("client-1", {"redirect_uris": ["http://localhost:1/cb"]}, collection="mcp-oauth-clients")
            assert await store.get("client-1", collection="mcp-oauth-clients") == {"redirect_uris": ["http://localhost:1/cb"]}
            assert await store.get("client-1") is None  # another collection
            await store.put("t", {"a": 1}, ttl=60)
            value, left = await store.ttl("t")
            assert value == {"a": 1} and 55 < left <= 60
            assert await store.ttl("missing") == (None, None)
            await store.put_many(["x", "y"], [{"v": 1}, {"v": 2}])
            assert await store.get_many(["x", "y", "z"]) == [{"v": 1}, {"v": 2}, None]
            assert await store.delete_many(["x", "y", "z"]) == 2
            assert await store.delete("t") is True
            await store.put("code", {"c": 1})
            assert await store.take("code") == {"c": 1}
            assert await store.take("code") is None
            with pytest.raises(TypeError):
                await store.put("bad", ["not", "a", "mapping"])

        run(scenario())


def test_event_loop_stays_responsive(tmp_path):
    store = AsyncDiskStore(tmp_path / "d")

    async def scenario():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        await asyncio.gather(*(store.put(f"k{i}", {"i": i}) for i in range(300)))
        await asyncio.gather(*(store.get(f"k{i}") for i in range(300)))
        stop.set()
        await t
        return ticks

    assert run(scenario()) > 5
