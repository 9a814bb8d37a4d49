"""flyvis on brainsim: the lattice expansion against flyvis's counts and its trained
ensemble's groups, the dynamics against a plain numpy version of flyvis's equations, the
stimuli and indices against closed forms, and the experiments against flyvis's published
figures for its network 000."""

import json

import jax.numpy as jnp
import numpy as np
import pyarrow.parquet as pq
import pytest

from brainsim.connectome import ConnectomeError, load, load_file, save
from brainsim.flyvis import _simulate as sim
from brainsim.flyvis import (
    columns,
    direction_selectivity,
    edge_peaks,
    expand,
    flash,
    flash_response_index,
    grating,
    initial,
    movie,
    moving_edge,
    read_movie,
    read_spec,
    t4t5_pattern,
    trained,
)
from brainsim.flyvis._data import connectome_file, ensemble_file
from brainsim.flyvis._lattice import parse_spec
from brainsim.flyvis._params import read_npz, write_npz
from brainsim.models import GradedChemical, SparseGradedChemical
from tests.conftest import write_config

SHIPPED = "flyvis:fib25-fib19_v2.2"


@pytest.fixture(scope="module")
def spec():
    return read_spec(connectome_file(SHIPPED))


@pytest.fixture(scope="module")
def full(spec):
    return expand(spec, 15, 1.0)


# ---- the lattice -------------------------------------------------------------------------


def test_extent_15_counts_equal_flyvis(spec, full):
    # flyvis's ConnectomeFromAvgFilters at extent 15: 45,669 cells, 1,513,231 connections
    # with its hull filling (n_syn_fill = 1), 1,357,269 without
    assert full.n_cells == 45_669
    assert full.n_connections == 1_513_231
    assert expand(spec, 15, 0).n_connections == 1_357_269
    assert full.filled == 1_513_231 - 1_357_269
    # one connection per (pre, post) pair
    assert np.unique(full.pre * full.n_cells + full.post).size == full.n_connections


def test_groups_equal_the_trained_ensembles(spec, full):
    """Every (type pair, offset) that produces connections, with its mean synapse count, is
    one of the 2,355 groups of flyvis's trained networks, and no group is missing."""
    with np.load(ensemble_file("flow/0000")) as z:
        names = [str(x) for x in z["type_names"]]
        src, tgt = z["pair_source"], z["pair_target"]
        theirs = {
            (names[src[p]], names[tgt[p]], int(du), int(dv)): float(n)
            for p, du, dv, n in zip(z["group_pair"], z["group_du"], z["group_dv"],
                                    z["group_n_syn"], strict=True)  # fmt: skip
        }
    t = spec.type_names
    ours = {}
    for p, du, dv, n in zip(full.pair, full.du, full.dv, full.n_syn, strict=True):
        ours[(t[spec.pair_source[p]], t[spec.pair_target[p]], int(du), int(dv))] = float(n)
    assert len(theirs) == 2355
    assert set(ours) == set(theirs)
    assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-4


def test_cells_per_type_follow_the_strides(spec):
    for extent in (1, 2, 5):
        lat = expand(spec, extent, 1.0)
        cu, cv = columns(extent)
        assert cu.size == 3 * extent * (extent + 1) + 1
        for t, (su, sv) in enumerate(spec.strides.tolist()):
            expected = sum(1 for u, v in zip(cu, cv, strict=True) if u % su == 0 and v % sv == 0)
            assert np.count_nonzero(lat.cell_type == t) == expected
        # every connection lands where its offset says
        assert np.array_equal(lat.u[lat.post] - lat.u[lat.pre], lat.du)
        assert np.array_equal(lat.v[lat.post] - lat.v[lat.pre], lat.dv)
        assert np.all(lat.cell_type[lat.pre] == spec.pair_source[lat.pair])


def _mini(edges, nodes=None):
    nodes = nodes or [
        {"name": "A", "pattern": ["stride", [1, 1]]},
        {"name": "B", "pattern": ["stride", [1, 1]]},
    ]
    return {"nodes": nodes, "edges": edges, "input_units": ["A"], "output_units": ["B"]}


def test_hull_filling_adds_the_inside_points():
    """Triangle (0,0), (4,0), (0,4): its strict interior (1,1), (1,2), (2,1) is filled with
    n_syn_fill synapses; points on its edges are filled or not as matplotlib's
    Path.contains_points decides (flyvis's rule; the extent-15 counts test pins it down);
    nothing outside is added."""
    offs = [[[0, 0], 5.0], [[4, 0], 3.0], [[0, 4], 2.0]]
    s = parse_spec(_mini([{"src": "A", "tar": "B", "alpha": 1, "offsets": offs}]), "mini")
    lat = expand(s, 6, 0.5)
    got = {
        (int(du), int(dv)): float(n)
        for du, dv, n in zip(lat.du, lat.dv, lat.n_syn, strict=True)
    }
    assert {k: got[k] for k in [(0, 0), (4, 0), (0, 4)]} == {(0, 0): 5.0, (4, 0): 3.0, (0, 4): 2.0}
    added = set(got) - {(0, 0), (4, 0), (0, 4)}
    assert {(1, 1), (1, 2), (2, 1)} <= added
    assert all(du >= 0 and dv >= 0 and du + dv <= 4 for du, dv in added)
    assert all(got[k] == 0.5 for k in added)
    # two offsets are no hull: nothing added
    s2 = parse_spec(_mini([{"src": "A", "tar": "B", "alpha": -1, "offsets": offs[:2]}]), "m")
    assert expand(s2, 6, 1.0).filled == 0


