"""A user's first `brainsim run` of a config, two commits side by side, fresh processes.

Every run is a whole `brainsim run CONFIG` process started fresh, timed end to end, with a
cache folder of its own that holds only the connectome cache and the compiled native
kernel: no remembered budgets, no compiled JAX programs (a fresh machine after its first
connectome load). The commits alternate round by round so that the machine's drift hits
both alike. Reads each run's manifest for the budget re-runs, the kernel's seconds and the
spikes (which must agree), and counts the chunk programs XLA compiled (``JAX_LOG_COMPILES``).

    python benchmarks/bench_first_run.py OLD NEW --config configs/quickstart.toml \\
        --config benchmarks/configs/sugar_30x1s.toml --rounds 2 [--no-plots-too]

``NEW`` may be ``WORKTREE``. With ``--no-plots-too`` the new commit also runs with
``--no-plots`` (an option older commits lack). Prints one JSON line per run and a table of
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_commits import ROOT, checkout  # noqa: E402

# (the check: the commit's own package runs, not one found first on sys.path)
CODE = (
    "import os, sys, brainsim; assert brainsim.__file__.startswith(os.environ['PYTHONPATH']), "
    "brainsim.__file__; from brainsim.cli import main; sys.exit(main(sys.argv[1:]))"
)


def fresh_cache(into: Path, source: Path) -> Path:
    """A cache folder with only the connectome cache and the native kernel linked in."""
    into.mkdir(parents=True)
    for name in ("connectomes", "native"):
        if (source / name).exists():
            (into / name).symlink_to(source / name)
    return into


def first_run(site: Path, config: Path, cache: Path, out: Path, extra: list[str]) -> dict:
    env = dict(
        os.environ, PYTHONPATH=str(site), JAX_PLATFORMS="cpu", BRAINSIM_CACHE=str(cache),
        JAX_LOG_COMPILES="1",
    )  # fmt: skip
    env.pop("BRAINSIM_JAX_CACHE", None)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CODE, "run", str(config), "--out", str(out), "--quiet", *extra],
        env=env, capture_output=True, text=True, check=False, cwd=site,
    )  # fmt: skip  (cwd: `python -c` puts it first on sys.path; in the repo it is new code)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"brainsim run {config} failed in {site}:\n{proc.stderr[-3000:]}")
    man = json.loads((out / "manifest.json").read_text())
    chunk_compiles = len(
        re.findall(r"Finished XLA compilation of jit\((windowed|dense_window|reference)_chunk",
                   proc.stderr)
    )  # fmt: skip
    return {
        "wall_s": wall,
        "reruns": sum(k.get("reruns", 0) for k in man["kernel"]),
        "kernel_s": sum(k.get("wall_s", 0.0) for k in man["kernel"]),
        "simulate_s": man["wall_time_s"]["simulate"],
        "load_s": man["wall_time_s"]["load"],
        "chunk_compiles": chunk_compiles,
        "spikes": man["n_spikes"],
        "budgets_used": [k.get("budgets_used") for k in man["kernel"]],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--config", action="append", required=True, type=Path)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-plots-too", action="store_true")
    p.add_argument("--cache-source", type=Path, default=None,
                   help="cache folder whose connectomes/ and native/ are linked in "
                   "(default: $BRAINSIM_CACHE or ~/.cache/brainsim)")  # fmt: skip
    args = p.parse_args(argv)
    source = args.cache_source or Path(
        os.environ.get("BRAINSIM_CACHE", Path.home() / ".cache" / "brainsim")
    )
    variants = [(args.old, []), (args.new, [])]
    if args.no_plots_too:
        variants.append((args.new, ["--no-plots"]))
    rows: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sites = {rev: checkout(rev, tmp) for rev in {args.old, args.new}}
        try:
            n = 0
            for r in range(args.rounds):
                order = variants if r % 2 == 0 else variants[::-1]
                for config in args.config:
                    for rev, extra in order:
                        n += 1
                        rec = first_run(
                            sites[rev], config.resolve(), fresh_cache(tmp / f"c{n}", source),
                            tmp / f"o{n}", extra,
                        )  # fmt: skip
                        label = rev + (" " + " ".join(extra) if extra else "")
                        rec |= {"rev": label, "config": str(config), "round": r}
                        print(json.dumps(rec), flush=True)
                        rows.setdefault(str(config), {}).setdefault(label, []).append(rec)
        finally:
            for rev in {args.old, args.new} - {"WORKTREE"}:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force",
                     str(tmp / rev.replace("/", "_"))],
                    check=False, capture_output=True,
                )  # fmt: skip
    print(f"\n{'config':<40}{'code':<26}{'whole s':>9}{'kernel s':>9}{'re-runs':>8}"
          f"{'compiles':>9}  spikes")  # fmt: skip
    for config, by in rows.items():
        for label, recs in by.items():
            med = lambda f, recs=recs: statistics.median(x[f] for x in recs)  # noqa: E731
            spikes = sorted({x["spikes"] for x in recs})
            print(
                f"{Path(config).name:<40}{label[:25]:<26}{med('wall_s'):>9.2f}"
                f"{med('kernel_s'):>9.2f}{med('reruns'):>8g}{med('chunk_compiles'):>9g}  {spikes}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
