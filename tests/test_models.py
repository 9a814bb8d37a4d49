"""Neuron models and synapse kinds through the model interface: closed forms, plain numpy
loops of the same equations, and the steppers held equal where they overlap."""

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import make_connectome, write_config

from brainsim import cli
from brainsim.models import LIF, PQN, Graded
from brainsim.sim import DenseWindow, Protocol, Reference, Windowed, simulate

# ---- gap junctions (LIF) -------------------------------------------------------------


def gap_table(pairs):
    """Both directions of undirected (a, b, count) index pairs."""
    a, b, c = (np.array(x) for x in zip(*pairs, strict=True))
    return pa.table(
        {
            "pre": pa.array(np.concatenate([a, b]), pa.int32()),
            "post": pa.array(np.concatenate([b, a]), pa.int32()),
            "count": pa.array(np.concatenate([c, c]), pa.int32()),
        }
    )


def with_gaps(conn, pairs):
    """The same connectome with these gap junctions (undirected index pairs)."""
    return dataclasses.replace(conn, gap_junctions=gap_table(pairs))


def coupled(n, pairs, **model):
    """n neurons without chemical synapses (one silent neuron carries a dummy edge),
    coupled by gap junctions; LIF that never spikes."""
    return with_gaps(make_connectome(n + 1, [n], [n], [1]), pairs), LIF(v_th_mv=1e3, **model)


def drive_first(n, amp, steps):
    return Protocol.build(1, n + 1, current=[(np.array([0]), amp, 0, steps)])


def laplacian(n, pairs, w):
    lap = np.zeros((n, n))
    for a, b, c in pairs:
        lap[a, b] -= w * c
        lap[b, a] -= w * c
        lap[a, a] += w * c
        lap[b, b] += w * c
    return lap


@pytest.mark.parametrize("w_gap,count", [(0.05, 4), (0.5, 3), (10.0, 2)])
def test_two_cells_closed_form(w_gap, count):
    conn, model = coupled(2, [(0, 1, count)], w_gap=w_gap)
    r = simulate(
        conn,
        drive_first(2, 10.0, 4000),
        model=model,
        duration_ms=400.0,
        record=[0, 1],
        precision="float64",
    )
    u = r.v_rec[-1, 0] - model.v_0_mv
    k = w_gap * count
    np.testing.assert_allclose(u[1] / u[0], k / (1 + k), rtol=1e-6)
    np.testing.assert_allclose(u[0], 10.0 * (1 + k) / (1 + 2 * k), rtol=1e-6)
    assert r.stats["kernel"] == "reference" and r.stats["gap_junctions"] == 2


def test_three_cells_follow_the_linear_solution_in_time():
    pairs = [(0, 1, 3), (1, 2, 5)]
    w = 0.2
    conn, model = coupled(3, pairs, w_gap=w)
    r = simulate(
        conn,
        drive_first(3, 8.0, 3000),
        model=model,
        duration_ms=300.0,
        record=[0, 1, 2],
        precision="float64",
    )
    u = r.v_rec[:, 0, :] - model.v_0_mv  # [steps, 3]
    # tau_m du/dt = -(1 + L) u + I e_0: exact solution by eigendecomposition
    a = np.eye(3) + laplacian(3, pairs, w)
    drive = np.array([8.0, 0, 0])
    u_inf = np.linalg.solve(a, drive)
    lam, vec = np.linalg.eigh(a)
    t = (np.arange(u.shape[0]) + 1) * model.dt_ms
    decay = np.exp(-np.outer(t, lam) / model.tau_m_ms)  # [steps, modes]
    exact = u_inf - (decay * (vec.T @ u_inf)) @ vec.T
    np.testing.assert_allclose(u, exact, atol=0.01 * np.abs(u_inf).max())
    np.testing.assert_allclose(u[-1], u_inf, rtol=1e-4)


