"""Fit speed: the dense gradient path against the one that follows the spikes, side by side.

    python benchmarks/bench_fit_events.py [--spec SPEC] [--dense-steps 3] [--steps 150]
        [--jax-events-steps 5]

On a synthetic network (default 5,000 neurons, ~383k connections, seed 1: not one the
project tuned on), as ``brainsim`` processes started fresh:

1. a teacher run (``brainsim run``, w_syn_mv = 0.35, sugar-like inputs at 150 Hz): the
   target rates;
2. ``brainsim fit`` of ``w_syn_mv`` from 0.25 with ``gradient = "dense"`` for
   ``--dense-steps`` steps (its time per step), and with ``gradient = "events"`` for
   ``--steps`` steps (the whole recovery; on the CPU its propagation runs in C++), and
   for ``--jax-events-steps`` steps in its JAX form (``BRAINSIM_NATIVE=0``), all with the
   same compact surrogate (straight_through, slope 1/mV: a window of +-1 mV) and 8 trials
   x 300 ms per gradient;
3. the agreement of the two paths: the first step's loss and gradient norm of both fits
   (same parameters, same input noise; a single fitted value, so the norm is |dL/dw|).

Reports per-step time (the fit's mean over steps after the first, which compiles), whole
process wall time and peak RSS (each child's own, from ``os.wait4``), the
fitted w_syn_mv and its error. One JSON record on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

SPEC = "synthetic:seed=1,n_neurons=5000,mean_out_degree=85"


def _toml(spec: str, body: str) -> str:
    return f"""
[connectome]
format = "synthetic"
path = "{spec}"
[simulation]
duration_ms = 300.0
trials = 32
seed = 11
[[stimulus]]
kind = "poisson"
neurons = {{ cell_type = "sugar_like_GRN" }}
rate_hz = 150.0
{body}
"""


def _process(args: list[str], env: dict | None = None) -> dict:
    """Run a child process; its wall time and its own peak RSS (``os.wait4``)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})}
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status):
            err.seek(0)
            sys.exit(f"{' '.join(args)} failed:\n{err.read().decode()[-3000:]}")
    return {"wall_s": wall, "peak_rss_gb": usage.ru_maxrss / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=SPEC)
    ap.add_argument("--dense-steps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument(
        "--jax-events-steps", type=int, default=5,
        help='steps of "events" in its JAX form (BRAINSIM_NATIVE=0), side by side; 0: none',
    )  # fmt: skip
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fit_events_"))
    teacher = tmp / "teacher.toml"
    teacher.write_text(_toml(args.spec, "[model]\nw_syn_mv = 0.35\n"))
    brainsim = [sys.executable, "-m", "brainsim.cli"]
    rec: dict = {"spec": args.spec, "machine": platform.processor() or platform.machine()}
    rec["teacher"] = _process([*brainsim, "run", str(teacher), "--out", str(tmp / "t"), "--quiet"])
    variants = [("dense", "dense", args.dense_steps, None)]
    if args.jax_events_steps:
        variants.append(("events_jax", "events", args.jax_events_steps, {"BRAINSIM_NATIVE": "0"}))
    variants.append(("events", "events", args.steps, None))
    for name, gradient, steps, env in variants:
        cfg = tmp / f"fit_{name}.toml"
        cfg.write_text(
            _toml(
                args.spec,
                f"""[fit]
targets = "{tmp / "t" / "rates.parquet"}"
trainable = ["w_syn_mv"]
init = {{ w_syn_mv = 0.25 }}
steps = {steps}
learning_rate = 0.02
gradient = "{gradient}"
surrogate = "straight_through"
surrogate_slope = 1.0
trials = 8
duration_ms = 300.0
log_every = 10
""",
            )
        )
        out = tmp / f"out_{name}"
        proc = _process([*brainsim, "fit", str(cfg), "--out", str(out), "--quiet"], env)
        man = json.loads((out / "manifest.json").read_text())["fit"]
        first = pq.read_table(out / "loss.parquet").slice(0, 1).to_pylist()[0]
        w = man["fitted"]["w_syn_mv"]
        w = w if isinstance(w, float) else next(iter(w.values()))
        rec[name] = proc | {
            "steps": steps,
            "native_events": man.get("native_events"),
            "mean_step_s": man["mean_step_s"],
            "fitted_w_syn_mv": w,
            "error_pct": 100 * abs(w - 0.35) / 0.35,
            "first_loss": first["loss"],
            "first_grad_norm": first["grad_norm"],
        }
        print(name, json.dumps(rec[name]), file=sys.stderr, flush=True)
    d, e = rec["dense"], rec["events"]
    rec["first_grad_relative_difference"] = abs(e["first_grad_norm"] - d["first_grad_norm"]) / abs(
        d["first_grad_norm"]
    )
    rec["speedup_per_step"] = rec["dense"]["mean_step_s"] / rec["events"]["mean_step_s"]
    if "events_jax" in rec:
        rec["native_over_jax_events_per_step"] = (
            rec["events_jax"]["mean_step_s"] / rec["events"]["mean_step_s"]
        )
    print(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
