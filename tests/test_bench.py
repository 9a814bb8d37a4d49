"""``brainsim.bench``: every workload returns its documented keys with sane values, and the CLI
prints one JSON object per record. Tiny network, a few ms: compilation dominates; no
wall-clock assertions."""

import json

import numpy as np
import pytest
from conftest import run_config_text, write_config

from brainsim import bench
from brainsim.bench import _cli, _common
from brainsim.sim import SimResult

# the same network, trials and duration everywhere, so that compiled programs are shared
TINY = dict(scale=0.005, trials=2, duration_ms=10.0, repeats=1, cache=False)
TINY_ARGS = ["--scale", "0.005", "--trials", "2", "--duration-ms", "10", "--repeats", "1"]
ENV = ("device", "jax", "jaxlib", "date", "host", "cpu_cores")
NETWORK = ("spec", "n_neurons", "n_connections", "n_synapses")
ACTIVITY = (
    "wall_s_first",
    "wall_s",
    "wall_s_median",
    "s_per_trial_second",
    "spikes_per_trial_second",
    "synaptic_events_per_trial_second",
    "synaptic_events_per_second",
    "neurons_firing",
    "mean_rate_hz",
)


def has(rec, keys):
    missing = [k for k in keys if k not in rec]
    assert not missing, f"missing keys {missing}"


@pytest.fixture(scope="module")
def sugar_rec():
    return bench.sugar(**TINY)


def test_sugar(sugar_rec):
    rec = sugar_rec
    has(rec, (*ENV, *NETWORK, *ACTIVITY, "trials", "duration_ms", "rate_hz", "budgets"))
    assert rec["workload"] == "sugar"
    assert rec["spec"] == "synthetic:seed=0,scale=0.005" and rec["scale"] == 0.005
    assert rec["n_inputs"] == 21 and rec["trials"] == 2
    assert rec["kernel"] == "windowed"
    assert rec["spikes_per_trial_second"] > 0
    # every spike delivers its row: events outnumber spikes on this network
    assert rec["synaptic_events_per_trial_second"] > rec["spikes_per_trial_second"]
    assert 0 < rec["neurons_firing"] <= rec["n_neurons"]
    assert rec["wall_s"] > 0 and rec["s_per_trial_second"] > 0
    assert rec["reruns_timed"] == 0  # the repeat starts with the grown budgets
    json.dumps(rec)


def test_dense():
    rec = bench.dense(**TINY, bandwidth=_common.memory_bandwidth(2**22, repeats=2))
    has(rec, (*ENV, *NETWORK, *ACTIVITY, "input_rate_hz", "bandwidth_bytes_per_s"))
    has(rec, ("state_bytes_per_step", "bytes_per_trial_second", "bound_s_per_trial_second"))
    assert rec["mean_rate_hz"] > 0
    assert rec["kernel"] == "dense_window"  # every neuron driven
    assert rec["state_bytes_per_step"] == 2 * rec["n_neurons"] * 12  # float32 v, g; int32
    assert rec["bandwidth_bytes_per_s"] > 0
    assert rec["bound_s_per_trial_second"] > 0 and rec["over_bandwidth_bound"] > 0
    assert rec["note"]  # a network smaller than the whole brain says so


def test_scaling_trials():
    rec = bench.scaling_trials(**{**TINY, "trials": (1, 2)})
    assert [p["trials"] for p in rec["points"]] == [1, 2]
    for p in rec["points"]:
        has(p, ("wall_s", "s_per_trial_second", "spikes_per_trial_second", "speedup_vs_first"))
        assert p["spikes_per_trial_second"] > 0
    assert rec["points"][0]["speedup_vs_first"] == 1.0


def test_scaling_size():
    kw = {k: v for k, v in TINY.items() if k != "scale"}
    rec = bench.scaling_size(scales=(0.005,), **kw)
    (p,) = rec["points"]
    has(p, ("scale", "n_neurons", "n_connections", "load_s", "s_per_trial_second"))
    assert p["scale"] == 0.005 and p["spikes_per_trial_second"] > 0


def test_scaling_activity():
    rec = bench.scaling_activity(rates_hz=(50.0, 150.0), **TINY)
    lo, hi = rec["points"]
    assert (lo["rate_hz"], hi["rate_hz"]) == (50.0, 150.0)
    assert hi["spikes_per_trial_second"] > lo["spikes_per_trial_second"] > 0
    assert set(rec["fit"]) == {"intercept_s", "slope_s_per_event", "fixed_fraction_at_max"}


