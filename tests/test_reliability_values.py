"""Reliability: values are never silently wrong. Seeds keep all their bits, absurd
refractory periods mean what they say, non-finite numbers are refused in configs and
stop runs and fits, and result files hold valid JSON.

One section per class of the reliability issue; each test holds one rule."""

import itertools
import json
import re

import jax
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import FIT_SYNTHETIC, random_connectome, run_config_text, write_config

from brainsim import cli
from brainsim.experiments import ConfigError, load_config
from brainsim.sim import Protocol, seed_key, simulate

BASE = run_config_text(duration_ms=30.0, trials=1)


pytestmark = pytest.mark.usefixtures("own_cache")


def config(tmp_path, text=BASE, name="run.toml"):
    return write_config(tmp_path, text, name)


def spikes(r):
    return r.trial, r.step, r.neuron


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(spikes(a), spikes(b), strict=True))


# ------------------------------------------------------------------ 1. seeds keep every bit

SEEDS = [0, 2**32, -(2**32), 2**63 - 1, -1, 2**32 - 1, -(2**63)]


@pytest.mark.parametrize("x64", [False, True])
def test_every_64_bit_seed_is_its_own_key(x64):
    with jax.enable_x64(x64):
        keys = [tuple(np.asarray(jax.random.key_data(seed_key(s))).tolist()) for s in SEEDS]
        assert len(set(keys)) == len(SEEDS)
        # seeds in [0, 2**32) keep today's keys bit for bit (published spike counts)
        for s in (0, 5, 2**31, 2**32 - 1):
            np.testing.assert_array_equal(
                jax.random.key_data(seed_key(s)), jax.random.key_data(jax.random.PRNGKey(s))
            )
    for bad in (2**63, -(2**63) - 1):
        with pytest.raises(ValueError, match="seed"):
            seed_key(bad)


def test_seeds_beyond_32_bits_give_different_spikes_and_small_ones_the_same(monkeypatch):
    conn = random_connectome(60, 0.1, seed=2)
    proto = Protocol.build(1, 60, poisson=[(np.arange(6), 150.0)])
    with jax.enable_x64(False):  # as the CLI runs float32 (PRNGKey then keeps 32 bits)
        runs = {s: simulate(conn, proto, duration_ms=40.0, seed=s) for s in SEEDS[:4]}
        for a, b in itertools.combinations(SEEDS[:4], 2):
            assert not same(runs[a], runs[b]), (a, b)
        five = simulate(conn, proto, duration_ms=40.0, seed=5)
        monkeypatch.setattr("brainsim.sim._simulate.seed_key", jax.random.PRNGKey)
        assert same(five, simulate(conn, proto, duration_ms=40.0, seed=5))
    assert all(r.n_spikes for r in runs.values())