@pytest.mark.parametrize(
    "raw, match",
    [
        (_mini([{"src": "A", "tar": "C", "alpha": 1, "offsets": [[[0, 0], 1]]}]),
         r"edges\[0\]: tar 'C' is not a cell type"),
        (_mini([{"src": "A", "tar": "B", "alpha": 1, "offsets": [[[0], 1]]}]),
         r"edges\[0\] \(A -> B\) offsets\[0\]: expected \[\[du, dv\], n_syn\]"),
        (_mini([{"src": "A", "tar": "B", "alpha": 1, "offsets": [[[0, 0], -2]]}]),
         r"offsets\[0\]: n_syn must be a finite number > 0"),
        (_mini([{"src": "A", "tar": "B", "alpha": 0, "offsets": [[[0, 0], 1]]}]),
         r"alpha must be \+1 or -1"),
        (_mini([{"src": "A", "tar": "B", "alpha": 1, "offsets": [[[0, 0], 1]]}] * 2),
         r"edges\[1\]: type pair A -> B listed twice"),
        (_mini([], nodes=[{"name": "A", "pattern": ["stride", [0, 1]]}]),
         r"nodes\[0\] \(A\) pattern"),
    ],
)  # fmt: skip
def test_malformed_files_are_refused_naming_the_entry(raw, match):
    with pytest.raises(ConnectomeError, match=match):
        parse_spec(raw, "mini.json")


def test_loader_extent_and_source_errors(tmp_path):
    with pytest.raises(ConnectomeError, match="extent must be an integer >= 1"):
        load(SHIPPED, "flyvis", extent=0)
    with pytest.raises(ConnectomeError, match="unknown shipped flyvis connectome"):
        load("flyvis:nope", "flyvis")
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    with pytest.raises(ConnectomeError, match="not a JSON file"):
        load(str(bad), "flyvis")


def test_loader_table_and_cache_round_trip(tmp_path):
    conn = load(SHIPPED, "flyvis", extent=3)
    lat = expand(read_spec(connectome_file(SHIPPED)), 3, 1.0)
    assert conn.n_neurons == lat.n_cells
    assert conn.n_connections == lat.n_connections
    assert set(conn.neurons.column_names) >= {"id", "cell_type", "u", "v", "role"}
    assert conn.provenance.counts["hull_filled_connections"] == lat.filled
    # counts carry the signs, n_syn the mean counts, in CSR order
    order = np.lexsort((lat.post, lat.pre))
    assert np.array_equal(conn.counts, lat.sign[order])
    assert np.allclose(conn.signed_size(), lat.sign[order] * lat.n_syn[order])
    # the lattice recovered from the (cached) connectome is the expansion, in CSR order
    from brainsim.connectome._flyvis import connectome_lattice

    got = connectome_lattice(conn)
    for name in ("pre", "post", "pair", "du", "dv", "n_syn", "sign"):
        assert np.array_equal(getattr(got, name), getattr(lat, name)[order]), name
    assert np.array_equal(got.cell_type, lat.cell_type) and got.filled == lat.filled
    # a file that no longer pairs two connected types (edited after caching) is refused
    import dataclasses

    raw = json.loads(connectome_file(SHIPPED).read_text())
    raw["edges"] = raw["edges"][1:]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(raw))
    moved = dataclasses.replace(conn.provenance, sources=(str(edited),))
    with pytest.raises(ValueError, match="between types the flyvis file does not pair"):
        connectome_lattice(dataclasses.replace(conn, provenance=moved))
    back = load_file(save(conn, tmp_path / "c.npz"))
    assert np.array_equal(back.n_syn, conn.n_syn)
    assert back.n_synapses == conn.n_synapses == int(round(lat.n_syn.astype(float).sum()))


# ---- parameters and dynamics -------------------------------------------------------------


def test_trained_parameters_are_the_ensembles(spec):
    p = trained(spec, "flyvis:flow/0000/007")
    with np.load(ensemble_file("flow/0000")) as z:
        assert np.allclose(p.bias, z["bias"][7])
        assert np.allclose(p.time_const_s, z["time_const_s"][7])
        names = [str(x) for x in z["type_names"]]
        i = next(k for k in range(604) if (names[z["pair_source"][k]], names[z["pair_target"][k]])
                 == ("Mi1", "T4a"))  # fmt: skip
        theirs = z["strength"][7, i]
    k = next(k for k in range(spec.pair_source.size)
             if (spec.type_names[spec.pair_source[k]], spec.type_names[spec.pair_target[k]])
             == ("Mi1", "T4a"))  # fmt: skip
    assert p.strength[k] == pytest.approx(theirs)
    for bad in ("flyvis:flow/0000/050", "flyvis:flow/9999/000", "flow/0000/000"):
        with pytest.raises(ValueError, match="params"):
            trained(spec, bad)


def flyvis_numpy(lat, params, frames, dt_s, n_pre_steps):
    """flyvis's PPNeuronIGRSynapses in plain numpy: one loop over steps, np.add.at over the
    connections; frames [steps, columns] for every input type; starts at the bias."""
    w = lat.sign * lat.n_syn.astype(np.float64) * params.strength[lat.pair]
    tau = np.maximum(params.time_const_s, dt_s)[lat.cell_type]
    bias = params.bias[lat.cell_type]
    cu, cv = columns(lat.extent)
    col = {(a, b): k for k, (a, b) in enumerate(zip(cu.tolist(), cv.tolist(), strict=True))}
    inputs = [c for t in lat.spec.input_types for c in np.flatnonzero(
        lat.cell_type == lat.spec.type_names.index(t))]  # fmt: skip
    in_col = [col[(int(lat.u[c]), int(lat.v[c]))] for c in inputs]
    v = bias.copy()
    out = []
    for t in range(frames.shape[0]):
        syn = np.zeros(lat.n_cells)
        np.add.at(syn, lat.post, w * np.maximum(v[lat.pre], 0))
        x = np.zeros(lat.n_cells)
        x[inputs] = frames[t, in_col]
        v = v + dt_s / tau * (-v + bias + syn + x)
        out.append(v.copy())
    return np.array(out)[n_pre_steps:]


