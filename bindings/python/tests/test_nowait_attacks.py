"""Attacks on the in-place disk reads of the Python binding: ``get_async`` / ``verify_async`` answered on the
event loop's thread from the kernel's caches (``get_nowait``), the 2 ms per-turn budget for that work, the work
deferred to later turns (``_new_turn``), and its fallback to the blocking pool.

What every test holds the binding to: no crash, no hang, every future completes (with the right answer or an
error) or is cancelled, and an in-place answer is the answer the blocking path gives."""

import asyncio
import base64
import gc
import glob
import json
import os
import sys
import threading
import time
import weakref

import pytest

import fastmcp_auth as fa
from fastmcp_auth import DiskStore, EncryptedStore, StorageError

from .test_aio import _evict
from .test_proxy import REDIRECT, login

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads that never wait are Linux's (openat2, preadv2)"
)


def _watch(errors):
    """Collects what the running loop's exception handler is given (an exception in `_new_turn`, `_drain`, or a
    callback of a completed future would land there)."""
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))


def _filled(tmp_path, n=300, name="d"):
    store = DiskStore(str(tmp_path / name), cleanup_interval=0)
    for i in range(n):
        store.save(f"k{i}", {"i": i})
    for i in range(n):  # every entry in the caches (the saves did it; make sure)
        assert store.get(f"k{i}") == {"i": i}
    return store


# ---- bursts, several loops ----------------------------------------------------------------------------------------


