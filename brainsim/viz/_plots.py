"""PNG plots of a results folder, drawn from its tables alone.

Each ``plot_*`` function takes a results folder (path or :class:`Results`), writes one PNG
into it (or to ``out``) and returns the path, or returns ``None`` and logs why when the
folder lacks what the plot needs. Figures are ``matplotlib.figure.Figure`` objects (Agg
canvas): no pyplot, no global state, safe without a display.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from brainsim.viz._tables import Results, Skip

DPI = 150
RASTER_TOP = 40  # responders shown in the raster after the readouts
RASTER_READOUTS = 20  # readouts shown at most
CURVE_TOP = 5  # responders in the rate curve when there are no readouts
CURVE_MAX_LINES = 10
SILENCING_MAX_BARS = 60
MAP_MAX_COLUMNS = 50
MAP_MAX_ROWS = 60

READOUT_COLOR = "tab:red"
OTHER_COLOR = "0.15"

Log = Callable[[str], None]
_logger = logging.getLogger("brainsim.viz")

KIND_TITLES = {
    "run": "Run",
    "activation_sweep": "Activation sweep",
    "silencing_screen": "Silencing screen",
    "pairwise_grid": "Pairwise drive grid",
    "perturbation_map": "Perturbation map",
    "parameter_sweep": "Parameter sweep",
    "moving_edge": "Moving edges",
    "flash": "Flashes",
}


def _results(results: str | Path | Results) -> Results:
    return results if isinstance(results, Results) else Results(results)


def _save(fig: Figure, path: Path) -> Path:
    """Write atomically: a reader never sees half a PNG."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=DPI, format="png", facecolor="white")
    os.replace(tmp, path)
    return path


def _run_plot(name: str, draw, results, out, log: Log | None) -> Path | None:
    res = _results(results)
    log = log or _logger.warning
    try:
        fig = draw(res)
    except Skip as e:
        log(f"{name}: skipped, {e}")
        return None
    return _save(fig, Path(out) if out is not None else res.dir / name)


def _title(res: Results, what: str) -> str:
    return f"{KIND_TITLES.get(res.kind, res.kind)}: {what}"


def _note(ax: Axes, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=13,
        color="0.35",
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"},
    )


def _fmt_hz(x: float) -> str:
    return f"{x:g}" if float(x).is_integer() else f"{x:.3g}"


# ---------------------------------------------------------------------------------------
# raster
# ---------------------------------------------------------------------------------------
def plot_raster(results, out=None, *, trial: int = 0, log: Log | None = None) -> Path | None:
    """``raster.png``: spikes of one condition and trial. Rows: the readout neurons (red),
    then the top responders by mean rate in that condition, labelled by name; right axis:
    each row's mean rate over trials."""
    return _run_plot("raster.png", lambda r: raster_figure(r, trial=trial), results, out, log)


