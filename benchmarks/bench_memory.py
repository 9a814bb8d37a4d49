"""Peak memory of the sugar run on the whole brain and on a 4x-FlyWire synthetic brain.

Every measurement runs in a fresh Python process, so that peaks do not mix: per network, a
``load`` process (generates the network into the connectome cache the first time; its peak
is generation's, or reading the cache's) and then a ``sim`` process (reads the cache, copies
the network to the device, runs the sugar protocol once, compilation included). Reported:
peak resident set size (``ru_maxrss``) after imports, after loading and after simulating,
and on accelerators ``peak_bytes_in_use`` of device 0. One JSON object per process.

    python benchmarks/bench_memory.py                                  # scales 1.0 and 4.0
    python benchmarks/bench_memory.py --scales 1.0 --trials 30 128 --duration-ms 1000
    python benchmarks/bench_memory.py --scales 4.0 --phase load &     # generate ahead
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MIB = 2**20


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (``ru_maxrss``: KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def child(task: dict) -> dict:
    """One measurement, in this (fresh) process."""
    import jax

    from brainsim.bench._common import (
        device_network,
        environment,
        load_network,
        spec_for,
        sugar_protocol,
    )
    from brainsim.sim import simulate

    out = {"phase": task["phase"], "rss_peak_after_import_mib": peak_rss_mib()}
    spec = spec_for(task["scale"])
    t = time.perf_counter()
    conn, _ = load_network(spec, cache=task["cache"])
    arrays = (conn.indptr, conn.indices, conn.counts)
    out.update(
        spec=spec,
        n_neurons=conn.n_neurons,
        n_connections=conn.n_connections,
        load_s=time.perf_counter() - t,
        connectome_arrays_mib=sum(a.nbytes for a in arrays) / MIB,
        rss_peak_after_load_mib=peak_rss_mib(),
    )
    if task["phase"] == "sim":
        b, duration_ms = task["trials"], task["duration_ms"]
        t = time.perf_counter()
        net = device_network(conn, task["precision"])
        proto = sugar_protocol(conn, b, task["rate_hz"])
        r = simulate(net, proto, duration_ms=duration_ms, precision=task["precision"])
        item = 8 if task["precision"] == "float64" else 4
        out.update(
            trials=b,
            duration_ms=duration_ms,
            rate_hz=task["rate_hz"],
            precision=task["precision"],
            wall_s_first=time.perf_counter() - t,
            n_spikes=r.n_spikes,
            budgets=r.stats.get("budgets"),
            # v, g, refractory counter and valid-from window per trial and neuron
            state_mib=b * conn.n_neurons * (2 * item + 8) / MIB,
            rss_peak_mib=peak_rss_mib(),
        )
        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            out["device_peak_mib"] = stats["peak_bytes_in_use"] / MIB
            out["device_limit_mib"] = stats.get("bytes_limit", 0) / MIB
    out.update(environment())
    return out


def measure(task: dict, timeout_s: float) -> dict:
    """Run ``child(task)`` in a fresh interpreter and return its record."""
    cmd = [sys.executable, __file__, "--child", json.dumps(task)]
    env = dict(os.environ)
    if task["phase"] == "load":
        # loading is host work: keep the process off the accelerator, so that a load run in
        # the background does not claim device memory from the runs being measured
        env["JAX_PLATFORMS"] = "cpu"
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {**task, "error": f"timed out after {timeout_s:g} s"}
    if p.returncode != 0:
        tail = p.stderr.strip().splitlines()[-3:]
        return {**task, "error": f"exit {p.returncode}: {' | '.join(tail)}"}
    rec = json.loads(p.stdout.strip().splitlines()[-1])
    rec["process_wall_s"] = time.perf_counter() - t
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 4.0])
    ap.add_argument("--trials", type=int, nargs="+", default=[30])
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--rate-hz", type=float, default=150.0)
    ap.add_argument("--precision", default="float32", choices=("float32", "float64"))
    ap.add_argument(
        "--no-cache",
        action="store_true",
        help="generate the network in the sim process (its peak then includes generation)",
    )
    ap.add_argument(
        "--phase",
        choices=("both", "load", "sim"),
        default="both",
        help="load only (e.g. to fill the cache ahead, in the background) or sim only",
    )
    ap.add_argument("--timeout-s", type=float, default=1800.0, help="per process")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        task = json.loads(args.child)
        if task["precision"] == "float64":
            import jax

            jax.config.update("jax_enable_x64", True)
        print(json.dumps(child(task)), flush=True)
        return
    for scale in args.scales:
        base = {"scale": scale, "cache": not args.no_cache, "precision": args.precision}
        tasks = [] if args.no_cache or args.phase == "sim" else [{**base, "phase": "load"}]
        tasks += (
            []
            if args.phase == "load"
            else [
                {
                    **base,
                    "phase": "sim",
                    "trials": b,
                    "duration_ms": args.duration_ms,
                    "rate_hz": args.rate_hz,
                }
                for b in args.trials
            ]
        )
        for task in tasks:
            rec = {"workload": "memory", **measure(task, args.timeout_s)}
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
