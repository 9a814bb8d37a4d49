"""``brainsim run``: configs in, atomic result folders out, errors named."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SMALL_SYNTHETIC, run_config_text

from brainsim import cli
from brainsim.experiments import ConfigError, load_config

BASE = run_config_text() + '[record]\nneurons = { cell_type = "MN9_like" }\n'


def write(tmp_path, text, name="run.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_run_writes_tables_and_manifest(tmp_path):
    cfg = write(tmp_path, BASE)
    out = tmp_path / "out"
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    spikes = pq.read_table(out / "spikes.parquet")
    assert spikes.schema.field("neuron_id").type == pa.int64()
    assert spikes.num_rows > 0
    assert set(spikes.column("trial").to_pylist()) == {0, 1}
    t = np.asarray(spikes.column("t_ms"))
    assert t.min() >= 0 and t.max() < 100.0
    rates = pq.read_table(out / "rates.parquet").to_pandas()
    # rates are spike counts over 2 trials x 0.1 s
    counts = spikes.to_pandas().groupby("neuron_id").size()
    r = rates.set_index("neuron_id")["rate_hz"]
    np.testing.assert_allclose(r.loc[counts.index].to_numpy(), counts.to_numpy() / 2 / 0.1)
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 1 and man["n_spikes"] == spikes.num_rows
    assert len(man["connectome"]["checksum"]) == 64
    assert {"jax", "brainsim", "numpy"} <= set(man["versions"])
    traces = pq.read_table(out / "traces.parquet")
    assert traces.num_rows == 2 * 1000  # 2 trials x 1000 steps x 1 recorded neuron
    assert (out / "raster.png").stat().st_size > 0 and (out / "traces.png").exists()


def test_no_plots_writes_the_tables_only_and_plot_draws_them_later(tmp_path):
    out = tmp_path / "out"
    cfg = write(tmp_path, BASE)
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet", "--no-plots"]) == 0
    assert (out / "spikes.parquet").exists() and (out / "manifest.json").exists()
    assert not list(out.glob("*.png"))
    assert cli.main(["plot", str(out)]) == 0
    assert {p.name for p in out.glob("*.png")} == {"raster.png", "traces.png"}
    # the same from the config; a value that is not a boolean is named
    off = write(tmp_path, BASE + "[output]\nplots = false\n", "off.toml")
    assert cli.main(["run", str(off), "--out", str(tmp_path / "off"), "--quiet"]) == 0
    assert not list((tmp_path / "off").glob("*.png"))
    bad = write(tmp_path, BASE + '[output]\nplots = "no"\n', "bad.toml")
    with pytest.raises(ConfigError, match=r"\[output\] plots: expected bool"):
        load_config(bad)


def test_spike_times_replay_and_silence(tmp_path):
    from brainsim.connectome import load

    conn = load(SMALL_SYNTHETIC, "synthetic")
    types = np.asarray(conn.neurons.column("cell_type").to_pylist())
    grn = conn.ids[types == "sugar_like_GRN"]
    events = pa.table({"trial": [0, 0, 1], "t_ms": [1.0, 5.0, 2.0], "neuron_id": grn[:3].tolist()})
    pq.write_table(events, tmp_path / "input.parquet")
    text = (
        BASE.split("[[stimulus]]")[0]
        + f"""
