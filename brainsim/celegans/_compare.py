"""Score a model's perturbation map against the measured signal-propagation atlas.

Input: the results folder of a graded ``perturbation_map`` run (``brainsim run``):

- ``summary.parquet``: ``driven_label`` (str), ``driven_id`` (int64 neuron id; -1 for a
  group), ``neuron_id`` (int64 responder id), ``response`` (float64, mV: the signed peak
  change of the responder's voltage from the baseline condition in a window after stimulus
  onset). A spiking run's summary has no ``response`` column and is refused.
- ``neurons.parquet``: ``neuron_id`` and ``name`` (the cect name for C. elegans) of every
  neuron id in the summary.
- ``manifest.json``: its ``connectome`` entry (summary and provenance of the connectome
  the run used) is copied into ``scores.json``.

Join: by name. A summary row (driven neuron d, responder r) is the model's value for the
atlas pair (stimulated = name of d, responder = name of r); atlas names missing from the
run are looked up in :data:`brainsim.celegans.NAME_MAP` (counted: ``names_mapped``). Group
rows (``driven_id`` = -1) are not single-neuron stimulations and are skipped (counted).
Scored: the atlas's significant pairs (``pairs="significant"``, the only choice: 0 in the
atlas also means "not measured", so it is not a measured zero) whose stimulated neuron was
driven in the run, self pairs excluded; ``stimulated`` restricts them further to the named
stimulated neurons (a held-out set). Every atlas pair left out is counted under one rule,
checked in this order:

- ``self_pairs_excluded``: stimulated = responder (the atlas has none; kept as a check);
- ``pairs_not_in_stimulated_list``: the stimulated neuron is not in ``stimulated``;
- ``pairs_not_simulated``: the stimulated neuron was not driven in the run (or is not in its
  connectome);
- ``pairs_responder_not_recorded``: driven, but the summary has no row for the responder.

So ``atlas_pairs`` = ``n_pairs`` + the four. Scores over the n pairs: Pearson r, Spearman r
(Pearson r of the ranks, ties given their average rank; numpy only) and sign agreement, the
fraction of pairs with sign(model) = sign(measured). Measured amplitudes are never 0; a
model response of exactly 0 has no sign and counts as a disagreement (how many:
``model_responses_zero``). A correlation is undefined (``None``) when either side is
constant; fewer than 3 pairs is an error.

Output (default ``<results_dir>/atlas/``, written atomically, recorded in the results
folder's marker): ``pairs.parquet`` (``stimulated``, ``responder``, ``stimulated_id``,
``responder_id``, ``model_response`` (mV), ``measured_amplitude`` (dF/F)), ``scores.json``,
``scatter.png`` and ``heatmaps.png``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from brainsim.celegans._atlas import AtlasError, read_atlas, resolve_names

PAIR_CHOICES = ("significant",)
SUMMARY_COLUMNS = ("driven_label", "driven_id", "neuron_id", "response")
_HINT = "compare-atlas needs the results folder of a graded perturbation_map run"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Model against atlas over the scored pairs.

    Attributes:
        pairs: pyarrow table of the scored pairs (columns in the module docstring).
        scores: ``n_pairs``, ``pearson_r``, ``spearman_r``, ``sign_agreement`` (floats or
            None where undefined).
        counts: the counted rules (module docstring).
        out_dir: the folder written.
    """

    pairs: pa.Table
    scores: dict
    counts: dict[str, int]
    out_dir: Path


