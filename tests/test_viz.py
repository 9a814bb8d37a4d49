"""``brainsim.viz``: PNG plots drawn from a results folder's tables alone.

Folders of every experiment kind are written by hand here (no simulation), so these tests
pin the table format the plots read. ``BRAINSIM_VIZ_EXAMPLES=DIR`` also copies one example
of each plot to DIR for looking at.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from brainsim.viz import (
    Results,
    make_plots,
    plot_grid,
    plot_rate_curve,
    plot_silencing,
    rate_curve_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BASE_ID = 720575940600000000  # FlyWire-sized ids: must not pass through float64
DURATION_MS = 500.0
N_TRIALS = 3
TYPES = ["sugar_GRN", "sugar_GRN", "Gr64f", "MN9", "aPhM3", "Rph", "FMIn", "G2N-1", "IPC"]

EXPECTED = {
    "run": {"raster.png"},
    "activation_sweep": {"raster.png", "rate_curve.png"},
    "silencing_screen": {"raster.png", "silencing.png"},
    "pairwise_grid": {"raster.png", "grid.png"},
    "perturbation_map": {"raster.png", "perturbation_map.png"},
}


def _ids(n):
    return BASE_ID + np.arange(n, dtype=np.int64) * 7919


def _write(path: Path, cols: dict, schema: dict | None = None):
    arrays = {k: pa.array(v, type=(schema or {}).get(k)) for k, v in cols.items()}
    pq.write_table(pa.table(arrays), path)


def _conditions(kind, n_neurons):
    """Condition table columns and, per condition, a gain on every neuron's rate."""
    ids = _ids(n_neurons)
    if kind == "activation_sweep":
        rates = [0.0, 25.0, 50.0, 100.0, 150.0, 200.0]
        return {
            "label": [f"drive {r:g} Hz" for r in rates],
            "rate_hz": rates,
        }, [r / 200 for r in rates]
    if kind == "silencing_screen":
        silenced = [-1, *ids[4:n_neurons].tolist()]
        return {
            "label": ["control"] + [f"silence {i}" for i in silenced[1:]],
            "silenced_id": silenced,
            "is_control": [True] + [False] * (len(silenced) - 1),
        }, [1.0] * len(silenced)
    if kind == "pairwise_grid":
        a, b = np.meshgrid([0.0, 50.0, 100.0, 150.0], [0.0, 40.0, 80.0], indexing="ij")
        return {
            "label": [f"A {x:g} Hz, B {y:g} Hz" for x, y in zip(a.ravel(), b.ravel(), strict=True)],
            "rate_a_hz": a.ravel(),
            "rate_b_hz": b.ravel(),
        }, list((a.ravel() + b.ravel()) / 300)
    if kind == "perturbation_map":
        driven = [-1, *ids[:5].tolist()]
        labels = ["baseline"] + [f"drive {t}" for t in TYPES[:5]]
        return {"label": labels, "driven_label": labels, "driven_id": driven}, [
            0.2,
            *[1.0] * 5,
        ]
    return {"label": ["run"]}, [1.0]