def test_negative_seed_runs_and_the_manifest_records_it(tmp_path):
    out = tmp_path / "out"
    text = BASE.replace("seed = 1", f"seed = {-(2**32)}")
    assert cli.main(["run", str(config(tmp_path, text)), "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == -(2**32)


def test_seed_outside_64_bits_is_a_config_error(tmp_path):
    text = BASE.replace("seed = 1", f"seed = {2**63}")
    with pytest.raises(ConfigError, match=r"run.toml: \[simulation\] seed"):
        load_config(config(tmp_path, text))


def test_fit_seed_default_stays_in_64_bits(tmp_path):
    from brainsim.fit import load_fit_config

    fit = '\n[fit]\ntargets = "targets.parquet"\ntrainable = ["w_syn_mv"]\n'
    text = BASE.replace("seed = 1", f"seed = {2**63 - 1}") + fit
    assert load_fit_config(config(tmp_path, text, "fit.toml")).seed == -(2**63)
    assert load_fit_config(config(tmp_path, BASE + fit, "fit.toml")).seed == 2
    with pytest.raises(ConfigError, match=r"fit.toml: \[fit\] seed"):
        load_fit_config(config(tmp_path, BASE + fit + f"seed = {-(2**63) - 1}\n", "fit.toml"))


# ------------------------------------------------------------------ 2. refractory periods

KERNEL_RUNS = [
    ("reference", None),
    ("windowed", False),
    ("windowed", True),
    ("dense_window", None),
]


def _driven_run(refractory_ms, kernel, native, duration_ms=20.0):
    """Neurons 0-2 of a 20-neuron network under a current strong enough to fire them on
    every step they are free (from step 0)."""
    from brainsim.kernels import native_kernels

    from brainsim.models import LIF

    if native and not native_kernels()[0]:
        pytest.skip(native_kernels()[1])
    conn = random_connectome(20, 0.15, seed=1)
    proto = Protocol.build(1, 20, current=[(np.arange(3), 5000.0, 0, 10**6)])
    model = LIF(refractory_ms=refractory_ms)
    return simulate(conn, proto, model=model, duration_ms=duration_ms, kernel=kernel, native=native)


@pytest.mark.parametrize(("kernel", "native"), KERNEL_RUNS)
def test_refractory_longer_than_the_run_means_one_spike_each(kernel, native):
    for ref in (1e9, 20.0, float("inf")):  # 20 ms: exactly the run, 200 steps
        r = _driven_run(ref, kernel, native)
        counts = r.spike_counts()[0]
        assert counts.max() == 1, (ref, counts)
        np.testing.assert_array_equal(r.step[r.neuron < 3], [0, 0, 0])


@pytest.mark.parametrize(("kernel", "native"), KERNEL_RUNS)
def test_refractory_just_below_the_run_frees_on_its_last_step(kernel, native):
    r = _driven_run(19.9, kernel, native)  # 199 steps: free again at step 199 of 0..199
    for i in range(3):
        np.testing.assert_array_equal(r.step[r.neuron == i], [0, 199])
    assert r.spike_counts()[0].max() == 2


def test_refractory_steps_saturate_instead_of_wrapping():
    from brainsim.experiments import _config
    from brainsim.models import LIF, MAX_RUN_STEPS, SINCE_MAX

    steps = LIF(refractory_ms=np.array([2.2, 1e9, 1e30, np.inf])).refractory_steps(4)
    np.testing.assert_array_equal(steps, [22, SINCE_MAX, SINCE_MAX, SINCE_MAX])
    assert _config.MAX_RUN_STEPS == MAX_RUN_STEPS < SINCE_MAX
    with pytest.raises(ValueError, match="refractory_ms"):
        LIF(refractory_ms=float("nan"))
    with pytest.raises(ValueError, match="at most"):
        _driven_run(2.2, "reference", None, duration_ms=(MAX_RUN_STEPS + 1) * 0.1)


def test_refractory_1e9_in_a_config_and_runs_longer_than_the_counters(tmp_path):
    import pyarrow.parquet as pq

    # (Poisson-driven neurons have no refractory period: a current drives these)
    text = BASE.split("[[stimulus]]")[0] + "[model]\nrefractory_ms = 1e9\n"
    text += '[[stimulus]]\nkind = "current"\n'
    text += 'neurons = { cell_type = "sugar_like_GRN" }\namplitude_mv = 5000.0\n'
    out = tmp_path / "out"
    assert cli.main(["run", str(config(tmp_path, text)), "--out", str(out), "--quiet"]) == 0
    sp = pq.read_table(out / "spikes.parquet").to_pandas()
    assert len(sp) and sp.groupby("neuron_id").size().max() == 1
    long = BASE.replace("duration_ms = 30.0", "duration_ms = 1e8")
    with pytest.raises(ConfigError, match=r"run.toml: \[simulation\] duration_ms"):
        load_config(config(tmp_path, long))


# ------------------------------------------------------------------ 3. non-finite numbers

CURRENT = '\n[[stimulus]]\nkind = "current"\nneurons = { cell_type = "sugar_like_GRN" }\n'
BAD_CONFIGS = [
    ("[model]\nw_syn_mv = 1e300\n", r"\[model\] w_syn_mv"),
    ("[model]\nw_syn_mv = 1e5\n", r"\[model\] w_syn_mv: an input event"),  # x f_poi 250
    ("[model]\nv_th_mv = nan\n", r"\[model\] v_th_mv: expected a finite"),
    ("[model]\nv_reset_mv = -2e6\n", r"\[model\] v_reset_mv"),
    ("[model]\nf_poi = 1e7\n", r"\[model\] f_poi"),
    ("[model]\ntau_syn_ms = 1e-320\n", r"\[model\] tau_syn_ms"),
    ("[model]\nrefractory_ms = inf\n", r"\[model\] refractory_ms"),
    ("[model]\nv_0_mv = " + "9" * 400 + "\n", r"\[model\] v_0_mv: expected a finite"),
    (CURRENT + "amplitude_mv = nan\n", r"\[\[stimulus\]\] #2 amplitude_mv"),
    (CURRENT + "amplitude_mv = -inf\n", r"\[\[stimulus\]\] #2 amplitude_mv"),
    (CURRENT + "amplitude_mv = 1e7\n", r"\[\[stimulus\]\] #2 amplitude_mv"),
    (CURRENT + "amplitude_mv = 5.0\nstart_ms = nan\n", r"#2 start_ms"),
    (CURRENT + "amplitude_mv = 5.0\nstop_ms = nan\n", r"#2 stop_ms"),
    (CURRENT + "amplitude_mv = 5.0\nstop_ms = inf\n", r"#2 stop_ms: .*leave stop_ms out"),
    ('[[stimulus]]\nkind = "poisson"\nneurons = { ids = [1] }\nrate_hz = [nan]\n', "rate_hz"),
    ("[[perturbation]]\nkind = 'silence'\nneurons = { ids = [1], x = inf }\n", r"#1 neurons\.x"),
]


@pytest.mark.parametrize(("extra", "match"), BAD_CONFIGS)
def test_non_finite_and_absurd_numbers_are_config_errors(tmp_path, extra, match):
    with pytest.raises(ConfigError, match="run.toml: .*" + match):
        load_config(config(tmp_path, BASE + extra))


@pytest.mark.parametrize("key", ["duration_ms", "dt_ms", "chunk_ms"])
def test_non_finite_simulation_numbers_are_config_errors(tmp_path, key):
    text = BASE.replace("[simulation]\n", f"[simulation]\n{key} = nan\n", 1)
    text = text.replace("duration_ms = 30.0\n", "") if key == "duration_ms" else text
    with pytest.raises(ConfigError, match=rf"run.toml: \[simulation\] {key}"):
        load_config(config(tmp_path, text))


def test_loader_options_and_fit_numbers_must_be_finite(tmp_path):
    from brainsim.fit import load_fit_config

    text = BASE.replace("cache = false", "cache = false\noptions = { scale = inf }")
    with pytest.raises(ConfigError, match=r"run.toml: \[connectome\] options.scale"):
        load_config(config(tmp_path, text))
    fit = '\n[fit]\ntargets = "t.parquet"\ntrainable = ["w_syn_mv"]\n'
    for extra, match in (
        ("init = { w_syn_mv = 1e300 }\n", r"\[fit\] init w_syn_mv"),
        ("init = { w_syn_mv = nan }\n", r"\[fit\] init w_syn_mv"),
        ("learning_rate = inf\n", r"\[fit\] learning_rate"),
        ("weights = { rates = nan }\n", r"\[fit\] weights"),
    ):
        with pytest.raises(ConfigError, match="fit.toml: .*" + match):
            load_fit_config(config(tmp_path, BASE + fit + extra, "fit.toml"))


def test_config_bounds_use_the_models_defaults():
    from brainsim.experiments._config import _LIF_DEFAULTS
    from brainsim.models import LIF

    assert _LIF_DEFAULTS == {k: getattr(LIF(), k) for k in _LIF_DEFAULTS}


def test_cli_refuses_nan_amplitude_before_simulating(tmp_path, capsys):
    out = tmp_path / "out"
    cfg = config(tmp_path, BASE + CURRENT + "amplitude_mv = nan\n")
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("brainsim: error: ") and "[[stimulus]] #2 amplitude_mv" in err
    assert not out.exists()


@pytest.mark.parametrize(("kernel", "native"), KERNEL_RUNS)
def test_a_state_turning_non_finite_stops_the_run(kernel, native):
    from brainsim.kernels import native_kernels

    from brainsim.sim import NonFiniteError

    if native and not native_kernels()[0]:
        pytest.skip(native_kernels()[1])
    conn = random_connectome(20, 0.15, seed=1)
    # from 5 ms on, a NaN current on neuron 4 (as amplitude_mv = nan did, with 0 spikes)
    proto = Protocol.build(2, 20, current=[([4], [0.0, float("nan")], 50, 10**6)])
    with pytest.raises(NonFiniteError, match=r"trial 1, neuron id 1004"):
        simulate(conn, proto, duration_ms=20.0, kernel=kernel, native=native, chunk_ms=4.0)
    # and a finite run of the same network goes through
    ok = Protocol.build(2, 20, current=[([4], [0.0, 5.0], 50, 10**6)])
    simulate(conn, ok, duration_ms=20.0, kernel=kernel, native=native, chunk_ms=4.0)


def test_run_of_a_non_finite_state_writes_no_results(tmp_path):
    from brainsim.experiments import run_config

    cfg = load_config(config(tmp_path, BASE + CURRENT + "amplitude_mv = 5.0\n"))
    cfg.stimuli[1]["amplitude_mv"] = float("nan")  # past the checks, as an API user could
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"run.toml: the simulation's state became non-finite"):
        run_config(cfg, out, log=lambda *a: None)
    assert not out.exists()


# ------------------------------------------------------------------ 4. fits and JSON

FIT_BASE = (
    run_config_text(FIT_SYNTHETIC, duration_ms=20.0, trials=1)
    + """[fit]
targets = "targets.parquet"
trainable = ["TRAINABLE"]
steps = 3
learning_rate = LR
log_every = 1
"""
)


def _fit_config(tmp_path, trainable, lr):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from brainsim.connectome import load

    conn = load(FIT_SYNTHETIC, "synthetic")
    types = np.array(conn.neurons.column("cell_type").to_pylist())
    # far above what the network does: the gradient pushes the weights up, into overflow
    rows = [{"neuron_id": int(i), "rate_hz": 400.0} for i in conn.ids[types == "sugar_like_L2"]]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "targets.parquet")
    text = FIT_BASE.replace("TRAINABLE", trainable).replace("LR", repr(lr))
    return config(tmp_path, text, "fit.toml")


