"""Plots of a model-versus-atlas comparison (``brainsim compare-atlas``), from its pairs table.

The table is ``pairs.parquet`` of :func:`brainsim.celegans.compare` (``stimulated``,
``responder``, ``model_response`` in mV, ``measured_amplitude`` in dF/F). Figures are
``matplotlib.figure.Figure`` objects (Agg canvas), as in ``_plots``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from brainsim.viz._plots import _save

HEATMAP_MAX_LABELS = 80  # tick labels beyond this are thinned out


def _fmt(r) -> str:
    return "undefined" if r is None else f"{r:.3f}"


def atlas_scatter_figure(pairs: pa.Table, scores: dict, *, source: str = "atlas") -> Figure:
    """Model response against measured amplitude, one point per scored pair."""
    m = pairs.column("model_response").to_numpy()
    a = pairs.column("measured_amplitude").to_numpy()
    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.axhline(0, color="0.7", lw=0.8, zorder=0)
    ax.axvline(0, color="0.7", lw=0.8, zorder=0)
    ax.scatter(a, m, s=10, alpha=0.6, color="tab:blue", edgecolors="none")
    ax.set_xlabel(f"measured amplitude ({source}), dF/F")
    ax.set_ylabel("model response, mV")
    ax.set_title(
        f"n = {scores['n_pairs']} pairs, Pearson r = {_fmt(scores['pearson_r'])}, "
        f"Spearman r = {_fmt(scores['spearman_r'])}\nsign agreement "
        f"{scores['sign_agreement']:.3f}",
        fontsize=10,
    )
    return fig


def atlas_heatmaps_figure(pairs: pa.Table, *, source: str = "atlas") -> Figure:
    """Measured and model side by side: rows stimulated, columns responders, both in one
    name order; pairs not scored in grey; each colour scale symmetric about 0."""
    stim = pairs.column("stimulated").to_pylist()
    resp = pairs.column("responder").to_pylist()
    order = sorted(set(stim) | set(resp))
    rows = [n for n in order if n in set(stim)]
    cols = [n for n in order if n in set(resp)]
    ri = {n: k for k, n in enumerate(rows)}
    ci = {n: k for k, n in enumerate(cols)}
    r = np.array([ri[n] for n in stim], np.int64)
    c = np.array([ci[n] for n in resp], np.int64)
    panels = (
        (f"measured ({source}), dF/F", pairs.column("measured_amplitude").to_numpy()),
        ("model, mV", pairs.column("model_response").to_numpy()),
    )
    nr, nc = len(rows), len(cols)
    fig = Figure(
        figsize=(min(30.0, 4.0 + 0.07 * 2 * nc), min(20.0, 3.0 + 0.07 * nr)),
        layout="constrained",
    )
    cmap = colormaps["RdBu_r"].with_extremes(bad="0.85")
    for k, (title, values) in enumerate(panels):
        ax = fig.add_subplot(1, 2, k + 1)
        z = np.full((nr, nc), np.nan)
        z[r, c] = values
        vmax = float(np.nanmax(np.abs(values))) if values.size else 0.0
        vmax = vmax if vmax > 0 else 1.0
        im = ax.imshow(
            z,
            aspect="auto",
            cmap=cmap,
            norm=TwoSlopeNorm(0.0, -vmax, vmax),
            interpolation="nearest",
        )
        _ticks(ax.set_xticks, cols, rotation=90)
        _ticks(ax.set_yticks, rows)
        ax.set_xlabel("responder")
        ax.set_ylabel("stimulated")
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.6)
    return fig


def _ticks(setter, names: list[str], **kw) -> None:
    step = max(1, int(np.ceil(len(names) / HEATMAP_MAX_LABELS)))
    pos = np.arange(0, len(names), step)
    setter(pos, [names[p] for p in pos], fontsize=5, **kw)


def plot_atlas_scatter(pairs: pa.Table, scores: dict, out: str | Path, *, source="atlas") -> Path:
    return _save(atlas_scatter_figure(pairs, scores, source=source), Path(out))


def plot_atlas_heatmaps(pairs: pa.Table, out: str | Path, *, source="atlas") -> Path:
    return _save(atlas_heatmaps_figure(pairs, source=source), Path(out))
