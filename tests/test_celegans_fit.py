"""``brainsim fit`` with ``task = "atlas"``: a graded worm model fitted to the measured
signal-propagation atlas (Randi et al. 2023, via cect), a seeded held-out split."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("cect")

from brainsim.celegans._fit import AtlasTask, WormForward, split  # noqa: E402
from brainsim.experiments import ConfigError, load_config  # noqa: E402
from brainsim.experiments._config import read_toml  # noqa: E402
from brainsim.experiments._run import load_connectome, prepare_job, run_config  # noqa: E402

# atlas-stimulated neurons (each with significant responses in Randi2023)
DRIVEN = ["AVAL", "AVAR", "ASHL", "ASHR", "AWCL", "AIBL", "AIBR", "RIML", "RIMR", "AVEL",
          "AVER", "AIZL", "AIZR", "RMDDL", "SMDVR", "URXL"]  # fmt: skip


def write_config(tmp_path, fit: str = "", duration_ms: float = 300.0, driven=DRIVEN) -> Path:
    names = ", ".join(f'"{n}"' for n in driven)
    text = f"""
[connectome]
format = "celegans"
path = "Cook2019Herm"
gap_junctions = true
cache = false
options = {{ inhibitory = ["GABA"] }}
[model]
kind = "graded"
tau_ms = 100.0
w_gap = 10.0
w_syn = 0.0078
transfer = "identity"
[simulation]
duration_ms = {duration_ms}
dt_ms = 2.0
trials = 1
[experiment]
kind = "perturbation_map"
amplitude_mv = 1.0
start_ms = 50.0
drive = {{ cell_type = [{names}] }}
{fit}
"""
    p = tmp_path / "fit.toml"
    p.write_text(text)
    return p


def summary_matrix(folder: Path, conn, n_driven: int) -> np.ndarray:
    t = pq.read_table(folder / "summary.parquet").to_pydict()
    index = {int(i): k for k, i in enumerate(conn.ids)}
    out = np.zeros((n_driven, conn.n_neurons))
    rows = {d: r for r, d in enumerate(dict.fromkeys(t["driven_id"]))}
    for d, j, r in zip(t["driven_id"], t["neuron_id"], t["response"], strict=True):
        out[rows[d], index[int(j)]] = r
    return out


def test_differentiable_forward_equals_the_engines_perturbation_map(tmp_path):
    """The fit's dense JAX forward and ``brainsim run``'s reference stepper give the same
    responses, at the anatomy-only start and with per-neuron gains and time constants."""
    import jax.numpy as jnp

    cfg = load_config(write_config(tmp_path))
    conn = load_connectome(cfg)
    job = prepare_job(cfg, conn, log=lambda *a: None)
    fwd = WormForward(job.model, conn, job.plan, cfg.simulation, True)
    rows = np.arange(len(DRIVEN))
    out = run_config(cfg, tmp_path / "run", log=lambda *a: None)
    want = summary_matrix(out, conn, len(DRIVEN))
    got = np.asarray(fwd.responses({}, rows, "kept"))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7 * np.abs(want).max())
    rng = np.random.default_rng(0)
    theta = {
        "w_syn_by_neuron": jnp.asarray(rng.normal(0, 0.5, conn.n_neurons)),
        "tau_by_neuron": jnp.asarray(rng.normal(0, 0.3, conn.n_neurons)),
        "w_gap": jnp.asarray(-0.5),
        "w_syn": jnp.asarray(0.2),
        "tau": jnp.asarray(-0.1),
    }
    from brainsim.experiments._run import simulate_conditions, write_results

    model = fwd.fitted_model(theta, "free")
    parts = simulate_conditions(cfg, conn, model, job.base, job.plan, job.rec, None,
                                lambda *a: None)  # fmt: skip
    write_results(cfg, conn, model, job.plan, parts, job.rec, [], tmp_path / "fitted", 0, 0)
    want = summary_matrix(tmp_path / "fitted", conn, len(DRIVEN))
    got = np.asarray(fwd.responses(theta, rows, "free"))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
    assert np.abs(want - summary_matrix(out, conn, len(DRIVEN))).max() > 1e-3 * np.abs(want).max()


def test_split_is_seeded_disjoint_and_sized():
    names = [f"N{i:02d}" for i in range(40)]
    task = AtlasTask(holdout_fraction=0.2, holdout_seed=3, observed_fraction=0.5)
    a, b = split(names, names, task), split(list(reversed(names)), names, task)
    assert a.holdout == b.holdout and a.train == b.train  # order of the input does not matter
    assert len(a.holdout) == 8 and not set(a.holdout) & set(a.train)
    assert sorted(a.holdout + a.train) == sorted(names)
    assert len(a.observed) == 20
    c = split(names, names, AtlasTask(holdout_seed=4))
    assert c.holdout != a.holdout


@pytest.mark.parametrize("extra", ["", 'extrasynaptic = ["Bentley2016MA"]'])
def test_fit_lowers_the_loss_and_records_the_holdout(tmp_path, extra):
    """Also with extrasynaptic couplings: the engine's run of the fitted model (a
    connectome carrying the summed weights) scores as the fit's own forward did."""
    from brainsim import cli

    fit = f'[fit]\ntask = "atlas"\nsteps = 8\nlearning_rate = 0.05\nlog_every = 4\n{extra}'
    cfg = write_config(tmp_path, fit)
    assert cli.main(["fit", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = tmp_path / "out"
    hist = pq.read_table(out / "history.parquet").to_pydict()
    assert hist["loss"][-1] < hist["loss"][0]
    split_json = json.loads((out / "split.json").read_text())
    run_manifest = json.loads((out / "run" / "manifest.json").read_text())
    assert run_manifest["holdout"] == split_json["holdout"]
    assert len(split_json["holdout"]) == round(0.2 * len(DRIVEN))
    scores = json.loads((out / "scores.json").read_text())
    held = json.loads((out / "run" / "atlas_holdout" / "scores.json").read_text())
    # the engine's run of the fitted model scores as the fit's own forward did
    assert held["n_pairs"] == scores["after"]["holdout"]["n_pairs"]
    assert held["pearson_r"] == pytest.approx(
        scores["after"]["holdout"]["pearson_r"], abs=1e-4
    )
    p = np.load(out / "params.npz")
    assert p["w_syn"].shape == p["tau_ms"].shape == (302,) and np.all(p["tau_ms"] > 0)
    assert (out / "loss.png").stat().st_size > 0
    man = json.loads((out / "manifest.json").read_text())
    gains = man["extrasynaptic"]["gains"]
    if extra:
        assert len(gains) == 4 and any(g != 0 for g in gains)  # the four monoamines, fitted
        assert run_manifest["connectome"]["provenance"]["options"]["extrasynaptic_fitted"]
    else:
        assert gains == []


@pytest.mark.parametrize(
    ("fit", "match"),
    [
        ('[fit]\ntask = "atlas"\ntrainable = ["w_syn_by_type"]', "trainable"),
        ('[fit]\ntask = "atlas"\nholdout_fraction = 1.0', "holdout_fraction"),
        ('[fit]\ntask = "atlas"\nsigns = "any"', "signs"),
        ('[fit]\ntask = "atlas"\nsteps = "ten"', "steps"),
        ('[fit]\ntask = "atlas"\nextrasynaptic = ["dopamine"]', "extrasynaptic"),
        ('[fit]\ntask = "atlas"\nlearning_rate = 50.0\nsigns = "free"\nclip_norm = 0.0'
         '\nsteps = 30\nregularization = 0.0', "loss became"),
    ],
)
def test_bad_fit_config_is_named(tmp_path, fit, match):
    from brainsim.celegans._fit import run_atlas_fit

    raw, path = read_toml(write_config(tmp_path, fit, duration_ms=200.0))
    with pytest.raises(ConfigError, match=match):
        run_atlas_fit(raw, path, tmp_path / "out", log=lambda *a: None)
    assert not (tmp_path / "out").exists()
