"""The Connectome container, the synthetic generator and the cache."""

import json

import numpy as np
import pytest
from conftest import make_connectome

from brainsim import cli
from brainsim.connectome import ConnectomeError, load, load_file, save


def test_csr_counts_and_post_sorted_view():
    # duplicate (0,1) rows are summed; (2,2) is a self-connection
    c = make_connectome(3, [0, 0, 2, 1, 0, 2], [1, 1, 0, 2, 2, 2], [2, 3, -4, 1, -1, 5])
    assert c.n_connections == 5 and c.n_synapses == 5 + 4 + 1 + 1 + 5
    assert c.n_excitatory == 3 and c.n_inhibitory == 2
    assert c.provenance.counts["pair_rows_merged"] == 1
    np.testing.assert_array_equal(c.indptr, [0, 2, 3, 5])
    np.testing.assert_array_equal(c.indices, [1, 2, 2, 0, 2])
    np.testing.assert_array_equal(c.counts, [5, -1, 1, -4, 5])
    indptr_post, pre, counts, perm = c.to_post_sorted()
    np.testing.assert_array_equal(indptr_post, [0, 1, 2, 5])
    np.testing.assert_array_equal(pre, [2, 0, 0, 1, 2])
    np.testing.assert_array_equal(counts, c.counts[perm])


def test_index_of_names_unknown_ids():
    c = make_connectome(3, [0], [1], [1])
    np.testing.assert_array_equal(c.index_of([1002, 1000]), [2, 0])
    with pytest.raises(ConnectomeError, match="77"):
        c.index_of([1000, 77])


def test_synthetic_statistics_small_scale():
    c = load("synthetic:seed=3,scale=0.05", "synthetic")
    n = c.n_neurons
    assert n == round(139_255 * 0.05)
    mean_deg = c.n_connections / n
    assert 95 < mean_deg < 125  # FlyWire: 15.1M / 139k = 108
    single = np.mean(np.abs(c.counts) == 1)
    assert 0.40 < single < 0.55
    assert 3.0 < c.n_synapses / c.n_connections < 4.2  # FlyWire: 54.5M / 15.1M = 3.6
    assert 0.55 < c.n_excitatory / c.n_connections < 0.68
    types = np.asarray(c.neurons.column("cell_type").to_pylist())
    assert (types == "sugar_like_GRN").sum() == 21 and (types == "MN9_like").sum() == 1
    again = load("synthetic:seed=3,scale=0.05", "synthetic")
    assert again.provenance.checksum == c.provenance.checksum
    np.testing.assert_array_equal(again.indices, c.indices)
    other = load("synthetic:seed=4,scale=0.05", "synthetic")
    assert other.provenance.checksum != c.provenance.checksum


def test_synthetic_spec_errors():
    with pytest.raises(ConnectomeError, match="unknown key 'sead'"):
        load("synthetic:sead=1", "synthetic")
    with pytest.raises(ConnectomeError, match="too small"):
        load("synthetic:n_neurons=50", "synthetic")
    with pytest.raises(ConnectomeError, match="unknown connectome format"):
        load("x", "nonsense")


def test_cache_roundtrip(tmp_path):
    spec = "synthetic:seed=1,scale=0.01"
    first = load(spec, "synthetic", cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    again = load(spec, "synthetic", cache_dir=tmp_path)
    for name in ("indptr", "indices", "counts"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    assert again.neurons.equals(first.neurons)
    assert again.provenance == first.provenance
    save(first, tmp_path / "x.npz")
    assert load_file(tmp_path / "x.npz").n_synapses == first.n_synapses


def test_info_json(capsys):
    assert cli.main(["info", "synthetic:seed=0,scale=0.01", "--format", "synthetic", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    c = load("synthetic:seed=0,scale=0.01", "synthetic")
    for key in ("n_neurons", "n_connections", "n_synapses", "n_excitatory", "n_inhibitory"):
        assert out[key] == c.summary()[key]
    assert out["sign_rule"] == "per_neuron" and len(out["checksum"]) == 64