@pytest.mark.parametrize("dt_ms", [5.0, 20.0])
def test_step_equals_numpy_flyvis(spec, dt_ms):
    """brainsim's step (both synapse forms) equals the numpy version of flyvis's equations
    on extent 3; at dt = 20 ms several trained time constants (~19.6 ms) are clamped."""
    lat = expand(spec, 3, 1.0)
    params = trained(spec, "flyvis:flow/0000/000")
    assert (dt_ms < 10) or np.any(params.time_const_s < dt_ms / 1000)
    dt_s = dt_ms / 1000
    frames = moving_edge(3, 60.0, 1.0, 19.0, dt_s, t_pre_s=0.1, t_post_s=0.1)
    ref = flyvis_numpy(lat, params, frames.astype(np.float64), dt_s, 0)
    rec = np.arange(lat.n_cells)
    for sparse in (True, False):
        net = sim.build(lat, params, dt_ms, dtype=jnp.float64, sparse=sparse)
        _, tr = sim.integrate(net, sim.resting(net, 1), jnp.asarray(frames[:, None], jnp.float64),
                              jnp.asarray(rec, jnp.int32))  # fmt: skip
        np.testing.assert_allclose(np.asarray(tr)[:, 0], ref, rtol=1e-9, atol=1e-9)


def test_sparse_synapses_equal_plain(full):
    rng = np.random.default_rng(3)
    w = rng.normal(size=full.n_connections)
    plain = GradedChemical(jnp.asarray(full.pre, jnp.int32), jnp.asarray(full.post, jnp.int32),
                           jnp.asarray(w))  # fmt: skip
    fast = SparseGradedChemical.from_connections(full.pre, full.post, jnp.asarray(w), full.n_cells)
    for batch in (3, 9):  # below and above SPARSE_MIN_BATCH: both forms of the sparse kind
        x = jnp.asarray(rng.random((batch, full.n_cells)))
        np.testing.assert_allclose(fast.deliver(None, 0, x), plain.deliver(None, 0, x),
                                   rtol=1e-10, atol=1e-10)  # fmt: skip


def test_initial_parameters_follow_flyvis(spec):
    lat = expand(spec, 4, 1.0)
    p = initial(lat, seed=0)
    assert np.all(p.time_const_s == 0.05)
    assert abs(p.bias.mean() - 0.5) < 0.03 and 0.02 < p.bias.std() < 0.08
    # strength = 0.01 / mean n_syn of the pair's connections
    k = int(lat.pair[0])
    assert p.strength[k] == pytest.approx(0.01 / lat.n_syn[lat.pair == k].astype(float).mean())


def test_params_file_round_trip(spec, tmp_path):
    p = trained(spec, "flyvis:flow/0000/003")
    write_npz(spec, p, tmp_path / "p.npz")
    q = read_npz(spec, tmp_path / "p.npz")
    assert np.array_equal(q.strength, p.strength) and np.array_equal(q.bias, p.bias)
    np.savez(tmp_path / "bad.npz", bias=p.bias)
    with pytest.raises(ValueError, match="missing arrays"):
        read_npz(spec, tmp_path / "bad.npz")


# ---- stimuli -----------------------------------------------------------------------------


def test_moving_edge_timing_and_geometry():
    dt = 0.005
    f = moving_edge(15, 0.0, 1.0, 19.0, dt, t_pre_s=1.0, t_post_s=1.0)
    n_stim = int(21 * 2.25 / (19 * 5.8) / dt)
    assert f.shape == (200 + n_stim + 200, 721)
    assert np.all(f[:200] == 0.5)
    # moving towards +x (increasing v): at the end the columns behind the edge (x < 22.5 -
    # 3 deg) are bright, those ahead (x > 22.5 + 3) grey; the central column is covered
    x = 5.8 * columns(15)[1]
    last = f[-1]
    assert np.all(last[x < 22.5 - 3] == 1.0) and np.all(last[x > 22.5 + 3] == 0.5)
    centre = int(np.flatnonzero((columns(15)[0] == 0) & (columns(15)[1] == 0))[0])
    onset = f[200:, centre]
    assert onset[0] == 0.5 and onset[-1] == 1.0 and np.all(np.diff(onset) >= 0)
    # an OFF edge at 180 degrees darkens the other side
    g = moving_edge(15, 180.0, 0.0, 19.0, dt)
    assert np.all(g[-1][x > 22.5 + 3] == 0.0)
    with pytest.raises(ValueError, match="intensity"):
        moving_edge(15, 0.0, 1.5, 19.0, dt)


def test_flash_and_grating():
    f = flash(15, 0.0, 0.005, radius=2, t_stim_s=0.5, t_pre_s=0.25)
    assert f.shape == (50 + 100 + 50, 721)
    assert np.count_nonzero(f[60] == 0.0) == 3 * 2 * 3 + 1
    assert np.all(f[:50] == 0.5) and np.all(f[-50:] == 0.5)
    g = grating(15, 30.0, 40.0, 20.0, 1.0, 0.01)
    assert g.shape == (100, 721)
    assert abs(float(g.mean()) - 0.5) < 0.02 and g.max() <= 1 and g.min() >= 0


