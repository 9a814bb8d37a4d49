"""The Randi et al. 2023 signal-propagation atlas (brainsim.celegans.read_atlas) against
cect's raw JSON, and the scoring of a perturbation map against it (compare, compare-atlas)."""

import importlib
import inspect
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("cect")

from brainsim.celegans import NAME_MAP, AtlasError, compare, read_atlas  # noqa: E402
from brainsim.celegans._compare import spearman  # noqa: E402
from brainsim.cli import main  # noqa: E402
from brainsim.connectome import Provenance, from_edges, load  # noqa: E402

READER = "WormNeuroAtlasFuncReader"


def _raw():
    """cect's cached atlas read straight from its JSON, without cect's loader."""
    path = importlib.import_module("cect.ConnectomeDataset").get_cache_filename(READER)
    with open(path) as f:
        d = json.load(f)
    return [str(n) for n in d["nodes"]], np.asarray(d["connections"]["Functional"], float), path


@pytest.fixture(scope="module")
def atlas():
    return read_atlas()


def test_atlas_table_equals_cect_json(atlas):
    nodes, m, path = _raw()
    assert len(nodes) == 181 and m.shape == (181, 181)
    assert int((m != 0).sum()) == 1150
    t = atlas.table
    assert t.num_rows == 1150
    assert str(atlas.source_file) == str(path)
    assert atlas.counts["atlas_pairs"] == 1150 and atlas.counts["atlas_neurons"] == 181
    idx = {n: k for k, n in enumerate(nodes)}
    i = np.array([idx[n] for n in t.column("stimulated").to_pylist()])
    j = np.array([idx[n] for n in t.column("responder").to_pylist()])
    # row = stimulated, column = responder: every amplitude is m[stimulated, responder]
    np.testing.assert_array_equal(t.column("amplitude").to_numpy(), m[i, j])
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == set(zip(*np.nonzero(m), strict=True))
    assert (t.column("q_max").to_numpy() == 0.05).all()
    assert (t.column("stimulated_id").to_numpy() == -1).all()
    stim = sorted(nodes[k] for k in np.flatnonzero((m != 0).any(axis=1)))
    assert list(atlas.stimulated) == stim and len(stim) == atlas.counts["stimulated_neurons"]
    # orientation matters: a pair measured one way only, or with different amplitudes
    a, b = next((a, b) for a, b in zip(*np.nonzero(m), strict=True) if m[a, b] != m[b, a])
    rows = t.filter(
        pa.compute.and_(
            pa.compute.equal(t["stimulated"], nodes[a]), pa.compute.equal(t["responder"], nodes[b])
        )
    )
    assert rows.column("amplitude").to_pylist() == [m[a, b]]


def test_axis_orientation_from_cect_source():
    """cect stores ConnectionInfo(pre, post) at [pre, post], and the reader's pre is the
    stimulated neuron (dff[post, pre] is WormNeuroAtlas's [responder, stimulated])."""
    from cect.ConnectomeDataset import ConnectomeDataset
    from cect.ConnectomeReader import ConnectionInfo

    ds = ConnectomeDataset()
    ds.add_connection_info(ConnectionInfo("STIM", "RESP", 0.5, "Functional", "Functional"))
    ds.add_connection_info(ConnectionInfo("RESP", "OTHER", 0.25, "Functional", "Functional"))
    w = ds.connections["Functional"]
    s, r = ds.nodes.index("STIM"), ds.nodes.index("RESP")
    assert w[s, r] == 0.5 and w[r, s] == 0.0
    src = inspect.getsource(importlib.import_module(f"cect.readers.{READER}"))
    assert re.search(r"dff_ij_orig\s*=\s*dff\[apost,\s*apre\]", src)
    assert re.search(r"ConnectionInfo\(\s*str\(pre\),\s*str\(post\),\s*float\(num\)", src)


