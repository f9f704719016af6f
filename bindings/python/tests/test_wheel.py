"""The wheel as a user installs it: the release build for manylinux2014 (glibc 2.17) with zig, a fresh venv, `pip install` of the wheel alone, then every module imports, the package README's snippet runs, and
`mypy --strict` and `stubtest` accept the shipped stubs. Interpreters: every `python3.X` on the machine (this one has
only 3.11; Python 3.9 is the oldest the abi3 wheel supports and is checked where installed)."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PKG = ROOT / "bindings" / "python"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel as released: `maturin build --release --zig --compatibility manylinux2014` (glibc 2.17, linked
    with zig from PyPI's `ziglang`, installed here if missing)."""
    out = tmp_path_factory.mktemp("wheel")
    bindir = Path(sys.executable).parent
    try:
        import ziglang  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "ziglang"],
                       check=True)
    maturin = shutil.which("maturin", path=str(bindir)) or "maturin"
    # maturin finds zig through the `python` on PATH (`python -m ziglang`): this venv's.
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(bindir.parent)}
    subprocess.run([maturin, "build", "-q", "--release", "--zig", "--compatibility", "manylinux2014",
                    "-m", str(PKG / "Cargo.toml"), "--out", str(out)], check=True, env=env)
    (whl,) = glob.glob(str(out / "*.whl"))
    return Path(whl)


def glibc_needed(shared_object: bytes, tmp_path):
    """The newest GLIBC_x.y symbol version a shared object needs."""
    so = tmp_path / "probe.so"
    so.write_bytes(shared_object)
    out = subprocess.run(["objdump", "-T", str(so)], check=True, capture_output=True, text=True).stdout
    return max(tuple(int(p) for p in v.split(".")) for v in re.findall(r"GLIBC_([0-9]+\.[0-9]+)", out))


def interpreters():
    found = {}
    for exe in sorted(glob.glob("/usr/bin/python3.*")) + sorted(glob.glob("/usr/local/bin/python3.*")):
        if re.fullmatch(r".*/python3\.\d+", exe):
            found.setdefault(Path(exe).name, exe)
    return list(found.values()) or [sys.executable]


def test_wheel_metadata(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        native = z.read(next(n for n in names if "/_native" in n and n.endswith(".so")))
    assert "-cp39-abi3-" in wheel.name and "manylinux2014_x86_64" in wheel.name, wheel.name
    assert glibc_needed(native, tmp_path) <= (2, 17)
    assert "License-Expression: MIT OR Apache-2.0" in meta
    assert "Provides-Extra: fastmcp" in meta
    assert re.search(r"Requires-Dist: fastmcp==4\.2\.3 ?; extra == ['\"]fastmcp['\"]", meta), meta
    assert "Description-Content-Type: text/markdown" in meta and "# fastmcp-auth (Python)" in meta
    assert any(n.endswith("licenses/LICENSE-MIT") for n in names) and any(n.endswith("licenses/LICENSE-APACHE") for n in names)
    assert any(n.endswith("fastmcp_auth/py.typed") for n in names) and any(n.endswith("_native.pyi") for n in names)


@pytest.mark.parametrize("python", interpreters())
def test_fresh_venv_imports_runs_the_readme_and_type_checks(wheel, python, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + [str(wheel)], check=True)
    # Every module imports (fastmcp_auth.fastmcp needs the `fastmcp` extra: absent here, it must say so clearly).
    probe = (
        "import importlib, json\n"
        "mods = ['fastmcp_auth', 'fastmcp_auth.aio', 'fastmcp_auth.errors', 'fastmcp_auth._native']\n"
        "ok = [importlib.import_module(m).__name__ for m in mods]\n"
        "try:\n    importlib.import_module('fastmcp_auth.fastmcp'); extra = 'imported'\n"
        "except ImportError as e:\n    extra = str(e)\n"
        "print(json.dumps({'ok': ok, 'extra': extra}))\n"
    )
    out = json.loads(subprocess.run([py, "-c", probe], check=True, capture_output=True, text=True).stdout)
    assert len(out["ok"]) == 4
    assert out["extra"] == "imported" or "fastmcp" in out["extra"], out
    # The package README's snippet, as written, in an empty directory.
    readme = (PKG / "README.md").read_text()
    snippet = readme.split("```python\n")[1].split("```")[0]
    (tmp_path / "snippet.py").write_text(snippet)
    subprocess.run([py, "snippet.py"], check=True, cwd=tmp_path)
    # The stubs: mypy --strict on the snippet, stubtest of the native module against them.
    subprocess.run(pip + ["mypy>=1.10"], check=True)
    r = subprocess.run([py, "-m", "mypy", "--strict", "snippet.py"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(
        [py, "-m", "mypy.stubtest", "fastmcp_auth._native", "--allowlist", str(PKG / "stubtest-allowlist.txt")],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