def make_results(
    root: Path, kind: str, *, n_neurons=60, empty_spikes=False, readouts=True, seed=0
) -> Path:
    """A results folder of ``kind`` as the experiment runner writes it."""
    rng = np.random.default_rng(seed)
    d = root / kind
    d.mkdir(parents=True)
    ids = _ids(n_neurons)
    readout_ids = ids[3:5] if readouts else ids[:0]
    cond_cols, gains = _conditions(kind, n_neurons)
    n_cond = len(gains)
    manifest = {
        "experiment": {"kind": kind, "drive": {"cell_type": "sugar_GRN"}},
        "readout_ids": [int(i) for i in readout_ids],
        "duration_ms": DURATION_MS,
        "dt_ms": 0.1,
        "trials_per_condition": N_TRIALS,
    }
    if kind == "silencing_screen":
        manifest["required_fraction"] = 0.8
    if kind == "pairwise_grid":
        manifest |= {"drive_a_label": "sugar GRNs", "drive_b_label": "water GRNs"}
    (d / "manifest.json").write_text(json.dumps(manifest))
    _write(
        d / "conditions.parquet",
        {"condition": np.arange(n_cond), **cond_cols},
        {"condition": pa.int32(), "silenced_id": pa.int64(), "driven_id": pa.int64()},
    )
    # neurons: known cell types for some (two share a type), bare ids for the rest
    names = [TYPES[i] if i < len(TYPES) else str(ids[i]) for i in range(n_neurons)]
    _write(d / "neurons.parquet", {"neuron_id": ids, "name": names})
    # spikes: Poisson trains, base rate falling with the index, scaled per condition
    base = 120.0 * np.exp(-np.arange(n_neurons) / 15.0)
    rows = {"condition": [], "trial": [], "t_ms": [], "neuron_id": []}
    counts = np.zeros((n_cond, N_TRIALS, n_neurons))
    for c, g in enumerate(gains):
        for tr in range(N_TRIALS):
            for k in range(n_neurons):
                n = 0 if empty_spikes else rng.poisson(base[k] * g * DURATION_MS / 1000)
                rows["condition"] += [c] * n
                rows["trial"] += [tr] * n
                rows["t_ms"] += np.sort(rng.uniform(0, DURATION_MS, n)).round(1).tolist()
                rows["neuron_id"] += [ids[k]] * n
                counts[c, tr, k] = n
    _write(
        d / "spikes.parquet",
        rows,
        {
            "condition": pa.int32(),
            "trial": pa.int32(),
            "t_ms": pa.float64(),
            "neuron_id": pa.int64(),
        },
    )
    hz = counts / (DURATION_MS / 1000)
    mean, std = hz.mean(1), hz.std(1, ddof=1)
    sem = std / np.sqrt(N_TRIALS)
    c_idx, n_idx = np.nonzero(counts.sum(1) > 0)
    _write(
        d / "rates.parquet",
        {
            "condition": c_idx,
            "neuron_id": ids[n_idx],
            "rate_hz": mean[c_idx, n_idx],
            "rate_hz_std": std[c_idx, n_idx],
            "rate_hz_sem": sem[c_idx, n_idx],
            "n_spikes": counts.sum(1)[c_idx, n_idx].astype(np.int64),
        },
        {"condition": pa.int32(), "neuron_id": pa.int64()},
    )
    summary = _summary(kind, cond_cols, ids, readout_ids, mean, sem, rng)
    if summary is not None:
        _write(d / "summary.parquet", *summary)
    return d


def _summary(kind, cond_cols, ids, readout_ids, mean, sem, rng):
    i64 = {
        "condition": pa.int32(),
        "neuron_id": pa.int64(),
        "silenced_id": pa.int64(),
        "driven_id": pa.int64(),
    }
    r_idx = np.searchsorted(ids, readout_ids)
    readout = mean[:, r_idx].mean(1) if r_idx.size else np.zeros(mean.shape[0])
    n_cond = mean.shape[0]
    if kind == "activation_sweep":
        c, k = np.meshgrid(np.arange(n_cond), r_idx, indexing="ij")
        c, k = c.ravel(), k.ravel()
        return {
            "condition": c,
            "rate_hz": np.asarray(cond_cols["rate_hz"])[c],
            "neuron_id": ids[k],
            "readout_rate_hz": mean[c, k],
            "readout_rate_hz_std": sem[c, k] * np.sqrt(N_TRIALS),
            "readout_rate_hz_sem": sem[c, k],
        }, i64
    if kind == "silencing_screen":
        frac = rng.uniform(0.0, 1.3, n_cond)
        frac[0] = 1.0
        control = np.full(n_cond, readout[0])
        return {
            "condition": np.arange(n_cond),
            "silenced_id": cond_cols["silenced_id"],
            "readout_rate_hz": frac * control,
            "readout_rate_hz_sem": 0.05 * frac * control,
            "control_rate_hz": control,
            "fraction_of_control": frac,
            "required": frac < 0.8,
        }, i64
    if kind == "pairwise_grid":
        a, b = np.asarray(cond_cols["rate_a_hz"]), np.asarray(cond_cols["rate_b_hz"])
        rate = np.where((a > 0) & (b > 0), 0.1 * a * b / 40, 0.0)  # needs both drives
        return {
            "condition": np.arange(n_cond),
            "rate_a_hz": a,
            "rate_b_hz": b,
            "readout_rate_hz": rate,
            "readout_rate_hz_sem": 0.1 * rate,
        }, i64
    if kind == "perturbation_map":
        rows = {
            "driven_label": [],
            "driven_id": [],
            "neuron_id": [],
            "rate_hz": [],
            "baseline_rate_hz": [],
            "delta_hz": [],
        }
        for c in range(1, n_cond):
            resp = np.nonzero((mean[c] > 0) | (mean[0] > 0))[0]
            delta = mean[c, resp] - mean[0, resp] + rng.normal(0, 5, resp.size)
            rows["driven_label"] += [cond_cols["driven_label"][c]] * resp.size
            rows["driven_id"] += [cond_cols["driven_id"][c]] * resp.size
            rows["neuron_id"] += ids[resp].tolist()
            rows["rate_hz"] += (mean[0, resp] + delta).tolist()
            rows["baseline_rate_hz"] += mean[0, resp].tolist()
            rows["delta_hz"] += delta.tolist()
        return rows, i64
    return None