def raster_figure(res: Results, *, trial: int = 0) -> Figure:
    cond = res.raster_condition()
    spikes = res.spikes(cond, trial)
    t, nid = spikes["t_ms"], spikes["neuron_id"].astype(np.int64)
    rates = res.rates(cond)
    if rates is not None:
        r_ids = rates["neuron_id"].astype(np.int64)
        r_hz = rates["rate_hz"].astype(float)
        rate_note = "mean over trials"
    else:  # no rates table: rank by this trial's spike count
        r_ids, counts = np.unique(nid, return_counts=True)
        dur = res.duration_ms or (float(t.max()) if t.size else 1.0)
        r_hz = counts / (dur / 1000.0)
        rate_note = f"trial {trial}"
    firing = np.union1d(r_ids, np.unique(nid))
    n_firing = firing.size

    readouts = res.readout_ids[:RASTER_READOUTS]
    rest = ~np.isin(r_ids, readouts)
    order = np.argsort(-r_hz[rest], kind="stable")[:RASTER_TOP]
    top = r_ids[rest][order]
    rows = np.concatenate([readouts, top]).astype(np.int64)
    rate_of = dict(zip(r_ids.tolist(), r_hz.tolist(), strict=True))

    n_rows = rows.size
    fig = Figure(figsize=(11, max(3.2, 1.6 + 0.2 * n_rows)), layout="constrained")
    ax = fig.add_subplot()
    cond_label = res.condition_label(cond)
    head = _title(res, "spike raster") + (f" — {cond_label}" if cond_label else "")
    shown_firing = int(np.isin(rows, firing).sum())
    sub = f"trial {trial}; "
    if n_firing == 0:
        sub += "no neuron fired"
    elif shown_firing < n_firing:
        sub += (
            f"{shown_firing} of {n_firing} firing neurons shown"
            f" ({'readouts, then ' if readouts.size else ''}top {RASTER_TOP} by rate)"
        )
    else:
        sub += f"all {n_firing} firing neurons shown"
    ax.set_title(f"{head}\n{sub}", fontsize=11)
    ax.set_xlabel("time (ms)")
    dur = res.duration_ms
    if dur:
        ax.set_xlim(0, dur)
    if n_rows:
        sel = np.isin(nid, rows)
        row_of = {int(i): k for k, i in enumerate(rows)}
        per_row = [[] for _ in range(n_rows)]
        for ti, ni in zip(t[sel].tolist(), nid[sel].tolist(), strict=True):
            per_row[row_of[ni]].append(ti)
        colors = [READOUT_COLOR if k < readouts.size else OTHER_COLOR for k in range(n_rows)]
        ax.eventplot(
            [np.asarray(p) for p in per_row],
            lineoffsets=np.arange(n_rows),
            linelengths=0.8,
            linewidths=0.7,
            colors=colors,
        )
        ax.set_ylim(n_rows - 0.5, -0.5)
        ax.set_yticks(np.arange(n_rows), res.names(rows), fontsize=7 if n_rows > 30 else 8)
        for lab, c in zip(ax.get_yticklabels(), colors, strict=True):
            lab.set_color(c)
        ax.set_ylabel("neuron" + (" (readouts in red)" if readouts.size else ""))
        right = ax.twinx()
        right.set_ylim(ax.get_ylim())
        right.set_yticks(
            np.arange(n_rows),
            [f"{rate_of.get(int(i), 0.0):.1f}" for i in rows],
            fontsize=7 if n_rows > 30 else 8,
        )
        right.set_ylabel(f"firing rate (Hz, {rate_note})")
        for k in range(1, n_rows, 2):
            ax.axhspan(k - 0.5, k + 0.5, color="0.95", zorder=0, lw=0)
        if readouts.size and top.size:
            ax.axhline(readouts.size - 0.5, color=READOUT_COLOR, lw=0.6, ls=":")
    else:
        ax.set_yticks([])
        ax.set_ylabel("neuron")
    if t.size == 0:
        _note(ax, f"no spikes in {cond_label or 'this run'} (trial {trial})")
    return fig


# ---------------------------------------------------------------------------------------
# activation sweep
# ---------------------------------------------------------------------------------------
def plot_rate_curve(results, out=None, *, log: Log | None = None) -> Path | None:
    """``rate_curve.png`` (sweep): readout rate (Hz) against drive rate (Hz), SEM error bars,
    one line per readout (top responders when there are no readouts)."""
    return _run_plot("rate_curve.png", rate_curve_figure, results, out, log)


