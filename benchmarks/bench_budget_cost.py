"""What generous budgets cost: the compiled windowed run with the predicted first budgets,
with the sizes the run needed, and with those sizes' sized lists (stepped, spikes, awake)
scaled up, in one process.

    python benchmarks/bench_budget_cost.py --trials 4 --rate-hz 150 --factors 1 2 4

Prints one JSON line per budget set: the best and median of ``--repeats`` compiled runs
(the first call of each set, which compiles, is not timed) and the spikes, which must not
change.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import numpy as np

from brainsim._paths import cache_dir
from brainsim.connectome import load
from brainsim.sim import Budgets, Protocol, simulate
from brainsim.sim._network import Network


def timed(net, proto, budgets, repeats: int, duration_ms: float) -> dict:
    r = simulate(net, proto, duration_ms=duration_ms, budgets=budgets)  # compiles
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = simulate(net, proto, duration_ms=duration_ms, budgets=budgets)
        walls.append(time.perf_counter() - t)
    return {
        "best_s": min(walls),
        "median_s": statistics.median(walls),
        "spikes": r.n_spikes,
        "reruns": r.stats["reruns"],
        "budgets_used": r.stats["budgets_used"],
        "needed": r.stats["budgets"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="synthetic:seed=0,scale=1.0")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--rate-hz", type=float, default=150.0)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    conn = load(args.spec, "synthetic", cache_dir=cache_dir("connectomes"))
    types = np.asarray(conn.neurons.column("cell_type").to_pylist())
    inputs = np.nonzero(types == "sugar_like_GRN")[0]
    proto = Protocol.build(args.trials, conn.n_neurons, poisson=[(inputs, args.rate_hz)])
    net = Network.from_connectome(conn, np.float32)
    base = {"spec": args.spec, "trials": args.trials, "rate_hz": args.rate_hz}
    predicted = timed(net, proto, None, args.repeats, args.duration_ms)
    print(json.dumps(base | {"budgets": "predicted"} | predicted), flush=True)
    need = Budgets(**predicted["needed"])
    for f in args.factors:
        sized = dict(stepped=need.stepped * f, spikes=need.spikes * f, awake=need.awake * f)
        rec = timed(net, proto, dataclasses.replace(need, **sized), args.repeats, args.duration_ms)
        print(json.dumps(base | {"budgets": f"needed x{f}"} | rec), flush=True)


if __name__ == "__main__":
    main()
