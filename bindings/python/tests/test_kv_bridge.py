"""The bridge that gives the core a py-key-value ``AsyncKeyValue`` as ``client_storage``: its compare-and-swap, which
single-use codes rely on (core/src/proxy/code_use.rs), atomic within the process and keeping the entry's lifetime."""

import asyncio
import json

from key_value.aio.stores.memory import MemoryStore

from fastmcp_auth.fastmcp import _KeyValueBridge


def test_replace_table():
    async def run():
        b = _KeyValueBridge(MemoryStore())
        await b.save("k", json.dumps({"a": 1, "b": [1, 2]}), 30.0)
        await b.save("forever", json.dumps("x"), None)
        cases = [
            ("k", {"a": 2}, {"a": 9}, "changed"),
            ("k", {"b": [1, 2], "a": 1}, {"a": 3}, "replaced"),  # compared as JSON: member order does not matter
            ("k", {"a": 1, "b": [1, 2]}, {"a": 4}, "changed"),  # no longer the expected value
            ("missing", {"a": 1}, {"a": 5}, "absent"),
            ("forever", "x", "y", "replaced"),
        ]
        for key, expected, new, want in cases:
            got = await b.replace(key, json.dumps(expected), json.dumps(new))
            assert got == want, (key, expected, got)
        assert json.loads(await b.get("k")) == {"a": 3}
        assert json.loads(await b.get("forever")) == "y"
        assert await b.get("missing") is None, "not created"
        _, ttl = await b._kv.ttl("k", collection=b.COLLECTION)
        assert ttl is not None and 25 < ttl <= 30, "the remaining lifetime is kept"
        _, ttl = await b._kv.ttl("forever", collection=b.COLLECTION)
        assert ttl is None, "no expiry stays none"

    asyncio.run(run())


def test_replace_is_atomic_among_concurrent_callers_and_with_take():
    async def run():
        b = _KeyValueBridge(MemoryStore())
        for round_ in range(20):
            await b.save("code:x", json.dumps({"n": round_}), 60.0)
            answers = await asyncio.gather(
                *(b.replace("code:x", json.dumps({"n": round_}), json.dumps({"by": i})) for i in range(8)),
                b.take("code:x"),
            )
            swaps, taken = answers[:-1], answers[-1]
            if taken is None:
                assert swaps.count("replaced") == 1, answers
            else:
                # The take got in first (it holds the same lock): every swap then finds nothing, or the value.
                assert swaps.count("replaced") <= 1 and json.loads(taken) in ({"n": round_},) + tuple(
                    {"by": i} for i in range(8)
                ), answers

    asyncio.run(run())


def test_a_store_without_ttl_says_it_cannot_swap():
    class NoTtl:
        def __init__(self):
            self.d = {}

        async def get(self, key, *, collection=None):
            return self.d.get(key)

        async def put(self, key, value, *, collection=None, ttl=None):
            self.d[key] = value

        async def delete(self, key, *, collection=None):
            return self.d.pop(key, None) is not None

    async def run():
        b = _KeyValueBridge(NoTtl())
        await b.save("k", json.dumps(1), None)
        assert await b.replace("k", json.dumps(1), json.dumps(2)) is None
        assert json.loads(await b.get("k")) == 1, "left alone"

    asyncio.run(run())