def test_bursts_from_several_loops_in_several_threads_each_get_their_own_answers(tmp_path):
    """Four threads, each running its own event loop, each starting 3,000 reads in one step (cached keys, absent
    keys, an encrypted view of the same directory) and writing while they are in flight: every read answers its
    own key's value, in place, deferred or on the pool, and every thread finishes."""
    disk = _filled(tmp_path, 300)
    enc_disk = DiskStore(str(tmp_path / "enc"), cleanup_interval=0)
    enc = EncryptedStore(enc_disk, "nowait-attack-key-0123456789abcdef")
    for i in range(300):
        enc.save(f"e{i}", {"e": i})
    errors, finished = [], []

    def worker(tid):
        async def burst():
            futs, want = [], []
            for j in range(3000):
                i = (j * 7 + tid) % 300
                if j % 10 == 0:
                    futs.append(disk.get_async(f"absent-{tid}-{j}"))
                    want.append(None)
                elif j % 3 == 0:
                    futs.append(enc.get_async(f"e{i}"))
                    want.append({"e": i})
                else:
                    futs.append(disk.get_async(f"k{i}"))
                    want.append({"i": i})
            writes = [disk.save_async(f"w{tid}-{j}", {"t": tid, "j": j}) for j in range(50)]
            got = await asyncio.wait_for(asyncio.gather(*futs), 30)
            await asyncio.wait_for(asyncio.gather(*writes), 30)
            bad = [(j, g, w) for j, (g, w) in enumerate(zip(got, want)) if g != w]
            assert not bad, bad[:5]
            back = await asyncio.gather(*(disk.get_async(f"w{tid}-{j}") for j in range(50)))
            assert back == [{"t": tid, "j": j} for j in range(50)]

        try:
            for _ in range(2):
                asyncio.run(burst())
            finished.append(tid)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((tid, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a loop hung"
    assert not errors, errors
    assert sorted(finished) == [0, 1, 2, 3]


# ---- cancellation, closed loops, closed stores --------------------------------------------------------------------


def test_cancelled_deferred_reads_are_skipped_and_the_rest_answer(tmp_path):
    """3,000 reads started at once; half of those deferred to later turns are cancelled (and a task awaiting one is
    cancelled): the others answer their own keys, the cancelled ones stay cancelled, and a few turns later no
    future is left pending."""
    store = _filled(tmp_path, 300)
    loop_errors = []

    async def scenario():
        _watch(loop_errors)
        futs = [store.get_async(f"k{j % 300}") for j in range(3000)]
        deferred = [j for j, f in enumerate(futs) if not f.done()]
        assert len(deferred) > 100, len(deferred)
        cancelled = set(deferred[::2])
        for j in cancelled:
            futs[j].cancel()

        async def awaiting(f):
            return await f

        victim = [j for j in deferred if j not in cancelled][-1]  # last in the queue: still pending below
        task = asyncio.ensure_future(awaiting(futs[victim]))
        await asyncio.sleep(0)
        assert not futs[victim].done()
        task.cancel()
        rest = [j for j in range(3000) if j not in cancelled and j != victim]
        got = await asyncio.wait_for(asyncio.gather(*(futs[j] for j in rest)), 20)
        assert got == [{"i": j % 300} for j in rest]
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(20):
            await asyncio.sleep(0)
        assert all(f.done() for f in futs), sum(not f.done() for f in futs)
        assert all(futs[j].cancelled() for j in cancelled)
        # And the loop still answers in place afterwards.
        await asyncio.sleep(0.01)
        f = store.get_async("k1")
        assert f.done() and await f == {"i": 1}
        # Reads declined in place (data evicted) and cancelled while on the blocking pool: skipped when they finish.
        for i in range(20):
            _evict(tmp_path / "d" / f"k{i}.json")
        pooled = [(i, store.get_async(f"k{i}")) for i in range(20)]
        on_pool = [(i, f) for i, f in pooled if not f.done()]  # eviction is best effort
        assert len(on_pool) >= 2, len(on_pool)
        for _, f in on_pool[::2]:
            f.cancel()
        kept = on_pool[1::2]
        got = await asyncio.wait_for(asyncio.gather(*(f for _, f in kept)), 10)
        assert got == [{"i": i} for i, _ in kept]
        assert all(f.done() for _, f in pooled)
        # Once the cancelled reads' work has finished (on the pool too), the bridge holds none of the futures.
        refs = [weakref.ref(f) for f in futs + [f for _, f in pooled]]
        del futs, pooled, on_pool, kept, f, task
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            gc.collect()
            alive = sum(r() is not None for r in refs)
            if not alive:
                break
            await asyncio.sleep(0.01)
        assert alive == 0, f"{alive} futures still referenced"

    asyncio.run(scenario())
    assert not loop_errors, loop_errors


def test_a_loop_closed_while_reads_are_deferred(tmp_path):
    """A loop that stops with reads still deferred (its `_new_turn` queued): run again, it answers them all; closed
    instead, nothing crashes, and a new loop on the same thread (and on another thread) starts with a fresh budget:
    its first read answers in place and a burst answers every key."""
    store = _filled(tmp_path, 300)

    async def issue():
        return [store.get_async(f"k{j % 300}") for j in range(3000)]

    # Stopped, then run again.
    loop = asyncio.new_event_loop()
    try:
        futs = loop.run_until_complete(issue())
        assert any(not f.done() for f in futs)
        got = loop.run_until_complete(asyncio.wait_for(asyncio.gather(*futs), 20))
        assert got == [{"i": j % 300} for j in range(3000)]
    finally:
        loop.close()

    # Closed with work deferred.
    loop = asyncio.new_event_loop()
    futs = loop.run_until_complete(issue())
    pending = [f for f in futs if not f.done()]
    assert pending
    loop.close()
    del loop
    gc.collect()

    async def fresh():
        await asyncio.sleep(0)
        f = store.get_async("k5")
        assert f.done(), "a new loop starts with a fresh budget: answered in place"
        assert await f == {"i": 5}
        got = await asyncio.wait_for(asyncio.gather(*(store.get_async(f"k{j % 300}") for j in range(3000))), 20)
        assert got == [{"i": j % 300} for j in range(3000)]

    asyncio.run(fresh())
    out = []
    t = threading.Thread(target=lambda: out.append(asyncio.run(fresh())))
    t.start()
    t.join(30)
    assert out == [None]
    # What the closed loop left: never completed (its loop can run nothing), never a crash when collected.
    assert all(not f.done() for f in pending)
    del futs, pending
    gc.collect()


def test_asyncio_run_ending_with_deferred_reads_in_flight(tmp_path):
    """`asyncio.run` of a main that starts tasks reading in a burst and returns without awaiting them: the tasks
    are cancelled by `asyncio.run`'s shutdown, nothing hangs, and the next `asyncio.run` works."""
    store = _filled(tmp_path, 300)
    seen = []

    async def reader(j):
        seen.append(await store.get_async(f"k{j % 300}"))

    async def main():
        for j in range(3000):
            asyncio.ensure_future(reader(j))
        await asyncio.sleep(0)  # the tasks start: some in place, the rest deferred

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 10
    assert all(v == {"i": v["i"]} for v in seen)

    async def again():
        return await store.get_async("k7")

    assert asyncio.run(again()) == {"i": 7}


def test_store_closed_while_reads_are_deferred(tmp_path):
    """A store closed in the same step that started a burst: reads answered in place before the close have their
    values; every deferred read fails with StorageError (store_closed) — none hangs, none answers a value after
    the close. Through EncryptedStore too, and for a read already handed to the blocking pool."""
    for wrapped in [False, True]:
        disk = _filled(tmp_path, 300, name=f"d{wrapped}")
        store = EncryptedStore(disk, "nowait-attack-key-0123456789abcdef") if wrapped else disk
        if wrapped:
            for i in range(300):
                store.save(f"k{i}", {"i": i})
                store.get(f"k{i}")

        loop_errors = []

        async def scenario():
            _watch(loop_errors)
            futs = [store.get_async(f"k{j % 300}") for j in range(3000)]
            done_at_issue = [f.done() for f in futs]
            assert 0 < sum(done_at_issue) < 3000
            store.close()
            got = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), 20)
            for j, (g, was_done) in enumerate(zip(got, done_at_issue)):
                if was_done:
                    assert g == {"i": j % 300}, (j, g)
                else:
                    assert isinstance(g, StorageError) and g.code == "store_closed", (j, g)

        asyncio.run(scenario())
        assert not loop_errors, loop_errors
        disk.close()

    # A read on its way to the blocking pool (its data not cached) when the store closes: a value or an error.
    disk = _filled(tmp_path, 10, name="pool")

    async def on_the_pool():
        for _ in range(10):
            _evict(tmp_path / "pool" / "k3.json")
            f = disk.get_async("k3")
            if not f.done():
                break
            assert await f == {"i": 3}
        else:
            pytest.skip("the page cache kept the entry")
        disk.close()
        try:
            v = await asyncio.wait_for(f, 10)
            assert v == {"i": 3}
        except StorageError as e:
            assert e.code == "store_closed"
        # After the close: an error, answered at once.
        with pytest.raises(StorageError):
            await asyncio.wait_for(disk.get_async("k1"), 10)

    asyncio.run(on_the_pool())