def test_movie_file_checks(tmp_path):
    good = np.random.default_rng(0).random((5, 37))
    np.save(tmp_path / "m.npy", good)
    frames = read_movie(tmp_path / "m.npy", 3)
    out = movie(frames, 50.0, 0.005)  # 5 frames at 50 Hz = 0.1 s = 20 steps of 5 ms
    assert out.shape == (20, 37) and np.array_equal(out[4], frames[1]) and np.array_equal(
        out[3], frames[0])
    np.save(tmp_path / "wide.npy", good[:, :30])
    with pytest.raises(ValueError, match=r"expected \[frames, 37\]"):
        read_movie(tmp_path / "wide.npy", 3)
    bad = good.copy()
    bad[2, 7] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="frame 2, column 7"):
        read_movie(tmp_path / "nan.npy", 3)


# ---- indices -----------------------------------------------------------------------------


def test_dsi_closed_form():
    """Peaks 1 + cos(theta - 60) at ON and 0 at OFF: the vector sum over 12 directions is
    6 e^{i 60}, the normalisation 12, so DSI = 0.5 at ON, 0 at OFF, preferred 60."""
    angles = np.arange(0, 360, 30)
    peak = np.zeros((12, 2, 1, 1))
    peak[:, 1, 0, 0] = 1 + np.cos(np.deg2rad(angles - 60))
    dsi, pref = direction_selectivity(peak, angles)
    assert dsi[1, 0] == pytest.approx(0.5)
    assert dsi[0, 0] == pytest.approx(0.0)
    assert pref[1, 0] == pytest.approx(60.0)


def test_edge_peaks_and_fri_closed_forms():
    t = np.arange(-5, 10) * 0.1
    r = np.where(t >= 0, np.sin(t), -0.2)[:, None]
    peak, base, change = edge_peaks(r, t, 0.5)
    assert peak[0] == pytest.approx(np.sin(0.5)) and base[0] == 0.0
    assert change[0] == pytest.approx(np.sin(0.5))
    on = np.where(t >= 0, 1.0, 0.0)[:, None]
    off = np.where(t >= 0, -1.0, 0.0)[:, None]
    # shifted by |min| = 1: peaks 2 and 1 -> (2 - 1) / 3
    assert flash_response_index(on, off, t, 0.5, 0.1)[0] == pytest.approx(1 / 3)


def test_t4t5_pattern_checks():
    pref = {"T4a": 180, "T4b": 0, "T4c": 90, "T4d": 270,
            "T5a": 170, "T5b": 10, "T5c": 80, "T5d": 260}  # fmt: skip
    dsi = dict.fromkeys(pref, 0.5)
    assert t4t5_pattern(dsi, pref)["all"]
    assert not t4t5_pattern(dsi | {"T4d": 0.1}, pref)["T4_dsi"]
    assert not t4t5_pattern(dsi, pref | {"T5c": 200})["T5_with_T4"]


# ---- brainsim run ------------------------------------------------------------------------


def flyvis_toml(extent: int, model: str, simulation: str, rest: str) -> str:
    """A flyvis config: the shipped connectome at ``extent``, then the given tables."""
    return f"""
[connectome]
format = "flyvis"
path = "{SHIPPED}"
cache = false
options = {{ extent = {extent} }}
[model]
{model}
[simulation]
{simulation}
{rest}
"""


def _edge_config(tmp_path, extent=15, extra="", model='params = "flyvis:flow/0000/000"'):
    experiment = f"""[experiment]
kind = "moving_edge"
angles_deg = [0, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 330]
{extra}
{"" if "intensities" in extra else "intensities = [0, 1]"}
{"" if "speeds" in extra else "speeds = [19]"}
[output]
dir = "out"
"""
    text = flyvis_toml(extent, f'kind = "graded"\n{model}', "dt_ms = 5.0", experiment)
    return write_config(tmp_path, text)


def test_moving_edge_run_matches_flyvis_published_t4c(tmp_path, own_cache):
    """flyvis's tutorial (docs/examples/04_flyvision_moving_edge_responses, network
    flow/0000/000, 12 directions at 19 columns/s, dt 1/200 s) reports for T4c at ON edges a
    DSI of 0.63 and a preferred direction of 56.24 degrees."""
    from brainsim.experiments import load_config, run_config

    out = run_config(load_config(_edge_config(tmp_path)), log=lambda *a: None)
    d = pq.read_table(out / "dsi.parquet").to_pandas()
    t4c = d[(d.cell_type == "T4c") & (d.intensity == 1)].iloc[0]
    assert t4c.dsi == pytest.approx(0.63, abs=0.02)
    assert t4c.preferred_angle_deg == pytest.approx(56.24, abs=3)
    s = pq.read_table(out / "summary.parquet").to_pandas()
    assert len(s) == 65 * 24 and len(d) == 65 * 2
    # dsi.parquet recomputed from summary.parquet with flyvis's formula
    on = s[(s.cell_type == "T4c") & (s.intensity == 1)].sort_values("angle_deg")
    off = s[(s.cell_type == "T4c") & (s.intensity == 0)].sort_values("angle_deg")
    z = np.sum(on.peak.to_numpy() * np.exp(1j * np.deg2rad(on.angle_deg.to_numpy())))
    norm = max(on.peak.abs().sum(), off.peak.abs().sum())
    assert abs(z) / norm == pytest.approx(t4c.dsi, rel=1e-6)
    checks = json.loads((out / "t4t5.json").read_text())["checks"]
    assert checks["T4_a_opposite_b"] and checks["T5_a_opposite_b"]
    assert (out / "dsi_polar.png").is_file()
    man = json.loads((out / "manifest.json").read_text())
    assert man["params"] == "flyvis:flow/0000/000" and man["connectome"]["n_neurons"] == 45_669


