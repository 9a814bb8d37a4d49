"""Experiment kinds on a small hand-wired network whose answers are known.

Network (ids 100 + index): inputs 0-4 ("in") drive relay A (10) and side neuron B (11)
strongly; A drives the readout R (20) strongly, B does not reach R; an inhibitory neuron
I (30, "inh") driven by its own inputs 40-44 ("inh_in") silences R. Neurons 50-59 are
unconnected background.
"""

import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from brainsim import cli
from brainsim.experiments import ConfigError, load_config, run_config

N = 60


def write_network(tmp_path):
    edges = [(i, 10, 120) for i in range(5)] + [(i, 11, 120) for i in range(5)]
    edges += [(10, 20, 400), (30, 20, -2000)] + [(i, 30, 200) for i in range(40, 45)]
    pre, post, count = zip(*edges, strict=True)
    pacsv.write_csv(
        pa.table(
            {"pre": [100 + p for p in pre], "post": [100 + q for q in post], "count": list(count)}
        ),
        tmp_path / "edges.csv",
    )
    types = ["bg"] * N
    for i in range(5):
        types[i] = "in"
    for i in range(40, 45):
        types[i] = "inh_in"
    types[10], types[11], types[20], types[30] = "A", "B", "R", "inh"
    pacsv.write_csv(
        pa.table({"id": [100 + i for i in range(N)], "cell_type": types}), tmp_path / "neurons.csv"
    )


def config(tmp_path, experiment: str, trials: int = 4, duration_ms: float = 300.0) -> str:
    write_network(tmp_path)
    text = f"""
[connectome]
format = "edgelist"
path = "edges.csv"
cache = false
options = {{ signed_counts = true, neurons = "{tmp_path / "neurons.csv"}" }}
[simulation]
duration_ms = {duration_ms}
trials = {trials}
seed = 3
[experiment]
{experiment}
"""
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return str(p)


def run(cfg_path, tmp_path, name="out"):
    out = tmp_path / name
    assert cli.main(["run", cfg_path, "--out", str(out), "--quiet"]) == 0
    return out


def read(out, name):
    return pq.read_table(out / name).to_pandas()


def test_activation_sweep_readout_grows_with_drive(tmp_path):
    cfg = config(
        tmp_path,
        'kind = "activation_sweep"\ndrive = { cell_type = "in" }\nrates_hz = [0, 20, 200]\n'
        'readout = { cell_type = "R" }',
    )
    out = run(cfg, tmp_path)
    s = read(out, "summary.parquet").sort_values("rate_hz")
    assert list(s.rate_hz) == [0, 20, 200] and set(s.neuron_id) == {120}
    r = s.readout_rate_hz.to_numpy()
    assert r[0] == 0 and 0 < r[1] < r[2]
    conds = read(out, "conditions.parquet")
    assert list(conds.rate_hz) == [0, 20, 200]
    spikes = read(out, "spikes.parquet")
    # the driven inputs fire about once per Poisson event: ~200 Hz at the top rate
    top = spikes[(spikes.condition == 2) & (spikes.neuron_id < 105)]
    assert 150 < len(top) / (5 * 4 * 0.3) < 250
    assert (out / "raster.png").exists() and (out / "rate_curve.png").exists()


def test_silencing_screen_finds_the_only_path(tmp_path):
    cfg = config(
        tmp_path,
        'kind = "silencing_screen"\ndrive = { cell_type = "in" }\nrate_hz = 100\n'
        'readout = { cell_type = "R" }\ncandidates = { ids = [110, 111, 150] }',
        trials=6,
    )
    out = run(cfg, tmp_path)
    s = read(out, "summary.parquet").set_index("silenced_id")
    control = s.control_rate_hz.iloc[0]
    assert control > 5
    assert s.loc[110, "readout_rate_hz"] == 0 and bool(s.loc[110, "required"])
    for off_path in (111, 150):
        assert not s.loc[off_path, "required"]
        # within trial noise of control: 4 standard errors
        assert (
            abs(s.loc[off_path, "readout_rate_hz"] - control)
            < 4 * (s.loc[off_path, "readout_rate_hz_sem"] + 1e-9) + 0.25 * control
        )
    assert (out / "silencing.png").exists()


def test_silencing_screen_top_k_from_control(tmp_path):
    cfg = config(
        tmp_path,
        'kind = "silencing_screen"\ndrive = { cell_type = "in" }\nrate_hz = 100\n'
        'readout = { cell_type = "R" }\ntop_k = 2',
    )
    out = run(cfg, tmp_path)
    s = read(out, "summary.parquet")
    # the responders of the control, not driven, not the readout: A and B
    assert sorted(s.silenced_id) == [110, 111]
    assert list(s.sort_values("silenced_id").required) == [True, False]


def test_pairwise_grid_inhibition_lowers_readout(tmp_path):
    cfg = config(
        tmp_path,
        'kind = "pairwise_grid"\ndrive_a = { cell_type = "in" }\nrates_a_hz = [0, 150]\n'
        'drive_b = { cell_type = "inh_in" }\nrates_b_hz = [0, 150]\nreadout = { cell_type = "R" }',
    )
    out = run(cfg, tmp_path)
    s = read(out, "summary.parquet").set_index(["rate_a_hz", "rate_b_hz"]).readout_rate_hz
    assert s[(0.0, 0.0)] == 0 and s[(0.0, 150.0)] == 0
    assert s[(150.0, 0.0)] > 5 and s[(150.0, 150.0)] < 0.5 * s[(150.0, 0.0)]
    assert (out / "grid.png").exists()