def compare(
    results_dir: str | Path,
    atlas_source: str = "Randi2023",
    *,
    pairs: str = "significant",
    stimulated: Sequence[str] | None = None,
    out: str | Path | None = None,
) -> Comparison:
    """Score the perturbation map in ``results_dir`` against the atlas ``atlas_source``.

    Args:
        results_dir: results folder of a graded ``perturbation_map`` run.
        atlas_source: ``"Randi2023"``.
        pairs: ``"significant"``: the atlas's pairs with q < 0.05.
        stimulated: names of stimulated neurons to score (default: all driven in the run);
            each must be a stimulated neuron of the atlas.
        out: output folder (default ``<results_dir>/atlas``).
    """
    from brainsim.io import add_to_marker, atomic_dir, output_lock, write_json, write_table
    from brainsim.viz._atlas import plot_atlas_heatmaps, plot_atlas_scatter

    if pairs not in PAIR_CHOICES:
        raise AtlasError(f"pairs={pairs!r}; choose among {', '.join(PAIR_CHOICES)}")
    folder = Path(results_dir)
    manifest = _manifest(folder)
    model, id_name, counts = _model_responses(folder)
    atlas = read_atlas(None, atlas_source)
    counts = {
        "atlas_pairs": atlas.counts["atlas_pairs"],
        **counts,
        "names_mapped": 0,
        "awc_on_off_read_as_left_right": 0,
    }
    t = atlas.table
    stim_names = t.column("stimulated").to_pylist()
    resp_names = t.column("responder").to_pylist()
    amplitude = t.column("amplitude").to_numpy()
    atlas_names = sorted(set(stim_names) | set(resp_names))
    run_names = set(id_name.values())
    to_run = resolve_names(atlas_names, run_names, counts, where=str(folder / "neurons.parquet"))
    name_id = {v: k for k, v in id_name.items()}
    driven = {d for d, _ in model}
    chosen = _chosen(stimulated, atlas.stimulated, atlas_source)
    driven_in_atlas = sorted(
        s for s in atlas.stimulated if to_run[s] is not None and name_id[to_run[s]] in driven
    )
    if not driven_in_atlas:
        shown = ", ".join(sorted(id_name[d] for d in driven)[:8]) or "none"
        raise AtlasError(
            f"{folder / 'summary.parquet'}: no driven neuron is a stimulated neuron of the "
            f"atlas {atlas_source} (driven: {shown}{', ...' if len(driven) > 8 else ''})"
        )
    rules = dict.fromkeys(
        (
            "self_pairs_excluded",
            "pairs_not_in_stimulated_list",
            "pairs_not_simulated",
            "pairs_responder_not_recorded",
        ),
        0,
    )
    rows = []
    for k, (s, r) in enumerate(zip(stim_names, resp_names, strict=True)):
        s_run, r_run = to_run[s], to_run[r]
        if s == r:
            rules["self_pairs_excluded"] += 1
        elif chosen is not None and s not in chosen:
            rules["pairs_not_in_stimulated_list"] += 1
        elif s_run is None or name_id[s_run] not in driven:
            rules["pairs_not_simulated"] += 1
        elif r_run is None or (name_id[s_run], name_id[r_run]) not in model:
            rules["pairs_responder_not_recorded"] += 1
        else:
            d, n = name_id[s_run], name_id[r_run]
            rows.append((s, r, d, n, model[d, n], float(amplitude[k])))
    counts.update(rules)
    counts["driven_neurons_in_atlas"] = len(driven_in_atlas)
    if len(rows) < 3:
        raise AtlasError(
            f"{folder}: {len(rows)} atlas pair(s) to score, fewer than 3 (correlation "
            f"undefined); counts: {json.dumps(counts)}"
        )
    table = pa.table(
        {
            "stimulated": pa.array([x[0] for x in rows], pa.string()),
            "responder": pa.array([x[1] for x in rows], pa.string()),
            "stimulated_id": pa.array([x[2] for x in rows], pa.int64()),
            "responder_id": pa.array([x[3] for x in rows], pa.int64()),
            "model_response": pa.array([x[4] for x in rows], pa.float64()),
            "measured_amplitude": pa.array([x[5] for x in rows], pa.float64()),
        }
    )
    m = table.column("model_response").to_numpy()
    a = table.column("measured_amplitude").to_numpy()
    counts["model_responses_zero"] = int((m == 0).sum())
    scores = score(m, a)
    connectome = manifest.get("connectome") or {}
    report = {
        **scores,
        "counts": counts,
        "atlas": {
            "source": atlas_source,
            "source_file": str(atlas.source_file),
            "pairs": pairs,
            "q_max": float(t.column("q_max")[0].as_py()) if t.num_rows else None,
        },
        "results_dir": str(folder.resolve()),
        "connectome": {
            "checksum": connectome.get("checksum"),
            "format": connectome.get("format"),
            "options": (connectome.get("provenance") or {}).get("options"),
        },
        "stimulated_requested": sorted(chosen) if chosen is not None else None,
        "stimulated_scored": sorted(set(table.column("stimulated").to_pylist())),
        "units": {"model_response": "mV", "measured_amplitude": "dF/F"},
    }
    dest = Path(out) if out is not None else folder / "atlas"
    with output_lock(dest), atomic_dir(dest) as tmp:
        write_table(table, tmp / "pairs.parquet")
        write_json(report, tmp / "scores.json")
        plot_atlas_scatter(table, scores, tmp / "scatter.png", source=atlas_source)
        plot_atlas_heatmaps(table, tmp / "heatmaps.png", source=atlas_source)
    if dest.resolve().parent == folder.resolve():
        add_to_marker(folder, [dest.name])  # (the results folder stays replaceable)
    return Comparison(table, scores, counts, dest)


