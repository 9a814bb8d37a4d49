"""The native chunks, compiled, side by side in one process with the code they replace, and
where their time goes.

``--workload dense`` (default): every neuron of a synthetic network driven at one Poisson
rate (20,000 neurons, seed 0, 10 Hz, 4 trials x 1 s: the dense-activity workload of issue
17), on the dense-window stepper. ``--workload sugar``: the whole-brain synthetic
connectome's 21 sugar-like inputs at 200 Hz, 30 trials x 1 s, on the windowed stepper.
Variants, timed alternately round by round (best of ``--rounds``, each after an untimed
compiling run; budgets fitted beforehand, so no run grows them):

- ``previous``: the stepper as it was: the native delivery per window, the model's step in
  JAX, Poisson stream 1 (one uniform per input and step);
- ``jax_twin``: the same with stream 2 (the native chunk's twin, equal bit for bit);
- ``native_chunk``: the whole chunk in C++ (``kernels/native/dense_lif.cc`` or
  ``windowed_lif.cc``);
- dense only: ``native_chunk, no synapses`` and ``native_chunk, no synapses, no input``,
  the same neurons without connections, then without input: the stepping alone, then with
  the Poisson draws (the difference to the full run is the synaptic delivery).

    python benchmarks/bench_native_chunk.py [--workload dense|sugar] [--n-neurons 20000]
        [--seed 0] [--rate-hz 10] [--trials 4] [--duration-ms 1000] [--rounds 3]
        [--threads N] [--json OUT]

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
    ap.add_argument("--workload", choices=("dense", "sugar"), default="dense")
    ap.add_argument("--n-neurons", type=int, default=None, help="dense: 20000")
    ap.add_argument("--seed", type=int, default=0, help="synthetic connectome seed")
    ap.add_argument("--rate-hz", type=float, default=None, help="dense 10, sugar 200")
    ap.add_argument("--trials", type=int, default=None, help="dense 4, sugar 30")
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="BRAINSIM_NATIVE_THREADS")
    ap.add_argument("--json", type=Path, default=None, help="append the records here")
    args = ap.parse_args(argv)
    dense = args.workload == "dense"
    rate = args.rate_hz if args.rate_hz is not None else (10.0 if dense else 200.0)
    trials = args.trials or (4 if dense else 30)
    if args.threads:
        os.environ["BRAINSIM_NATIVE_THREADS"] = str(args.threads)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

    import brainsim.sim._simulate as engine
    from brainsim.connectome import load
    from brainsim.connectome._connectome import Provenance, from_edges
    from brainsim.sim import Budgets, DenseWindow, Network, Protocol, Windowed, simulate

    size = f"n_neurons={args.n_neurons or 20_000}" if dense else "scale=1.0"
    conn = load(f"synthetic:seed={args.seed},{size}", "synthetic")
    n = conn.n_neurons
    nets = {"full": Network.from_connectome(conn)}
    if dense:
        inputs = np.arange(n)
        empty = from_edges(
            conn.neurons.select(["id"]),
            *(np.zeros(0, np.int64),) * 3,
            Provenance(format="test", sources=(), checksum="0" * 64, sign_rule="given"),
        )
        nets["empty"] = Network.from_connectome(empty)
    else:
        cell_type = np.asarray(conn.neurons.column("cell_type").to_pylist(), dtype=object)
        inputs = np.nonzero(cell_type == "sugar_like_GRN")[0]
    driven = Protocol.build(trials, n, poisson=[(inputs, rate)])
    silent = Protocol.build(trials, n, poisson=[(inputs, 0.0)])
    # the switch between the native chunk and its per-window form
    switch = ("fused_supported", engine.fused_supported) if dense else (
        "native_chunk_supported", engine.native_chunk_supported)  # fmt: skip
    variants = {
        "previous": ("full", driven, 1, False),
        "jax_twin": ("full", driven, 2, False),
        "native_chunk": ("full", driven, 2, True),
    }
    if dense:
        variants["native_chunk, no synapses"] = ("empty", driven, 2, True)
        variants["native_chunk, no synapses, no input"] = ("empty", silent, 2, True)
    budgets: dict = {}

    def run(name):
        net, proto, stream, chunk = variants[name]
        setattr(engine, switch[0], switch[1] if chunk else (lambda *a: False))
        stepper = (DenseWindow if dense else Windowed)(native=True, budgets=budgets.get(name))
        try:
            t = time.perf_counter()
            r = simulate(
                nets[net], proto, duration_ms=args.duration_ms, stepper=stepper,
                poisson_stream=stream,
            )  # fmt: skip
            return time.perf_counter() - t, r
        finally:
            setattr(engine, *switch)

    best: dict = {}
    for name in variants:  # the budgets each needs, compiled once, untimed
        _, r = run(name)
        budgets[name] = Budgets(**r.stats["budgets"])
        run(name)
    for _ in range(args.rounds):
        for name in variants:
            s, r = run(name)
            if name not in best or s < best[name][0]:
                best[name] = (s, r)
    trial_s = trials * args.duration_ms * 1e-3
    out_degree = np.diff(conn.indptr)
    for name, (s, r) in best.items():
        events = int(out_degree[r.neuron].sum()) if variants[name][0] == "full" else 0
        rec = {
            "workload": args.workload,
            "variant": name,
            "seconds": s,
            "s_per_trial_second": s / trial_s,
            "spikes": r.n_spikes,
            "synaptic_events_per_s": events / s,
            "native_chunk": r.stats.get("native_chunk"),
            "reruns": r.stats.get("reruns"),
            "n_neurons": n,
            "n_connections": conn.n_connections,
            "n_inputs": int(inputs.size),
            "rate_hz": rate,
            "trials": trials,
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
    print(f"native chunk against the previous stepper: {previous / chunk:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
