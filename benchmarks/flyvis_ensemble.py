"""flyvis's published ensemble flow/0000 (50 trained networks) on brainsim: T4/T5 direction
selectivity at moving edges and the flash polarity of the types whose polarity was
measured, per network, as flyvis's analyses define them.

    python benchmarks/flyvis_ensemble.py [--models 0-49] [--speeds 19] [--out FILE.json]

Prints a markdown table (the one in benchmarks/RESULTS.md) and writes every network's
figures to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

from brainsim.flyvis import (  # noqa: E402
    KNOWN_POLARITY,
    KNOWN_PREFERRED_DEG,
    expand,
    read_spec,
    trained,
)
from brainsim.flyvis import _stimuli as S  # noqa: E402
from brainsim.flyvis._data import connectome_file  # noqa: E402
from brainsim.flyvis._experiment import (  # noqa: E402
    edge_tables,
    flash_tables,
    pad_frames,
    simulate_frames,
)

T4T5 = [f"T{f}{x}" for f in "45" for x in "abcd"]


def run_model(lat, idx: int, speeds, dt_ms: float) -> dict:
    params = trained(lat.spec, f"flyvis:flow/0000/{idx:03d}")
    names = list(lat.spec.type_names)
    central = lat.central_cells()
    dt_s = dt_ms / 1000
    angles, intens = list(range(0, 360, 30)), [0, 1]
    conds = [(a, i, s) for a in angles for i in intens for s in speeds]
    frames = pad_frames([S.moving_edge(lat.extent, a, i, s, dt_s) for a, i, s in conds])
    tr = simulate_frames(lat, params, dt_ms, frames, central)
    time_s = np.arange(frames.shape[0]) * dt_s - 1.0
    _, extra = edge_tables(tr, time_s, conds, angles, intens, speeds, names)
    t4t5 = extra["t4t5.json"]
    fl = pad_frames([S.flash(lat.extent, i, dt_s, radius=6) for i in (0, 1)])
    ftr = simulate_frames(lat, params, dt_ms, fl, central)
    ftime = np.arange(fl.shape[0]) * dt_s - 1.0
    fri = flash_tables(ftr, ftime, [0, 1], names, {}, dt_s)["fri.parquet"].to_pydict()
    fri = dict(zip(fri["cell_type"], fri["fri"], strict=True))
    known = {t: p for t, p in KNOWN_POLARITY.items() if t in fri}
    agree = {t: bool(np.sign(fri[t]) == p) for t, p in known.items()}
    return {
        "model": f"{idx:03d}",
        "dsi": t4t5["dsi"],
        "preferred_angle_deg": t4t5["preferred_angle_deg"],
        "checks": t4t5["checks"],
        "dsi_change": t4t5["dsi_change"],
        "preferred_angle_deg_change": t4t5["preferred_angle_deg_change"],
        "checks_change": t4t5["checks_change"],
        "fri": {t: fri[t] for t in known},
        "polarity_agrees": agree,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="0-49")
    ap.add_argument("--speeds", default="19")
    ap.add_argument("--dt-ms", type=float, default=5.0)
    ap.add_argument("--out", default="benchmarks/results/flyvis_ensemble.json")
    a = ap.parse_args()
    lo, _, hi = a.models.partition("-")
    models = range(int(lo), int(hi or lo) + 1)
    speeds = [float(s) for s in a.speeds.split(",")]
    lat = expand(read_spec(connectome_file("flyvis:fib25-fib19_v2.2")), 15, 1.0)
    t0 = time.perf_counter()
    rows = [run_model(lat, i, speeds, a.dt_ms) for i in models]
    wall = time.perf_counter() - t0
    n = len(rows)
    def summary(suffix):
        checks = rows[0][f"checks{suffix}"]
        frac = {k: sum(r[f"checks{suffix}"][k] for r in rows) / n for k in checks}
        med = {t: float(np.median([r[f"dsi{suffix}"][t] for r in rows])) for t in T4T5}
        pref = {}
        for t in T4T5:  # circular mean of the preferred directions
            z = np.mean([np.exp(1j * np.deg2rad(r[f"preferred_angle_deg{suffix}"][t]))
                         for r in rows])  # fmt: skip
            pref[t] = (float(np.rad2deg(np.angle(z)) % 360), float(abs(z)))
        return frac, med, pref

    frac, med, pref = summary("")
    frac_c, med_c, pref_c = summary("_change")
    pol = {t: sum(r["polarity_agrees"][t] for r in rows) / n for t in rows[0]["polarity_agrees"]}
    out = {"models": n, "speeds": speeds, "dt_ms": a.dt_ms, "wall_s": wall,
           "host": platform.node(), "fraction_pattern": frac, "median_dsi": med,
           "mean_preferred_deg": pref, "fraction_pattern_change": frac_c,
           "median_dsi_change": med_c, "mean_preferred_deg_change": pref_c,
           "polarity_agreement": pol, "per_model": rows}  # fmt: skip
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"{n} networks, speeds {speeds}, dt {a.dt_ms} ms, {wall:.0f} s")
    print("\n| check | fraction of networks (flyvis DSI) | (baseline-subtracted DSI) |")
    print("|---|---|---|")
    for k, v in frac.items():
        print(f"| {k} | {v:.2f} | {frac_c[k]:.2f} |")
    print("\n| type | known preferred (deg) | median DSI | mean preferred (deg, resultant) |"
          " median DSI, baseline-subtracted | mean preferred (deg, resultant) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for t in T4T5:
        print(f"| {t} | {KNOWN_PREFERRED_DEG[t]} | {med[t]:.2f} | {pref[t][0]:.0f} "
              f"({pref[t][1]:.2f}) | {med_c[t]:.2f} | {pref_c[t][0]:.0f} "
              f"({pref_c[t][1]:.2f}) |")  # fmt: skip
    print("\n| type | measured polarity | networks with that FRI sign |\n|---|---|---|")
    for t, v in pol.items():
        print(f"| {t} | {'ON' if KNOWN_POLARITY[t] > 0 else 'OFF'} | {v:.2f} |")


if __name__ == "__main__":
    main()
