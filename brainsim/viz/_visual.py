"""Plots of the flyvis experiments: T4/T5 direction tuning (``moving_edge``) and flash
response indices (``flash``), from ``summary.parquet``, ``dsi.parquet``, ``fri.parquet``."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from brainsim.viz._tables import Results, Skip

T4T5 = [f"T{f}{x}" for f in "45" for x in "abcd"]


def dsi_polar_figure(res: Results) -> Figure:
    """Peak response (normalised per type) against motion direction for T4a-d at ON edges
    and T5a-d at OFF edges, first speed; DSI and preferred direction in the legend."""
    s = res.table("summary", ("cell_type", "angle_deg", "intensity", "speed", "peak"))
    d = res.table("dsi", ("cell_type", "intensity", "dsi", "preferred_angle_deg"))
    intens = set(np.unique(s["intensity"]).tolist())
    if not {0.0, 1.0} <= intens or not set(T4T5) <= set(s["cell_type"].tolist()):
        raise Skip("needs T4/T5 types and ON (1) and OFF (0) edges")
    speed = np.unique(s["speed"])[0]
    fig = Figure(figsize=(9, 4.6))
    for k, (fam, inten, label) in enumerate((("T4", 1.0, "ON edges"), ("T5", 0.0, "OFF edges"))):
        ax = fig.add_subplot(1, 2, k + 1, projection="polar")
        for x in "abcd":
            t = f"{fam}{x}"
            m = (s["cell_type"] == t) & (s["intensity"] == inten) & (s["speed"] == speed)
            order = np.argsort(s["angle_deg"][m])
            ang = np.deg2rad(s["angle_deg"][m][order])
            r = s["peak"][m][order]
            r = r / r.max() if r.max() > 0 else r
            dm = (d["cell_type"] == t) & (d["intensity"] == inten)
            ax.plot(np.append(ang, ang[0]), np.append(r, r[0]), lw=1.5,
                    label=f"{t}: DSI {d['dsi'][dm][0]:.2f}, "
                          f"{d['preferred_angle_deg'][dm][0]:.0f} deg")  # fmt: skip
        ax.set_title(f"{fam} at {label} (speed {speed:g} columns/s)", fontsize=9)
        ax.set_yticklabels([])
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(-0.1, -0.32))
    fig.suptitle(f"{res.meta('params', '') or ''} moving edges: peak response by direction")
    fig.tight_layout()
    return fig


def fri_figure(res: Results) -> Figure:
    """Flash response index of every type, coloured by its measured polarity."""
    f = res.table("fri", ("cell_type", "fri"))
    known = f.get("known_polarity")
    colors = []
    for k in range(len(f["fri"])):
        kp = None if known is None else known[k]
        colors.append("tab:orange" if kp == 1 else "tab:blue" if kp == -1 else "0.6")
    fig = Figure(figsize=(max(8, 0.18 * len(f["fri"])), 3.2))
    ax = fig.subplots()
    ax.bar(np.arange(len(f["fri"])), f["fri"], color=colors)
    ax.set_xticks(np.arange(len(f["fri"])), f["cell_type"], rotation=90, fontsize=6)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("flash response index")
    ax.set_title("FRI (orange: measured ON, blue: measured OFF, grey: unknown)", fontsize=9)
    fig.tight_layout()
    return fig