def test_flash_run_and_plain_visual_run(tmp_path, own_cache):
    from brainsim.experiments import load_config, run_config

    flash = '[experiment]\nkind = "flash"\nt_stim_s = 0.5\nt_pre_s = 0.5\nradius = -1'
    model = 'kind = "graded"\nparams = "flyvis:flow/0000/000"'
    cfg = write_config(
        tmp_path, flyvis_toml(4, model, "dt_ms = 10.0", flash + '\n[output]\ndir = "out"')
    )
    out = run_config(load_config(cfg), log=lambda *a: None)
    f = pq.read_table(out / "fri.parquet").to_pandas().set_index("cell_type")
    # photoreceptors depolarise to light and L1/L2 hyperpolarise (flyvis; the fly)
    assert f.loc["R1", "fri"] > 0 and f.loc["L1", "fri"] < 0 and f.loc["L2", "fri"] < 0
    assert (out / "fri.png").is_file()
    # a plain run with a grating, recording two types' central cells
    cfg2 = write_config(
        tmp_path,
        flyvis_toml(4, 'params = "flyvis:flow/0000/001"', "dt_ms = 10.0\nduration_ms = 300.0", """
[[stimulus]]
kind = "visual"
pattern = "grating"
angle_deg = 90.0
period_deg = 20.0
speed_deg_s = 40.0
[record]
neurons = { cell_type = ["Mi1", "Tm3"] }
[output]
dir = "out2"
"""),
        name="plain.toml",
    )
    out2 = run_config(load_config(cfg2), log=lambda *a: None)
    tr = pq.read_table(out2 / "traces.parquet").to_pandas()
    n_rec = 2 * (3 * 4 * 5 + 1)
    assert len(tr) == 30 * n_rec and set(tr.columns) >= {"t_ms", "neuron_id", "v_mv"}
    assert (out2 / "traces.png").is_file()


@pytest.mark.parametrize(
    "model, extra, match",
    [
        ('params = "flyvis:flow/0000/077"', "", "models 000-049"),
        ('params = "flyvis:flow/0000/000"\ntau_ms = 3.0', "", "unknown key 'tau_ms'"),
        ('params = "flyvis:flow/0000/000"', "intensities = [0, 2]", r"intensities: 2 outside"),
        ('params = "flyvis:flow/0000/000"', "speeds = [0, 1]", "must be > 0"),
        ('params = "missing.npz"', "", "params file .* not found"),
    ],
)
def test_bad_flyvis_configs_are_refused(tmp_path, own_cache, model, extra, match):
    from brainsim.experiments import ConfigError, load_config, run_config

    with pytest.raises(ConfigError, match=match):
        run_config(load_config(_edge_config(tmp_path, 2, extra, model)), log=lambda *a: None,
                   dry_run=True)  # fmt: skip


def test_visual_experiment_needs_a_flyvis_connectome(tmp_path, own_cache):
    from brainsim.experiments import ConfigError, load_config, run_config

    cfg = write_config(
        tmp_path,
        """
[connectome]
format = "synthetic"
path = "synthetic:seed=0,scale=0.005"
cache = false
[model]
kind = "graded"
[simulation]
dt_ms = 5.0
[experiment]
kind = "flash"
[output]
dir = "out"
""",
    )
    with pytest.raises(ConfigError, match='need a flyvis lattice connectome'):
        run_config(load_config(cfg), log=lambda *a: None, dry_run=True)


# ---- training ----------------------------------------------------------------------------


def _train_config(tmp_path, **fit):
    keys = {"task": '"motion"', "angles_deg": "[0, 90, 180, 270]", "speeds": "[19.0]",
            "steps": "3", "learning_rate": "0.01", "log_every": "1", **fit}  # fmt: skip
    lines = "\n".join(f"{k} = {v}" for k, v in keys.items())
    model = 'kind = "graded"\nparams = "flyvis:initial"'
    text = flyvis_toml(2, model, "dt_ms = 20.0", f'[fit]\n{lines}\n[output]\ndir = "fit"')
    return write_config(tmp_path, text, name="fit.toml")


def test_training_writes_trained_params_and_their_tuning(tmp_path, own_cache):
    from brainsim import cli

    # read per column (the shipped config's readout), in the 7 central columns
    cfg = _train_config(tmp_path, readout='"columns"', pool_radius="1",
                        decode_from='["T4a", "T4b", "T5a", "T5b"]')  # fmt: skip
    assert cli.main(["fit", str(cfg), "--quiet"]) == 0
    out = tmp_path / "fit"
    hist = pq.read_table(out / "history.parquet").to_pandas()
    assert list(hist.step) == [1, 2, 3] and np.all(np.isfinite(hist.loss))
    spec = read_spec(connectome_file(SHIPPED))
    p = read_npz(spec, out / "params.npz")
    p0 = initial(expand(spec, 2, 1.0), 0)
    # the parameters of the lowest loss: at most two Adam steps of 0.01 in log space from
    # the start (the loss of step k is that of the parameters before its update)
    ratio = p.strength[p0.strength > 0] / p0.strength[p0.strength > 0]
    assert np.all(np.abs(np.log(ratio)) <= 0.0201)
    assert np.all(p.time_const_s >= 0.02 - 1e-12)
    man = json.loads((out / "manifest.json").read_text())
    assert (man["task"]["readout"], man["task"]["pool_radius"]) == ("columns", 1)
    assert man["best_loss"] == pytest.approx(hist.loss.min())
    assert man["best_step"] == int(hist.step[hist.loss.idxmin()])
    if man["best_step"] > 1:
        assert np.any(ratio != 1)
    d = pq.read_table(out / "dsi.parquet").to_pandas()
    assert {"dsi_before", "dsi_after", "dsi_change_before", "dsi_change_after"} <= set(d.columns)
    assert len(d) == 65 * 2
    run = out / "run"
    man = json.loads((run / "manifest.json").read_text())
    assert man["params"] == str(out / "params.npz") and (run / "dsi.parquet").is_file()
    # the trained parameters run from a config that names the file
    before = pq.read_table(run / "dsi.parquet").to_pandas().set_index(["cell_type", "intensity"])
    assert np.allclose(before.loc[("T4a", 1.0), "dsi"], d[(d.cell_type == "T4a") & (
        d.intensity == 1)].dsi_after.iloc[0])  # fmt: skip


