"""Sugar-like workload: whole-brain synthetic connectome, 21 inputs at a Poisson rate.

Times the windowed (event-driven) kernel per trial-second, and, side by side in the same
process, the dense reference kernel on a short stretch of the same run, so that the ratio
fast/reference is measured on one machine. Prints a JSON record.

    python benchmarks/bench_sugar.py --trials 30 --duration-ms 1000
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np

from brainsim.connectome import load
from brainsim.sim import Protocol, simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="synthetic:seed=0,scale=1.0")
    ap.add_argument("--trials", type=int, nargs="+", default=[30])
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--rate-hz", type=float, default=150.0)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--reference-ms", type=float, default=0.0, help="also time the dense kernel")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if args.precision == "float64":
        jax.config.update("jax_enable_x64", True)

    conn = load(args.spec, "synthetic", cache_dir=args.cache_dir)
    types = np.asarray(conn.neurons.column("cell_type").to_pylist())
    inputs = np.nonzero(types == "sugar_like_GRN")[0]
    dev = jax.devices()[0]
    records = []
    for b in args.trials:
        proto = Protocol.build(b, conn.n_neurons, poisson=[(inputs, args.rate_hz)])
        walls, budgets = [], None
        for _ in range(args.repeats):  # the first includes compilation and budget growth
            t = time.perf_counter()
            r = simulate(
                conn, proto, duration_ms=args.duration_ms, precision=args.precision, budgets=budgets
            )
            walls.append(time.perf_counter() - t)
            from brainsim.sim import Budgets

            budgets = Budgets(**r.stats["budgets"])
        trial_s = b * args.duration_ms / 1000
        counts = r.spike_counts()
        rec = {
            "workload": "sugar",
            "spec": args.spec,
            "n_neurons": conn.n_neurons,
            "n_connections": conn.n_connections,
            "trials": b,
            "duration_ms": args.duration_ms,
            "rate_hz": args.rate_hz,
            "precision": args.precision,
            "wall_s_first": walls[0],
            "wall_s": min(walls[1:] or walls),
            "s_per_trial_second": min(walls[1:] or walls) / trial_s,
            "spikes_per_trial_second": r.n_spikes / trial_s,
            "neurons_firing": int((counts.sum(0) > 0).sum()),
            "budgets": r.stats["budgets"],
            "device": f"{dev.platform}:{dev.device_kind}",
            "host": platform.node(),
            "jax": jax.__version__,
        }
        if args.reference_ms > 0 and b <= 30:
            short = dict(duration_ms=args.reference_ms, precision=args.precision)
            simulate(conn, proto, kernel="reference", **short)  # compile
            t = time.perf_counter()
            ref = simulate(conn, proto, kernel="reference", **short)
            t_ref = time.perf_counter() - t
            t = time.perf_counter()
            fast = simulate(conn, proto, budgets=budgets, **short)
            t_fast = time.perf_counter() - t
            rec["reference_ms"] = args.reference_ms
            rec["reference_over_windowed"] = t_ref / t_fast
            rec["reference_same_spikes"] = bool(
                np.array_equal(ref.step, fast.step) and np.array_equal(ref.neuron, fast.neuron)
            )
        records.append(rec)
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
