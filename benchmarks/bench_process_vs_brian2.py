"""What a user waits for: a whole `brainsim run CONFIG` process against a whole Brian2 process
of the same model, network and drive, each started fresh, side by side.

The config must be a LIF run with Poisson stimuli at one rate (any neurons) and no
perturbations (the sugar and dense-activity workloads). Brian2 runs the published model
(``reference/brian2_model.py``, its own venv: ``bash benchmarks/reference/setup_brian2.sh``)
driven by its own ``PoissonInput`` as the published code drives it, so both draw their own
input noise: spike counts agree in law, not spike for spike (``compare_brian2.py`` checks
that on replayed events). Every figure is a fresh process timed from its start to its exit:

- brainsim: ``brainsim run CONFIG --out TMP --quiet`` (``--no-plots`` unless
  ``--with-plots``): imports, loading the cached connectome, compiling (JAX's persistent
  cache), simulating, writing the results folder;
- Brian2: ``python brian2_model.py IN OUT``: imports, loading the network file, building the
  network, code generation (its Cython cache), the trials, writing the spikes.

Warm (default): one untimed run of each first, so that both start from their caches, as on
a user's second run. ``--cold``: brainsim with an empty cache folder (the native kernels and
the connectome built anew, nothing compiled), Brian2 with an empty Cython cache; the first
run on a new machine. The two alternate round by round.

    python benchmarks/bench_process_vs_brian2.py --config benchmarks/configs/dense_20k.toml \\
        --rounds 3 [--cold] [--json OUT.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "reference"))
from compare_brian2 import BRIAN2_MODEL, VENV_PY, model_params, write_input  # noqa: E402


def brian2_input(config: Path, work: Path) -> tuple[Path, dict]:
    """The Brian2 input file of a config: its network, inputs and rate, its trials."""
    from brainsim.experiments import load_config
    from brainsim.experiments._run import build_model, load_connectome
    from brainsim.experiments._selectors import select

    cfg = load_config(config)
    if cfg.perturbations or cfg.experiment or len(cfg.stimuli) != 1:
        raise SystemExit(f"{config}: one Poisson stimulus, no perturbation or experiment")
    stim = cfg.stimuli[0]
    if stim["kind"] != "poisson" or not isinstance(stim["rate_hz"], int | float):
        raise SystemExit(f"{config}: the stimulus must be Poisson at one rate")
    conn = load_connectome(cfg)
    model = build_model(cfg)
    inputs = select(conn, stim["neurons"], where="stimulus", base_dir=cfg.base_dir)
    sim = cfg.simulation
    path = work / "brian2_in.npz"
    none = np.zeros(0, np.int64)
    write_input(
        path,
        conn,
        model_params(model),
        sim["trials"],
        sim["duration_ms"],
        model.dt_ms,
        (none, none, none),
        inputs,
        extra={"poisson_rate_hz": np.float64(stim["rate_hz"])},
    )
    info = {
        "n_neurons": conn.n_neurons,
        "n_connections": conn.n_connections,
        "n_inputs": int(inputs.size),
        "rate_hz": float(stim["rate_hz"]),
        "trials": sim["trials"],
        "duration_ms": sim["duration_ms"],
    }
    return path, info


def run_brainsim(config: Path, out: Path, cache: Path | None, plots: bool) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if cache is not None:
        env["BRAINSIM_CACHE"] = str(cache)
    cmd = [shutil.which("brainsim") or "brainsim", "run", str(config), "--out", str(out)]
    cmd += ["--quiet"] + ([] if plots else ["--no-plots"])
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    man = json.loads((out / "manifest.json").read_text())
    kernel = man["kernel"][0]
    return {
        "wall_s": wall,
        "simulate_s": man["wall_time_s"]["simulate"],
        "load_s": man["wall_time_s"]["load"],
        "kernel": kernel["kernel"],
        "native_chunk": kernel.get("native_chunk"),
        "reruns": kernel.get("reruns"),
        "spikes": man["n_spikes"],
    }


def run_brian2(inp: Path, out: Path, cython_cache: Path | None) -> dict:
    cmd = [str(VENV_PY), str(BRIAN2_MODEL), str(inp), str(out)]
    if cython_cache is not None:
        cmd += ["--cython-cache", str(cython_cache)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX", "XLA"))}
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    d = np.load(out)
    return {
        "wall_s": wall,
        "build_s": float(d["build_s"]),
        "compile_s": float(d["compile_s"]),
        "run_s": float(np.sum(d["wall_s"])),
        "spikes": int(d["trial"].size),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="empty caches for every run")
    ap.add_argument("--with-plots", action="store_true", help="brainsim also writes its plots")
    ap.add_argument("--json", type=Path, default=None, help="append one JSON line per run here")
    args = ap.parse_args(argv)
    if not VENV_PY.exists():
        raise SystemExit(f"{VENV_PY} not found: bash benchmarks/reference/setup_brian2.sh")
    work = Path(tempfile.mkdtemp(prefix="bench_vs_brian2_"))
    inp, info = brian2_input(args.config.resolve(), work)
    print(
        f"{args.config}: {info['n_neurons']} neurons, {info['n_connections']} connections, "
        f"{info['n_inputs']} inputs at {info['rate_hz']:g} Hz, {info['trials']} x "
        f"{info['duration_ms']:g} ms; {'cold' if args.cold else 'warm'} caches",
        flush=True,
    )

    def caches(i: int):
        if not args.cold:
            return None, None
        return work / f"brainsim_cache_{i}", work / f"cython_cache_{i}"

    if not args.cold:  # one untimed run each: both start from their caches
        run_brainsim(args.config.resolve(), work / "warm_bs", None, args.with_plots)
        run_brian2(inp, work / "warm_b2.npz", None)
    rows = []
    for i in range(args.rounds):
        bs_cache, b2_cache = caches(i)
        bs = run_brainsim(args.config.resolve(), work / f"bs_{i}", bs_cache, args.with_plots)
        b2 = run_brian2(inp, work / f"b2_{i}.npz", b2_cache)
        for name, r in (("brainsim", bs), ("brian2", b2)):
            row = {"round": i, "simulator": name, **r, **info, "cold": args.cold}
            rows.append(row)
            print(json.dumps(row), flush=True)
    bs_wall = statistics.median(r["wall_s"] for r in rows if r["simulator"] == "brainsim")
    b2_wall = statistics.median(r["wall_s"] for r in rows if r["simulator"] == "brian2")
    b2_run = statistics.median(r["run_s"] for r in rows if r["simulator"] == "brian2")
    summary = {
        "summary": True,
        "config": str(args.config),
        "brainsim_wall_s": bs_wall,
        "brian2_wall_s": b2_wall,
        "brian2_run_s": b2_run,
        "brian2_over_brainsim_whole_process": b2_wall / bs_wall,
        "brian2_runs_over_brainsim_whole_process": b2_run / bs_wall,
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        **info,
        "cold": args.cold,
    }
    print(json.dumps(summary), flush=True)
    print(
        f"whole process, median of {args.rounds}: brainsim {bs_wall:.2f} s, Brian2 "
        f"{b2_wall:.2f} s ({b2_run:.2f} s of it in run()): Brian2 / brainsim = "
        f"{b2_wall / bs_wall:.2f}x (its runs alone: {b2_run / bs_wall:.2f}x)"
    )
    if args.json:
        with args.json.open("a") as f:
            for row in [*rows, summary]:
                f.write(json.dumps(row) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