def test_a_diverging_training_stops_and_writes_its_last_finite_parameters(
    tmp_path, own_cache, capsys
):
    """A learning rate far too large: the weights overflow after the first update, the loss
    of step 2 is not finite; the training stops there, names it, and leaves the start
    parameters (step 1's) that [model] params can name, and no trained result."""
    from brainsim import cli

    cfg = _train_config(tmp_path, learning_rate="1e6", clip_norm="0.0", evaluate="false")
    out = tmp_path / "fit"
    assert cli.main(["fit", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "fit.toml: [fit] learning_rate: step 2: the loss is nan" in err, err
    assert "smaller learning_rate than 1e+06" in err and "(step 1's)" in err
    assert str(out / "params_last_finite.npz") in err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "history.parquet", "manifest.json", "params_last_finite.npz"
    ]  # fmt: skip
    hist = pq.read_table(out / "history.parquet").to_pandas()
    assert list(hist.step) == [1] and np.isfinite(hist.loss[0])
    man = json.loads((out / "manifest.json").read_text())["diverged"]
    assert (man["step"], man["last_finite_step"], man["value"]) == (2, 1, "nan")
    spec = read_spec(connectome_file(SHIPPED))
    p = read_npz(spec, out / "params_last_finite.npz")
    p0 = initial(expand(spec, 2, 1.0), 0)  # step 1's loss is that of the start
    assert np.allclose(p.strength, p0.strength) and np.allclose(p.bias, p0.bias)


def test_training_with_flyvis_activity_penalty(tmp_path, own_cache):
    """``[fit] activity_penalty``: flyvis's defaults filled in and recorded in the manifest,
    the penalty logged per step beside the task loss, and the biases raised by it (every
    type's central voltage starts far below the baseline of 5)."""
    from brainsim import cli

    cfg = _train_config(tmp_path, activity_penalty="{ weight = 0.2 }", evaluate="false",
                        steps="2")  # fmt: skip
    assert cli.main(["fit", str(cfg), "--quiet"]) == 0
    out = tmp_path / "fit"
    man = json.loads((out / "manifest.json").read_text())
    assert man["task"]["activity_penalty"] == {"baseline": 5.0, "weight": 0.2, "below": 1.0,
                                               "above": 0.1}  # fmt: skip
    hist = pq.read_table(out / "history.parquet").to_pandas()
    assert list(hist.columns) == ["step", "loss", "t_s", "activity_penalty"]
    # about 0.2 * (5 - 0.5)**2 at flyvis's start; falling as the biases rise
    assert 2.0 < hist.activity_penalty[0] < 8.0
    assert hist.activity_penalty[1] < hist.activity_penalty[0]


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("stimuli", '["dots"]', 'expected "edges" and/or "textures"'),
        ("learning_rate", "-1.0", "learning_rate: must be > 0"),
        ("speeds", "[0.0]", "speeds: expected numbers > 0"),
        ("optimizer", "'newton'", "optimizer: expected one of"),
        ("batch", "3", "unknown key 'batch'"),
        ("task", '"flow"', 'task = "motion"'),
        ("max_loss_ratio", "0.5", "max_loss_ratio: must be > 1, or 0"),
        ("readout", '"last"', "readout: expected one of steps, mean, peak, columns"),
        ("pool_radius", "-1", "pool_radius: must be >= 0"),
        ("pool_radius", "1.5", "pool_radius: expected int"),
        ("activity_penalty", "{ weight = -1.0 }", "activity_penalty: activity penalty weight"),
        ("activity_penalty", "{ floor = 1.0 }", "activity_penalty: unknown key 'floor'"),
        ("activity_penalty", '{ baseline = "5" }', "activity_penalty baseline: expected float"),
        ("activity_penalty", "5.0", "activity_penalty: expected dict"),
    ],
)
def test_training_config_errors(tmp_path, own_cache, key, value, match):
    from brainsim.experiments import ConfigError
    from brainsim.experiments._config import read_toml
    from brainsim.flyvis._train import run_training

    path = _train_config(tmp_path, **{key: value})
    with pytest.raises(ConfigError, match=match):
        run_training(*read_toml(path), log=lambda *a: None)


def _small_motion(spec, decode_from):
    """The motion task's pieces on extent 2 from flyvis's init: the lattice, the start
    parameters, the task (two directions, one speed, dt 20 ms), its batch and trainables."""
    from brainsim.flyvis._train import MotionTask, _trainables, motion_batch

    lat = expand(spec, 2, 1.0)
    p0 = initial(lat, 0)
    task = MotionTask(angles_deg=(0, 180), speeds=(19.0,), decode_from=tuple(decode_from))
    frames, vel, moving = motion_batch(2, task, 0.02, 0)
    return lat, p0, task, frames, vel, moving, _trainables(lat, p0, 0, task)


