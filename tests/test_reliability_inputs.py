"""Reliability of inputs: a cached connectome is only used if it proves itself, a connectome
that breaks the CSR invariants never reaches a kernel, and the installed package needs
nothing it does not declare."""

import ast
import json
import logging
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_connectome, run_config_text

from brainsim import cli
from brainsim.connectome import Connectome, ConnectomeError, Provenance, load, load_file, save
from brainsim.connectome._cache import _content_sha256, cache_key
from brainsim.sim import Network, Protocol, simulate

ROOT = Path(__file__).resolve().parents[1]
SPEC = "synthetic:seed=0,scale=0.005"
OTHER = "synthetic:seed=1,scale=0.005"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSIM_CACHE", str(tmp_path / "brainsim_cache"))


def cached_file(cache, spec=SPEC):
    return cache / f"{cache_key(spec, 'synthetic', {})}.npz"


def rewrite(path, *, fix_checksum=False, **changes):
    """Rewrite a cache file with some arrays replaced; with ``fix_checksum`` the stored
    checksum is recomputed, as a writer with a bug would."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    if fix_checksum:
        arrays["content_sha256"] = np.frombuffer(_content_sha256(arrays).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def assert_same_csr(a, b):
    for name in ("indptr", "indices", "counts"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.neurons.equals(b.neurons)


def rejected(conn):
    return conn.provenance.counts.get("cache_file_rejected", 0)


# ---- the cache: edited, foreign, broken and old files ---------------------------------


def test_cache_file_with_edited_counts_is_rejected_and_parsed_again(tmp_path, caplog):
    cache = tmp_path / "cache"
    source = load(SPEC, "synthetic")
    load(SPEC, "synthetic", cache_dir=cache)
    path = cached_file(cache)
    with np.load(path) as z:
        rewrite(path, counts=z["counts"] * 10)
    with caplog.at_level(logging.WARNING, logger="brainsim.connectome"):
        again = load(SPEC, "synthetic", cache_dir=cache)
    assert_same_csr(again, source)
    assert rejected(again) == 1
    assert "does not match its checksum" in caplog.text and path.name in caplog.text
    # the file was overwritten with the parsed connectome: the next load is a clean hit
    third = load(SPEC, "synthetic", cache_dir=cache)
    assert_same_csr(third, source) and rejected(third) == 0
    assert third.provenance == source.provenance


def test_foreign_cache_file_under_another_key_is_rejected(tmp_path, caplog):
    cache = tmp_path / "cache"
    mine = load(SPEC, "synthetic")
    load(SPEC, "synthetic", cache_dir=cache)
    load(OTHER, "synthetic", cache_dir=cache)
    shutil.copyfile(cached_file(cache, OTHER), cached_file(cache))
    with caplog.at_level(logging.WARNING, logger="brainsim.connectome"):
        again = load(SPEC, "synthetic", cache_dir=cache)
    assert "written for cache key" in caplog.text
    assert_same_csr(again, mine)
    assert again.provenance.checksum == mine.provenance.checksum and rejected(again) == 1
    # as a plain file (no key expected) the foreign file is still a valid connectome
    assert load_file(cached_file(cache, OTHER)).provenance.checksum != mine.provenance.checksum


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a["indices"].__setitem__(0, 10**6) or a, "out of range"),
        (lambda a: a["indices"].__setitem__(3, -1) or a, "out of range"),
        (lambda a: a | {"indices": a["indices"].astype(np.int64)}, "expected a 1-D int32"),
        (lambda a: a | {"counts": a["counts"].astype(np.float32)}, "expected a 1-D int32"),
        (lambda a: a["counts"].__setitem__(2, 0) or a, "count 0"),
        (lambda a: a["indptr"].__setitem__(0, 1) or a, r"indptr\[0\]"),
        (lambda a: a["indptr"].__setitem__(5, 10**6) or a, "indptr decreases"),
        (lambda a: a | {"indptr": a["indptr"][:-1]}, "indptr has shape"),
        (lambda a: a | {"counts": a["counts"][:-1]}, "differ in length"),
        (lambda a: a["indices"].__setitem__(1, a["indices"][0]) or a, "ascending and unique"),
    ],
)
def test_cache_file_breaking_csr_invariants_is_rejected(tmp_path, caplog, change, message):
    cache = tmp_path / "cache"
    source = load(SPEC, "synthetic")
    load(SPEC, "synthetic", cache_dir=cache)
    path = cached_file(cache)
    with np.load(path) as z:
        arrays = change({k: z[k].copy() for k in ("indptr", "indices", "counts")})
    assert source.indptr[1] > 2  # the edits above stay within row 0
    rewrite(path, fix_checksum=True, **arrays)  # a consistent file, wrong arrays
    with pytest.raises(ConnectomeError, match=message):
        load_file(path)
    with caplog.at_level(logging.WARNING, logger="brainsim.connectome"):
        again = load(SPEC, "synthetic", cache_dir=cache)
    assert_same_csr(again, source)
    assert rejected(again) == 1 and "ConnectomeError" in caplog.text


@pytest.mark.parametrize("kind", ["version 1", "no checksum", "not a zip", "truncated"])
def test_old_or_damaged_cache_file_is_parsed_again_and_reported(tmp_path, caplog, kind):
    cache = tmp_path / "cache"
    source = load(SPEC, "synthetic")
    load(SPEC, "synthetic", cache_dir=cache)
    path = cached_file(cache)
    if kind == "version 1":  # the layout of CACHE_VERSION 1: no key, no checksum
        with np.load(path) as z:
            old = {k: z[k] for k in z.files if k not in ("key", "content_sha256")}
        old["version"] = np.array(1)
        with open(path, "wb") as f:
            np.savez(f, **old)
    elif kind == "no checksum":
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files if k != "content_sha256"}
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    elif kind == "not a zip":
        path.write_bytes(b"certainly not a connectome")
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="brainsim.connectome"):
        again = load(SPEC, "synthetic", cache_dir=cache)
    assert_same_csr(again, source)
    assert rejected(again) == 1 and "cached connectome rejected" in caplog.text
    assert rejected(load(SPEC, "synthetic", cache_dir=cache)) == 0


def test_gap_junctions_and_provenance_are_covered_by_the_checksum(tmp_path):
    conn = make_connectome(3, [0, 1], [1, 2], [2, -3])
    gap = pa.table({"pre": pa.array([0], pa.int32()), "post": pa.array([2], pa.int32()),
                    "count": pa.array([4], pa.int32())})  # fmt: skip
    conn = Connectome(conn.neurons, conn.indptr, conn.indices, conn.counts, conn.provenance, gap)
    path = save(conn, tmp_path / "c.npz", key="k")
    assert load_file(path, key="k").gap_junctions.equals(gap)
    with np.load(path) as z:
        prov = json.loads(z["provenance"].tobytes())
        table = z["gap_junctions"].copy()
    table[-20] ^= 1
    rewrite(path, gap_junctions=table)
    with pytest.raises(ValueError, match="does not match its checksum"):
        load_file(path)
    save(conn, path, key="k")
    prov["checksum"] = "f" * 64
    rewrite(path, provenance=np.frombuffer(json.dumps(prov).encode(), np.uint8))
    with pytest.raises(ValueError, match="does not match its checksum"):
        load_file(path)


def cli_config(tmp_path, cache, name):
    p = tmp_path / f"{name}.toml"
    p.write_text(run_config_text(SPEC, cache=f'"{cache}"'))
    out = tmp_path / name
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 0
    return pq.read_table(out / "spikes.parquet"), json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize("edit", ["counts x10", "index out of range"])
def test_run_on_a_bad_cache_file_gives_the_sources_spikes(tmp_path, edit):
    cache = tmp_path / "cache"
    spikes, man = cli_config(tmp_path, cache, "first")
    assert spikes.num_rows > 0 and "cache_file_rejected" not in man["connectome"]["rules_applied"]
    path = cached_file(cache)
    with np.load(path) as z:
        counts, indices = z["counts"] * 10, z["indices"].copy()
    if edit == "counts x10":
        rewrite(path, counts=counts)
    else:  # with a matching checksum: only the CSR check stands between it and the kernel
        indices[::7] = 2_000_000_000
        rewrite(path, fix_checksum=True, indices=indices)
    again, man2 = cli_config(tmp_path, cache, "second")
    assert again.equals(spikes)
    assert man2["connectome"]["rules_applied"]["cache_file_rejected"] == 1
    assert man2["connectome"]["checksum"] == man["connectome"]["checksum"]


# ---- a connectome built any other way -------------------------------------------------


def good_arrays():
    c = make_connectome(4, [0, 0, 1, 3], [1, 2, 3, 0], [2, -1, 5, 1])
    return c.neurons, c.indptr.copy(), c.indices.copy(), c.counts.copy(), c.provenance


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("indices", np.array([1, 9, 3, 0], np.int32), "out of range"),
        ("indices", np.array([1, 2, 3, -1], np.int32), "out of range"),
        ("indices", np.array([2, 1, 3, 0], np.int32), "ascending"),
        ("indptr", np.array([1, 2, 3, 3, 4]), r"indptr\[0\]"),
        ("indptr", np.array([0, 3, 2, 2, 4]), "decreases"),
        ("indptr", np.array([0, 2, 3, 3, 3]), r"indptr\[-1\]"),
        ("counts", np.array([2, 0, 5, 1], np.int32), "count 0"),
        ("counts", np.array([2.0, -1.0, 5.0, 1.0]), "int32"),
        ("indices", np.array([1, 2, 3, 0]), "int32"),  # int64
    ],
)
def test_connectome_breaking_csr_invariants_cannot_be_built(field, value, message):
    neurons, indptr, indices, counts, prov = good_arrays()
    arrays = {"indptr": indptr, "indices": indices, "counts": counts} | {field: value}
    with pytest.raises(ConnectomeError, match=message):
        Connectome(neurons=neurons, provenance=prov, **arrays)


def test_connectome_edited_after_building_does_not_reach_a_kernel():
    conn = load(SPEC, "synthetic")
    conn.indices[::5] = 2_000_000_000  # the arrays are mutable
    with pytest.raises(ConnectomeError, match="out of range"):
        Network.from_connectome(conn)
    proto = Protocol.build(1, conn.n_neurons, poisson=[(np.arange(20), 200.0)])
    for native in (True, False):
        with pytest.raises(ConnectomeError, match="out of range"):
            simulate(conn, proto, duration_ms=20.0, native=native)


def test_valid_connectomes_still_build(tiny_chain):
    empty = make_connectome(3, [], [], [])
    for conn in (tiny_chain, empty, load(SPEC, "synthetic")):
        conn.check_csr()
        assert Network.from_connectome(conn).n_neurons == conn.n_neurons
    prov = Provenance(format="t", sources=(), checksum="0" * 64, sign_rule="given")
    neurons = pa.table({"id": np.arange(2, dtype=np.int64)})
    # empty rows at the start, in the middle and at the end
    Connectome(neurons, np.array([0, 0, 0]), np.zeros(0, np.int32), np.zeros(0, np.int32), prov)


# ---- what the package needs at run time -----------------------------------------------


def test_every_third_party_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        d.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for d in project["dependencies"]
    }
    dists = packages_distributions()
    missing = {}
    for root in ("brainsim", "kernels"):
        for f in (ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in ("brainsim", "kernels"):
                        continue
                    dist = {d.lower() for d in dists.get(top, [top])}
                    if not dist & declared:
                        missing.setdefault(top, str(f.relative_to(ROOT)))
    assert not missing, f"imported but not in [project] dependencies: {missing}"


def test_experiment_summary_without_pandas(tmp_path):
    """An [experiment] run (its summary table) must not need pandas, which the package does
    not declare: run one in a process where importing pandas fails."""
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        run_config_text(SPEC, duration_ms=50.0, trials=1, stimulus=False)
        + """[experiment]