def _sweep_lines(res: Results):
    """(drive rates, ids, rate matrix [cond, neuron], sem matrix, note)."""
    summary_cols = res.schema("summary") or ()
    if res.readout_ids.size and {"rate_hz", "neuron_id", "readout_rate_hz"} <= set(summary_cols):
        s = res.table("summary")
        drive = np.unique(s["rate_hz"].astype(float))
        ids = np.asarray([i for i in res.readout_ids if i in set(s["neuron_id"].tolist())])
        if ids.size:
            mean = np.zeros((drive.size, ids.size))
            sem = np.zeros_like(mean)
            di = np.searchsorted(drive, s["rate_hz"].astype(float))
            ni = {int(i): k for k, i in enumerate(ids)}
            sem_col = s.get("readout_rate_hz_sem")
            for r in range(s["neuron_id"].size):
                k = ni.get(int(s["neuron_id"][r]))
                if k is None:
                    continue
                mean[di[r], k] = s["readout_rate_hz"][r]
                if sem_col is not None:
                    sem[di[r], k] = sem_col[r]
            return drive, ids, mean, np.nan_to_num(sem), "readout neurons"
    # no summary for readouts: rates.parquet per condition, readouts or top responders
    conds = res.table("conditions", ("condition", "rate_hz"))
    rates = res.table("rates", ("condition", "neuron_id", "rate_hz"))
    drive_of = dict(zip(conds["condition"].tolist(), conds["rate_hz"].astype(float), strict=True))
    drive = np.unique(conds["rate_hz"].astype(float))
    if res.readout_ids.size:
        ids, note = res.readout_ids, "readout neurons"
    else:
        peak: dict[int, float] = {}
        for i, v in zip(rates["neuron_id"].tolist(), rates["rate_hz"].tolist(), strict=True):
            peak[i] = max(peak.get(i, 0.0), v)
        best = sorted(peak, key=lambda i: -peak[i])[:CURVE_TOP]
        ids, note = np.asarray(best, np.int64), f"no readouts: top {CURVE_TOP} responders"
    mean = np.zeros((drive.size, ids.size))
    sem = np.zeros_like(mean)
    ni = {int(i): k for k, i in enumerate(ids)}
    sem_col = rates.get("rate_hz_sem")
    for r in range(rates["neuron_id"].size):
        k = ni.get(int(rates["neuron_id"][r]))
        c = int(rates["condition"][r])
        if k is None or c not in drive_of:
            continue
        d = np.searchsorted(drive, drive_of[c])
        mean[d, k] = rates["rate_hz"][r]
        if sem_col is not None:
            sem[d, k] = sem_col[r]
    return drive, ids, mean, np.nan_to_num(sem), note


def rate_curve_figure(res: Results) -> Figure:
    drive, ids, mean, sem, note = _sweep_lines(res)
    fig = Figure(figsize=(8, 5.2), layout="constrained")
    ax = fig.add_subplot()
    shown = ids[:CURVE_MAX_LINES]
    names = res.names(shown)
    cmap = colormaps["tab10"]
    for k, name in enumerate(names):
        ax.errorbar(
            drive,
            mean[:, k],
            yerr=sem[:, k],
            marker="o",
            ms=4,
            capsize=3,
            lw=1.5,
            color=cmap(k % 10),
            label=name,
        )
    what = "readout rate vs drive rate" if note == "readout neurons" else "rate vs drive rate"
    if ids.size > shown.size:
        note += f"; {shown.size} of {ids.size} shown"
    ax.set_title(f"{_title(res, what)}\n({note}; error bars: SEM over trials)", fontsize=11)
    drive_name = res.drive_label("drive")
    ax.set_xlabel(f"drive rate of {drive_name} (Hz)" if drive_name else "drive rate (Hz)")
    ax.set_ylabel("firing rate (Hz)")
    top = float(np.max(mean[:, : shown.size] + sem[:, : shown.size], initial=0.0))
    top = top * 1.08 if top > 0 else 1.0
    ax.set_ylim(-0.02 * top, top)  # a little below 0: markers at 0 Hz stay whole
    if drive.size:
        lo, hi = min(0.0, float(drive.min())), float(drive.max())
        pad = 0.03 * ((hi - lo) or 1.0)
        ax.set_xlim(lo - pad, hi + pad)
    ax.grid(alpha=0.3)
    if ids.size == 0:
        _note(ax, "no neuron fired in any condition")
    else:
        ax.legend(title="neuron", fontsize=8, title_fontsize=9, loc="upper left")
        if not np.any(mean[:, : shown.size] > 0):
            _note(ax, "no spikes: rate 0 Hz in every condition")
    return fig


# ---------------------------------------------------------------------------------------
# silencing screen
# ---------------------------------------------------------------------------------------
def plot_silencing(results, out=None, *, log: Log | None = None) -> Path | None:
    """``silencing.png`` (screen): readout rate as a fraction of the control per silenced
    neuron, sorted, required neurons highlighted, dashed line at ``required_fraction``."""
    return _run_plot("silencing.png", silencing_figure, results, out, log)