[[stimulus]]
kind = "spike_times"
path = "input.parquet"
[[perturbation]]
kind = "silence"
neurons = {{ ids = [{int(grn[0])}] }}
"""
    )
    out = tmp_path / "out"
    assert cli.main(["run", str(write(tmp_path, text)), "--out", str(out), "--quiet"]) == 0
    s = pq.read_table(out / "spikes.parquet").to_pandas()
    got = s[s.neuron_id.isin(grn[:3])].sort_values(["trial", "t_ms"])
    # each replayed event makes its input neuron fire one step later
    assert list(zip(got.trial, np.round(got.t_ms, 6), strict=True)) == [
        (0, 1.1),
        (0, 5.1),
        (1, 2.1),
    ]


@pytest.mark.parametrize(
    "patch, match",
    [
        (("duration_ms = 100.0", "duration_ms = -5.0"), "duration_ms: must be a positive number"),
        (("seed = 1", "seed = 1\nspeed = 3"), "unknown key 'speed'"),
        (("trials = 2", 'trials = "two"'), "trials: expected int"),
        (("rate_hz = 150.0", "rate_hz = 0.00015"), "rate_hz.*Hz"),
        (
            ('cell_type = "sugar_like_GRN"', 'cell_type = "no_such_type"'),
            "'no_such_type' matches no neuron",
        ),
        (('cell_type = "sugar_like_GRN"', "ids = [42]"), "42"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path, patch, match):
    cfg = write(tmp_path, BASE.replace(*patch))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=match):
        from brainsim.experiments import run_config

        run_config(load_config(cfg), out, log=lambda *a: None)
    assert not out.exists()  # nothing half-written
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2


def test_failed_run_leaves_previous_results_intact(tmp_path, monkeypatch):
    cfg = write(tmp_path, BASE)
    out = tmp_path / "out"
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    (out / "spikes.parquet").write_text("old")  # an earlier complete results folder
    import brainsim.experiments._run as run_mod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(run_mod, "write_json", boom, raising=False)
    monkeypatch.setattr("brainsim.io.write_json", boom)
    with pytest.raises(RuntimeError):
        run_mod.run_config(load_config(cfg), out, log=lambda *a: None)
    assert (out / "spikes.parquet").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_progress_bar_only_on_a_terminal(monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert cli._progress(quiet=False) is None  # not a terminal: quiet
    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    assert cli._progress(quiet=True) is None
    show = cli._progress(quiet=False)
    show(500, 1000)
    show(1000, 1000)
    out = tty.getvalue()
    assert "500/1000 steps" in out and "steps/s" in out and "eta" in out and out.endswith("\n")


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    bad = write(tmp_path, "[connectome\nformat = 1", name="bad.toml")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)
    cfg = write(tmp_path, BASE.replace("seed = 1", 'seed = 1\ndevices = "some"'))
    with pytest.raises(ConfigError, match=r"devices: expected a positive integer or \"all\""):
        load_config(cfg)
    assert load_config(write(tmp_path, BASE.replace("seed = 1", 'seed = 1\ndevices = "all"')))


def test_plot_needs_a_results_folder(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert "not a results folder" in capsys.readouterr().err


def test_the_poisson_stream_is_chosen_checked_and_recorded(tmp_path):
    """[simulation] poisson_stream: 2 by default, 1 on request (other events, the same
    law), anything else named; the manifest says which one ran."""
    mans = {}
    for stream in (None, 1):
        text = run_config_text() if stream is None else run_config_text().replace(
            "seed = 1\n", f"seed = 1\npoisson_stream = {stream}\n"
        )
        out = tmp_path / f"out{stream}"
        assert cli.main(["run", str(write(tmp_path, text)), "--out", str(out), "--quiet"]) == 0
        mans[stream] = json.loads((out / "manifest.json").read_text())
        mans[stream]["spikes"] = pq.read_table(out / "spikes.parquet").to_pandas()
    assert mans[None]["poisson_stream"] == 2 and mans[1]["poisson_stream"] == 1
    assert mans[None]["kernel"][0]["poisson_stream"] == 2
    a, b = mans[None]["spikes"], mans[1]["spikes"]
    assert len(a) > 50 and len(b) > 50 and not a.equals(b)
    for bad in ("3", '"2"'):
        text = run_config_text().replace("seed = 1\n", f"seed = 1\npoisson_stream = {bad}\n")
        with pytest.raises(ConfigError, match=r"\[simulation\] poisson_stream"):
            load_config(write(tmp_path, text, "bad.toml"))


def test_the_all_selector_drives_every_neuron(tmp_path):
    from conftest import random_connectome

    from brainsim.experiments._selectors import select

    conn = random_connectome(30, 0.1, seed=1)
    np.testing.assert_array_equal(select(conn, {"all": True}, where="w"), np.arange(30))
    for bad in (False, 1, "yes"):
        with pytest.raises(ConfigError, match=r"w\.all: expected true"):
            select(conn, {"all": bad}, where="w")
