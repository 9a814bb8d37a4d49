"""``perturbation_map`` for graded models: each neuron driven by a current step in turn,
responses read from voltage traces, held to closed forms and a plain numpy integration."""

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from brainsim.experiments import ConfigError, load_config, run_config

N = 12
TAU, W_SYN, W_GAP, DT = 10.0, 0.05, 0.5, 0.5


def network(tmp_path, seed: int, signed: bool):
    """A random network of N neurons (ids 200 + i, names n0..n11) with gap junctions."""
    rng = np.random.default_rng(seed)
    pre, post = np.nonzero(rng.random((N, N)) < 0.3)
    keep = pre != post
    pre, post = pre[keep], post[keep]
    count = rng.integers(1, 6, pre.size)
    if signed:
        count = count * np.where(rng.random(N) < 0.3, -1, 1)[pre]
    pacsv.write_csv(
        pa.table({"pre": 200 + pre, "post": 200 + post, "count": count}), tmp_path / "e.csv"
    )
    ga, gb = np.nonzero(np.triu(rng.random((N, N)) < 0.15, 1))
    gc = rng.integers(1, 4, ga.size)
    pacsv.write_csv(pa.table({"a": 200 + ga, "b": 200 + gb, "count": gc}), tmp_path / "g.csv")
    pacsv.write_csv(
        pa.table({"id": 200 + np.arange(N), "cell_type": [f"n{i}" for i in range(N)]}),
        tmp_path / "n.csv",
    )
    syn = np.zeros((N, N))
    np.add.at(syn, (post, pre), count)
    gap = np.zeros((N, N))
    gap[ga, gb] = gc
    return syn, gap + gap.T


GRADED = (
    f'kind = "graded"\ntau_ms = {TAU}\nw_syn = {W_SYN}\nw_gap = {W_GAP}\ntransfer = "identity"'
)


def config(tmp_path, experiment: str, *, model: str = GRADED, duration_ms=300.0, extra=""):
    text = f"""
[connectome]
format = "edgelist"
path = "e.csv"
cache = false
gap_junctions = true
[connectome.options]
signed_counts = true
neurons = "{tmp_path / "n.csv"}"
gap_path = "{tmp_path / "g.csv"}"
[model]
{model}
[simulation]
duration_ms = {duration_ms}
dt_ms = {DT}
trials = 2
[experiment]
kind = "perturbation_map"
{experiment}
{extra}
"""
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return load_config(p)


def numpy_traces(syn, gap, driven: int, amp: float, start: int, stop: int, n_steps: int):
    """The graded model's exact integrator written out in numpy (identity transfer):
    V += (x / leak - V)(1 - exp(-dt leak / tau)), x = W V + w_gap G V + I, leak = 1 + w_gap
    sum_j G_ij."""
    leak = 1 + W_GAP * gap.sum(axis=1)
    decay = -np.expm1(-DT * leak / TAU)
    v = np.zeros(N)
    out = np.zeros((n_steps, N))
    for k in range(n_steps):
        drive = W_SYN * syn @ v + W_GAP * gap @ v
        if start <= k < stop:
            drive[driven] += amp
        v = v + (drive / leak - v) * decay
        out[k] = v
    return out


def summary(out) -> dict:
    t = pq.read_table(out / "summary.parquet").to_pydict()
    return {
        (d, j): (r, pk)
        for d, j, r, pk in zip(
            t["driven_id"], t["neuron_id"], t["response"], t["peak_ms"], strict=True
        )
    }


def test_positive_network_reaches_the_linear_steady_state(tmp_path):
    """Excitatory synapses and gap junctions: the step response rises monotonically to
    (L - w_syn W - w_gap G)^-1 x, so the peak is that steady state (closed form)."""
    syn, gap = network(tmp_path, seed=1, signed=False)
    cfg = config(tmp_path, 'drive = { cell_type = ["n0", "n3", "n7"] }\namplitude_mv = 2.0')
    out = run_config(cfg, tmp_path / "out", log=lambda *a: None)
    got = summary(out)
    a = np.diag(1 + W_GAP * gap.sum(axis=1)) - W_SYN * syn - W_GAP * gap
    assert np.max(np.abs(np.linalg.eigvals(W_SYN * syn))) < 1  # (a stable network)
    for d in (0, 3, 7):
        x = np.zeros(N)
        x[d] = 2.0
        v_inf = np.linalg.solve(a, x)
        resp = np.array([got[(200 + d, 200 + j)][0] for j in range(N)])
        np.testing.assert_allclose(resp, v_inf, rtol=1e-4, atol=1e-7)
        assert resp[d] > 0 and len([k for k in got if k[0] == 200 + d]) == N