def test_ids_are_cook2019_neurons(atlas):
    conn = load("Cook2019Herm", "celegans")
    a = read_atlas(conn)
    assert a.table.num_rows == 1150
    assert a.counts["neurons_not_in_connectome"] == 0
    assert a.counts["pairs_dropped_not_in_connectome"] == 0
    ids, types = (conn.neurons.column(c).to_pylist() for c in ("id", "cell_type"))
    name_of = dict(zip(ids, types, strict=True))
    for col in ("stimulated", "responder"):
        names = a.table.column(col).to_pylist()
        ids = a.table.column(f"{col}_id").to_pylist()
        assert [name_of[i] for i in ids] == names
    assert a.counts["awc_on_off_read_as_left_right"] == 2


def _connectome(names):
    neurons = pa.table({"id": np.arange(500, 500 + len(names), dtype=np.int64), "cell_type": names})
    prov = Provenance(format="test", sources=(), checksum="0" * 64, sign_rule="given")
    return from_edges(neurons, np.array([0]), np.array([1]), np.array([3]), prov)


def test_name_map_counted_and_missing_neuron_dropped(atlas):
    nodes, m, _ = _raw()
    renamed = {"AWCL": "AWCOFF", "AWCR": "AWCON", "DB1": "DB01"}
    assert all(NAME_MAP[k][0] == v for k, v in renamed.items())
    names = [renamed.get(n, n) for n in nodes if n != "RIS"]
    conn = _connectome(names)
    a = read_atlas(conn)
    c = a.counts
    assert c["names_mapped"] == 3
    assert c["neurons_not_in_connectome"] == 1
    k = nodes.index("RIS")
    touching = int((m[k] != 0).sum() + (m[:, k] != 0).sum())
    assert touching > 0 and c["pairs_dropped_not_in_connectome"] == touching
    assert a.table.num_rows == 1150 - touching
    assert c["awc_on_off_read_as_left_right"] == 0
    t = a.table.to_pandas()
    assert "RIS" not in set(t.stimulated) | set(t.responder)
    id_of = dict(zip(names, range(500, 500 + len(names)), strict=True))
    assert (t[t.stimulated == "AWCL"].stimulated_id == id_of["AWCOFF"]).all()
    assert (t[t.responder == "DB1"].responder_id == id_of["DB01"]).all()


def test_unknown_source_and_missing_cect(monkeypatch):
    with pytest.raises(AtlasError, match="known: Randi2023"):
        read_atlas(source="Randi2024")

    real = importlib.import_module

    def no_cect(name, *a, **k):
        if name.startswith("cect"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no_cect)
    with pytest.raises(AtlasError, match=r"needs the package cect: pip install"):
        read_atlas()


# ---------------------------------------------------------------- compare


DRIVEN = ("AVAL", "AVAR", "AVEL", "RIAL", "ASHL", "AWCL", "SMDVL", "RIML")


