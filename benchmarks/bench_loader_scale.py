"""Load a MaleCNS-shaped neuPrint flat connectome (``neuprint_flat``): time and peak memory.

    python benchmarks/bench_loader_scale.py --fraction 0.25 --json

Writes, in a temporary folder, files of the published shape (MaleCNS v1.0: 151,856,684
weight rows, 211,577 annotation rows of which 166,700 have a superclass, 1,835,518
neurotransmitter rows; about 16.8% of weight rows join two neurons, the mean weight is
2.05 = 311,833,243 / 151,856,684), with ``--fraction`` of the weight rows. Lz4-compressed
Feather v2 in record batches of 65,536 rows, as ``pyarrow.feather.write_feather`` writes
them. Then, each in a fresh process so that its peak RSS is its own, it loads the folder
with the registry's cache: first the parse (streaming the weights) and the cache write,
then the cached load. Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that
process (numpy, pyarrow and brainsim imported; JAX is not imported by the loader).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as pf

WEIGHT_ROWS = 151_856_684  # connectome-weights-male-cns-v1.0-minconf-0.5.feather
ANNOTATION_ROWS = 211_577
NEURONS = 166_700
TRANSMITTER_ROWS = 1_835_518
NEURON_PAIR_FRACTION = 25_582_938 / WEIGHT_ROWS  # rows between two neurons
MEAN_WEIGHT = 311_833_243 / WEIGHT_ROWS
BATCH = 65_536


def write_files(folder: Path, fraction: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    bodies = rng.choice(np.arange(10_000, 10_000 + 4 * ANNOTATION_ROWS), ANNOTATION_ROWS, False)
    neuron_ids = np.sort(bodies[:NEURONS])
    superclass = np.array(["cb_intrinsic"] * NEURONS + [None] * (ANNOTATION_ROWS - NEURONS))
    pf.write_feather(
        pa.table({"bodyId": bodies, "superclass": superclass, "type": superclass}),
        folder / "body-annotations-male-cns-v1.0-minconf-0.5.feather",
    )
    nt_bodies = np.concatenate(
        [neuron_ids, 10**9 + np.arange(TRANSMITTER_ROWS - NEURONS, dtype=np.int64)]
    )
    names = np.array(["acetylcholine", "gaba", "glutamate", "histamine", "unclear"])
    pf.write_feather(
        pa.table({"body": nt_bodies, "consensus_nt": names[rng.integers(0, 5, nt_bodies.size)]}),
        folder / "body-neurotransmitters-male-cns-v1.0.feather",
    )
    rows = int(WEIGHT_ROWS * fraction)
    p_neuron = np.sqrt(NEURON_PAIR_FRACTION)  # each end a neuron independently
    schema = pa.schema(
        [("body_pre", pa.int64()), ("body_post", pa.int64()), ("weight", pa.int64())]
    )
    path = folder / "connectome-weights-male-cns-v1.0-minconf-0.5.feather"
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema, options=options) as w:
        for start in range(0, rows, 1 << 20):
            m = min(1 << 20, rows - start)
            ends = []
            for _ in range(2):
                neuron = rng.random(m) < p_neuron
                ids = rng.integers(10**9, 10**11, m)  # fragments: ids no neuron has
                ids[neuron] = neuron_ids[rng.integers(0, NEURONS, int(neuron.sum()))]
                ends.append(ids)
            weight = 1 + rng.geometric(1 / MEAN_WEIGHT, m) - 1
            table = pa.table({"body_pre": ends[0], "body_post": ends[1], "weight": weight})
            for batch in table.to_batches(max_chunksize=BATCH):
                w.write_batch(batch)
    return {"weight_rows": rows, "weights_file_mb": path.stat().st_size / 1e6}


CHILD = """
import json, resource, sys, time
t = time.perf_counter()
from brainsim.connectome import load
conn = load(sys.argv[1], "neuprint_flat", cache_dir=sys.argv[2])
wall = time.perf_counter() - t
print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF)
                  .ru_maxrss / 1024, "n_neurons": conn.n_neurons,
                  "n_connections": conn.n_connections, "n_synapses": conn.n_synapses,
                  "counts": dict(conn.provenance.counts)}))
"""


def load_in_child(folder: Path, cache: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(cache)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fraction", type=float, default=0.25)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        folder, cache = Path(d) / "mcns", Path(d) / "cache"
        folder.mkdir()
        t = time.perf_counter()
        rec = write_files(folder, args.fraction)
        rec["generate_s"] = time.perf_counter() - t
        rec["parse"] = load_in_child(folder, cache)
        rec["cached"] = load_in_child(folder, cache)
    rec.update(fraction=args.fraction, host=platform.node(), python=platform.python_version())
    if args.json:
        print(json.dumps(rec, indent=1))
    else:
        for k, v in rec.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
