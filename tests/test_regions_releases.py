"""Neuropils per neuron (selector ``neuropil``, ``brainsim info --regions``) and releases
(``brainsim info`` names the release; published sets name theirs when ids are missing)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from test_loaders_feather import A, B, C, D, E, small_chunks, write_flat, write_flywire_feather  # noqa: F401

from brainsim.cli import main
from brainsim.connectome import load
from brainsim.experiments import ConfigError, select
from brainsim.experiments._selectors import published_sets


@pytest.fixture
def flywire(tmp_path):
    folder = write_flywire_feather(tmp_path / "fw")
    return folder, load(folder, "flywire_feather")


# ------------------------------------------------------------------------------ regions
def test_neuropil_selector(flywire):
    _, conn = flywire
    # main input / output neuropils (tests/test_loaders_feather.py): B in AL_L out LH_L,
    # C in LH_L out LH_L, A in LH_L out MB_CA_L, D out GNG, E in GNG
    ids = lambda idx: conn.ids[idx].tolist()  # noqa: E731
    assert ids(select(conn, {"neuropil": "LH_L"}, where="t")) == [B, C, A]
    assert ids(select(conn, {"neuropil": ["GNG", "AL_L"]}, where="t")) == [B, D, E]
    assert ids(select(conn, {"neuropil": "MB_CA_L", "cell_type": "MN9"}, where="t")) == [A, E]
    with pytest.raises(ConfigError, match=r"t\.neuropil: 'SMP_R' matches no neuron"):
        select(conn, {"neuropil": "SMP_R"}, where="t")
    with pytest.raises(ConfigError, match=r"t\.neuropil: expected a string or a list"):
        select(conn, {"neuropil": 3}, where="t")


def test_neuropil_selector_needs_the_columns(tmp_path):
    conn = load(write_flat(tmp_path / "mcns"), "neuprint_flat")
    with pytest.raises(
        ConfigError,
        match=r"no 'input_neuropil' or 'output_neuropil' column; the formats flywire and "
        r"flywire_feather give them",
    ):
        select(conn, {"neuropil": "AL_L"}, where="t")


def test_info_regions_and_release(flywire, capsys):
    folder, _ = flywire
    assert main(["info", str(folder), "--format", "flywire_feather", "--regions"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "release      783 (as the file names say; ids differ between releases)" in out
    table = out[out.index(next(line for line in out if line.startswith("neuropil"))) + 1 :]
    rows = [line.split() for line in table]
    assert rows == [["AL_L", "1", "0"], ["GNG", "1", "1"], ["LH_L", "2", "2"],
                    ["MB_CA_L", "0", "1"]]  # fmt: skip


def test_info_regions_json(flywire, capsys):
    folder, _ = flywire
    main(["info", str(folder), "--format", "flywire_feather", "--regions", "--json"])
    s = json.loads(capsys.readouterr().out)
    assert s["release"] == "783"
    assert s["regions"]["LH_L"] == {"input": 2, "output": 2}
    assert sorted(s["regions"]) == ["AL_L", "GNG", "LH_L", "MB_CA_L"]


def test_info_regions_without_neuropils(tmp_path, capsys):
    folder = write_flat(tmp_path / "mcns")
    assert main(["info", str(folder), "--format", "neuprint_flat", "--regions"]) == 2
    assert "this source gives no neuropils per connection" in capsys.readouterr().err
    main(["info", str(folder), "--format", "neuprint_flat"])
    assert "release      male-cns:v1.0" in capsys.readouterr().out


# ------------------------------------------------------------------------------ releases
def test_published_set_missing_ids_name_the_release(tmp_path):
    sugar = published_sets()["shiu2024:sugar_right_grn"]  # 21 release-630 root ids
    keep = sugar[:3]
    rows = [(keep[0], keep[1], "GNG", 4, {"ach": 1.0}), (keep[1], keep[2], "GNG", 2, None)]
    folder = write_flywire_feather(tmp_path / "fw", rows, annotations=False)
    conn = load(folder, "flywire_feather")
    with pytest.raises(
        ConfigError,
        match=r"18 of 21 ids in t\.set \(shiu2024:sugar_right_grn\) are not in the connectome "
        r"\(flywire_feather, 3 neurons\).*; the set lists FlyWire release 630 root ids and this "
        r"connectome \(flywire_feather\) is release 783: root ids change between releases, so "
        r"the missing ids may belong to another release; set allow_missing = true",
    ):
        select(conn, {"set": "shiu2024:sugar_right_grn"}, where="t")
    missing: list = []
    idx = select(conn, {"set": "shiu2024:sugar_right_grn", "allow_missing": True}, where="t",
                 missing=missing)  # fmt: skip
    assert sorted(conn.ids[idx].tolist()) == sorted(keep) and len(missing) == 18


def test_published_set_on_a_connectome_without_release(tmp_path):
    conn = load(write_flat(tmp_path / "x"), "neuprint_flat")
    # a source that names no release
    conn = dataclasses.replace(conn, provenance=dataclasses.replace(conn.provenance, options={}))
    with pytest.raises(ConfigError, match=r"is of a release brainsim cannot tell: root ids"):
        select(conn, {"set": "shiu2024:mn9"}, where="t")
