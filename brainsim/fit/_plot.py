"""The loss curve of a fit (``loss.png``), drawn from ``loss.parquet`` alone.

A ``matplotlib.figure.Figure`` on the Agg canvas: no pyplot, no global state.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from matplotlib.figure import Figure

TERMS = ("rates", "perturbations")
BOOKKEEPING = ("step", "loss", "grad_norm", "wall_s", "regularization", "event_regrowths", *TERMS)


def loss_figure(columns: dict[str, np.ndarray]) -> Figure:
    """Loss and its terms against the optimisation step (log scale); every other column
    (a fitted global value such as ``w_syn_mv``) in a second panel."""
    step = columns["step"]
    tracked = [c for c in columns if c not in BOOKKEEPING]
    fig = Figure(figsize=(8, 6.5 if tracked else 4), layout="constrained")
    axes = fig.subplots(2 if tracked else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    ax.plot(step, np.maximum(columns["loss"], 1e-12), color="0.1", lw=1.6, label="loss")
    for name in TERMS:
        vals = columns.get(name)
        if vals is not None and np.any(vals > 0):
            ax.plot(step, np.maximum(vals, 1e-12), lw=1.0, alpha=0.8, label=f"{name} (Hz²)")
    if "regularization" in columns and np.any(columns["regularization"] > 0):
        ax.plot(step, columns["regularization"], lw=1.0, ls="--", label="regularization")
    ax.set_yscale("log")
    ax.set_ylabel("loss (mean squared rate error, Hz²)")
    ax.set_title("brainsim fit: loss per optimisation step")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    if tracked:
        ax2 = axes[1]
        for name in tracked:
            ax2.plot(step, columns[name], lw=1.4, label=name)
        ax2.set_ylabel("fitted value (units in name)")
        ax2.legend(loc="best", fontsize=8)
        ax2.grid(alpha=0.3)
    axes[-1].set_xlabel("optimisation step")
    return fig


def plot_loss(loss_parquet: str | Path, out: str | Path | None = None) -> Path:
    """Write ``loss.png`` beside ``loss.parquet`` (or to ``out``); returns the path."""
    loss_parquet = Path(loss_parquet)
    table = pq.read_table(loss_parquet)
    cols = {c: table.column(c).to_numpy() for c in table.column_names}
    fig = loss_figure(cols)
    out = Path(out) if out else loss_parquet.with_name("loss.png")
    tmp = out.with_name(f".{out.name}.tmp")
    fig.savefig(tmp, dpi=150, format="png", facecolor="white")
    os.replace(tmp, out)
    return out


def plot_history(history: list[dict], path: Path, ylabel: str, tracked: tuple[str, ...] = ()):
    """A training loop's loss per step (log scale; ``history`` rows with ``step`` and
    ``loss``), and the ``tracked`` columns (e.g. held-out scores) in a second panel where
    rows have them. Nothing is written for an empty history."""
    if not history:
        return
    tracked = tuple(c for c in tracked if any(h.get(c) is not None for h in history))
    fig = Figure(figsize=(6, 5.5 if tracked else 3.2), layout="constrained")
    axes = fig.subplots(2 if tracked else 1, 1, sharex=True, squeeze=False)[:, 0]
    axes[0].plot([h["step"] for h in history], [h["loss"] for h in history], lw=1.2)
    axes[0].set_ylabel(ylabel)
    axes[0].set_yscale("log")
    for c in tracked:
        rows = [h for h in history if h.get(c) is not None]
        axes[1].plot([h["step"] for h in rows], [h[c] for h in rows], marker="o", ms=3, label=c)
    if tracked:
        axes[1].legend(fontsize=8)
        axes[1].grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    fig.savefig(path, dpi=110)