def silencing_figure(res: Results) -> Figure:
    s = res.table("summary", ("silenced_id", "fraction_of_control"))
    keep = s["silenced_id"] != -1
    if "is_control" in s:
        keep &= ~s["is_control"].astype(bool)
    s = {k: v[keep] for k, v in s.items()}
    n = s["silenced_id"].size
    if n == 0:
        raise Skip("summary.parquet has no silenced neurons (only the control)")
    frac = s["fraction_of_control"].astype(float)
    required = s["required"].astype(bool) if "required" in s else np.zeros(n, bool)
    control = s["control_rate_hz"].astype(float) if "control_rate_hz" in s else None
    err = None
    if "readout_rate_hz_sem" in s and control is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.nan_to_num(s["readout_rate_hz_sem"].astype(float) / control)
    order = np.lexsort((np.where(np.isnan(frac), np.inf, frac),))
    order = order[:SILENCING_MAX_BARS]
    m = order.size
    fig = Figure(figsize=(max(7.0, 1.8 + 0.2 * m), 5.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(m)
    colors = [READOUT_COLOR if required[i] else "0.6" for i in order]
    ax.bar(
        x,
        np.nan_to_num(frac[order]),
        color=colors,
        edgecolor="0.3",
        lw=0.4,
        yerr=None if err is None else err[order],
        error_kw={"lw": 0.6, "capsize": 1.5},
    )
    ax.set_xticks(x, res.names(s["silenced_id"][order]), rotation=90, fontsize=7)
    ax.set_xlim(-0.7, m - 0.3)
    ax.axhline(1.0, color="0.4", lw=0.8, ls=":")
    handles = [
        Patch(color=READOUT_COLOR, label="required"),
        Patch(color="0.6", label="not required"),
    ]
    rf = res.meta("required_fraction")
    if rf is not None:
        line = ax.axhline(float(rf), color="k", lw=1.2, ls="--")
        line.set_label(f"required_fraction = {float(rf):g}")
        handles.append(line)
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    ax.set_xlabel("silenced neuron")
    ax.set_ylabel("readout rate / control readout rate (fraction)")
    top = np.nanmax(frac) if np.isfinite(frac).any() else 1.0
    ax.set_ylim(0, max(1.15, float(top) * 1.1, float(rf or 0) * 1.1))
    ctl = ""
    if control is not None and np.isfinite(control).any():
        ctl = f"control readout rate {np.nanmean(control):.3g} Hz; "
    cap = f"{m} of {n} lowest shown; " if m < n else ""
    ax.set_title(
        f"{_title(res, 'readout rate with each neuron silenced')}\n"
        f"({ctl}{cap}{int(required.sum())} required; error bars: SEM / control)",
        fontsize=11,
    )
    ax.grid(axis="y", alpha=0.3)
    if not np.isfinite(frac).any():
        _note(ax, "control readout rate is 0 Hz: fractions undefined")
    return fig


# ---------------------------------------------------------------------------------------
# pairwise grid
# ---------------------------------------------------------------------------------------
def plot_grid(results, out=None, *, log: Log | None = None) -> Path | None:
    """``grid.png`` (grid): heat map of the readout rate (Hz) over drive A x drive B."""
    return _run_plot("grid.png", grid_figure, results, out, log)


def _cell_text_color(cmap, norm, v) -> str:
    r, g, b, _ = cmap(norm(v))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def grid_figure(res: Results) -> Figure:
    s = res.table("summary", ("rate_a_hz", "rate_b_hz", "readout_rate_hz"))
    a_vals = np.unique(s["rate_a_hz"].astype(float))
    b_vals = np.unique(s["rate_b_hz"].astype(float))
    z = np.full((b_vals.size, a_vals.size), np.nan)
    z[np.searchsorted(b_vals, s["rate_b_hz"]), np.searchsorted(a_vals, s["rate_a_hz"])] = s[
        "readout_rate_hz"
    ]
    fig = Figure(
        figsize=(max(6.5, 2.5 + 0.55 * a_vals.size), max(5.0, 2.0 + 0.45 * b_vals.size)),
        layout="constrained",
    )
    ax = fig.add_subplot()
    cmap = colormaps["viridis"].with_extremes(bad="0.85")
    vmax = float(np.nanmax(z)) if np.isfinite(z).any() else 1.0
    norm = Normalize(0.0, vmax if vmax > 0 else 1.0)
    im = ax.imshow(z, origin="lower", aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_xticks(
        np.arange(a_vals.size), [_fmt_hz(v) for v in a_vals], rotation=90 if a_vals.size > 12 else 0
    )
    ax.set_yticks(np.arange(b_vals.size), [_fmt_hz(v) for v in b_vals])
    la = res.drive_label("drive_a") or "drive A"
    lb = res.drive_label("drive_b") or "drive B"
    ax.set_xlabel(f"drive rate of {la} (Hz)")
    ax.set_ylabel(f"drive rate of {lb} (Hz)")
    fig.colorbar(im, ax=ax, label="readout firing rate (Hz)")
    if z.size <= 144:
        for (i, j), v in np.ndenumerate(z):
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:.3g}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=_cell_text_color(cmap, norm, v),
                )
    readouts = ", ".join(res.names(res.readout_ids[:4])) or "readout"
    if res.readout_ids.size > 4:
        readouts += ", …"
    ax.set_title(f"{_title(res, 'readout rate')}\n(readout: {readouts}; {la} × {lb})", fontsize=11)
    return fig


# ---------------------------------------------------------------------------------------
# perturbation map
# ---------------------------------------------------------------------------------------
def plot_perturbation_map(results, out=None, *, log: Log | None = None) -> Path | None:
    """``perturbation_map.png`` (map): change of each responder's rate from baseline (Hz;
    a graded model: its signed peak voltage change, mV), rows = driven neuron, columns =
    top responders by max |change|, centred at 0."""
    return _run_plot("perturbation_map.png", perturbation_map_figure, results, out, log)


def _driven_labels(res: Results, keys: list[tuple[str, int]]) -> list[str]:
    """Row labels: a driven neuron labelled by its bare id gets its name; labels that two
    driven neurons share get the id's last digits."""
    named = [k for k, (lab, i) in enumerate(keys) if i != -1 and lab.strip() == str(i)]
    labels = [lab for lab, _ in keys]
    for k, name in zip(named, res.names([keys[k][1] for k in named]), strict=True):
        labels[k] = name
    count: dict[str, int] = {}
    for lab in labels:
        count[lab] = count.get(lab, 0) + 1
    return [
        f"{lab} (…{str(i)[-5:]})" if count[lab] > 1 and i != -1 else lab
        for lab, (_, i) in zip(labels, keys, strict=True)
    ]


def perturbation_map_figure(res: Results) -> Figure:
    graded = "response" in (res.schema("summary") or ())
    value = "response" if graded else "delta_hz"
    s = res.table("summary", ("driven_label", "neuron_id", value))
    driven_id = s["driven_id"].astype(np.int64) if "driven_id" in s else None
    keep = np.ones(s["neuron_id"].size, bool) if driven_id is None else driven_id != -1
    labels = s["driven_label"][keep].astype(str)
    resp = s["neuron_id"][keep].astype(np.int64)
    delta = s[value][keep].astype(float)
    d_ids = driven_id[keep] if driven_id is not None else np.full(resp.size, -1, np.int64)
    if resp.size == 0:
        raise Skip("summary.parquet has no driven conditions")
    # one row per driven condition, keyed by (label, id): two driven neurons may share a
    # label (a cell type). Rows in condition order, else first appearance in the table.
    keys = list(zip(labels.tolist(), d_ids.tolist(), strict=True))
    row_keys = list(dict.fromkeys(keys))
    conds = res.conditions()
    if conds is not None and "driven_label" in conds:
        c_order = np.argsort(conds["condition"])
        c_ids = conds["driven_id"] if "driven_id" in conds else np.full(c_order.size, -1)
        rank = {(str(conds["driven_label"][k]), int(c_ids[k])): r for r, k in enumerate(c_order)}
        row_keys.sort(key=lambda key: rank.get(key, len(rank)))
    row_labels = _driven_labels(res, row_keys)
    cols = np.unique(resp)
    z = np.zeros((len(row_keys), cols.size))  # a pair not listed: no change
    is_self = np.zeros(z.shape, bool)
    ri = {key: k for k, key in enumerate(row_keys)}
    rr = np.asarray([ri[key] for key in keys])
    cc = np.searchsorted(cols, resp)
    z[rr, cc] = delta
    is_self[rr, cc] = resp == d_ids
    masked = np.where(is_self, np.nan, z)
    n_rows_all, n_cols_all = z.shape
    score = np.nan_to_num(np.abs(masked)).max(axis=0)
    col_sel = np.argsort(-score, kind="stable")[:MAP_MAX_COLUMNS]
    col_sel = col_sel[score[col_sel] > 0] if (score > 0).any() else col_sel
    row_score = np.nan_to_num(np.abs(masked)).max(axis=1)
    row_sel = np.arange(n_rows_all)
    if n_rows_all > MAP_MAX_ROWS:
        row_sel = np.sort(np.argsort(-row_score, kind="stable")[:MAP_MAX_ROWS])
    m = masked[np.ix_(row_sel, col_sel)]
    nr, nc = m.shape
    fig = Figure(
        figsize=(max(7.0, 3.2 + 0.2 * nc), max(4.0, 2.6 + 0.22 * nr)), layout="constrained"
    )
    ax = fig.add_subplot()
    vmax = float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 0.0
    vmax = vmax if vmax > 0 else 1.0
    cmap = colormaps["RdBu_r"].with_extremes(bad="0.7")
    im = ax.imshow(
        m, aspect="auto", cmap=cmap, norm=TwoSlopeNorm(0.0, -vmax, vmax), interpolation="nearest"
    )
    ax.set_xticks(
        np.arange(nc), res.names(cols[col_sel]), rotation=90, fontsize=7 if nc > 25 else 8
    )
    ax.set_yticks(np.arange(nr), [row_labels[k] for k in row_sel], fontsize=7 if nr > 25 else 8)
    ax.set_xlabel("responding neuron")
    ax.set_ylabel("driven neuron")
    unit = "peak voltage change from baseline (mV)" if graded else "rate change from baseline (Hz)"
    fig.colorbar(im, ax=ax, label=unit, shrink=0.9)
    notes = []
    if nc < n_cols_all:
        notes.append(f"top {nc} of {n_cols_all} responders by max |change|")
    if nr < n_rows_all:
        notes.append(f"{nr} of {n_rows_all} driven shown")
    if is_self[np.ix_(row_sel, col_sel)].any():
        notes.append("grey: the driven neuron itself")
    sub = "; ".join(notes)
    ax.set_title(
        _title(res, "voltage change of responders" if graded else "rate change of responders")
        + (f"\n({sub})" if sub else ""),
        fontsize=11,
    )
    if not np.isfinite(m).any() or not np.nanmax(np.abs(m), initial=0) > 0:
        _note(ax, "no responder changed its " + ("voltage" if graded else "rate"))
    return fig


# ---------------------------------------------------------------------------------------
# traces
# ---------------------------------------------------------------------------------------
TRACES_MAX_LINES = 12
TRACE_KEYS = ("condition", "trial", "t_ms", "neuron_id")


def plot_traces(results, out=None, *, trial: int = 0, log: Log | None = None) -> Path | None:
    """``traces.png``: every trace column of ``traces.parquet`` (one panel each: LIF's
    ``v_mv`` and ``g_mv``, a graded model's ``v_mv``, PQN's ``v`` and ``n``) of the recorded
    neurons in the first condition and one trial, labelled by name."""
    return _run_plot("traces.png", lambda r: traces_figure(r, trial=trial), results, out, log)


def traces_figure(res: Results, *, trial: int = 0) -> Figure:
    tr = res.table("traces", TRACE_KEYS)
    names = [c for c in res.schema("traces") if c not in TRACE_KEYS]
    if not names:
        raise Skip("traces.parquet has no trace columns")
    cond = int(tr["condition"].min())
    sel = (tr["condition"] == cond) & (tr["trial"] == trial)
    if not sel.any():
        raise Skip(f"no traces of trial {trial}")
    ids = np.unique(tr["neuron_id"][sel])[:TRACES_MAX_LINES]
    labels = res.names(ids)
    fig = Figure(figsize=(9, 2.4 * len(names) + 0.8))
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, names, strict=True):
        for nid, label in zip(ids, labels, strict=True):
            m = sel & (tr["neuron_id"] == nid)
            ax.plot(tr["t_ms"][m], tr[name][m], lw=1.0, label=label)
        ax.set_ylabel(name)
    axes[0].legend(fontsize=7, ncol=min(4, len(ids)), loc="upper right")
    axes[-1].set_xlabel("time (ms)")
    axes[0].set_title(_title(res, f"traces, {res.condition_label(cond)}, trial {trial}"))
    fig.tight_layout()
    return fig