def check_png(path: Path):
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300, img.shape
    assert float(img[..., :3].std()) > 0, f"{path} is blank"
    return img


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_make_plots_each_kind(tmp_path, kind):
    d = make_results(tmp_path, kind)
    written = make_plots(d)
    assert {p.name for p in written} == EXPECTED[kind]
    for p in written:
        assert p.parent == d
        check_png(p)
    assert not list(d.glob(".*.tmp"))
    if out := os.environ.get("BRAINSIM_VIZ_EXAMPLES"):
        Path(out).mkdir(parents=True, exist_ok=True)
        for p in written:
            shutil.copy(p, Path(out) / f"{kind}__{p.name}")


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_zero_spikes_still_plots(tmp_path, kind):
    d = make_results(tmp_path, kind, empty_spikes=True)
    written = make_plots(d, log=lambda m: None)
    assert "raster.png" in {p.name for p in written}
    for p in written:
        check_png(p)


def test_rerun_overwrites(tmp_path):
    d = make_results(tmp_path, "run")
    (first,) = make_plots(d)
    first.write_bytes(b"stale")
    (again,) = make_plots(d)
    assert again == first
    check_png(again)


def test_missing_summary_is_skipped_with_message(tmp_path):
    d = make_results(tmp_path, "silencing_screen")
    (d / "summary.parquet").unlink()
    messages = []
    written = make_plots(d, log=messages.append)
    assert [p.name for p in written] == ["raster.png"]
    assert any("silencing.png" in m and "summary.parquet is missing" in m for m in messages)
    assert plot_silencing(d, log=messages.append) is None


def test_empty_summary_is_skipped(tmp_path):
    d = make_results(tmp_path, "pairwise_grid")
    t = pq.read_table(d / "summary.parquet")
    pq.write_table(t.slice(0, 0), d / "summary.parquet")
    messages = []
    assert plot_grid(d, log=messages.append) is None
    assert messages and "empty" in messages[0]


def test_missing_spikes_is_skipped(tmp_path):
    d = make_results(tmp_path, "activation_sweep")
    (d / "spikes.parquet").unlink()
    messages = []
    written = make_plots(d, log=messages.append)
    assert [p.name for p in written] == ["rate_curve.png"]
    assert any("raster.png" in m for m in messages)


def test_sweep_without_readouts_uses_top_responders(tmp_path):
    d = make_results(tmp_path, "activation_sweep", readouts=False)
    fig = rate_curve_figure(Results(d))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 5
    assert labels[0].startswith("sugar_GRN")  # the top responder, named
    assert "top 5" in ax.get_title()
    assert ax.get_xlabel() == "drive rate of sugar_GRN (Hz)"  # the manifest's drive selector
    check_png(plot_rate_curve(d, tmp_path / "curve.png"))


