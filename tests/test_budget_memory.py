"""Kernel budgets remembered between runs of one job: a repeated run needs no budget
re-runs, and what is remembered never changes an answer."""

import json

import pyarrow.parquet as pq
import pytest
from conftest import run_config_text, write_config

from brainsim import cli

pytestmark = pytest.mark.usefixtures("own_cache")


def run(cfg, out):
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    return pq.read_table(out / "spikes.parquet"), man["kernel"][0]


def test_a_repeated_run_starts_from_the_remembered_budgets(tmp_path, own_cache):
    cfg = write_config(tmp_path, run_config_text(duration_ms=200.0, trials=4))
    first, k1 = run(cfg, tmp_path / "a")
    # the first run starts from the predicted budgets (enough for this sugar-like drive) and
    # remembers what it needed (plus 10% headroom): less than it used of at least one of the
    # lists the native kernel sizes (active neurons and events have no limit there)
    assert k1["kernel"] == "windowed" and not k1["budgets_remembered"] and k1["reruns"] == 0
    sized = ("stepped", "spikes", "awake")
    assert any(k1["budgets"][f] < k1["budgets_used"][f] for f in sized), k1
    again, k2 = run(cfg, tmp_path / "b")
    assert k2["budgets_remembered"] and k2["reruns"] == 0
    assert again.equals(first)
    # another seed is the same job (same activity statistics): the budgets serve it too
    other = write_config(tmp_path, run_config_text(duration_ms=200.0, trials=4, seed=7), "o.toml")
    _, k3 = run(other, tmp_path / "c")
    assert k3["budgets_remembered"]
    # too small or damaged remembered sizes grow again or are ignored: same spikes
    (files,) = [list((own_cache / "budgets").glob("*.json"))]
    for f in files:
        f.write_text(json.dumps(dict.fromkeys(json.loads(f.read_text()), 1)))
    small, k4 = run(cfg, tmp_path / "d")
    assert k4["budgets_remembered"] and k4["reruns"] > 0 and small.equals(first)
    for f in files:
        f.write_text("{not json")
    broken, k5 = run(cfg, tmp_path / "e")
    assert not k5["budgets_remembered"] and broken.equals(first)