kind = "activation_sweep"
drive = { cell_type = "sugar_like_GRN" }
rates_hz = [0, 150]
readout = { cell_type = "MN9_like" }
"""
    )
    code = (
        "import sys\n"
        "class NoPandas:\n"  # as if pandas were not installed
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pandas':\n"
        "            raise ModuleNotFoundError(\"No module named 'pandas'\", name=name)\n"
        "sys.meta_path.insert(0, NoPandas())\n"
        "from brainsim import cli\n"
        "from brainsim.experiments._kinds import _table\n"
        "t = _table([], ['a', 'b'])\n"
        "assert t.num_rows == 0 and t.column_names == ['a', 'b'], t\n"
        f"sys.exit(cli.main(['run', {str(cfg)!r}, '--out', {str(tmp_path / 'out')!r},"
        " '--quiet']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pq.read_table(tmp_path / "out" / "summary.parquet")
    assert summary.num_rows == 2 and "readout_rate_hz" in summary.column_names


def test_every_package_and_data_file_is_installed():
    """A non-editable install ships only the packages and package data pyproject.toml names
    (an editable one would find the rest in the checkout)."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {pkg: ROOT / d for pkg, d in tool["package-dir"].items()}

    def folder(pkg):  # the source folder of a package, by its nearest mapped parent
        parent = max((p for p in dirs if pkg == p or pkg.startswith(p + ".")), key=len)
        return dirs[parent].joinpath(*pkg[len(parent) :].split(".")[1:])

    listed = set(tool["packages"])
    found = {
        ".".join([top, *init.parent.relative_to(dirs[top]).parts])
        for top in dirs
        for init in dirs[top].rglob("__init__.py")
    }
    assert found <= listed, f"packages not in [tool.setuptools] packages: {found - listed}"
    for pkg in listed:
        base = folder(pkg)
        patterns = tool["package-data"].get(pkg, [])
        for f in base.rglob("*"):
            rel = f.relative_to(base)
            if not f.is_file() or f.suffix in (".py", ".pyc") or f.name.startswith("."):
                continue
            if "__pycache__" in rel.parts:
                continue
            if any((base / Path(*rel.parts[:i]) / "__init__.py").exists()
                   for i in range(1, len(rel.parts))):  # fmt: skip
                continue  # a subpackage's file
            assert any(rel.match(pat) for pat in patterns), (
                f"{f.relative_to(ROOT)} is not in package-data of {pkg}"
            )