def plot_sweep(results, out=None, *, log: Log | None = None) -> Path | None:
    """``sweep.png`` of a ``parameter_sweep``: mean rates and the fraction of neurons
    active against the parameter's value."""
    return _run_plot("sweep.png", sweep_figure, results, out, log)


def sweep_figure(res: Results) -> Figure:
    s = res.table("summary", ("parameter", "value", "mean_rate_hz", "fraction_active"))
    order = np.argsort(s["value"])
    x = s["value"][order]
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    ax.plot(x, s["mean_rate_hz"][order], "o-", label="mean rate, all neurons")
    if "mean_active_rate_hz" in s:
        ax.plot(x, s["mean_active_rate_hz"][order], "s--", label="mean rate, active neurons")
    ax.set_xlabel(str(s["parameter"][0]))
    ax.set_ylabel("rate (Hz)")
    ax2 = ax.twinx()
    ax2.plot(x, s["fraction_active"][order], "^:", color="tab:green", label="fraction active")
    ax2.set_ylabel("fraction of neurons active")
    ax2.set_ylim(0, 1.05)
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper left")
    ax.set_title(_title(res, f"activity against {s['parameter'][0]}"))
    fig.tight_layout()
    return fig


def plot_dsi_polar(results, out=None, *, log: Log | None = None) -> Path | None:
    """``dsi_polar.png`` of a ``moving_edge`` folder (brainsim.viz._visual)."""
    from brainsim.viz._visual import dsi_polar_figure

    return _run_plot("dsi_polar.png", dsi_polar_figure, results, out, log)


