"""Dense activity, compiled, side by side in one process: the dense-window stepper's native
chunk against the code it replaces, and where its time goes.

Every neuron of a synthetic network driven at one Poisson rate (default: 20,000 neurons,
seed 0, 10 Hz, 4 trials x 1 s, the dense-activity workload of issue 17). Variants, timed
alternately round by round (best of ``--rounds``, each after an untimed compiling run):

- ``previous``: the JAX step with the native delivery and Poisson stream 1 (one uniform per
  input and step): the dense-window stepper before the native chunk;
- ``jax_twin``: the same with stream 2 (the native chunk's twin, equal bit for bit);
- ``native_chunk``: the whole chunk in C++ (``kernels/native/dense_lif.cc``);
- ``native_chunk, no synapses`` and ``native_chunk, no synapses, no input``: the same
  neurons without connections, then without Poisson input: the stepping alone, then with
  the Poisson draws (the difference to the full run is the synaptic delivery).

    python benchmarks/bench_dense_native.py [--n-neurons 20000] [--seed 0] [--rate-hz 10]
        [--trials 4] [--duration-ms 1000] [--rounds 3] [--threads N] [--json OUT]

Prints one JSON line per variant: seconds, spikes, synaptic events per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-neurons", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0, help="synthetic connectome seed")
    ap.add_argument("--rate-hz", type=float, default=10.0)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="BRAINSIM_NATIVE_THREADS")
    ap.add_argument("--json", type=Path, default=None, help="append the records here")
    args = ap.parse_args(argv)
    if args.threads:
        os.environ["BRAINSIM_NATIVE_THREADS"] = str(args.threads)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

    import brainsim.sim._simulate as engine
    from brainsim.connectome import load
    from brainsim.connectome._connectome import Provenance, from_edges
    from brainsim.sim import Budgets, Network, Protocol, simulate

    conn = load(f"synthetic:seed={args.seed},n_neurons={args.n_neurons}", "synthetic")
    n = conn.n_neurons
    empty = from_edges(
        conn.neurons.select(["id"]),
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        Provenance(format="test", sources=(), checksum="0" * 64, sign_rule="given"),
    )
    nets = {"full": Network.from_connectome(conn), "empty": Network.from_connectome(empty)}
    driven = Protocol.build(args.trials, n, poisson=[(np.arange(n), args.rate_hz)])
    silent = Protocol.build(args.trials, n, poisson=[(np.arange(n), 0.0)])
    budgets = Budgets(active=1, stepped=1, spikes=8192, events=1 << 22, awake=1)
    fused = engine.fused_supported
    variants = {
        "previous": ("full", driven, 1, False),
        "jax_twin": ("full", driven, 2, False),
        "native_chunk": ("full", driven, 2, True),
        "native_chunk, no synapses": ("empty", driven, 2, True),
        "native_chunk, no synapses, no input": ("empty", silent, 2, True),
    }

    def run(name):
        net, proto, stream, chunk = variants[name]
        engine.fused_supported = fused if chunk else (lambda *a: False)
        try:
            t = time.perf_counter()
            r = simulate(
                nets[net], proto, duration_ms=args.duration_ms, kernel="dense_window",
                native=True, budgets=budgets, poisson_stream=stream,
            )  # fmt: skip
            return time.perf_counter() - t, r
        finally:
            engine.fused_supported = fused

    best: dict = {}
    for name in variants:  # compile each once, untimed
        run(name)
    for _ in range(args.rounds):
        for name in variants:
            s, r = run(name)
            if name not in best or s < best[name][0]:
                best[name] = (s, r)
    trial_s = args.trials * args.duration_ms * 1e-3
    out_degree = np.diff(conn.indptr)
    for name, (s, r) in best.items():
        events = int(out_degree[r.neuron].sum()) if variants[name][0] == "full" else 0
        rec = {
            "variant": name,
            "seconds": s,
            "s_per_trial_second": s / trial_s,
            "spikes": r.n_spikes,
            "synaptic_events_per_s": events / s,
            "native_chunk": r.stats.get("native_chunk"),
            "n_neurons": n,
            "n_connections": conn.n_connections,
            "rate_hz": args.rate_hz,
            "trials": args.trials,
            "duration_ms": args.duration_ms,
            "threads": os.environ.get("BRAINSIM_NATIVE_THREADS", "pool"),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(rec), flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps(rec) + "\n")
    previous, chunk = best["previous"][0], best["native_chunk"][0]
    print(f"native chunk against the previous dense-window stepper: {previous / chunk:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