def _results_folder(tmp_path, atlas, response, *, driven=DRIVEN, rename=None, drop=(), **over):
    """A perturbation_map results folder: every atlas neuron id 100+k (AWCL named AWCOFF);
    each driven neuron's row for every neuron, ``response(amplitude or 0, rng)`` mV; a group
    row too. ``drop``: (driven, responder) rows left out."""
    nodes, m, _ = _raw()
    rename = {"AWCL": "AWCOFF"} if rename is None else rename
    names = [rename.get(n, n) for n in nodes]
    ids = np.arange(100, 100 + len(nodes), dtype=np.int64)
    idx = {n: k for k, n in enumerate(nodes)}
    rng = np.random.default_rng(0)
    rows = {"driven_label": [], "driven_id": [], "neuron_id": [], "response": []}
    for d in driven:
        for k, n in enumerate(nodes):
            if (d, n) in drop:
                continue
            rows["driven_label"].append(d)
            rows["driven_id"].append(ids[idx[d]] if d in idx else 99)
            rows["neuron_id"].append(ids[k])
            rows["response"].append(float(response(m[idx[d], k] if d in idx else 0.0, rng)))
    rows["driven_label"].append("group:AVA")
    rows["driven_id"].append(-1)
    rows["neuron_id"].append(ids[0])
    rows["response"].append(1.0)
    folder = tmp_path / "run"
    folder.mkdir(parents=True)
    summary = pa.table(
        {
            "driven_label": pa.array(rows["driven_label"], pa.string()),
            "driven_id": pa.array(rows["driven_id"], pa.int64()),
            "neuron_id": pa.array(rows["neuron_id"], pa.int64()),
            "response": pa.array(rows["response"], pa.float64()),
        }
    )
    for col in over.get("drop_columns", ()):
        summary = summary.drop_columns([col])
    pq.write_table(summary, folder / "summary.parquet")
    extra_ids = [99] if any(d not in idx for d in driven) else []
    pq.write_table(
        pa.table(
            {
                "neuron_id": pa.array([*ids, *extra_ids], pa.int64()),
                "name": pa.array([*names, *(["XYZ"] * len(extra_ids))], pa.string()),
                "cell_type": pa.array([*names, *(["XYZ"] * len(extra_ids))], pa.string()),
            }
        ),
        folder / "neurons.parquet",
    )
    manifest = {
        "experiment": {"kind": "perturbation_map"},
        "connectome": {
            "checksum": "c" * 64,
            "format": "celegans",
            "provenance": {"options": {"dataset": "Cook2019Herm"}},
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _expected_pairs(atlas, driven=DRIVEN):
    t = atlas.table.to_pandas()
    return t[t.stimulated.isin(driven)]


def test_compare_scaled_measured_is_perfect(tmp_path, atlas):
    folder = _results_folder(tmp_path, atlas, lambda a, rng: 3.0 * a)
    c = compare(folder)
    expected = _expected_pairs(atlas)
    assert c.scores["n_pairs"] == len(expected) > 20
    assert c.scores["pearson_r"] == pytest.approx(1.0, abs=1e-12)
    assert c.scores["spearman_r"] == pytest.approx(1.0, abs=1e-12)
    assert c.scores["sign_agreement"] == 1.0
    out = folder / "atlas"
    for name in ("pairs.parquet", "scores.json", "scatter.png", "heatmaps.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    pairs = pq.read_table(out / "pairs.parquet")
    assert pairs.num_rows == len(expected)
    assert pairs.column_names == [
        "stimulated",
        "responder",
        "stimulated_id",
        "responder_id",
        "model_response",
        "measured_amplitude",
    ]
    np.testing.assert_allclose(
        pairs.column("model_response").to_numpy(),
        3 * pairs.column("measured_amplitude").to_numpy(),
    )
    # AWCL was named AWCOFF in the run: joined through NAME_MAP, counted
    assert c.counts["names_mapped"] == 1
    awc = pairs.filter(pa.compute.equal(pairs["stimulated"], "AWCL"))
    assert awc.num_rows == int((atlas.table.column("stimulated").to_numpy(False) == "AWCL").sum())
    nodes, _, _ = _raw()
    assert set(awc.column("stimulated_id").to_pylist()) == {100 + nodes.index("AWCL")}
    scores = json.loads((out / "scores.json").read_text())
    assert scores["connectome"]["checksum"] == "c" * 64
    assert scores["atlas"]["source_file"].endswith("WormNeuroAtlasFuncReader.json")
    n = scores["counts"]
    assert n["group_rows_skipped"] == 1
    assert n["pairs_not_simulated"] == 1150 - len(expected)
    assert (
        scores["n_pairs"]
        + n["self_pairs_excluded"]
        + n["pairs_not_in_stimulated_list"]
        + n["pairs_not_simulated"]
        + n["pairs_responder_not_recorded"]
        == n["atlas_pairs"]
        == 1150
    )
    # a second compare replaces the folder it wrote
    assert compare(folder).scores["n_pairs"] == len(expected)


def test_compare_random_equals_scipy(tmp_path, atlas):
    stats = pytest.importorskip("scipy.stats")
    # integers: ties for Spearman, and zeros, which count as sign disagreements
    folder = _results_folder(tmp_path, atlas, lambda a, rng: float(rng.integers(-3, 4)))
    c = compare(folder)
    m = c.pairs.column("model_response").to_numpy()
    a = c.pairs.column("measured_amplitude").to_numpy()
    assert (m == 0).any() and len(np.unique(m)) < m.size
    assert c.scores["pearson_r"] == pytest.approx(stats.pearsonr(m, a)[0], abs=1e-12)
    assert c.scores["spearman_r"] == pytest.approx(stats.spearmanr(m, a)[0], abs=1e-12)
    agree = (np.sign(m) == np.sign(a)) & (m != 0)  # a model 0 has no sign: disagreement
    assert c.scores["sign_agreement"] == pytest.approx(np.mean(agree))
    assert c.scores["sign_agreement"] < np.mean(agree | (m == 0))
    assert c.counts["model_responses_zero"] == int((m == 0).sum())
    x = np.array([1.0, 2.0, 2.0, 5.0, 0.0, 2.0])
    y = np.array([3.0, 1.0, 4.0, 4.0, 2.0, 0.5])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)


def test_compare_negated_disagrees(tmp_path, atlas):
    folder = _results_folder(tmp_path, atlas, lambda a, rng: -0.5 * a)
    c = compare(folder, out=tmp_path / "elsewhere")
    assert c.scores["sign_agreement"] == 0.0
    assert c.scores["pearson_r"] == pytest.approx(-1.0, abs=1e-12)
    assert c.scores["spearman_r"] == pytest.approx(-1.0, abs=1e-12)
    assert (tmp_path / "elsewhere" / "scores.json").is_file()
    assert not (folder / "atlas").exists()


def test_compare_stimulated_subset_and_missing_responder(tmp_path, atlas):
    t = _expected_pairs(atlas)
    resp = t[t.stimulated == "AVAL"].responder.iloc[0]
    folder = _results_folder(tmp_path, atlas, lambda a, rng: a, drop={("AVAL", resp)})
    c = compare(folder, stimulated=["AVAL", "RIAL"])
    sub = t[t.stimulated.isin(["AVAL", "RIAL"])]
    assert c.scores["n_pairs"] == len(sub) - 1
    assert c.counts["pairs_responder_not_recorded"] == 1
    # the list is checked before "driven": every other atlas pair is counted under it
    assert c.counts["pairs_not_in_stimulated_list"] == 1150 - len(sub)
    assert c.counts["pairs_not_simulated"] == 0
    assert set(c.pairs.column("stimulated").to_pylist()) == {"AVAL", "RIAL"}
    with pytest.raises(AtlasError, match="NOTANEURON not a stimulated neuron"):
        compare(folder, stimulated=["AVAL", "NOTANEURON"])


def test_compare_bad_inputs(tmp_path, atlas):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AtlasError, match="no summary.parquet"):
        compare(empty)
    spiking = _results_folder(tmp_path / "s", atlas, lambda a, r: a, drop_columns=("response",))
    with pytest.raises(AtlasError, match="no column 'response'.*graded perturbation_map run"):
        compare(spiking)
    other = _results_folder(tmp_path / "x", atlas, lambda a, r: a, driven=("XYZ",))
    with pytest.raises(AtlasError, match="no driven neuron is a stimulated neuron"):
        compare(other)
    n_as1 = int((atlas.table.column("stimulated").to_numpy(False) == "AS1").sum())
    assert n_as1 < 3
    few = _results_folder(tmp_path / "f", atlas, lambda a, r: a, driven=("AS1",))
    with pytest.raises(AtlasError, match="fewer than 3"):
        compare(few)
    with pytest.raises(AtlasError, match="pairs='all'"):
        compare(few, pairs="all")


def _mk(path):
    path.mkdir(parents=True)
    return path


def test_cli_compare_atlas(tmp_path, atlas, capsys):
    folder = _results_folder(_mk(tmp_path / "a"), atlas, lambda a, rng: 2.0 * a)
    assert main(["compare-atlas", str(folder), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((folder / "atlas" / "scores.json").read_text())
    assert printed == written and written["n_pairs"] == len(_expected_pairs(atlas))
    assert main(["compare-atlas", str(folder), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "pearson r" in out and "+1.000" in out
    assert (tmp_path / "o" / "scores.json").is_file()
    assert main(["compare-atlas", str(tmp_path / "missing")]) == 2
    assert "compare-atlas needs" in capsys.readouterr().err