def test_errors_in_the_deferred_path_reach_their_futures(tmp_path):
    """Invalid keys (empty, over the size limit) read in a burst, in place and deferred: each fails with its own
    error, the valid reads around them answer, nothing is left pending."""
    store = _filled(tmp_path, 100)
    big_key = "x" * (64 * 1024 + 1)

    loop_errors = []

    async def scenario():
        _watch(loop_errors)
        keys = []
        for j in range(3000):
            keys.append("" if j % 97 == 0 else big_key if j % 89 == 0 else f"k{j % 100}")
        futs = [store.get_async(k) for k in keys]
        got = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), 20)
        for k, g in zip(keys, got):
            if k in ("", big_key):
                assert isinstance(g, fa.FastMCPAuthError), (len(k), g)
            else:
                assert g == {"i": int(k[1:])}, (k, g)

    asyncio.run(scenario())
    assert not loop_errors, loop_errors


# ---- hostile files through the aio path ---------------------------------------------------------------------------


def test_hostile_files_in_a_burst(tmp_path):
    """A FIFO with a writer, a symlink to /dev/zero, a symlink out of the directory, a directory, a sparse file at
    the size limit and a truncated (0-byte) file among 600 good entries read in one burst: the hostile names read
    as absent (never a value, never an escape), the good ones answer, and the burst is not held up by them."""
    d = tmp_path / "d"
    store = DiskStore(str(d), cleanup_interval=0)
    for i in range(600):
        store.save(f"k{i}", {"i": i})
    outside = tmp_path / "secret.json"
    outside.write_text('{"value": "outside", "expiresAt": 9007199254740991}')
    os.mkfifo(d / "fifo.json")
    writer = os.open(d / "fifo.json", os.O_RDWR | os.O_NONBLOCK)
    os.symlink("/dev/zero", d / "zero.json")
    os.symlink(outside, d / "escape.json")
    os.mkdir(d / "adir.json")
    with open(d / "limit.json", "wb") as f:
        f.truncate(16 * 1024 * 1024)
    (d / "empty.json").write_bytes(b"")
    hostile = ["fifo", "zero", "escape", "adir", "limit", "empty"]

    async def scenario():
        keys = [hostile[j % len(hostile)] if j % 50 == 0 else f"k{j % 600}" for j in range(3000)]
        started = time.monotonic()
        got = await asyncio.wait_for(asyncio.gather(*(store.get_async(k) for k in keys)), 20)
        for k, g in zip(keys, got):
            assert g == (None if k in hostile else {"i": int(k[1:])}), (k, g)
        return time.monotonic() - started

    try:
        assert asyncio.run(scenario()) < 10
    finally:
        os.close(writer)
    assert os.path.lexists(d / "fifo.json") and outside.exists()