def score(model: np.ndarray, measured: np.ndarray) -> dict:
    """The scores of model responses against measured amplitudes, pair by pair:
    ``n_pairs``, ``pearson_r``, ``spearman_r``, ``sign_agreement`` (a zero model response
    disagrees), and two figures that say what sign agreement is worth: ``measured_positive``
    (the fraction of measured amplitudes > 0: what a model that predicts excitation
    everywhere scores) and ``balanced_sign_agreement`` (the mean of the agreement over the
    measured-positive pairs and over the measured-negative ones: 0.5 for any model that
    predicts one sign everywhere; None without pairs of both signs)."""
    m, a = np.asarray(model, np.float64), np.asarray(measured, np.float64)
    agree = np.sign(m) == np.sign(a)
    pos, neg = a > 0, a < 0
    return {
        "n_pairs": int(m.size),
        "pearson_r": _pearson(m, a),
        "spearman_r": spearman(m, a),
        "sign_agreement": float(np.mean(agree)) if m.size else None,
        "measured_positive": float(np.mean(pos)) if m.size else None,
        "balanced_sign_agreement": (
            float((agree[pos].mean() + agree[neg].mean()) / 2) if pos.any() and neg.any() else None
        ),
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's r: Pearson r of the ranks, tied values given their average rank."""
    return _pearson(_ranks(x), _ranks(y))


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks; a run of tied values gets the mean of the ranks it spans."""
    _, inverse, n = np.unique(np.asarray(x, np.float64), return_inverse=True, return_counts=True)
    last = np.cumsum(n)
    return (last - (n - 1) / 2.0)[inverse.reshape(-1)]


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    x = np.asarray(x, np.float64) - np.mean(x)
    y = np.asarray(y, np.float64) - np.mean(y)
    den = np.sqrt(np.dot(x, x) * np.dot(y, y))
    if den == 0:
        return None  # one side constant
    return float(np.clip(np.dot(x, y) / den, -1.0, 1.0))


def _chosen(stimulated, atlas_stimulated, source: str) -> set[str] | None:
    if stimulated is None:
        return None
    names = [stimulated] if isinstance(stimulated, str) else list(stimulated)
    unknown = sorted(set(names) - set(atlas_stimulated))
    if unknown:
        raise AtlasError(
            f"stimulated: {', '.join(unknown)} not a stimulated neuron of the atlas {source} "
            f"({len(atlas_stimulated)} neurons, e.g. {', '.join(atlas_stimulated[:5])})"
        )
    return set(names)


def _manifest(folder: Path) -> dict:
    if not folder.is_dir():
        raise AtlasError(f"{folder}: not a folder; {_HINT}")
    for name in ("summary.parquet", "neurons.parquet", "manifest.json"):
        if not (folder / name).is_file():
            raise AtlasError(f"{folder}: no {name}; {_HINT}")
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AtlasError(f"{path}: cannot be read as JSON ({e})") from None
    kind = (manifest.get("experiment") or {}).get("kind")
    if kind is not None and kind != "perturbation_map":
        raise AtlasError(f"{path}: experiment kind {kind!r}; {_HINT}")
    return manifest


def _model_responses(folder: Path):
    """{(driven id, responder id): response} of the single-neuron conditions, id -> name,
    and the counts of what was read."""
    path = folder / "summary.parquet"
    s = pq.read_table(path)
    missing = [c for c in SUMMARY_COLUMNS if c not in s.column_names]
    if missing:
        extra = " (a spiking run: it has delta_hz)" if "delta_hz" in s.column_names else ""
        raise AtlasError(
            f"{path}: no column {', '.join(repr(c) for c in missing)}{extra}; {_HINT} "
            f"(columns: {', '.join(s.column_names)})"
        )
    driven = s.column("driven_id").to_numpy(zero_copy_only=False).astype(np.int64)
    resp = s.column("neuron_id").to_numpy(zero_copy_only=False).astype(np.int64)
    value = s.column("response").to_numpy(zero_copy_only=False).astype(np.float64)
    if not np.isfinite(value).all():
        k = int(np.flatnonzero(~np.isfinite(value))[0])
        raise AtlasError(f"{path}: row {k}: response {value[k]!r} is not finite")
    npath = folder / "neurons.parquet"
    nt = pq.read_table(npath)
    for c in ("neuron_id", "name"):
        if c not in nt.column_names:
            raise AtlasError(f"{npath}: no column {c!r} (columns: {', '.join(nt.column_names)})")
    id_name: dict[int, str] = {}
    for i, name in zip(
        nt.column("neuron_id").to_pylist(), nt.column("name").to_pylist(), strict=True
    ):
        if name in id_name.values():
            other = next(k for k, v in id_name.items() if v == name)
            raise AtlasError(f"{npath}: neurons {other} and {i} are both named {name!r}")
        id_name[int(i)] = str(name)
    group = driven == -1
    for what, ids in (("driven_id", driven[~group]), ("neuron_id", resp)):
        unknown = sorted(set(ids.tolist()) - id_name.keys())
        if unknown:
            raise AtlasError(f"{path}: {what} {unknown[0]} is not in {npath.name}")
    model: dict[tuple[int, int], float] = {}
    for d, n, v in zip(driven[~group], resp[~group], value[~group], strict=True):
        key = (int(d), int(n))
        if key in model:
            raise AtlasError(
                f"{path}: two rows for driven {id_name[key[0]]} ({key[0]}), responder "
                f"{id_name[key[1]]} ({key[1]}); one response per pair expected"
            )
        model[key] = float(v)
    counts = {
        "summary_rows": int(s.num_rows),
        "group_rows_skipped": int(group.sum()),
        "driven_neurons": len({d for d, _ in model}),
    }
    return model, id_name, counts
