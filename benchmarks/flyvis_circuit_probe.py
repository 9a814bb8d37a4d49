"""How large each stage of the motion pathway responds, and which inputs make a T4 or T5
cell direction selective, for any flyvis parameters (the trained ensemble's, flyvis's
initial ones, or a ``params.npz`` that ``brainsim fit`` or
``flyvis_train_variants.py --save`` wrote):

    python benchmarks/flyvis_circuit_probe.py flyvis:initial flyvis:flow/0000/000 \\
        results/flyvis_train_motion/params.npz --target T5a --intensity 0

Part 1, per parameter set: the peak absolute change of the central cell of each type along
the pathway (photoreceptor, lamina, medulla, T4/T5 inputs, T4/T5) at an edge moving at
180 degrees (``--intensity``: 0 OFF, 1 ON). Part 2, per parameter set: for the central cell
of ``--target``, its own peak change at 12 directions, and the drive each presynaptic type
adds to it, ``sum over time of weight x (relu(V_pre) - relu(V_pre at grey))`` x dt (in
1e-4), at each direction; time constants and biases beside. Extent 5, dt 10 ms and 19
columns/s, as the shipped training config evaluates.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

PATHWAY = ("R1", "L1", "L2", "L3", "Mi1", "Mi4", "Mi9", "Tm1", "Tm2", "Tm4", "Tm9",
           "CT1(Lo1)", "TmY15", "T4a", "T5a")  # fmt: skip
ANGLES = tuple(range(0, 360, 30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("params", nargs="+", help='"flyvis:initial", "flyvis:flow/0000/NNN" or '
                    "a params.npz")  # fmt: skip
    ap.add_argument("--target", default="T5a")
    ap.add_argument("--intensity", type=float, default=0.0, help="0: OFF edges, 1: ON")
    ap.add_argument("--extent", type=int, default=5)
    a = ap.parse_args()

    from brainsim.flyvis import _stimuli as S
    from brainsim.flyvis import expand, read_spec
    from brainsim.flyvis._data import connectome_file
    from brainsim.flyvis._experiment import pad_frames, simulate_frames
    from brainsim.flyvis._params import connection_weights, load

    spec = read_spec(connectome_file("flyvis:fib25-fib19_v2.2"))
    lat = expand(spec, a.extent)
    names = spec.type_names
    if a.target not in names:
        raise SystemExit(f"--target {a.target!r} is not a cell type of the connectome")
    dt_s = 0.01
    central = lat.central_cells()
    frames = pad_frames([S.moving_edge(a.extent, ang, a.intensity, 19.0, dt_s, t_pre_s=0.1,
                                       t_post_s=0.1) for ang in ANGLES])  # fmt: skip
    at_180 = ANGLES.index(180)
    sets = [(p, load(lat, p)) for p in a.params]

    print(f"peak |change| of each type's central cell, "
          f"{'ON' if a.intensity else 'OFF'} edge at 180 deg:")  # fmt: skip
    print(f"{'':>14}" + "".join(f"{t:>10}" for t in PATHWAY))
    cells = central[[names.index(t) for t in PATHWAY]]
    for name, p in sets:
        tr = simulate_frames(lat, p, dt_s * 1000, frames[:, [at_180]], cells)
        amp = np.abs(tr - tr[0]).max(0)[0]
        print(f"{_short(name):>14}" + "".join(f"{x:10.1e}" for x in amp))

    c = central[names.index(a.target)]
    inc = np.flatnonzero(lat.post == c)
    pre = lat.pre[inc]
    for name, p in sets:
        w = connection_weights(lat, p)[inc]
        tr = simulate_frames(lat, p, dt_s * 1000, frames, np.concatenate([[c], pre]))
        own = (tr[:, :, 0] - tr[0, :, 0]).max(0)
        print(f"\n{_short(name)}: {a.target} peak change (1e-4) at " + ", ".join(
            f"{ang}: {x * 1e4:.2f}" for ang, x in zip(ANGLES, own, strict=True)))  # fmt: skip
        drive = np.maximum(tr[:, :, 1:], 0) * w
        drive = (drive - drive[0]).sum(0) * dt_s * 1e4  # [angles, inputs]
        src = lat.cell_type[pre]
        print(f"{'input':>10} {'tau ms':>7} {'bias':>7} {'weight':>8} | drive (1e-4) at "
              + " ".join(f"{ang:>6}" for ang in ANGLES))  # fmt: skip
        for t in np.unique(src):
            m = src == t
            print(f"{names[t]:>10} {p.time_const_s[t] * 1000:7.1f} {p.bias[t]:7.3f} "
                  f"{w[m].sum():8.4f} | {'':>15}"
                  + " ".join(f"{x:6.3f}" for x in drive[:, m].sum(1)))  # fmt: skip


def _short(name: str) -> str:
    return name.removeprefix("flyvis:")[-14:]


if __name__ == "__main__":
    main()
