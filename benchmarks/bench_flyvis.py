"""flyvis on brainsim: time of a 1 s moving-edge stimulus at extent 15 (45,669 cells,
1,513,231 connections), and of a training step of the motion task.

Side by side in one process (the same network, flyvis's trained network 000, dt 5 ms):

- ``numpy``: a plain numpy loop of flyvis's equations (np.add.at over the connections per
  step, one stimulus at a time): the floor without JAX or PyTorch;
- ``plain``: brainsim's reference synapses (segment sum over connections), jit-compiled;
- ``sparse``: brainsim's default (BCSR sparse matrix product).

Each brainsim path is timed for 1 stimulus and for ``--batch`` stimuli side by side (the
moving-edge experiment's 24 conditions), first call (compilation included) and the best
of ``--repeats`` compiled calls. ``train`` times one gradient step of the motion task of
``configs/flyvis_train_motion.toml`` at ``--train-extents``.

    python benchmarks/bench_flyvis.py [--batch 24] [--repeats 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from brainsim.flyvis import _simulate as sim  # noqa: E402
from brainsim.flyvis import expand, initial, moving_edge, read_spec, trained  # noqa: E402
from brainsim.flyvis._data import connectome_file  # noqa: E402

TRAIN_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "flyvis_train_motion.toml"


def numpy_run(lat, params, frames, dt_s):
    w = lat.sign * lat.n_syn.astype(np.float64) * params.strength[lat.pair]
    tau = np.maximum(params.time_const_s, dt_s)[lat.cell_type]
    bias = params.bias[lat.cell_type]
    cells, cols = sim.input_map(lat)
    v = bias.copy()
    for t in range(frames.shape[0]):
        syn = np.zeros(lat.n_cells)
        np.add.at(syn, lat.post, w * np.maximum(v[lat.pre], 0))
        syn[cells] += frames[t, cols]
        v = v + dt_s / tau * (-v + bias + syn)
    return v


def time_brainsim(lat, params, frames, sparse: bool, repeats: int) -> dict:
    net = sim.build(lat, params, 5.0, sparse=sparse)
    rec = jnp.asarray(lat.central_cells(), jnp.int32)
    fr = jnp.asarray(frames)
    v0 = sim.resting(net, frames.shape[1])
    t0 = time.perf_counter()
    jax.block_until_ready(sim.integrate(net, v0, fr, rec))
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(sim.integrate(net, v0, fr, rec))
        best = min(best, time.perf_counter() - t0)
    return {"first_s": first, "compiled_s": best}


def time_train_step(extent: int, repeats: int) -> dict:
    """One Adam step of the motion task of ``configs/flyvis_train_motion.toml`` (its stimuli,
    readout and step) at ``extent``, from flyvis's initial parameters."""
    import optax

    from brainsim.experiments._config import read_toml
    from brainsim.flyvis._train import (
        _trainables,
        make_task_loss,
        make_update,
        motion_batch,
        parse_task,
    )

    raw, path = read_toml(TRAIN_CONFIG)
    task = parse_task(raw["fit"], str(path))
    dt_ms = float(raw["simulation"]["dt_ms"])
    lat = expand(read_spec(connectome_file("flyvis:fib25-fib19_v2.2")), extent, 1.0)
    p0 = initial(lat, 0)
    frames, vel, moving = motion_batch(extent, task, dt_ms / 1000.0, 0)
    loss, fixed = make_task_loss(lat, p0, dt_ms, task, frames, vel, moving)
    theta = _trainables(lat, p0, 0, task)
    opt = optax.adam(0.01)
    state = opt.init(theta)
    update = make_update(loss, opt)

    t0 = time.perf_counter()
    jax.block_until_ready(update(theta, state, fixed))
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        theta, state, _ = jax.block_until_ready(update(theta, state, fixed))
        best = min(best, time.perf_counter() - t0)
    return {"extent": extent, "cells": lat.n_cells, "connections": lat.n_connections,
            "stimuli": int(frames.shape[1]), "steps": int(frames.shape[0]),
            "first_s": first, "step_s": best}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-extents", default="5,15")
    ap.add_argument("--skip-numpy", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/flyvis_speed_cpu.json")
    a = ap.parse_args()
    lat = expand(read_spec(connectome_file("flyvis:fib25-fib19_v2.2")), 15, 1.0)
    params = trained(lat.spec, "flyvis:flow/0000/000")
    dt_s = 0.005
    # a 1 s stimulus: 0.25 s grey, the edge at 19 columns/s (0.43 s), the rest held
    one = moving_edge(15, 60.0, 1.0, 19.0, dt_s, t_pre_s=0.25, t_post_s=0.32)[:200]
    frames1 = one[:, None]
    angles = np.arange(a.batch) * 360.0 / a.batch
    frames_b = np.stack(
        [moving_edge(15, x, float(k % 2), 19.0, dt_s, t_pre_s=0.25, t_post_s=0.32)[:200]
         for k, x in enumerate(angles)], axis=1)  # fmt: skip
    out = {"device": jax.devices()[0].device_kind, "host": platform.node(),
           "cpu_count": os.cpu_count(), "steps": 200, "dt_ms": 5.0,
           "cells": lat.n_cells, "connections": lat.n_connections}  # fmt: skip
    if not a.skip_numpy:
        t0 = time.perf_counter()
        numpy_run(lat, params, one.astype(np.float64), dt_s)
        out["numpy_1_s"] = time.perf_counter() - t0
    for name, sparse in (("plain", False), ("sparse", True)):
        out[f"{name}_1"] = time_brainsim(lat, params, frames1, sparse, a.repeats)
        out[f"{name}_{a.batch}"] = time_brainsim(lat, params, frames_b, sparse, a.repeats)
    out["train"] = [time_train_step(int(e), a.repeats) for e in a.train_extents.split(",")]
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