def test_names_from_neurons_table(tmp_path):
    d = make_results(tmp_path, "run")
    res = Results(d)
    ids = _ids(12)
    names = res.names(ids[[0, 1, 3, 11]])
    # two neurons share a type: the id's last digits tell them apart; unnamed: the id
    assert names[0] != names[1] and names[0].startswith("sugar_GRN (")
    assert names[2] == "MN9"
    assert names[3] == str(ids[11])
    assert res.names([BASE_ID - 1]) == [str(BASE_ID - 1)]  # not in the table


def test_raster_condition_per_kind(tmp_path):
    picks = {kind: Results(make_results(tmp_path, kind)).raster_condition() for kind in EXPECTED}
    assert picks["activation_sweep"] == 5  # highest drive
    assert picks["silencing_screen"] == 0  # the control
    assert picks["pairwise_grid"] == 11  # rate_a max, rate_b max
    assert picks["perturbation_map"] == 1  # first driven
    assert picks["run"] == 0


def test_raster_caps_rows(tmp_path):
    d = make_results(tmp_path, "run", n_neurons=300)
    from brainsim.viz import raster_figure

    fig = raster_figure(Results(d))
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == 2 + 40  # readouts, then the top 40
    assert "of" in ax.get_title() and "shown" in ax.get_title()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:2] == ["MN9", "aPhM3"]


def test_legacy_run_folder(tmp_path):
    """A run folder from before conditions: no condition column, no manifest experiment."""
    d = tmp_path / "old"
    d.mkdir()
    (d / "manifest.json").write_text(
        json.dumps({"config": {"simulation": {"duration_ms": 200.0}}, "duration_ms": 200.0})
    )
    _write(
        d / "spikes.parquet",
        {"trial": [0, 0, 1], "t_ms": [1.0, 5.0, 7.0], "neuron_id": [BASE_ID, BASE_ID + 1, BASE_ID]},
        {"trial": pa.int32(), "neuron_id": pa.int64()},
    )
    (p,) = make_plots(d)
    check_png(p)


def test_no_jax_import():
    code = "import sys, brainsim.viz; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_perturbation_rows_keep_driven_neurons_that_share_a_label(tmp_path):
    from brainsim.viz import perturbation_map_figure

    d = make_results(tmp_path, "perturbation_map")
    ax = perturbation_map_figure(Results(d)).axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    # five driven conditions, two of them "drive sugar_GRN": told apart by id, baseline out
    assert len(rows) == 5 and len(set(rows)) == 5
    assert rows[0].startswith("drive sugar_GRN (") and rows[2] == "drive Gr64f"
    assert "baseline" not in rows


def test_silencing_with_silent_control(tmp_path):
    d = make_results(tmp_path, "silencing_screen", empty_spikes=True)
    t = pq.read_table(d / "summary.parquet").to_pydict()
    t["fraction_of_control"] = [float("nan")] * len(t["condition"])
    t["required"] = [False] * len(t["condition"])
    pq.write_table(pa.table(t), d / "summary.parquet")
    check_png(plot_silencing(d))


def test_perturbation_rows_labelled_by_bare_id_get_the_name(tmp_path):
    from brainsim.viz import perturbation_map_figure

    d = make_results(tmp_path, "perturbation_map")
    gr64f = int(_ids(3)[2])
    for name in ("summary", "conditions"):
        t = pq.read_table(d / f"{name}.parquet")
        labels = [
            str(i) if i == gr64f else lab
            for lab, i in zip(
                t["driven_label"].to_pylist(), t["driven_id"].to_pylist(), strict=True
            )
        ]
        t = t.set_column(t.schema.get_field_index("driven_label"), "driven_label", pa.array(labels))
        pq.write_table(t, d / f"{name}.parquet")
    ax = perturbation_map_figure(Results(d)).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][2] == "Gr64f"
