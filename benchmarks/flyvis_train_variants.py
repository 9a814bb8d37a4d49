"""Variants of the flyvis motion task (``brainsim fit configs/flyvis_train_motion.toml``),
run without writing a results folder, to find what makes T4/T5 direction selectivity
emerge: which stimuli (and which edge polarity), which types the decoder reads, which
columns it reads, whether it reads every step, the mean or peak over the motion, or every
column, the slope of the rectified features below grey, the learning rate and its
schedule.

    python benchmarks/flyvis_train_variants.py --stimuli edges --intensities 0 \\
        --decode T5a,T5b,T5c,T5d --steps 400 --tag off_edges_T5

Prints the loss every 50 steps (with ``--probe N``, every N steps each parameter group's
gradient norm and each decoded type's resting level and mean absolute response), then the
baseline-subtracted DSI and preferred direction (T4 at ON edges, T5 at OFF edges; 12
directions at 19 columns/s) of the parameters of the lowest loss and of the last step, as
one JSON line per set (``--tag`` names the run).
Everything else is the config's (extent 5, dt 10 ms, the per-column readout within 3 columns
of the centre, Adam, gradient norm clipped at 1, flyvis's initial parameters with the bias
draw of ``--seed``). ``--frozen-start --readout steps --pool-radius -1`` gives the task as
it was before 2026-12-06 (the rows of RESULTS.md measured then).
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
    from brainsim.flyvis._train import READOUTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stimuli", default="edges,textures")
    ap.add_argument("--speeds", default=None,
                    help="columns/s, comma-separated (default: the config's)")
    ap.add_argument("--textures-per-direction", type=int, default=None)
    ap.add_argument("--intensities", default="0,1", help="edge polarities kept (0 OFF, 1 ON)")
    ap.add_argument("--decode", default="T4a,T4b,T4c,T4d,T5a,T5b,T5c,T5d",
                    help='decoder inputs; "T4a+T5a" sums two types into one')
    ap.add_argument("--lr", type=float, default=0.004)
    ap.add_argument("--lr-end", type=float, default=None, help="cosine decay to this")
    ap.add_argument("--lr-strength", type=float, default=None,
                    help="learning rate of the strengths' log factors (default --lr)")  # fmt: skip
    ap.add_argument("--lr-tau", type=float, default=None,
                    help="learning rate of the time constants' log factors (default --lr)")
    ap.add_argument("--lr-bias", type=float, default=None,
                    help="learning rate of the biases (default --lr)")  # fmt: skip
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--leak", type=float, default=0.0, help="feature slope below grey")
    ap.add_argument("--pool-radius", type=int, default=None,
                    help="read columns this close (-1: all; default: the config's)")
    ap.add_argument("--scale", default="batch", choices=("batch", "initial", "floored"))
    ap.add_argument("--rest-floor", type=float, default=None,
                    help="penalise cells resting below this at grey")  # fmt: skip
    ap.add_argument("--activity-baseline", type=float, default=None,
                    help="flyvis's activity penalty toward this mean voltage (flyvis: 5), "
                    "on the biases with an Adam of their own (default: none)")
    ap.add_argument("--activity-weight", type=float, default=0.1)
    ap.add_argument("--feature-eps", type=float, default=0.0,
                    help="divide each feature by sqrt(size^2 + this), as a batch norm "
                    "(flyvis's decoder; PyTorch's epsilon: 1e-5)")
    ap.add_argument("--strength-scale", type=float, default=1.0,
                    help="start from flyvis's initial strengths times this (a diagnostic: "
                    "the trained ensemble's are e^1.6 times larger at the median)")
    ap.add_argument("--cut", default=None,
                    help='a diagnostic lesion: "T4>T5" sets the strength of every pair '
                    "from a type named T4... to a type named T5... to 0 (comma-separated)")
    ap.add_argument("--frozen-start", action="store_true",
                    help="hold the grey steady state fixed in the gradient (before 2026-12-06)")
    ap.add_argument("--readout", default=None, choices=READOUTS,
                    help="default: the config's")
    ap.add_argument("--probe", type=int, default=0,
                    help="every N steps: gradient norms and response sizes (0: none)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=None,
                    help="seed of the decoder's start and the textures (default: the config's)")
    ap.add_argument("--dt-ms", type=float, default=None, help="step (default: the config's)")
    ap.add_argument("--extent", type=int, default=None,
                    help="lattice extent (default: the config's)")
    ap.add_argument("--tag", default="variant")
    ap.add_argument("--save", default=None,
                    help="write the parameters of the lowest loss to this params.npz")
    ap.add_argument("--ensemble-ratios", action="store_true",
                    help="print how far the trained ensemble's strengths are from flyvis's "
                    "initial ones, and stop")  # fmt: skip
    a = ap.parse_args()
    if a.ensemble_ratios:
        return ensemble_ratios()

    import jax
    import jax.numpy as jnp
    import optax

    from brainsim.experiments._config import parse_config, read_toml
    from brainsim.experiments._run import load_connectome
    from brainsim.flyvis import _train as T
    from brainsim.flyvis._experiment import _setup, simulate_frames

    raw, path = read_toml(CONFIG)
    if a.seed is not None:
        raw["simulation"]["seed"] = a.seed
    if a.dt_ms is not None:
        raw["simulation"]["dt_ms"] = a.dt_ms
    if a.extent is not None:
        raw["connectome"].setdefault("options", {})["extent"] = a.extent
    cfg = parse_config({k: v for k, v in raw.items() if k != "fit"}, path)
    task = T.parse_task(raw["fit"], str(path))
    task = dataclasses.replace(
        task, stimuli=tuple(a.stimuli.split(",")), decode_from=tuple(a.decode.split(",")),
        steps=a.steps, learning_rate=a.lr,
    )  # fmt: skip
    if a.speeds is not None:
        task = dataclasses.replace(task, speeds=tuple(float(x) for x in a.speeds.split(",")))
    if a.textures_per_direction is not None:
        task = dataclasses.replace(task, textures_per_direction=a.textures_per_direction)
    if a.readout is not None:
        task = dataclasses.replace(task, readout=a.readout)
    if a.pool_radius is not None:
        task = dataclasses.replace(task, pool_radius=None if a.pool_radius < 0 else a.pool_radius)
    lattice, params0 = _setup(cfg, load_connectome(cfg), lambda *x: None)
    if a.cut:
        names = np.array(lattice.spec.type_names)
        src, tgt = names[lattice.spec.pair_source], names[lattice.spec.pair_target]
        cut = np.zeros(src.size, bool)
        for rule in a.cut.split(","):
            s_pre, t_pre = rule.split(">")
            cut |= np.char.startswith(src, s_pre) & np.char.startswith(tgt, t_pre)
        print(f"cut {int(cut.sum())} type pairs: {a.cut}", flush=True)
        params0 = dataclasses.replace(params0, strength=np.where(cut, 0.0, params0.strength))
    if a.strength_scale != 1.0:
        params0 = dataclasses.replace(params0, strength=params0.strength * a.strength_scale)
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
    activity = None
    if a.activity_baseline is not None:
        activity = T.ActivityPenalty(baseline=a.activity_baseline, weight=a.activity_weight)
    task = dataclasses.replace(task, activity_penalty=activity)
    loss_fn, fixed = T.make_task_loss(lattice, params0, dt_ms, task, frames, vel, moving,
                                      leak=a.leak, scale=a.scale, rest_floor=a.rest_floor,
                                      steady_gradient=not a.frozen_start,
                                      feature_eps=a.feature_eps)  # fmt: skip
    theta = T._trainables(lattice, params0, cfg.simulation["seed"], task)
    lr = a.lr if a.lr_end is None else optax.cosine_decay_schedule(a.lr, a.steps, a.lr_end / a.lr)
    def rate(base):
        if a.lr_end is None:
            return base
        return optax.cosine_decay_schedule(base, a.steps, a.lr_end / a.lr)

    # the strengths start far below the trained ones; the biases take the largest gradients
    own = {"log_strength_factor": a.lr_strength, "bias": a.lr_bias, "log_tau_factor": a.lr_tau}
    groups = {k: optax.adam(rate(v)) for k, v in own.items() if v is not None}
    adam = optax.adam(lr)
    if groups:
        labels = {k: k if k in groups else "rest" for k in theta}
        adam = optax.multi_transform(groups | {"rest": adam}, labels)
    opt = optax.chain(optax.clip_by_global_norm(task.clip_norm), adam)
    penalty_opt = optax.adam(lr) if activity is not None else None
    state = T.init_state(theta, opt, penalty_opt)
    update = T.make_update(loss_fn, opt, penalty_opt)
    print(f"{a.tag}: {frames.shape[1]} stimuli x {frames.shape[0]} steps", flush=True)

    def tuning(p):
        d = T.edge_tuning(lattice, p, dt_s)[0].to_pydict()
        cols = ("cell_type", "intensity", "dsi_change", "preferred_angle_deg_change")
        rows = zip(*(d[c] for c in cols), strict=True)
        return {
            t: [round(dsi, 2), round(pref)]
            for t, i, dsi, pref in rows
            if t[:2] in ("T4", "T5") and len(t) == 3 and (t[1] == "4") == (i == 1.0)
        }

    grad_fn = jax.jit(jax.grad(loss_fn))
    probed = [lattice.cells_of(t) for t in types]

    def probe(k, th):
        """Each group's gradient norm, and each decoded type's resting level and mean
        absolute change from it over the batch (all its cells)."""
        g = grad_fn(th, fixed)
        norms = {n: round(float(jnp.linalg.norm(v)), 4) for n, v in g.items()}
        p = T.type_params(lattice, params0, jax.device_get(th), dt_s)
        cells = np.concatenate(probed)
        tr = simulate_frames(lattice, p, dt_ms, frames, cells, steady_s=task.steady_state_s)
        sizes, at = {}, 0
        for t, c in zip(types, probed, strict=True):
            x = tr[:, :, at : at + c.size]
            at += c.size
            sizes[t] = [round(float(x[0].mean()), 3), round(float(np.abs(x - x[0]).mean()), 5)]
        print(json.dumps({"probe_step": k + 1, "grad_norm": norms, "rest_and_change": sizes}),
              flush=True)  # fmt: skip

    best = (np.inf, 0, theta)
    t1 = time.perf_counter()
    for k in range(a.steps):
        if a.probe and k % a.probe == 0:
            probe(k, theta)
        new, state, loss = update(theta, state, fixed)
        loss = float(np.asarray(loss).flat[0])  # (with an activity penalty: the task's)
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
               "dsi_change": tuning(p), "args": vars(a),
               "readout": task.readout, "pool_radius": task.pool_radius}  # fmt: skip
        print(json.dumps(rec), flush=True)
        if a.save and name == "best":
            from brainsim.flyvis._params import write_npz

            write_npz(lattice.spec, p, a.save)


def ensemble_ratios() -> None:
    """Quantiles over type pairs (5th, 25th, 50th, 75th, 95th) of log(trained strength /
    flyvis's initial strength), for each of the 50 trained networks, and their range."""
    from brainsim.flyvis import expand, initial, read_spec, trained
    from brainsim.flyvis._data import connectome_file

    spec = read_spec(connectome_file("flyvis:fib25-fib19_v2.2"))
    p0 = initial(expand(spec, 5), 0)
    q = []
    for k in range(50):
        p = trained(spec, f"flyvis:flow/0000/{k:03d}")
        ok = (p.strength > 0) & (p0.strength > 0)
        ratio = np.log(p.strength[ok] / p0.strength[ok])
        q.append(np.quantile(ratio, [0.05, 0.25, 0.5, 0.75, 0.95]))
    q = np.array(q)
    for name, col in zip(("5th", "25th", "median", "75th", "95th"), q.T, strict=True):
        print(f"{name:>6}: {col.min():.2f} to {col.max():.2f} "
              f"(median over networks {np.median(col):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
