"""Load and cache the whole-brain synthetic connectome: generate, save, reload (median of runs).

    python benchmarks/bench_connectome.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from brainsim.connectome import load, load_file, save


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="synthetic:seed=0,scale=1.0")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    gen, sav, rel = [], [], []
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.npz"
        for _ in range(args.repeats):
            t = time.perf_counter()
            conn = load(args.spec, "synthetic")
            gen.append(time.perf_counter() - t)
            t = time.perf_counter()
            save(conn, path)
            sav.append(time.perf_counter() - t)
            t = time.perf_counter()
            again = load_file(path)
            rel.append(time.perf_counter() - t)
            assert again.n_synapses == conn.n_synapses
        size = path.stat().st_size
    rec = {
        "spec": args.spec,
        "n_neurons": conn.n_neurons,
        "n_connections": conn.n_connections,
        "n_synapses": conn.n_synapses,
        "generate_s_median": statistics.median(gen),
        "save_s_median": statistics.median(sav),
        "reload_s_median": statistics.median(rel),
        "reload_over_generate": statistics.median(rel) / statistics.median(gen),
        "cache_file_mb": size / 1e6,
        "host": platform.node(),
        "repeats": args.repeats,
    }
    print(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
