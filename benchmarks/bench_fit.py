"""Fitting on the whole-brain synthetic connectome: gradient cost, memory, and recovery.

Two measurements, each printed as one JSON record per line (and appended to ``--out``):

``grad``: the surrogate gradient of a rate loss w.r.t. ``w_syn_mv`` and the per-cell-type
synaptic scales (about 8,200 types) through a differentiable run of ``--duration-ms``,
every duration in its own subprocess so that its peak RSS (``resource.getrusage``) is its
own. Reports the compile+run and the run time of one gradient, the time per simulated step,
the extrapolated time of a 1 s gradient, host peak RSS and, on a GPU, peak device memory.
``--no-checkpoint`` runs the same without ``jax.checkpoint`` (one chunk, no per-step
recomputation), to show what checkpointing saves.

``recovery``: teacher-student on the whole brain: target rates of the sugar-like pathway
from a plain (windowed) run with ``w_syn_mv = 0.35``, then ``--steps`` Adam steps from
0.25; reports the time per optimisation step, peak RSS and the w_syn trajectory.

    python benchmarks/bench_fit.py grad --duration-ms 1 2 5
    python benchmarks/bench_fit.py grad --duration-ms 1 2 --no-checkpoint
    python benchmarks/bench_fit.py recovery --duration-ms 20 --steps 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

SPEC = "synthetic:seed=0,scale=1.0"
PATHWAY = ("sugar_like_L1", "sugar_like_L2", "sugar_like_L3", "MN9_like")


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _device_peak_gb():
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**30


def _setup(args):
    import jax.numpy as jnp
    import numpy as np

    from brainsim.connectome import load
    from brainsim.sim import Network, Protocol

    cache = Path(args.cache_dir) if args.cache_dir else Path.home() / ".cache/brainsim/connectomes"
    conn = load(args.spec, "synthetic", cache_dir=cache)
    ct = np.array(conn.neurons.column("cell_type").to_pylist())
    grn = np.nonzero(ct == "sugar_like_GRN")[0]
    proto = Protocol.build(args.trials, conn.n_neurons, poisson=[(grn, args.rate_hz)])
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    pathway = np.nonzero(np.isin(ct, PATHWAY))[0]
    return conn, grn, proto, net, pathway


def _task(args, net, proto, targets, model):
    from brainsim.fit import Surrogate, build_task

    ck = args.duration_ms if args.no_checkpoint else args.checkpoint_ms
    events = args.gradient == "events"
    kind, slope = ("straight_through", 0.5) if events else ("fast_sigmoid", 1.0)
    return build_task(
        net,
        proto,
        model,
        {"rates": targets},
        duration_ms=args.duration_ms,
        surrogate=Surrogate(kind, slope, model.dt_ms / model.tau_m_ms),
        checkpoint_ms=ck,
        remat_steps=not args.no_checkpoint,
        propagation="events" if events else "csr",
    )


def grad_one(args) -> dict:
    import jax

    from brainsim.fit import RateTargets, build_params, value_and_grad
    from brainsim.models import LIF

    t0 = time.perf_counter()
    conn, _, proto, net, pathway = _setup(args)
    t_load = time.perf_counter() - t0
    rss_loaded = _peak_rss_gb()
    task = _task(args, net, proto, RateTargets.from_arrays(0, pathway, 50.0), LIF())
    params, info = build_params(LIF(), conn, ["w_syn_mv", "syn_scale_by_type"])
    import equinox as eqx

    f = eqx.filter_jit(lambda p, k, t: value_and_grad(p, t, k))
    t1 = time.perf_counter()
    regrown = 0
    while True:  # the event path: grow its capacities until one step's events fit
        (loss, terms), g = f(params, jax.random.PRNGKey(0), task)
        jax.block_until_ready(g)
        peaks = terms.get("event_peaks")
        if peaks is None or task.capacity.holds(peaks):
            break
        task = dataclasses.replace(task, capacity=task.capacity.grown(peaks))
        regrown += 1
    t2 = time.perf_counter()
    (loss, terms), g = f(params, jax.random.PRNGKey(1), task)
    jax.block_until_ready(g)
    t3 = time.perf_counter()
    peaks = terms.get("event_peaks")
    if peaks is not None and not task.capacity.holds(peaks):
        sys.exit("the timed gradient needed larger event capacities than the first")
    n_steps = task.n_steps
    per_step = (t3 - t2) / n_steps
    return {
        "bench": "grad",
        "gradient": args.gradient,
        # (the C++ form of the event path has no capacities)
        "native_events": task.native,
        "event_capacity": list(task.capacity)
        if task.propagation == "events" and not task.native
        else None,
        "event_regrowths": regrown,
        "duration_ms": args.duration_ms,
        "steps": n_steps,
        "trials": args.trials,
        "checkpoint": not args.no_checkpoint,
        "checkpoint_steps": task.checkpoint_steps,
        "n_neurons": conn.n_neurons,
        "n_connections": conn.n_connections,
        "n_types": int(info.labels["syn_scale"].size),
        "load_s": t_load,
        "first_grad_s": t2 - t1,
        "grad_s": t3 - t2,
        "ms_per_step": per_step * 1e3,
        "extrapolated_1s_grad_s": per_step * round(1000.0 / LIF().dt_ms),
        "rss_after_load_gb": rss_loaded,
        "peak_rss_gb": _peak_rss_gb(),
        "device_peak_gb": _device_peak_gb(),
        "loss": float(loss),
        "grad_norm": float(sum(float((x**2).sum()) for x in jax.tree_util.tree_leaves(g)) ** 0.5),
    }


def recovery(args) -> dict:
    import jax.numpy as jnp
    import numpy as np

    from brainsim.fit import RateTargets, build_params, fit, make_optimizer
    from brainsim.models import LIF
    from brainsim.sim import Protocol, simulate

    conn, grn, proto, net, pathway = _setup(args)
    teacher = Protocol.build(args.teacher_trials, conn.n_neurons, poisson=[(grn, args.rate_hz)])
    t0 = time.perf_counter()
    r = simulate(conn, teacher, model=LIF(w_syn_mv=0.35), duration_ms=args.duration_ms, seed=123)
    t_teacher = time.perf_counter() - t0
    rates = r.rates_hz().mean(axis=0)
    idx = np.intersect1d(np.nonzero(rates > 0)[0], pathway)
    targets = RateTargets.from_arrays(0, idx, rates[idx], jnp.float32)
    task = _task(args, net, proto, targets, LIF())
    params, info = build_params(LIF(), conn, ["w_syn_mv"], init={"w_syn_mv": 0.25})
    w = []

    def track(p):
        w.append(float(p.w_syn_mv.values()[0]))
        return {}

    fitted, history = fit(
        params,
        task,
        steps=args.steps,
        optimizer=make_optimizer("adam", args.learning_rate),
        seed=1,
        track=track,
    )
    walls = [h["wall_s"] for h in history]
    return {
        "bench": "recovery",
        "duration_ms": args.duration_ms,
        "trials": args.trials,
        "teacher_trials": args.teacher_trials,
        "n_targets": int(idx.size),
        "teacher_s": t_teacher,
        "steps": args.steps,
        "first_step_s": walls[0],
        "step_s": float(np.mean(walls[1:])) if len(walls) > 1 else None,
        "loss": [h["loss"] for h in history],
        "w_syn_mv": [*w, float(fitted.w_syn_mv.values()[0])],
        "peak_rss_gb": _peak_rss_gb(),
        "device_peak_gb": _device_peak_gb(),
    }


def _machine() -> dict:
    import jax

    dev = jax.devices()[0]
    return {
        "device": f"{dev.platform}:{dev.device_kind}",
        "host": platform.node(),
        "cpus": __import__("os").cpu_count(),
        "jax": jax.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("grad", "recovery"))
    ap.add_argument("--spec", default=SPEC)
    ap.add_argument("--duration-ms", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--checkpoint-ms", type=float, default=1.0)
    ap.add_argument("--no-checkpoint", action="store_true")
    ap.add_argument("--gradient", choices=("dense", "events"), default="dense",
                    help="events: propagation that follows the spikes (straight_through "
                    "surrogate, slope 0.5/mV)")  # fmt: skip
    ap.add_argument("--trials", type=int, default=1)
    ap.add_argument("--teacher-trials", type=int, default=8)
    ap.add_argument("--rate-hz", type=float, default=150.0)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--learning-rate", type=float, default=0.05)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=None, help="append the JSON records to this file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:  # one measurement in this process
        args.duration_ms = args.duration_ms[0]
        rec = grad_one(args) if args.what == "grad" else recovery(args)
        print(json.dumps(rec | _machine()))
        return
    passed = _without(sys.argv[1:], ("--duration-ms", "--out"))
    for d in args.duration_ms:
        cmd = [sys.executable, __file__, *passed, "--duration-ms", str(d), "--child"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            sys.stderr.write(out.stderr[-4000:])
            rec = {"bench": args.what, "duration_ms": d, "error": out.stderr.strip()[-400:]}
        else:
            rec = json.loads(out.stdout.strip().splitlines()[-1])
        line = json.dumps(rec)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``argv`` without the given options and their values."""
    out, skipping = [], False
    for a in argv:
        if a.startswith("--"):
            skipping = a in options
        if not skipping:
            out.append(a)
    return out


if __name__ == "__main__":
    main()