def test_motion_loss_readouts_closed_forms(spec):
    """The motion loss of a zero decoder is exactly 1 (the relative error of decoding 0)
    for every readout; with a decoder, reading every step, the mean or the peak over the
    motion are different losses, and an unknown readout is refused."""
    import jax.numpy as jnp

    from brainsim.flyvis._train import make_loss

    lat, p0, _, frames, vel, moving, theta = _small_motion(spec, ("R1", "L1"))
    zero = theta | {"decoder_w": jnp.zeros_like(theta["decoder_w"])}
    losses = {}
    for readout in ("steps", "mean", "peak", "columns"):
        loss, fixed = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1", "L1"],
                                readout=readout)  # fmt: skip
        assert float(loss(zero, fixed)) == pytest.approx(1.0, abs=1e-6)
        losses[readout] = float(loss(theta, fixed))
    assert len({round(v, 6) for v in losses.values()}) == 4, losses
    # only the central column: pooling it and reading it per column are the same loss
    central = [
        float(loss(theta, fixed))
        for loss, fixed in (
            make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1", "L1"], readout=r, radius=0)
            for r in ("steps", "columns")
        )
    ]
    assert central[0] == pytest.approx(central[1], rel=1e-6) and central[0] != losses["steps"]
    # scaled by the start's response size: the same loss at the start, another elsewhere
    loss_i, fixed_i = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1", "L1"],
                                scale="initial")  # fmt: skip
    loss_b, fixed_b = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1", "L1"])
    assert float(loss_i(theta, fixed_i)) == pytest.approx(losses["steps"], rel=1e-5)
    loss_f, fixed_f = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1", "L1"],
                                scale="floored")  # fmt: skip
    assert float(loss_f(theta, fixed_f)) == pytest.approx(losses["steps"], rel=1e-5)
    quieter = theta | {"log_strength_factor": theta["log_strength_factor"] - 0.5}
    assert abs(float(loss_f(quieter, fixed_f)) - float(loss_b(quieter, fixed_b))) > 1e-4
    louder = theta | {"log_strength_factor": theta["log_strength_factor"] + 0.5}
    assert abs(float(loss_i(louder, fixed_i)) - float(loss_b(louder, fixed_b))) > 1e-4
    # the rest floor adds the mean of (relu(floor - V_grey) / floor)**2 over the cells, V_grey
    # from flyvis's steady state (0.1 s of grey from rest)
    from brainsim.flyvis import _simulate as sim

    rest = np.asarray(sim.steady_state(sim.build(lat, p0, 20.0), 1, 0.1))[0]
    for floor in (0.5, 10.0):
        loss_r, fixed_r = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1", "L1"],
                                    rest_floor=floor)  # fmt: skip
        term = np.mean(np.maximum(floor - rest, 0.0) ** 2) / floor**2
        assert term > 0
        got = float(loss_r(theta, fixed_r)) - losses["steps"]
        assert got == pytest.approx(term, rel=1e-4, abs=1e-7)
    # a batch norm's epsilon: far above the features' size they read as 0, the loss of a
    # zero decoder (1); far below it, the plain scaling
    for eps, want in ((1e6, 1.0), (1e-30, losses["steps"])):
        loss_e, fixed_e = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1", "L1"],
                                    feature_eps=eps)  # fmt: skip
        assert float(loss_e(theta, fixed_e)) == pytest.approx(want, rel=1e-4)
    with pytest.raises(ValueError, match="feature_eps must be"):
        make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1"], feature_eps=-1.0)
    with pytest.raises(ValueError, match="rest_floor must be"):
        make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1"], rest_floor=0.0)
    with pytest.raises(ValueError, match="scale must be"):
        make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1"], scale="none")
    with pytest.raises(ValueError, match="readout must be"):
        make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1"], readout="last")
    with pytest.raises(ValueError, match="has no cell within radius -1"):
        make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1"], radius=-1)
    sparse = [t for t in spec.type_names if (lat.cell_type == spec.type_names.index(t)).sum()
              < (lat.cell_type == spec.type_names.index("R1")).sum()]  # fmt: skip
    assert sparse  # types with cells at fewer columns (a stride above 1)
    with pytest.raises(ValueError, match="lacks cells at"):
        make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, ["R1", sparse[0]], readout="columns")