def test_reference_ratio():
    rec = bench.reference_ratio(**TINY)
    has(rec, ("reference_wall_s", "windowed_wall_s", "reference_over_windowed"))
    assert rec["identical_spikes"] is True
    assert rec["n_spikes_reference"] == rec["n_spikes_windowed"] > 0
    assert rec["reference_over_windowed"] > 0


def test_native_ratio():
    rec = bench.native_ratio(**TINY)
    has(rec, ("jax_wall_s", "native_wall_s", "jax_over_native", "brian2_cython_over_native"))
    assert rec["identical_spikes"] is True and rec["n_spikes"] > 0
    assert rec["jax_over_native"] > 0


def test_synaptic_events_are_spikes_times_out_degree(tiny_chain):
    # 0 -> 1 -> 2 (out-degrees 1, 1, 0, 0): spikes of 0, 0, 2, 1 deliver 3 events
    r = SimResult(
        trial=np.zeros(4, np.int64),
        step=np.arange(4),
        neuron=np.array([0, 0, 2, 1]),
        n_trials=1,
        n_steps=10,
        dt_ms=0.1,
        ids=tiny_chain.ids,
        rec_idx=np.zeros(0, np.int32),
        v_rec=None,
        g_rec=None,
        stats={},
    )
    assert bench.synaptic_events(tiny_chain, r) == 3


def test_main_json(capsys, sugar_rec):
    rc = bench.main(["--workload", "sugar", "--json", "--no-cache", "--quiet", *TINY_ARGS])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["workload"] == "sugar" and rec["n_neurons"] == sugar_rec["n_neurons"]
    assert rec["spikes_per_trial_second"] > 0


def test_table_format(sugar_rec):
    text = bench.format_table(sugar_rec)
    assert text.startswith("== sugar") and "spikes_per_trial_second" in text
    sweep = {"workload": "x", "a": 1, "points": [{"trials": 1, "s": 0.5}, {"trials": 2, "s": 2e6}]}
    assert "trials" in bench.format_table(sweep).splitlines()[-3]


def test_main_rejects_a_list_of_trials_for_dense(capsys):
    assert bench.main(["--workload", "dense", "--trials", "1", "2", "--quiet"]) == 2
    assert "one --trials value" in capsys.readouterr().err


def test_cli_arguments_reach_the_workloads():
    args = bench.build_parser().parse_args(
        ["--workload", "sugar", "--workload", "scaling_size", "--trials", "1", "30"]
        + ["--with-4x", "--duration-ms", "500", "--no-cache"]
    )
    with pytest.raises(ValueError, match="one --trials value"):
        _cli._calls(args)
    args.trials = [30]
    calls = _cli._calls(args)
    assert [name for name, _ in calls] == ["sugar", "scaling_size"]
    assert calls[0][1] == {
        "trials": 30,
        "duration_ms": 500.0,
        "precision": "float32",
        "cache": False,
    }
    assert calls[1][1]["scales"] == (0.07, 0.25, 0.5, 1.0, 4.0)
    every = _cli._calls(bench.build_parser().parse_args(["--workload", "all"]))
    assert [name for name, _ in every] == list(bench.NAMES)


# ---- brainsim bench --config: any run config, timed as the workloads are


def sweep_config(tmp_path, duration_ms=50.0):
    """An activation sweep (2 rates x 2 trials) on the tiny synthetic brain."""
    text = run_config_text(duration_ms=duration_ms, stimulus=False) + (
        '[experiment]\nkind = "activation_sweep"\ndrive = { cell_type = "sugar_like_GRN" }\n'
        "rates_hz = [100.0, 200.0]\n"
    )
    return write_config(tmp_path, text)


def test_config_steady_state(tmp_path, own_cache):
    rec = bench.config(sweep_config(tmp_path), repeats=2, with_first_run=False)
    has(rec, (*ENV, *NETWORK, *ACTIVITY, "trial_seconds", "trial_seconds_per_second"))
    has(rec, ("n_conditions", "trials", "kernel", "peak_rss_bytes", "device_peak_bytes"))
    assert rec["workload"] == "config" and rec["kind"] == "activation_sweep"
    assert rec["spec"] == "synthetic:seed=0,scale=0.005" and rec["n_neurons"] > 0
    assert (rec["n_conditions"], rec["trials"], rec["duration_ms"]) == (2, 2, 50.0)
    assert rec["trial_seconds"] == pytest.approx(2 * 2 * 50.0 / 1000)
    assert rec["s_per_trial_second"] == pytest.approx(rec["wall_s"] / rec["trial_seconds"])
    assert rec["trial_seconds_per_second"] == pytest.approx(1 / rec["s_per_trial_second"])
    assert rec["repeats"] == 2 and rec["wall_s"] <= rec["wall_s_median"]
    assert rec["kernel"] == "windowed" and rec["model"] == "lif"
    assert rec["reruns_timed"] == 0  # the repeats start from the budgets the warm-up grew
    # the 200 Hz condition drives more than the 100 Hz one; events outnumber spikes
    assert rec["n_spikes"] > 0
    assert rec["spikes_per_trial_second"] == pytest.approx(rec["n_spikes"] / 0.2)
    assert rec["synaptic_events_per_trial_second"] > rec["spikes_per_trial_second"]
    assert 0 < rec["neurons_firing"] <= rec["n_neurons"]
    assert rec["peak_rss_bytes"] > 0
    assert "first_run_wall_s" not in rec and rec["same_spikes_as_first_run"] is None
    json.dumps(rec)