def test_signed_network_peaks_equal_a_numpy_integration(tmp_path):
    """Mixed signs, a step that ends before the run does, a window: the signed peak and
    its time equal those of the equations integrated in numpy."""
    syn, gap = network(tmp_path, seed=4, signed=True)
    cfg = config(
        tmp_path,
        'drive = { cell_type = ["n1", "n5"] }\namplitude_mv = -1.5\nstart_ms = 50.0\n'
        "stop_ms = 80.0\nwindow_ms = 120.0",
        duration_ms=250.0,
    )
    out = run_config(cfg, tmp_path / "out", log=lambda *a: None)
    got = summary(out)
    start, stop, n_steps = 100, 160, 500
    lo, hi = start, start + 240
    for d in (1, 5):
        tr = numpy_traces(syn, gap, d, -1.5, start, stop, n_steps)[lo:hi]
        k = np.argmax(np.abs(tr), axis=0)
        want = tr[k, np.arange(N)]
        resp = np.array([got[(200 + d, 200 + j)][0] for j in range(N)])
        peak = np.array([got[(200 + d, 200 + j)][1] for j in range(N)])
        np.testing.assert_allclose(resp, want, rtol=2e-4, atol=1e-7)
        big = np.abs(want) > 1e-3 * np.abs(want).max()  # (a flat trace has no clear peak)
        np.testing.assert_allclose(peak[big], (k[big] + 1) * DT, atol=DT)
        assert resp[d] < 0  # the driven neuron follows its (negative) step


def test_responders_and_record(tmp_path):
    """``responders`` restricts the summary's rows; traces.parquet holds only ``[record]``."""
    network(tmp_path, seed=2, signed=True)
    cfg = config(
        tmp_path,
        'drive = { cell_type = ["n0", "n2"] }\namplitude_mv = 1.0\n'
        'responders = { cell_type = ["n4", "n6", "n9"] }',
        duration_ms=40.0,
        extra='[record]\nneurons = { cell_type = ["n6"] }',
    )
    out = run_config(cfg, tmp_path / "out", log=lambda *a: None)
    t = pq.read_table(out / "summary.parquet")
    assert sorted(set(t.column("neuron_id").to_pylist())) == [204, 206, 209]
    assert t.num_rows == 6
    tr = pq.read_table(out / "traces.parquet")
    assert set(tr.column("neuron_id").to_pylist()) == {206}
    names = pq.read_table(out / "neurons.parquet").column("name").to_pylist()
    assert {"n0", "n2", "n4", "n6", "n9"} <= set(names)


@pytest.mark.parametrize(
    ("experiment", "match"),
    [
        ('drive = { ids = [200] }\nrate_hz = 100', "rate_hz"),
        ('drive = { ids = [200] }\nrate_hz = 100\namplitude_mv = 1.0', "exactly one drive"),
        ('drive = { ids = [200] }\namplitude_mv = 1.0\nstart_ms = 10\nstop_ms = 5', "stop_ms"),
        ('drive = { ids = [200] }\namplitude_mv = 0', "amplitude_mv"),
        ('drive = { ids = [200] }\namplitude_mv = 1.0\nwindow_ms = -1', "window_ms"),
        ('drive = { ids = [200] }\namplitude_mv = 1.0\nstart_ms = 400', "start_ms"),
    ],
)
def test_bad_drive_is_named(tmp_path, experiment, match):
    network(tmp_path, seed=0, signed=False)
    with pytest.raises(ConfigError, match=match):
        cfg = config(tmp_path, experiment)
        run_config(cfg, tmp_path / "out", log=lambda *a: None)
    assert not (tmp_path / "out").exists()


def test_spiking_model_with_a_current_step_reports_rates(tmp_path):
    """A LIF network driven by current steps: the rate columns, the driven neuron fires."""
    network(tmp_path, seed=3, signed=False)
    cfg = config(
        tmp_path,
        'drive = { cell_type = ["n0"] }\namplitude_mv = 30.0',
        model='kind = "lif"\ndelay_ms = 2.0',
        duration_ms=200.0,
    )
    out = run_config(cfg, tmp_path / "out", log=lambda *a: None)
    t = pq.read_table(out / "summary.parquet").to_pydict()
    assert "response" not in t and "delta_hz" in t
    row = [k for k, j in enumerate(t["neuron_id"]) if j == 200]
    assert row and t["delta_hz"][row[0]] > 10
