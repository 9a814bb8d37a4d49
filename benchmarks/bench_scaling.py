"""Scaling sweeps of brainsim.bench: s per trial-second against trials, size and activity.

Runs ``scaling_trials`` (1..128 trials), ``scaling_size`` (0.07, 0.25, 0.5 and 1.0 x FlyWire;
``--with-4x`` adds 4x) and ``scaling_activity`` (sugar inputs at 25..200 Hz), each a record;
any option of ``brainsim bench`` applies (``--trials`` with several values needs
``--workload scaling_trials`` alone).

    python benchmarks/bench_scaling.py                                   # CPU-sized, tables
    python benchmarks/bench_scaling.py --json --duration-ms 1000 --with-4x > scaling.jsonl
    python benchmarks/bench_scaling.py --workload scaling_trials --trials 1 8 64 --json
"""

from __future__ import annotations

import sys

from brainsim.bench import main

SWEEPS = ("scaling_trials", "scaling_size", "scaling_activity")


def run(argv: list[str]) -> int:
    if "--workload" not in argv:
        argv = [*argv, *(a for w in SWEEPS for a in ("--workload", w))]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