def test_config_graded_model_has_no_spike_figures(tmp_path, own_cache):
    text = run_config_text(duration_ms=20.0, stimulus=False) + (
        '[model]\nkind = "graded"\n[[stimulus]]\nkind = "current"\n'
        'neurons = { cell_type = "sugar_like_GRN" }\namplitude_mv = 5.0\n'
    )
    rec = bench.config(write_config(tmp_path, text), repeats=1, with_first_run=False)
    assert (rec["model"], rec["kernel"]) == ("graded", "reference")
    assert rec["trial_seconds"] == pytest.approx(2 * 20.0 / 1000)
    for k in ("n_spikes", "spikes_per_trial_second", "synaptic_events_per_second"):
        assert rec[k] is None, k
    assert rec["s_per_trial_second"] > 0


def test_config_first_run_in_a_fresh_process(tmp_path, own_cache, capsys):
    path = write_config(tmp_path, run_config_text(duration_ms=50.0))
    rc = bench.main(["--config", str(path), "--json", "--quiet", "--repeats", "1"])
    assert rc == 0, capsys.readouterr().err
    (line,) = capsys.readouterr().out.strip().splitlines()
    rec = json.loads(line)
    has(rec, ("first_run_wall_s", "first_run_load_s", "first_run_simulate_s"))
    has(rec, ("first_run_reruns", "first_run_peak_rss_bytes", "first_run_jax_cache_files_before"))
    # end to end: start-up, load, simulate and writing
    assert rec["first_run_wall_s"] > rec["first_run_load_s"] + rec["first_run_simulate_s"]
    assert rec["first_run_peak_rss_bytes"] > 0
    assert rec["first_run_budgets_remembered"] is False  # a fresh cache
    assert rec["first_run_jax_cache_files_before"] == 0
    # the same config and seed: the same spikes in both processes
    assert rec["same_spikes_as_first_run"] is True
    assert rec["first_run_n_spikes"] == rec["n_spikes"] > 0
    # the first run remembered its budgets: this process's warm-up grows none
    assert rec["reruns_first"] == 0
    assert rec["trial_seconds"] == pytest.approx(2 * 50.0 / 1000)


def test_config_errors_name_the_file_and_key(tmp_path, own_cache, capsys):
    missing = tmp_path / "nope.toml"
    assert bench.main(["--config", str(missing), "--quiet"]) == 2
    assert f"{missing}: config file not found" in capsys.readouterr().err
    bad = write_config(tmp_path, run_config_text() + "[output]\ndirr = 'x'\n", "bad.toml")
    assert bench.main(["--config", str(bad), "--quiet", "--no-first-run"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "unknown key 'dirr'" in err
    fit = write_config(tmp_path, run_config_text() + "[fit]\nsteps = 2\n", "fit.toml")
    assert bench.main(["--config", str(fit), "--quiet"]) == 2
    assert "a [fit] config" in capsys.readouterr().err
    visual = run_config_text().replace('format = "synthetic"', 'format = "flyvis"')
    assert bench.main(["--config", str(write_config(tmp_path, visual, "v.toml"))]) == 2
    assert "a flyvis config" in capsys.readouterr().err
    path = write_config(tmp_path, run_config_text())
    assert bench.main(["--config", str(path), "--against-brian2"]) == 2
    err = capsys.readouterr().err
    assert "--against-brian2 is not wired" in err and ".venv-brian2" in err
    assert "compare_brian2.py --network synthetic:seed=0,scale=0.005" in err
    assert "--input-type sugar_like_GRN --rate-hz 150.0" in err
    assert f"bench_process_vs_brian2.py --config {path}" in err  # one Poisson rate, LIF
    assert bench.main(["--config", str(path), "--trials", "3", "--precision", "float64"]) == 2
    assert "--trials, --precision apply to workloads" in capsys.readouterr().err
    assert bench.main(["--workload", "sugar", "--no-first-run"]) == 2
    assert "--no-first-run applies to --config" in capsys.readouterr().err
