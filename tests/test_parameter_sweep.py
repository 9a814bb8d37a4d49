"""The parameter_sweep experiment kind: one run per value of a [model] parameter, the same
input noise for every value, and a summary recomputable from rates.parquet."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from brainsim.experiments import ConfigError, load_config, run_config
from tests.conftest import run_config_text, write_config

SWEEP = """
[experiment]
kind = "parameter_sweep"
parameter = "{name}"
values = {values}
readout = {{ cell_type = "MN9_like" }}
high_rate_hz = 50.0
[output]
dir = "{out}"
"""


def _run(tmp_path, name="w_syn_mv", values="[0.0, 0.3, 0.6]", out="sweep", extra=""):
    text = run_config_text(duration_ms=100.0, trials=2, seed=3) + extra
    text += SWEEP.format(name=name, values=values, out=out)
    return run_config(load_config(write_config(tmp_path, text, f"{out}.toml")), log=lambda *a: None)


def test_sweep_summary_and_common_noise(tmp_path, own_cache):
    out = _run(tmp_path)
    s = pq.read_table(out / "summary.parquet").to_pandas().sort_values("condition")
    rates = pq.read_table(out / "rates.parquet").to_pandas()
    spikes = pq.read_table(out / "spikes.parquet").to_pandas()
    n_neurons = json.loads((out / "manifest.json").read_text())["connectome"]["n_neurons"]
    assert list(s.value) == [0.0, 0.3, 0.6]
    # w_syn_mv = 0: the input events carry no voltage, nothing fires
    assert s.n_active.iloc[0] == 0 and s.mean_rate_hz.iloc[0] == 0
    # more weight, more activity
    assert s.n_active.iloc[1] < s.n_active.iloc[2]
    for c in (1, 2):
        r = rates[rates.condition == c]
        assert s.n_active.iloc[c] == len(r)
        assert s.mean_rate_hz.iloc[c] == pytest.approx(r.rate_hz.sum() / n_neurons)
        assert s.max_rate_hz.iloc[c] == pytest.approx(r.rate_hz.max())
        assert s.n_above_high_rate.iloc[c] == int((r.rate_hz > 50.0).sum())
    assert (out / "sweep.png").is_file()
    # the 0.3 mV condition is a plain run with w_syn_mv = 0.3 and the same seed
    text = run_config_text(duration_ms=100.0, trials=2, seed=3)
    text = text.replace("[simulation]", "[model]\nw_syn_mv = 0.3\n[simulation]")
    text += '[output]\ndir = "plain"\n'
    plain = run_config(load_config(write_config(tmp_path, text, "plain.toml")), log=lambda *a: None)
    ps = pq.read_table(plain / "spikes.parquet").to_pandas()
    mine = spikes[spikes.condition == 1][["trial", "t_ms", "neuron_id"]].reset_index(drop=True)
    theirs = ps[["trial", "t_ms", "neuron_id"]].reset_index(drop=True)
    assert len(mine) > 0
    assert np.array_equal(mine.to_numpy(), theirs.to_numpy())


def test_sweep_refuses_unknown_or_impossible_values(tmp_path, own_cache):
    with pytest.raises(ConfigError, match="'v_thresh' is not a numeric parameter of the lif"):
        _run(tmp_path, name="v_thresh", out="a")
    with pytest.raises(ConfigError, match="tau_m_ms"):
        _run(tmp_path, name="tau_m_ms", values="[20.0, -1.0]", out="b")
    with pytest.raises(ConfigError, match="values: a value is listed twice"):
        _run(tmp_path, values="[0.2, 0.2]", out="c")