def test_fast_steppers_refuse_gap_junctions_unless_left_out():
    conn, model = coupled(2, [(0, 1, 2)])
    proto = drive_first(2, 10.0, 100)
    for stepper in (Windowed(), DenseWindow()):
        with pytest.raises(ValueError, match='cannot run gap junctions.*kernel = "reference"'):
            simulate(conn, proto, model=model, duration_ms=10.0, stepper=stepper)
    r = simulate(
        conn,
        proto,
        model=model,
        duration_ms=10.0,
        kernel="windowed",
        gap_junctions=False,
        record=[1],
    )
    assert r.stats["gap_junctions"] == 0 and np.all(r.v_rec == model.v_0_mv)
    with pytest.raises(ValueError, match="belong to the stepper object"):
        simulate(conn, proto, model=model, duration_ms=10.0, stepper=Windowed(), native=False)
    # "auto" picks the stepper that runs them
    assert simulate(conn, proto, model=model, duration_ms=10.0).stats["kernel"] == "reference"


def two_cells_config(body: str, *, gap: bool = True, gap_junctions: bool | None = None):
    """TOML of a run on :func:`write_two_cells`'s files: its [connectome], then ``body``."""
    opts = "signed_counts = true" + (', gap_path = "gaps.csv"' if gap else "")
    head = '[connectome]\nformat = "edgelist"\npath = "edges.csv"\ncache = false\n'
    head += f"options = {{ {opts} }}\n"
    if gap_junctions is not None:
        head += f"gap_junctions = {'true' if gap_junctions else 'false'}\n"
    return head + body


def write_two_cells(tmp_path, count=4):
    pacsv.write_csv(pa.table({"pre": [3], "post": [3], "count": [1]}), tmp_path / "edges.csv")
    pacsv.write_csv(pa.table({"a": [1], "b": [2], "count": [count]}), tmp_path / "gaps.csv")


