"""``brainsim fit``: the [fit] config, its errors, and the results folder end to end."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FIT_SYNTHETIC, run_config_text

from brainsim import cli
from brainsim.connectome import load
from brainsim.experiments import ConfigError
from brainsim.fit import load_fit_config, run_fit

BASE = run_config_text(FIT_SYNTHETIC, duration_ms=50.0) + '[output]\ndir = "out"\n'

FIT = """
[fit]
targets = "targets.parquet"
trainable = ["w_syn_mv", "syn_scale_by_type"]
init = { w_syn_mv = 0.3 }
steps = 3
learning_rate = 0.02
regularization = 0.1
log_every = 1
[[fit.condition]]
label = "no_L1"
kind = "silence"
neurons = { cell_type = "sugar_like_L1" }
"""


@pytest.fixture(scope="module")
def conn():
    return load(FIT_SYNTHETIC, "synthetic")


def _ids(conn, cell_type):
    ct = np.array(conn.neurons.column("cell_type").to_pylist())
    return conn.ids[ct == cell_type]


def write(tmp_path, text, name="fit.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def write_targets(tmp_path, conn, rows=None):
    l2 = _ids(conn, "sugar_like_L2")
    rows = rows or (
        [{"neuron_id": int(i), "rate_hz": 40.0, "condition": "baseline"} for i in l2]
        + [{"neuron_id": int(i), "rate_hz": 5.0, "condition": "no_L1"} for i in l2[:5]]
    )
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "targets.parquet")


def test_fit_writes_params_loss_plot_and_final_run(tmp_path, conn):
    write_targets(tmp_path, conn)
    cfg = load_fit_config(write(tmp_path, BASE + FIT))
    assert cfg.trials == 2 and cfg.duration_ms == 50.0 and cfg.seed == 2
    out = run_fit(cfg, tmp_path / "fitted", log=lambda *a: None)
    params = json.loads((out / "params.json").read_text())
    assert set(params) == {"w_syn_mv", "syn_scale_by_type"}
    assert 0.25 < params["w_syn_mv"] < 0.35
    assert params["syn_scale_by_type"]["sugar_like_L1"] > 0
    loss = pq.read_table(out / "loss.parquet").to_pandas()
    assert list(loss["step"]) == [0, 1, 2]
    assert {"loss", "rates", "perturbations", "regularization", "grad_norm", "w_syn_mv"} <= set(
        loss.columns
    )
    np.testing.assert_allclose(
        loss["loss"], loss["rates"] + loss["perturbations"] + loss["regularization"], rtol=1e-5
    )
    assert loss["perturbations"].iloc[0] > 0 and loss["w_syn_mv"].iloc[0] == pytest.approx(0.3)
    assert (out / "loss.png").stat().st_size > 10_000
    fr = pq.read_table(out / "fit_rates.parquet").to_pandas()
    assert set(fr["label"]) == {"baseline", "no_L1"}
    assert {"target_rate_hz", "initial_rate_hz", "fitted_rate_hz"} <= set(fr.columns)
    # silencing L1 cuts the L2 drive: the perturbation condition's L2 rates are lower
    assert (
        fr[fr.label == "no_L1"].fitted_rate_hz.mean()
        < fr[fr.label == "baseline"].fitted_rate_hz.mean()
    )
    run = out / "run"
    conds = pq.read_table(run / "conditions.parquet").to_pandas()
    assert list(conds["label"]) == ["baseline", "no_L1"]
    assert {"spikes.parquet", "rates.parquet", "manifest.json", "raster.png"} <= {
        p.name for p in run.iterdir()
    }
    man = json.loads((out / "manifest.json").read_text())
    assert man["fit"]["initial"]["w_syn_mv"] == pytest.approx(0.3)
    assert man["fit"]["prior"]["w_syn_mv"] == pytest.approx(0.275)
    assert man["config"]["fit"]["steps"] == 3
    assert not list(tmp_path.glob(".fitted.*"))  # no partial folder left behind


def test_fit_accepts_a_results_folders_rates_as_targets(tmp_path, conn):
    # rates.parquet of `brainsim run` has an integer condition column: 0 is the baseline.
    # Per-type thresholds, per-class time constants and a bias: the final (windowed) run
    # takes them as per-neuron arrays and currents
    l1 = _ids(conn, "sugar_like_L1")
    rows = [{"condition": 0, "neuron_id": int(i), "rate_hz": 30.0} for i in l1]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rates.parquet")
    text = BASE + FIT.replace("targets.parquet", "rates.parquet").replace(
        "steps = 3", "steps = 2"
    ).replace(
        '["w_syn_mv", "syn_scale_by_type"]', '["v_th_mv_by_type", "tau_m_ms_by_class", "bias_mv"]'
    ).replace("init = { w_syn_mv = 0.3 }", "init = { bias_mv = 0.5 }")
    out = run_fit(load_fit_config(write(tmp_path, text)), tmp_path / "o", log=lambda *a: None)
    loss = pq.read_table(out / "loss.parquet").to_pandas()
    assert loss["rates"].iloc[0] > 0 and loss["perturbations"].iloc[0] == 0
    assert loss["bias_mv"].iloc[0] == pytest.approx(0.5)
    params = json.loads((out / "params.json").read_text())
    assert params["v_th_mv_by_type"]["sugar_like_L1"] != pytest.approx(-45.0, abs=1e-6)
    assert set(params["tau_m_ms_by_class"]) >= {"central", "motor"}
    fr = pq.read_table(out / "fit_rates.parquet").to_pandas()
    assert len(fr) == len(l1) and fr["fitted_rate_hz"].notna().all()


@pytest.mark.parametrize(
    "change, message",
    [
        (("steps = 3", "stepz = 3"), r"\[fit\]: unknown key 'stepz'"),
        (('trainable = ["w_syn_mv", "syn_scale_by_type"]', 'trainable = ["w_syn"]'), "trainable"),
        (('trainable = ["w_syn_mv", "syn_scale_by_type"]', "trainable = []"), "trainable"),
        (("init = { w_syn_mv = 0.3 }", "init = { v_th_mv = -50 }"), "init: 'v_th_mv'"),
        (("learning_rate = 0.02", "learning_rate = -1"), "learning_rate"),
        (('kind = "silence"', 'kind = "lesion"'), r"\[\[fit.condition\]\] #1 kind"),
        (('label = "no_L1"', 'label = "baseline"'), "label"),
        (('targets = "targets.parquet"', 'targets = "nope.parquet"'), "targets: .*does not exist"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path, conn, change, message):
    write_targets(tmp_path, conn)
    path = write(tmp_path, BASE + FIT.replace(*change))
    with pytest.raises(ConfigError, match=message) as err:
        run_fit(load_fit_config(path), tmp_path / "o", log=lambda *a: None)
    assert str(path) in str(err.value)
    assert not (tmp_path / "o").exists()


def test_target_table_errors_name_file_row_and_id(tmp_path, conn):
    path = write(tmp_path, BASE + FIT)
    good = int(_ids(conn, "sugar_like_L2")[0])
    for rows, message in [
        ([{"neuron_id": 1, "rate_hz": 5.0}], "not in the connectome.*: 1"),
        ([{"neuron_id": good, "rate_hz": -5.0}], "row 1: rate_hz -5.0"),
        ([{"neuron_id": good, "rate_hz": 5.0, "condition": "sugar"}], "row 1: condition 'sugar'"),
        ([{"neuron": good, "rate_hz": 5.0}], "missing column 'neuron_id'"),
    ]:
        write_targets(tmp_path, conn, rows)
        with pytest.raises(ConfigError, match=message) as err:
            run_fit(load_fit_config(path), tmp_path / "o", log=lambda *a: None)
        assert "targets.parquet" in str(err.value) and "[fit] targets" in str(err.value)


def test_fit_section_required_and_experiment_excluded(tmp_path):
    with pytest.raises(ConfigError, match=r"missing section \[fit\]"):
        load_fit_config(write(tmp_path, BASE))
    exp = '[experiment]\nkind = "activation_sweep"\ndrive = { cell_type = "x" }\nrates_hz = [1.0]\n'
    with pytest.raises(ConfigError, match=r"\[experiment\] cannot be combined"):
        load_fit_config(write(tmp_path, BASE + exp + FIT))


def test_cli_fit(tmp_path, conn):
    parser = cli.build_parser()
    if "fit" not in parser._subparsers._group_actions[0].choices:
        pytest.skip("brainsim.cli has no fit subcommand yet")
    write_targets(tmp_path, conn)
    path = write(tmp_path, BASE + FIT.replace("steps = 3", "steps = 1"))
    assert cli.main(["fit", str(path), "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    assert (tmp_path / "cli" / "params.json").exists()
    bad = write(tmp_path, BASE + FIT.replace("steps = 3", "stepz = 3"), "bad.toml")
    assert cli.main(["fit", str(bad), "--quiet"]) == 2


@pytest.mark.parametrize(
    "model,trainable,match",
    [
        ('kind = "graded"', "syn_scale", "does not spike"),
        ('kind = "pqn"', "w_syn_mv", "has no w_syn_mv"),
    ],
)
def test_fit_refuses_what_the_model_cannot_fit(tmp_path, conn, model, trainable, match):
    write_targets(tmp_path, conn)
    text = BASE.replace("[output]", f"[model]\n{model}\n[output]") + (
        f'\n[fit]\ntargets = "targets.parquet"\ntrainable = ["{trainable}"]\nsteps = 1\n'
    )
    with pytest.raises(ConfigError, match=match):
        run_fit(load_fit_config(write(tmp_path, text)), tmp_path / "o", log=lambda *a: None)
    assert not (tmp_path / "o").exists()


def test_brainsim_fit_runs_a_pqn_model(tmp_path, conn):
    l2 = _ids(conn, "sugar_like_L2")
    write_targets(tmp_path, conn, [{"neuron_id": int(i), "rate_hz": 20.0} for i in l2])
    text = BASE.replace("[output]", '[model]\nkind = "pqn"\npreset = "class2"\n[output]') + (
        '\n[fit]\ntargets = "targets.parquet"\ntrainable = ["syn_scale"]\nsteps = 2\n'
    )
    out = run_fit(load_fit_config(write(tmp_path, text)), tmp_path / "o", log=lambda *a: None)
    params = json.loads((out / "params.json").read_text())
    assert set(params) == {"syn_scale"} and params["syn_scale"] > 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["model"]["kind"] == "pqn" and man["fit"]["trainable"] == ["syn_scale"]
    assert pq.read_table(out / "loss.parquet").num_rows == 2