def test_perturbation_map_effective_connectivity(tmp_path):
    cfg = config(tmp_path, 'kind = "perturbation_map"\ndrive = { ids = [110, 111] }\nrate_hz = 150')
    out = run(cfg, tmp_path)
    m = read(out, "summary.parquet")
    driven_a = m[m.driven_id == 110].set_index("neuron_id").delta_hz
    driven_b = m[m.driven_id == 111].set_index("neuron_id").delta_hz
    assert driven_a[120] > 5  # A -> R
    assert 120 not in driven_b.index or driven_b[120] == 0  # B does not reach R
    assert set(driven_b.index) == {111}


def test_dry_run_resolves_and_simulates_nothing(tmp_path, capsys):
    cfg = config(
        tmp_path,
        'kind = "activation_sweep"\ndrive = { cell_type = "in" }\nrates_hz = [10, 20]',
    )
    out = tmp_path / "never"
    assert cli.main(["run", cfg, "--out", str(out), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "2 condition(s) x 4 trial(s)" in err and "MiB" in err and "rate_curve.png" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "experiment, match",
    [
        ('kind = "sweep"', "kind: expected one of"),
        ('kind = "activation_sweep"\ndrive = { cell_type = "in" }', "needs key 'rates_hz'"),
        (
            'kind = "activation_sweep"\ndrive = { cell_type = "in" }\nrates_hz = [10, "x"]',
            "rates_hz: expected a non-empty list of rates in Hz",
        ),
        (
            'kind = "silencing_screen"\ndrive = { cell_type = "in" }\nrate_hz = 10\n'
            'readout = { cell_type = "R" }',
            "exactly one of 'candidates'",
        ),
        (
            'kind = "activation_sweep"\ndrive = { cell_type = "nope" }\nrates_hz = [1]',
            "drive.cell_type: 'nope' matches no neuron",
        ),
        ('kind = "activation_sweep"\ndrive = { ids = [9] }\nrates_hz = [1]', "allow_missing"),
    ],
)
def test_experiment_config_errors(tmp_path, experiment, match):
    cfg = config(tmp_path, experiment)
    with pytest.raises(ConfigError, match=match):
        run_config(load_config(cfg), tmp_path / "o", log=lambda *a: None)


def test_published_sets_and_allow_missing(tmp_path):
    from brainsim.experiments import select
    from brainsim.experiments._selectors import published_sets

    sets = published_sets()
    assert len(sets["shiu2024:sugar_right_grn"]) == 21
    assert sets["shiu2024:mn9"] == [720575940660219265]
    write_network(tmp_path)
    from brainsim.connectome import load

    conn = load(
        str(tmp_path / "edges.csv"),
        "edgelist",
        signed_counts=True,
        neurons=str(tmp_path / "neurons.csv"),
    )
    missing = []
    idx = select(conn, {"ids": [100, 5], "allow_missing": True}, where="t", missing=missing)
    assert conn.ids[idx].tolist() == [100] and missing == [5]
    with pytest.raises(ConfigError, match="matches no neuron|not in the connectome"):
        select(conn, {"set": "shiu2024:mn9"}, where="t")


def test_manifest_records_missing_ids(tmp_path):
    cfg = config(
        tmp_path,
        'kind = "activation_sweep"\n'
        'drive = { ids = [100, 7], allow_missing = true }\nrates_hz = [50]',
        trials=1,
        duration_ms=20.0,
    )
    out = run(cfg, tmp_path)
    man = json.loads((out / "manifest.json").read_text())
    assert man["missing_ids_left_out"] == [7]
    assert man["experiment"]["kind"] == "activation_sweep"


def test_every_shipped_config_is_valid():
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))
    assert len(configs) >= 5
    for path in configs:
        import tomllib

        raw = tomllib.loads(path.read_text())
        from brainsim.celegans._fit import is_atlas_fit
        from brainsim.flyvis._experiment import uses_visual

        if is_atlas_fit(raw):  # a C. elegans atlas fit: the run schema plus its [fit]
            from brainsim.celegans._fit import parse_task as parse_atlas_task
            from brainsim.experiments import parse_config

            parse_atlas_task(raw["fit"], str(path))
            cfg = parse_config({k: v for k, v in raw.items() if k != "fit"}, path)
        elif "fit" in raw and uses_visual(raw):  # a flyvis training config
            from brainsim.experiments import parse_config
            from brainsim.flyvis._train import parse_task

            parse_task(raw["fit"], str(path))
            cfg = parse_config({k: v for k, v in raw.items() if k != "fit"}, path)
        elif "fit" in raw:
            from brainsim.fit import load_fit_config

            cfg = load_fit_config(path)  # the run schema plus [fit]
        else:
            cfg = load_config(path)  # raises ConfigError naming file and key if not
        assert cfg is not None