def test_two_cells_in_a_brainsim_run(tmp_path, capsys):
    write_two_cells(tmp_path)
    cfg = tmp_path / "gap.toml"
    cfg.write_text(
        two_cells_config("")
        + """[model]
v_th_mv = 1000.0
w_gap = 0.25
[simulation]
duration_ms = 500.0
[[stimulus]]
kind = "current"
neurons = { ids = [1] }
amplitude_mv = 12.0
[record]
neurons = { ids = [1, 2] }
"""
    )
    out = tmp_path / "out"
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    tr = pq.read_table(out / "traces.parquet").to_pandas()
    last = tr[tr.t_ms == tr.t_ms.max()].set_index("neuron_id")["v_mv"] + 52.0
    k = 0.25 * 4
    assert abs(last[2] / last[1] / (k / (1 + k)) - 1) < 0.01
    man = json.loads((out / "manifest.json").read_text())
    assert man["gap_junctions"] == {"in_connectome": 1, "used": True, "directed_rows_used": 2}
    assert man["kernel"][0]["kernel"] == "reference"
    # brainsim info counts the unordered pair, in text and JSON
    opts = ["--option", "signed_counts=true", "--option", f"gap_path={tmp_path / 'gaps.csv'}"]
    assert (
        cli.main(["info", str(tmp_path / "edges.csv"), "--format", "edgelist", *opts, "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n_gap_junctions"] == 1


def test_gap_path_bad_input_is_named(tmp_path):
    from brainsim.connectome import ConnectomeError, load

    write_two_cells(tmp_path)
    edges = tmp_path / "edges.csv"
    for text, match in (
        ("a,b,count\n1,2,-3\n", "row 1"),
        ("a,b,count\n1,2,x\n", "row 1"),
        ("a,b\n1,2\n", "count"),
    ):
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(ConnectomeError, match=match):
            load(edges, "edgelist", signed_counts=True, gap_path=tmp_path / "bad.csv")
    (tmp_path / "dups.csv").write_text("a,b,count\n1,2,3\n2,1,4\n5,5,2\n1,7,0\n")
    conn = load(edges, "edgelist", signed_counts=True, gap_path=tmp_path / "dups.csv")
    assert conn.n_gap_junctions == 1
    assert conn.gap_junctions.column("count").to_pylist() == [7, 7]
    rules = conn.provenance.counts
    assert rules["gap_pair_rows_merged"] == 1 and rules["self_gap_junctions_dropped"] == 1
    assert rules["zero_count_gap_rows_dropped"] == 1
    with pytest.raises(ConnectomeError, match="gap-junction pair"):
        load(
            edges,
            "edgelist",
            signed_counts=True,
            gap_path=tmp_path / "dups.csv",
            duplicates="error",
        )


# ---- the graded model ----------------------------------------------------------------


@pytest.mark.parametrize("integrator", ["exact", "euler"])
def test_graded_linear_chain_closed_form(integrator):
    # 0 -> 1 with w = 2 synapses x 0.25, identity transfer, a step of 4 mV into 0
    conn = make_connectome(2, [0], [1], [2])
    model = Graded(tau_ms=5.0, w_syn=0.25, transfer="identity", integrator=integrator, dt_ms=0.01)
    proto = Protocol.build(1, 2, current=[(np.array([0]), 4.0, 0, 10_000)])
    r = simulate(conn, proto, model=model, duration_ms=30.0, record=[0, 1], precision="float64")
    t = (np.arange(r.n_steps) + 1) * model.dt_ms / 5.0
    v0 = 4.0 * (1 - np.exp(-t))
    v1 = 0.5 * 4.0 * (1 - np.exp(-t) - t * np.exp(-t))
    np.testing.assert_allclose(r.traces["v_mv"][:, 0, 0], v0, atol=0.01)
    np.testing.assert_allclose(r.traces["v_mv"][:, 0, 1], v1, atol=0.01)
    assert r.n_spikes == 0 and not r.spiking


def numpy_graded(n, pre, post, counts, pairs, tau, v_rest, w, w_gap, drive, steps, dt, euler):
    """A plain numpy loop of tau dV/dt = -V + V_rest + sum w relu(V_pre) + gap + drive."""
    v = np.array(v_rest, float)
    lap = laplacian(n, pairs, w_gap)
    leak = 1 + np.diag(lap)
    out = []
    for _ in range(steps):
        syn = np.zeros(n)
        np.add.at(syn, post, counts * w * np.maximum(v[pre], 0))
        neighbours = -(lap - np.diag(np.diag(lap))) @ v
        rhs = v_rest + syn + neighbours + drive
        if euler:
            v = v + dt / tau * (rhs - leak * v)
        else:
            v = v + (rhs / leak - v) * -np.expm1(-dt * leak / tau)
        out.append(v.copy())
    return np.array(out)


@pytest.mark.parametrize("euler", [False, True])
def test_graded_network_equals_a_numpy_loop(euler):
    rng = np.random.default_rng(4)
    n = 12
    pre, post = np.nonzero(rng.random((n, n)) < 0.3)
    counts = rng.integers(1, 6, pre.size) * np.where(rng.random(pre.size) < 0.3, -1, 1)
    pairs = [(0, 1, 2), (3, 7, 1), (7, 9, 4)]
    conn = with_gaps(make_connectome(n, pre, post, counts), pairs)
    tau = rng.uniform(5, 20, n)
    v_rest = rng.uniform(-1, 1, n)
    drive = np.zeros(n)
    drive[[0, 3]] = [2.0, 1.5]
    model = Graded(
        tau_ms=tau,
        v_rest_mv=v_rest,
        w_syn=0.05,
        w_gap=0.1,
        integrator="euler" if euler else "exact",
        dt_ms=0.5,
    )
    proto = Protocol.build(
        1, n, current=[(np.array([0]), 2.0, 0, 400), (np.array([3]), 1.5, 0, 400)]
    )
    r = simulate(
        conn, proto, model=model, duration_ms=100.0, record=np.arange(n), precision="float64"
    )
    # the connectome sorts edges; use its CSR arrays for the numpy loop
    ref = numpy_graded(
        n,
        conn.pre_indices(),
        conn.indices,
        conn.counts,
        pairs,
        tau,
        v_rest,
        0.05,
        0.1,
        drive,
        r.n_steps,
        0.5,
        euler,
    )
    np.testing.assert_allclose(r.traces["v_mv"][:, 0, :], ref, rtol=1e-9, atol=1e-9)


def test_graded_model_refuses_spike_input_and_unstable_euler():
    conn = make_connectome(2, [0], [1], [1])
    poisson = Protocol.build(1, 2, poisson=[(np.array([0]), 50.0)])
    with pytest.raises(ValueError, match="takes no input events"):
        simulate(conn, poisson, model=Graded(), duration_ms=5.0)
    with pytest.raises(ValueError, match='integrator = "exact"'):
        simulate(
            conn,
            Protocol.build(1, 2),
            model=Graded(tau_ms=0.05, integrator="euler"),
            duration_ms=5.0,
        )
    with pytest.raises(ValueError, match="spiking models"):
        simulate(conn, Protocol.build(1, 2), model=Graded(), duration_ms=5.0, stepper=DenseWindow())


# ---- PQN -----------------------------------------------------------------------------


def pqn_rates(model, amps, duration_ms=4000.0, settle_ms=1000.0):
    """Firing rate (Hz) of an isolated PQN under each constant stimulus, after settling."""
    conn = make_connectome(2, [1], [1], [1])
    steps = int(duration_ms / model.dt_ms)
    proto = Protocol.build(len(amps), 2, current=[(np.array([0]), np.asarray(amps), 0, steps)])
    r = simulate(
        conn, proto, model=model, duration_ms=duration_ms, kernel="reference", precision="float64"
    )
    late = (r.step * model.dt_ms >= settle_ms) & (r.neuron == 0)
    return np.bincount(r.trial[late], minlength=len(amps)) / ((duration_ms - settle_ms) / 1e3)


def test_pqn_class2_f_i_curve_jumps():
    rates = pqn_rates(PQN.preset("class2"), np.linspace(2.40, 2.60, 21))
    on = rates > 0
    assert not on[0] and on[-1] and np.all(np.diff(on.astype(int)) >= 0)
    assert rates[on].min() > 10.0  # the first rate above rheobase is far from 0 (Hopf)


def test_pqn_class1_f_i_curve_starts_from_zero():
    amps = np.concatenate([np.linspace(0.090, 0.100, 11), [0.15, 0.2]])
    rates = pqn_rates(PQN.preset("class1"), amps)
    on = rates > 0
    assert not on[0] and on[-1]
    assert rates[on].min() < 3.0  # arbitrarily low rates near rheobase (SNIC)
    assert np.all(np.diff(rates[on]) >= -0.5)  # and rising with the stimulus


def numpy_pqn(m: PQN, stim, steps):
    v, n = m.rest()
    vs, spikes = [], []
    for _ in range(steps):
        dv = m.dt_ms * m.phi / m.tau_ms * (m.f(v, np) - n + m.i0 + m.k * stim)
        dn = m.dt_ms / m.tau_ms * (m.g(v, np) - n)
        spikes.append(v < 0 < v + dv)
        v, n = v + dv, n + dn
        vs.append(v)
    return np.array(vs), np.array(spikes)


def test_pqn_equals_a_numpy_loop_and_dense_window_equals_reference():
    m = PQN.preset("class2")
    conn = make_connectome(2, [1], [1], [1])
    proto = Protocol.build(1, 2, current=[(np.array([0]), 3.0, 0, 5000)])
    ref = simulate(
        conn,
        proto,
        model=m,
        duration_ms=500.0,
        stepper=Reference(),
        record=[0],
        precision="float64",
    )
    v, spikes = numpy_pqn(m, 3.0, ref.n_steps)
    np.testing.assert_allclose(ref.traces["v"][:, 0, 0], v, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(ref.step[ref.neuron == 0], np.flatnonzero(spikes))
    assert spikes.sum() >= 5
    # a recurrent network with Poisson drive: the dense-window stepper gives the same spikes
    rng = np.random.default_rng(1)
    pre, post = np.nonzero(rng.random((40, 40)) < 0.15)
    net = make_connectome(40, pre, post, rng.integers(1, 8, pre.size))
    drive = Protocol.build(3, 40, poisson=[(np.arange(8), 200.0)])
    m = PQN.preset("class2", w_syn=0.3)
    a = simulate(net, drive, model=m, duration_ms=200.0, stepper=Reference(), record=[9])
    b = simulate(net, drive, model=m, duration_ms=200.0, stepper=DenseWindow(), record=[9])
    assert a.n_spikes > 100
    np.testing.assert_array_equal(a.step, b.step)
    np.testing.assert_array_equal(a.neuron, b.neuron)
    np.testing.assert_array_equal(a.traces["v"], b.traces["v"])
    assert simulate(net, drive, model=m, duration_ms=10.0).stats["kernel"] == "dense_window"
    with pytest.raises(ValueError, match="exact-solution shortcuts"):
        simulate(net, drive, model=m, duration_ms=10.0, kernel="windowed")


# ---- configs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,match",
    [
        ('kind = "hh"', "kind: expected one of"),
        ('kind = "graded"\nv_th_mv = 1.0', "unknown key 'v_th_mv'"),
        ('kind = "graded"\ntransfer = "cubic"', "transfer: expected one of"),
        ('kind = "pqn"\npreset = "class3"', "preset: expected one of"),
        ('kind = "graded"\ntau_ms = -1.0', "tau_ms"),
        ('kind = "lif"\nw_gap = -1.0', "w_gap"),
    ],
)
def test_model_keys_are_checked_per_kind(tmp_path, capsys, model, match):
    write_two_cells(tmp_path)
    cfg = write_config(
        tmp_path,
        two_cells_config(f"[model]\n{model}\n[simulation]\nduration_ms = 10.0\n", gap=False),
        "m.toml",
    )
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "[model]" in err and match.split(".*")[0] in err, err


def test_graded_and_pqn_runs_write_their_traces(tmp_path):
    write_two_cells(tmp_path)
    for kind, extra, cols in (
        ("graded", "", ["v_mv"]),
        ("pqn", 'preset = "class2"', ["v", "n"]),
    ):
        body = (
            f'[model]\nkind = "{kind}"\n{extra}\n[simulation]\nduration_ms = 100.0\n'
            '[[stimulus]]\nkind = "current"\nneurons = { ids = [1] }\namplitude_mv = 3.0\n'
            "[record]\nneurons = { ids = [1, 2] }\n"
        )
        cfg = write_config(
            tmp_path,
            two_cells_config(body, gap=True, gap_junctions=kind == "graded"),
            f"{kind}.toml",
        )
        out = tmp_path / kind
        assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
        tr = pq.read_table(out / "traces.parquet")
        assert tr.column_names[4:] == cols and tr.num_rows == 2 * 1000
        man = json.loads((out / "manifest.json").read_text())
        assert man["model"]["kind"] == kind
        assert man["gap_junctions"]["used"] == (kind == "graded")
        v = tr.to_pandas().groupby("neuron_id")[cols[0]].max()
        assert v[1] > v[2] if kind == "graded" else True


def test_shapes_of_the_model_interface_are_checked_in_the_tests():
    """The test run installs jaxtyping's checks on the interface modules (pyproject)."""
    import jax.numpy as jnp
    from jaxtyping import TypeCheckError

    from brainsim.models._lif import LIFState

    with pytest.raises(TypeCheckError):
        LIFState(jnp.zeros((2, 3)), jnp.zeros((2, 4)), jnp.zeros((2, 3), jnp.int32))


def test_dense_matrices_of_a_small_network():
    """`Connectome.dense`: signed counts [pre, post] (repeated edges summed) and the
    symmetric gap-junction counts, against the edge lists."""
    conn = make_connectome(4, [0, 0, 2, 3, 0], [1, 1, 0, 2, 3], [3, 2, -4, 5, 1])
    syn, gap = conn.dense()
    want = np.zeros((4, 4))
    want[0, 1], want[2, 0], want[3, 2], want[0, 3] = 5, -4, 5, 1
    assert np.array_equal(syn, want) and not gap.any()
    _, gap = with_gaps(conn, [(0, 2, 3), (1, 3, 1)]).dense()
    want_gap = np.zeros((4, 4))
    want_gap[0, 2] = want_gap[2, 0] = 3
    want_gap[1, 3] = want_gap[3, 1] = 1
    assert np.array_equal(gap, want_gap)