@pytest.mark.parametrize(
    ("trainable", "named"),
    [("w_syn_mv", "w_syn_mv became inf"), ("syn_scale_by_type", r"syn_scale_by_type \(group ")],
)
def test_a_diverging_fit_stops_with_an_error_and_writes_its_last_finite_state(
    tmp_path, capsys, trainable, named
):
    cfg = _fit_config(tmp_path, trainable, 1e3)
    out = tmp_path / "fitted"
    assert cli.main(["fit", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("brainsim: error: ") and "fit.toml: [fit] learning_rate: step " in err
    assert re.search(named, err) and "smaller learning_rate than 1000" in err, err
    # what is left: the last finite parameters and the history up to them, no fitted result
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "loss.parquet", "manifest.json", "params_last_finite.json"
    ]  # fmt: skip
    man = json.loads((out / "manifest.json").read_text())["fit"]["diverged"]
    step = man["last_finite_step"]
    assert f"({'the initial ones' if step < 0 else f'step {step}' + chr(39) + 's'})" in err
    assert str(out / "params_last_finite.json") in err
    last = json.loads((out / "params_last_finite.json").read_text())
    assert trainable in last
    got = last[trainable]
    values = np.asarray(list(got.values()) if isinstance(got, dict) else [got], np.float64)
    assert values.size and np.all(np.isfinite(values))
    loss = pq.read_table(out / "loss.parquet").to_pandas()
    assert loss["step"].tolist() == list(range(step + 1))
    assert np.all(np.isfinite(loss["loss"]))


def test_a_diverging_fit_keeps_a_finished_fit_and_names_a_bad_start(tmp_path, capsys):
    """A finished fit in the output folder is kept (the diverged record goes beside it);
    initial parameters whose loss is already non-finite are named as such, not blamed on
    the learning rate."""
    cfg = _fit_config(tmp_path, "w_syn_mv", 1e-3)
    out = tmp_path / "fitted"
    assert cli.main(["fit", str(cfg), "--out", str(out), "--quiet"]) == 0
    good = (out / "params.json").read_text()
    bad = config(tmp_path, cfg.read_text().replace("= 0.001", "= 1000.0"), "bad.toml")
    assert cli.main(["fit", str(bad), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (out / "params.json").read_text() == good
    beside = tmp_path / "fitted-diverged"
    assert (beside / "params_last_finite.json").is_file() and str(beside) in err
    # a start whose loss is already non-finite (the config's bounds keep a file from
    # reaching one; a Python caller can): the message names the start, not the learning rate
    from brainsim.connectome import load
    from brainsim.fit import FitDivergedError, build_params, load_fit_config
    from brainsim.fit._run import _diverged
    from brainsim.models import LIF

    params, info = build_params(LIF(), load(FIT_SYNTHETIC, "synthetic"), ["w_syn_mv"])
    e = FitDivergedError(0, float("nan"), term="rates", last_finite=params, last_finite_step=-1)
    msg = str(_diverged(load_fit_config(cfg), info, e, tmp_path / "s"))
    assert "with the initial parameters, before any update; check [fit] init" in msg, msg
    assert "learning_rate" not in msg


def test_a_diverged_record_beside_a_finished_fit_takes_its_lock(tmp_path):
    """The record goes beside a finished fit only when no other writer holds that folder;
    otherwise the reason is returned (and reported with the divergence)."""
    from brainsim.fit._run import write_diverged_record
    from brainsim.io import output_lock

    out = tmp_path / "fitted"
    out.mkdir()
    (out / "params.json").write_text("{}")
    wrote = []
    with output_lock(tmp_path / "fitted-diverged"):
        got = write_diverged_record(out, "params.json", wrote.append)
    assert isinstance(got, str) and "another brainsim process" in got and not wrote
    assert write_diverged_record(out, "params.json", wrote.append) == tmp_path / "fitted-diverged"
    assert wrote == [tmp_path / "fitted-diverged"]
    assert (out / "params.json").read_text() == "{}"


def test_fit_diverged_error_survives_pickling():
    import pickle

    from brainsim.fit import FitDivergedError

    e = FitDivergedError(3, float("inf"), "w_syn_mv", 0, "msg", term=None, last_finite_step=2,
                         history=[{"step": 0}])  # fmt: skip
    back = pickle.loads(pickle.dumps(e))
    assert (back.step, back.quantity, back.last_finite_step, back.history, str(back)) == (
        3, "w_syn_mv", 2, [{"step": 0}], "msg"
    )  # fmt: skip


def test_fit_loop_raises_at_the_first_non_finite_parameter():
    import jax.numpy as jnp

    from brainsim.fit import (
        FitDivergedError,
        RateTargets,
        build_params,
        build_task,
        fit,
        make_optimizer,
    )
    from brainsim.models import LIF
    from brainsim.sim import Network

    conn = random_connectome(20, 0.2, seed=1)
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    proto = Protocol.build(2, 20, poisson=[(np.arange(4), 150.0)])
    rows = np.arange(4, 20)
    targets = {"rates": RateTargets.from_arrays(0 * rows, rows, 400.0 + 0 * rows, jnp.float32)}
    task = build_task(net, proto, LIF(), targets, duration_ms=10.0)
    params, _ = build_params(LIF(), conn, ["w_syn_mv"])
    fitted, history = fit(params, task, steps=2, optimizer=make_optimizer("adam", 1e-3))
    assert len(history) == 2 and np.isfinite(float(fitted.w_syn_mv.values()[0]))
    with pytest.raises(FitDivergedError, match="step 0: w_syn_mv.0. became inf") as e:
        fit(params, task, steps=2, optimizer=make_optimizer("adam", 1e3))
    assert (e.value.step, e.value.quantity) == (0, "w_syn_mv")
    # the error carries the parameters the diverging update started from, and their step
    assert e.value.last_finite_step == 0 and len(e.value.history) == 1
    assert np.isfinite(float(e.value.last_finite.w_syn_mv.values()[0]))
    assert float(e.value.last_finite.w_syn_mv.values()[0]) == float(params.w_syn_mv.values()[0])


def test_fit_loop_stops_when_the_loss_explodes():
    """A finite loss above ``max_loss_ratio`` times step 0's is a divergence: gradient
    ascent on silent targets drives the rates (and the loss) up step after step."""
    import jax.numpy as jnp
    import optax

    from brainsim.fit import FitDivergedError, RateTargets, build_params, build_task, fit
    from brainsim.models import LIF
    from brainsim.sim import Network

    conn = random_connectome(20, 0.3, seed=1)
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    proto = Protocol.build(2, 20, poisson=[(np.arange(6), 300.0)])
    rows = np.arange(6, 20)
    targets = {"rates": RateTargets.from_arrays(0 * rows, rows, 0.0 * rows, jnp.float32)}
    task = build_task(net, proto, LIF(), targets, duration_ms=50.0)
    params, _ = build_params(LIF(), conn, ["w_syn_mv"])
    ascent = optax.sgd(-1e-3)  # every step raises w_syn_mv, and so the rates
    _, free = fit(params, task, steps=4, optimizer=ascent, resample_noise=False)
    losses = [h["loss"] for h in free]
    ratio = 10.0
    assert losses[0] > 0 and max(losses) > ratio * losses[0], losses  # it does explode
    first_over = next(i for i, x in enumerate(losses) if x > ratio * losses[0])
    with pytest.raises(FitDivergedError, match="more than max_loss_ratio = 10 times step 0") as e:
        fit(params, task, steps=4, optimizer=ascent, resample_noise=False, max_loss_ratio=ratio)
    err = e.value
    assert err.step == first_over and err.value == losses[first_over]
    assert err.term == "rates" and err.first_loss == losses[0]
    # the record of the exploded step is kept (its values are finite); the last parameters
    # are those before it, whose loss was within the limit
    assert [h["step"] for h in err.history] == list(range(first_over + 1))
    assert err.last_finite_step == first_over - 1
    before, _ = fit(params, task, steps=first_over - 1, optimizer=ascent, resample_noise=False)
    np.testing.assert_array_equal(err.last_finite.w_syn_mv.values(), before.w_syn_mv.values())


def test_an_exploded_loss_names_the_term_that_added_most_and_the_first_step():
    from brainsim.fit import FitDivergedError
    from brainsim.fit._loop import _grown_most, loss_exploded

    # a regularization term starts at exactly 0: its growth is what it adds, not a ratio
    first = {"rates": 10.0, "regularization": 0.0}
    assert _grown_most({"rates": 10_000.0, "regularization": 0.5}, first) == "rates"
    assert _grown_most({"rates": 9.0, "regularization": 50.0}, first) == "regularization"
    assert loss_exploded(10_001.0, 10.0, 1000.0) and not loss_exploded(9_999.0, 10.0, 1000.0)
    assert not loss_exploded(1e9, 0.0, 1000.0) and not loss_exploded(1e9, 1.0, None)
    e = FitDivergedError(7, 2e4, term="velocity", first_loss=1.5, max_loss_ratio=1000.0,
                         first_step=1)  # fmt: skip
    assert "more than max_loss_ratio = 1000 times step 1's 1.5" in str(e)


@pytest.mark.parametrize(
    ("value", "match"),
    [("1.0", "must be > 1"), ("-2.0", "max_loss_ratio"), ("true", "max_loss_ratio")],
)
def test_max_loss_ratio_is_checked(tmp_path, value, match):
    from brainsim.fit import load_fit_config

    cfg = _fit_config(tmp_path, "w_syn_mv", 1e-3)
    assert load_fit_config(cfg).max_loss_ratio == 1000.0
    off = config(tmp_path, cfg.read_text() + "max_loss_ratio = 0\n", "off.toml")
    assert load_fit_config(off).max_loss_ratio is None
    bad = config(tmp_path, cfg.read_text() + f"max_loss_ratio = {value}\n", "bad.toml")
    with pytest.raises(ConfigError, match=match):
        load_fit_config(bad)


def test_json_results_are_strict(tmp_path):
    from brainsim.io import write_json

    with pytest.raises(ValueError, match=r"x.json: a.b\[1\] is not a finite number"):
        write_json({"a": {"b": [1.0, float("nan")]}}, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(ValueError, match=r"a\[0\]"):
        write_json({"a": np.array([np.inf], np.float32)}, tmp_path / "x.json")
    # a normal one-trial run's manifest is strict JSON (no NaN, e.g. of a rate std)
    out = tmp_path / "out"
    assert cli.main(["run", str(config(tmp_path)), "--out", str(out), "--quiet"]) == 0

    def refuse(c):
        raise AssertionError(f"{c} in manifest.json")

    json.loads((out / "manifest.json").read_text(), parse_constant=refuse)


def test_a_fit_asking_for_more_devices_than_there_are_is_named(tmp_path, capsys):
    cfg = _fit_config(tmp_path, "w_syn_mv", 1e-3)
    text = cfg.read_text().replace("trials = 1", "trials = 8\ndevices = 8")
    bad = config(tmp_path, text, "many.toml")
    assert cli.main(["fit", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "many.toml: [simulation] devices: asked for 8 devices, JAX sees 1" in err, err