def plot_fri(results, out=None, *, log: Log | None = None) -> Path | None:
    """``fri.png`` of a ``flash`` folder (brainsim.viz._visual)."""
    from brainsim.viz._visual import fri_figure

    return _run_plot("fri.png", fri_figure, results, out, log)


# ---------------------------------------------------------------------------------------
# all plots of a folder
# ---------------------------------------------------------------------------------------
PLOTS_BY_KIND = {
    "run": (plot_raster, plot_traces),
    "activation_sweep": (plot_raster, plot_rate_curve),
    "silencing_screen": (plot_raster, plot_silencing),
    "pairwise_grid": (plot_raster, plot_grid),
    "perturbation_map": (plot_raster, plot_perturbation_map),
    "parameter_sweep": (plot_raster, plot_sweep),
    "moving_edge": (plot_dsi_polar,),
    "flash": (plot_fri,),
}


def make_plots(result_dir: str | Path, *, log: Log | None = None) -> list[Path]:
    """(Re)write the PNG plots of a results folder from its tables; return the paths written.
    A plot whose tables are missing or empty is skipped with a message to ``log`` (default:
    the ``brainsim.viz`` logger)."""
    res = Results(result_dir)
    log = log or _logger.warning
    plots = PLOTS_BY_KIND.get(res.kind)
    if plots is None:
        log(f"unknown experiment kind {res.kind!r}: drawing the raster only")
        plots = (plot_raster,)
    written = []
    for plot in plots:
        if plot is plot_traces and not res.path("traces").is_file():
            continue  # (a run without [record])
        graded_run = not res.path("spikes").is_file() and res.path("traces").is_file()
        if plot is plot_raster and graded_run:
            continue  # (a graded model's run: traces, no spikes)
        path = plot(res, log=log)
        if path is not None:
            written.append(path)
    return written