def test_activity_penalty_is_flyvis_formula_on_the_biases(spec):
    """flyvis's activity penalty: each type's central cell, its mean voltage over the last
    three quarters of each stimulus, ``weight * mean((below * relu(baseline - m) - above *
    relu(m - baseline))**2)``, computed here in numpy from an independent simulation of
    the same stimuli; in a training step it moves the biases alone (the other parameters
    step as without it), each by Adam's first step along the penalty's gradient: with every
    type below the baseline, most rise (an inhibitory type's may fall, lowering others)."""
    import jax
    import jax.numpy as jnp
    import optax

    from brainsim.flyvis._experiment import simulate_frames
    from brainsim.flyvis._train import ActivityPenalty, init_state, make_loss, make_update

    types = ["T4a", "T5a"]
    lat, p0, _, frames, vel, moving, theta = _small_motion(spec, types)
    central = lat.central_cells()
    v = simulate_frames(lat, p0, 20.0, frames, central, steady_s=0.1)  # [steps, b, types]
    m = v[v.shape[0] // 4 :].mean(0)
    plain, fixed0 = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, types)
    for pen in (ActivityPenalty(), ActivityPenalty(baseline=float(np.median(m)), weight=0.3,
                                                   below=1.0, above=0.2)):  # fmt: skip
        d = pen.baseline - m
        want = pen.weight * np.mean((pen.below * np.maximum(d, 0) - pen.above * np.maximum(-d, 0))
                                    ** 2)  # fmt: skip
        loss, fixed = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, types, activity=pen)
        task_part, pen_part = np.asarray(loss.parts(theta, fixed))
        assert pen_part == pytest.approx(want, rel=1e-4)
        assert task_part == pytest.approx(float(plain(theta, fixed0)), rel=1e-6)
        assert float(loss(theta, fixed)) == pytest.approx(task_part + pen_part, rel=1e-6)
    # a training step (the default penalty: every central mean is far below 5)
    assert np.all(m < 5.0)
    loss, fixed = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, types,
                            activity=ActivityPenalty())  # fmt: skip
    lr = 0.01
    opt = optax.adam(lr)
    with_pen = make_update(loss, opt, optax.adam(lr))
    new, _, _ = with_pen(theta, init_state(theta, opt, optax.adam(lr)), fixed)
    ref, _, _ = make_update(plain, opt)(theta, init_state(theta, opt), fixed0)
    for k in theta:
        if k != "bias":
            np.testing.assert_allclose(np.asarray(new[k]), np.asarray(ref[k]), rtol=1e-5,
                                       atol=1e-7)  # fmt: skip
    # Adam's first step along the penalty's own gradient: -lr * its sign, for each bias
    g = jax.grad(lambda t: loss.parts(t, fixed)[1])(theta)
    moved = np.asarray(new["bias"] - ref["bias"])
    np.testing.assert_allclose(moved, -lr * np.sign(np.asarray(g["bias"])), rtol=1e-3)
    assert (moved > 0).sum() >= 0.9 * moved.size  # below the baseline: mostly raised
    assert float(jnp.abs(g["log_strength_factor"]).max()) > 0  # what the step leaves out
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        ActivityPenalty(weight=-1.0)
    with pytest.raises(ValueError, match="baseline must be a finite number"):
        ActivityPenalty(baseline=float("nan"))


def test_motion_loss_gradient_follows_the_steady_state(spec):
    """The training differentiates through the grey steady state that the stimuli start
    from and the features are measured from. Moving every bias along a random direction
    barely changes the loss (the features are changes from the resting level, which the
    steady state recomputes): the gradient along it matches a central finite difference.
    Held fixed (the code before 2026-12-06), the same gradient is orders of magnitude off,
    as it reads the relaxation to the new resting level as a response."""
    import jax
    import jax.numpy as jnp

    from brainsim.flyvis._train import make_loss

    types = ["T4a", "T5a"]
    lat, p0, _, frames, vel, moving, theta = _small_motion(spec, types)
    d = np.random.default_rng(1).normal(size=theta["bias"].shape)
    eps = 1e-2
    shifted = [theta | {"bias": theta["bias"] + s * eps * jnp.asarray(d, jnp.float32)}
               for s in (1, -1)]  # fmt: skip
    along = {}
    for followed in (True, False):
        loss, fixed = make_loss(lat, p0, 20.0, frames, vel, moving, 0.5, types,
                                readout="columns", steady_gradient=followed)  # fmt: skip
        g = np.asarray(jax.grad(loss)(theta, fixed)["bias"], np.float64)
        along[followed] = float(g @ d)
        fd = (float(loss(shifted[0], fixed)) - float(loss(shifted[1], fixed))) / (2 * eps)
    # the finite difference is the same for both (the loss is); float32 rounding ~1e-4
    assert abs(along[True] - fd) < 2e-3, (along, fd)
    assert abs(along[False] - fd) > 1.0, (along, fd)


def test_decoder_channels_sum_types(spec):
    """``decode_from = ["R1+L1", "R8"]``: the decoder reads two inputs, the first the sum of
    R1's and L1's scaled features (as ``"T4a+T5a"`` would; T4/T5 barely respond on this
    small lattice); the loss equals that of a decoder reading the three types apart with
    R1's weights repeated for L1. A type named twice in one entry, or
    an unknown type, is a config error; a channel matrix of the wrong shape is refused."""
    import jax.numpy as jnp

    from brainsim.experiments import ConfigError
    from brainsim.flyvis._train import MotionTask, decoded_types, decoder_channels, make_loss

    lat, p0, task, frames, vel, moving, theta = _small_motion(spec, ("R1+L1", "R8"))
    types = decoded_types(lat, task)
    assert types == ["R1", "L1", "R8"]
    ch = decoder_channels(lat, task)
    assert ch.tolist() == [[1, 0], [1, 0], [0, 1]]
    assert theta["decoder_w"].shape == (2, 2)
    for readout in ("steps", "columns"):
        summed, f_s = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, types,
                                readout=readout, channels=ch)  # fmt: skip
        apart, f_a = make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, types, readout=readout)
        w = theta["decoder_w"]
        repeated = theta | {"decoder_w": jnp.stack([w[:, 0], w[:, 0], w[:, 1]], axis=1)}
        alone = theta | {"decoder_w": jnp.stack([w[:, 0], 0 * w[:, 0], w[:, 1]], axis=1)}
        got = float(summed(theta, f_s))
        assert got == pytest.approx(float(apart(repeated, f_a)), rel=1e-5)
        assert abs(got - float(apart(alone, f_a))) > 1e-4
    for bad, match in ((("R1+R1",), "names a type twice"), (("T4a+Tx9",), "not cell types")):
        with pytest.raises(ConfigError, match=match):
            decoder_channels(lat, MotionTask(decode_from=bad))
    with pytest.raises(ValueError, match="channels must be"):
        make_loss(lat, p0, 20.0, frames, vel, moving, 0.1, types, channels=np.ones((2, 1)))
