import json
import threading

import pytest

import fastmcp_auth as fa


def make(kind, tmp_path, redis_url=None):
    if kind == "memory":
        return fa.MemoryStore()
    if kind == "disk":
        return fa.DiskStore(tmp_path / "store", cleanup_interval=0)
    if kind == "redis":
        return fa.RedisStore(redis_url, prefix="py:")
    base = make(kind.split("+")[1], tmp_path, redis_url)
    return fa.EncryptedStore(base, "py-key", previous_keys=["old"])


KINDS = ["memory", "disk", "redis", "enc+memory", "enc+disk", "enc+redis"]


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    if "redis" in request.param:
        url = request.getfixturevalue("redis_url")
        return make(request.param, tmp_path, url)
    return make(request.param, tmp_path)


def test_crud_and_values(store):
    value = {"a": [1, 2.5, True, None, "ünï"], "big": 2**63 - 1, "nested": {"x": {}}}
    store.save("mapping:abc", value)
    assert store.get("mapping:abc") == value
    assert store.get("missing") is None
    assert store.size() == 1
    assert store.keys() == ["mapping:abc"]
    assert store.take("mapping:abc") == value
    assert store.take("mapping:abc") is None
    store.save("k", "v", ttl=60)
    assert store.delete("k") is True
    assert store.delete("k") is False
    assert store.cleanup() >= 0


def test_hostile_keys_and_values(store):
    for key in ["../../etc/passwd", "a\x00b", "/abs", "k" * 1000, "ünï/🔑"]:
        store.save(key, 1)
        assert store.get(key) == 1
    with pytest.raises(fa.InvalidArgumentError) as e:
        store.save("", 1)
    assert e.value.code == "invalid_key"
    with pytest.raises(TypeError):
        store.save("k", object())
    with pytest.raises(ValueError):
        store.save("k", float("nan"))
    with pytest.raises(ValueError):
        store.save("k", 1, ttl=-1)


def test_take_is_atomic_across_threads(store):
    for round_ in range(10):
        store.save(f"code:{round_}", {"round": round_})
        barrier = threading.Barrier(8)
        wins = []

        def worker():
            barrier.wait()
            if store.take(f"code:{round_}") is not None:
                wins.append(1)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1


def test_disk_store_errors_and_format(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(fa.NotADirectoryStoreError) as e:
        fa.DiskStore(f)
    assert e.value.code == "not_a_directory"
    s = fa.DiskStore(tmp_path / "d", cleanup_interval=0)
    s.save("upstream-xyz", {"accessToken": "t"})
    text = (tmp_path / "d" / "upstream-xyz.json").read_text()
    assert json.loads(text) == {"expiresAt": 9007199254740991, "value": {"accessToken": "t"}}
    (tmp_path / "d" / "bad.json").write_text("{not json")
    assert s.get("bad") is None


def test_encrypted_wrong_key_reads_absent(tmp_path):
    disk = fa.DiskStore(tmp_path / "d", cleanup_interval=0)
    fa.EncryptedStore(disk, "k1").save("secret", {"accessToken": "at"})
    assert "accessToken" not in json.dumps(disk.get("secret"))
    assert fa.EncryptedStore(disk, "k2").get("secret") is None
    assert fa.EncryptedStore(disk, "k2", previous_keys=["k1"]).get("secret") == {"accessToken": "at"}


def test_closed_store_raises_storage_error():
    s = fa.MemoryStore()
    s.close()
    with pytest.raises(fa.StorageError) as e:
        s.get("k")
    assert e.value.code == "store_closed"


def test_redis_unreachable_is_a_storage_error():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(fa.StorageError) as e:
        fa.RedisStore(f"redis://127.0.0.1:{port}", timeout=0.3)
    assert e.value.code == "storage_io"


def test_disk_store_file_names(tmp_path):
    """fastmcp's names by default (fastmcp TS reads them), percent-encoded on request; each reads the other's."""
    fast = fa.DiskStore(tmp_path / "d", cleanup_interval=0)
    fast.save("mapping:abc", 1)
    assert (tmp_path / "d" / "mapping_abc.json").exists()
    safe = fa.DiskStore(tmp_path / "d", cleanup_interval=0, file_names="safe")
    safe.save("mapping:xyz", 2)
    assert (tmp_path / "d" / "mapping%3Axyz.json").exists()
    assert safe.get("mapping:abc") == 1 and fast.get("mapping:xyz") == 2
    with pytest.raises(ValueError):
        fa.DiskStore(tmp_path / "e", file_names="other")


def test_disk_store_strict_permissions(tmp_path):
    """A directory anyone can write to: a warning by default, refused with strict_permissions (as ssh does)."""
    import os
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    fa.DiskStore(shared).close()
    with pytest.raises(fa.InvalidArgumentError):
        fa.DiskStore(shared, strict_permissions=True)
