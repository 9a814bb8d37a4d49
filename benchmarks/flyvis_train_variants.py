"""Variants of the flyvis motion task (``brainsim fit configs/flyvis_train_motion.toml``),
run without writing a results folder, to find what makes T4/T5 direction selectivity
emerge: which stimuli (and which edge polarity), which types the decoder reads, which
columns it reads, whether it reads every step, the mean or peak over the motion, or every
column, the slope of the rectified features below grey, the learning rate and its
schedule.

    python benchmarks/flyvis_train_variants.py --stimuli edges --intensities 0 \\
        --decode T5a,T5b,T5c,T5d --steps 400 --tag off_edges_T5

Prints the loss every 50 steps, then the baseline-subtracted DSI and preferred direction
(T4 at ON edges, T5 at OFF edges; 12 directions at 19 columns/s) of the parameters of the
lowest loss and of the last step, as one JSON line per set (``--tag`` names the run).
Everything else is the config's (extent 5, dt 10 ms, Adam, gradient norm clipped at 1,
flyvis's initial parameters).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "flyvis_train_motion.toml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stimuli", default="edges,textures")
    ap.add_argument("--intensities", default="0,1", help="edge polarities kept (0 OFF, 1 ON)")
    ap.add_argument("--decode", default="T4a,T4b,T4c,T4d,T5a,T5b,T5c,T5d")
    ap.add_argument("--lr", type=float, default=0.004)
    ap.add_argument("--lr-end", type=float, default=None, help="cosine decay to this")
    ap.add_argument("--lr-strength", type=float, default=None,
                    help="learning rate of the strengths' log factors (default --lr)")  # fmt: skip
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--leak", type=float, default=0.0, help="feature slope below grey")
    ap.add_argument("--pool-radius", type=int, default=-1, help="read columns this close")
    ap.add_argument("--scale", default="batch", choices=("batch", "initial"))
    ap.add_argument("--readout", default="steps", choices=("steps", "mean", "peak", "columns"))
    ap.add_argument("--tag", default="variant")
    a = ap.parse_args()

    import jax
    import optax

    from brainsim.experiments._config import parse_config, read_toml
    from brainsim.experiments._run import load_connectome
    from brainsim.flyvis import _stimuli as S
    from brainsim.flyvis import _train as T
    from brainsim.flyvis._experiment import _setup, edge_tables, pad_frames, simulate_frames

    raw, path = read_toml(CONFIG)
    cfg = parse_config({k: v for k, v in raw.items() if k != "fit"}, path)
    task = T.parse_task(raw["fit"], str(path))
    task = dataclasses.replace(
        task, stimuli=tuple(a.stimuli.split(",")), decode_from=tuple(a.decode.split(",")),
        steps=a.steps, learning_rate=a.lr,
    )  # fmt: skip
    lattice, params0 = _setup(cfg, load_connectome(cfg), lambda *x: None)
    dt_ms = cfg.simulation["dt_ms"]
    dt_s = dt_ms / 1000.0
    frames, vel, moving = T.motion_batch(lattice.extent, task, dt_s, cfg.simulation["seed"])
    keep_i = [float(x) for x in a.intensities.split(",")]
    if "edges" in task.stimuli:
        # per direction and speed, motion_batch gives the OFF edge, the ON edge, then the
        # textures
        per = 2 + (task.textures_per_direction if "textures" in task.stimuli else 0)
        keep = [i for i in range(frames.shape[1]) if i % per >= 2 or float(i % per) in keep_i]
        frames, vel, moving = frames[:, keep], vel[keep], moving[:, keep]
    types = T.decoded_types(lattice, task)
    loss_fn, fixed = T.make_loss(lattice, params0, dt_ms, frames, vel, moving,
                                 task.steady_state_s, types, a.leak, a.readout,
                                 None if a.pool_radius < 0 else a.pool_radius,
                                 a.scale)  # fmt: skip
    theta = T._trainables(lattice, params0, cfg.simulation["seed"], task)
    lr = a.lr if a.lr_end is None else optax.cosine_decay_schedule(a.lr, a.steps, a.lr_end / a.lr)
    adam = optax.adam(lr)
    if a.lr_strength is not None:  # the strengths start far below the trained ones
        fast = a.lr_strength if a.lr_end is None else optax.cosine_decay_schedule(
            a.lr_strength, a.steps, a.lr_end / a.lr)  # fmt: skip
        labels = {k: "strength" if k == "log_strength_factor" else "rest" for k in theta}
        adam = optax.multi_transform({"strength": optax.adam(fast), "rest": adam}, labels)
    opt = optax.chain(optax.clip_by_global_norm(task.clip_norm), adam)
    state = opt.init(theta)
    update = T.make_update(loss_fn, opt)
    print(f"{a.tag}: {frames.shape[1]} stimuli x {frames.shape[0]} steps", flush=True)

    def tuning(p):
        angles, intens, speeds = list(range(0, 360, 30)), [0, 1], [19.0]
        conds = [(an, i, s) for an in angles for i in intens for s in speeds]
        fr = pad_frames([S.moving_edge(lattice.extent, an, i, s, dt_s) for an, i, s in conds])
        tr = simulate_frames(lattice, p, dt_ms, fr, lattice.central_cells())
        time_s = np.arange(fr.shape[0]) * dt_s - 1.0
        names = list(lattice.spec.type_names)
        d = edge_tables(tr, time_s, conds, angles, intens, speeds, names)[0]["dsi.parquet"]
        d = d.to_pydict()
        cols = ("cell_type", "intensity", "dsi_change", "preferred_angle_deg_change")
        rows = zip(*(d[c] for c in cols), strict=True)
        return {
            t: [round(dsi, 2), round(pref)]
            for t, i, dsi, pref in rows
            if t[:2] in ("T4", "T5") and len(t) == 3 and (t[1] == "4") == (i == 1.0)
        }

    best = (np.inf, 0, theta)
    t1 = time.perf_counter()
    for k in range(a.steps):
        new, state, loss = update(theta, state, fixed)
        loss = float(loss)
        if not np.isfinite(loss):  # (what follows would mean nothing)
            print(f"step {k + 1}: loss {loss}: stopped", flush=True)
            break
        if loss < best[0]:
            best = (loss, k + 1, theta)
        theta = new
        if k % 50 == 0 or k == a.steps - 1:
            print(f"step {k + 1}: loss {loss:.4f} ({time.perf_counter() - t1:.0f} s)", flush=True)
    for name, step, th in (("best", best[1], best[2]), ("last", k + 1, theta)):
        p = T.type_params(lattice, params0, jax.device_get(th), dt_s)
        rec = {"tag": a.tag, "params": name, "step": step, "best_loss": round(best[0], 4),
               "dsi_change": tuning(p), "args": vars(a)}  # fmt: skip
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