# ---- the budget ---------------------------------------------------------------------------------------------------


def test_the_budget_bounds_each_turn_during_a_5000_read_burst(tmp_path):
    """5,000 reads started in one step: a callback that re-schedules itself with `call_soon` (it runs once per turn
    of the loop) sees the burst drained over many turns, none of them long (measured ~3 ms on 2 cores; the bound
    is generous for a busy CI machine, but far under the ~50 ms the whole burst takes in place), and a 1 ms
    `asyncio.sleep` ticker keeps ticking."""
    store = _filled(tmp_path, 500)

    async def scenario():
        loop = asyncio.get_running_loop()
        ticks, stop = [], []

        def tick():
            ticks.append(time.perf_counter())
            if not stop:
                loop.call_soon(tick)

        sleeps = []

        async def ticker():
            while not stop:
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                sleeps.append(time.perf_counter() - t)

        loop.call_soon(tick)
        tk = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.01)
        futs = [store.get_async(f"k{j % 500}") for j in range(5000)]
        issued = time.perf_counter()
        got = await asyncio.wait_for(asyncio.gather(*futs), 30)
        drained = time.perf_counter()
        stop.append(True)
        await tk
        assert got == [{"i": j % 500} for j in range(5000)]
        turns = [b - a for a, b in zip(ticks, ticks[1:]) if a >= issued and b <= drained]
        return turns, sleeps, drained - issued

    # The interpreter's own pauses (a cyclic GC pass over the burst's objects: ~30 ms, seen) are not the bridge's.
    gc.disable()
    try:
        turns, sleeps, total = asyncio.run(scenario())
    finally:
        gc.enable()
    assert len(turns) >= 5, f"drained in {len(turns)} turns over {total * 1000:.1f} ms"
    median = sorted(turns)[len(turns) // 2]
    assert median < 0.015, f"median turn {median * 1000:.1f} ms"
    assert max(turns) < 0.1, f"longest turn {max(turns) * 1000:.1f} ms of {total * 1000:.1f} ms"
    assert sleeps and max(sleeps) < 0.25, max(sleeps)


def test_a_small_burst_in_a_fresh_turn_is_answered_in_place(tmp_path):
    """200 turns, each starting 20 cached reads (~60 µs of in-place work, far under 2 ms) and awaiting them: per the
    documented budget ("at most 2 ms of such reads per turn of the loop") every one is answered in place."""
    store = _filled(tmp_path, 100)

    async def scenario():
        deferred = []
        for r in range(200):
            futs = [store.get_async(f"k{j}") for j in range(20)]
            n = sum(not f.done() for f in futs)
            if n:
                deferred.append((r, n))
            await asyncio.gather(*futs)
            await asyncio.sleep(0)
        return deferred

    deferred = asyncio.run(scenario())
    # A turn whose reads were preempted on a busy machine (the budget is wall time) may defer a few; a budget
    # that accumulated across turns deferred in a turn of every ~30 (12-30 of 200).
    assert len(deferred) <= 3, f"{len(deferred)} of 200 turns deferred reads: {deferred[:5]}"


def test_runtime_threads_run_at_nice_10_and_the_loop_thread_does_not(tmp_path):
    """After writes and uncached reads (blocking pool) from a loop: every thread of the library's runtime runs at
    nice 10, the event loop's thread keeps its priority."""
    store = _filled(tmp_path, 20)
    _evict(tmp_path / "d" / "k1.json")

    async def work():
        await asyncio.gather(*(store.save_async(f"n{j}", {"j": j}) for j in range(50)))
        assert await store.get_async("k1") == {"i": 1}

    mine = os.getpriority(os.PRIO_PROCESS, 0)
    asyncio.run(work())
    runtime = []
    for t in glob.glob("/proc/self/task/*/stat"):
        st = open(t).read()
        comm = st[st.index("(") + 1:st.rindex(")")]
        nice = int(st[st.rindex(")") + 2:].split()[16])
        if comm == "fastmcp-auth":
            runtime.append(nice)
    assert runtime and all(n == max(10, mine) for n in runtime), runtime
    assert os.getpriority(os.PRIO_PROCESS, 0) == mine


# ---- the proxy's verify_token path --------------------------------------------------------------------------------

BASE = "http://127.0.0.1:8000"


def _login(p):
    """test_proxy's login, then the token request: (client id, secret, token response)."""
    cid, secret, form = login(p)
    return cid, secret, p.token(form)


def _jti(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["jti"]


def _proxy(idp, directory, **extra):
    config = {
        "base_url": BASE,
        "upstream_authorization_endpoint": f"{idp}/authorize",
        "upstream_token_endpoint": f"{idp}/token",
        "upstream_client_id": "upstream-client",
        "upstream_client_secret": "upstream secret+/=",
        "jwt_signing_key": "py-jwt-key",
        "encryption_key": "py-enc-key",
        **extra,
    }
    return fa.OAuthProxy(config, storage=DiskStore(str(directory), cleanup_interval=0))


def test_verify_inline_outside_and_inside_a_loop_on_disk(idp, tmp_path):
    """`verify_inline` on a DiskStore-backed proxy: outside any running loop it answers directly from the caches (no
    bridge, no budget); inside one it answers the same dict (or NotImplemented, then `verify_async` does); a forged token, a
    refresh token and, after revocation, the revoked token are None on every path; with the mapping entry evicted
    from the page cache the in-place check declines (NotImplemented), never None, and the awaited check answers."""
    d = tmp_path / "oauth"
    p = _proxy(idp, d)
    cid, secret, t = _login(p)
    at, rt = t["access_token"], t["refresh_token"]
    live = p.verify_inline(at, BASE)
    assert isinstance(live, dict) and live["claims"]["jti"] == _jti(at), live
    assert p.verify_inline(at + "x", BASE) is None
    assert p.verify_inline(rt, BASE) is None

    async def inside():
        got = p.verify_inline(at, BASE)
        if got is NotImplemented:
            got = await p.verify_async(at, BASE)
        assert got == live
        assert await p.verify_async(at, BASE) == live
        assert await p.verify_async(at + "x", BASE) is None
        assert await p.verify_async(rt, BASE) is None
        # Evicted mapping: declined in place (NotImplemented), never None; answered awaited. (Eviction is best
        # effort and a declined read starts the readahead itself, which a fast device may finish at once: tried a
        # few times, an in-place answer is then the live one.)
        declined = 0
        for _ in range(10):
            _evict(d / f"mapping_{_jti(at)}.json")
            got = p.verify_inline(at, BASE)
            if got is NotImplemented:
                declined += 1
            else:
                assert got == live
            assert await p.verify_async(at, BASE) == live
        assert declined

    asyncio.run(inside())
    p.revoke(at, cid, secret)
    # Outside a loop too, a name that has just gone (renamed away by the revocation's take) may not be in the
    # dentry cache yet: declined (NotImplemented; a caller without a loop then uses `check_bearer`), never a dict.
    got = p.verify_inline(at, BASE)
    assert got is None or got is NotImplemented, got
    assert p.check_bearer(f"Bearer {at}", BASE)["authorized"] is False

    async def revoked():
        got = p.verify_inline(at, BASE)
        assert got is None or got is NotImplemented
        assert await p.verify_async(at, BASE) is None

    asyncio.run(revoked())
    p.close()


def test_verify_async_bursts_deferred_and_declined_agree_with_the_blocking_check(idp, tmp_path):
    """2,000 `verify_async` calls started in one step (live, forged, refresh, another client's revoked token), with
    the upstream entry of one token evicted part way: every answer is the blocking `check_bearer`'s verdict, in
    place, deferred or on the pool; `verify_inline` calls made while the budget is spent answer NotImplemented
    (never a wrong None)."""
    d = tmp_path / "oauth"
    p = _proxy(idp, d)
    cid, secret, t = _login(p)
    _, _, t2 = _login(p)
    c3, s3, t3 = _login(p)
    p.revoke(t3["access_token"], c3, s3)
    tokens = {"live": t["access_token"], "live2": t2["access_token"], "forged": t["access_token"][:-2] + "xx",
              "refresh": t["refresh_token"], "revoked": t3["access_token"]}
    want = {k: p.check_bearer(f"Bearer {v}", BASE)["authorized"] for k, v in tokens.items()}
    assert want == {"live": True, "live2": True, "forged": False, "refresh": False, "revoked": False}
    up_files = sorted(glob.glob(str(d / "upstream_*.json")))
    assert up_files

    async def scenario():
        names = list(tokens)
        futs, kinds, inline = [], [], []
        for j in range(2000):
            k = names[j % len(names)]
            if j == 1000:
                for f in up_files:
                    _evict(f)
            if j % 100 == 0:
                inline.append((k, p.verify_inline(tokens[k], BASE)))
            futs.append(p.verify_async(tokens[k], BASE))
            kinds.append(k)
        got = await asyncio.wait_for(asyncio.gather(*futs), 30)
        for k, g in zip(kinds, got):
            assert (g is not None) == want[k], (k, g)
        for k, g in inline:
            assert g is NotImplemented or (g is not None) == want[k], (k, g)
        return sum(g is NotImplemented for _, g in inline)

    asyncio.run(scenario())
    p.close()


def test_verify_async_from_several_loops_at_once(idp, tmp_path):
    """Three threads, each with its own loop, each starting 1,000 `verify_async` calls of a live and a forged token
    at once against one DiskStore-backed proxy: every answer is right, no loop reports an error."""
    p = _proxy(idp, tmp_path / "oauth")
    _, _, t = _login(p)
    at = t["access_token"]
    live = p.check_bearer(f"Bearer {at}", BASE)
    assert live["authorized"] is True
    errors, loop_errors = [], []

    def worker():
        async def burst():
            _watch(loop_errors)
            futs = [p.verify_async(at if j % 2 else at + "x", BASE) for j in range(1000)]
            got = await asyncio.wait_for(asyncio.gather(*futs), 30)
            assert all((g is not None) == bool(j % 2) for j, g in enumerate(got))
            assert all(g["claims"] == live["claims"] for g in got[1::2])

        try:
            asyncio.run(burst())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads)
    assert not errors and not loop_errors, (errors, loop_errors)
    p.close()
