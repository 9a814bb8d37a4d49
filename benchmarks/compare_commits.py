"""Time two commits side by side in one run: ``brainsim bench`` workloads, alternating.

Each commit is checked out into a temporary git worktree and run from there (its own
``brainsim`` package on ``PYTHONPATH``, its ``kernels/`` linked in as ``brainsim.kernels``,
as an install lays it out), in fresh processes, the two commits alternating so that the
machine's drift hits both alike. Prints one JSON line per measurement and a table of
medians with the new/old ratio; spike counts must agree (same seeds, same answers).

    python benchmarks/compare_commits.py OLD NEW --workload sugar --workload dense \\
        --rounds 3 [any brainsim bench option, e.g. --seed 1]

``NEW`` may be ``WORKTREE`` for the uncommitted working tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def checkout(rev: str, into: Path) -> Path:
    if rev == "WORKTREE":
        tree = ROOT
    else:
        tree = into / rev.replace("/", "_")
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
            check=True,
            capture_output=True,
        )
    site = into / f"site-{tree.name}"
    (site / "brainsim").mkdir(parents=True, exist_ok=True)
    # a package folder of links: brainsim/* from the tree, brainsim/kernels -> kernels/
    for entry in (tree / "brainsim").iterdir():
        link = site / "brainsim" / entry.name
        if not link.exists():
            link.symlink_to(entry)
    kern = site / "brainsim" / "kernels"
    if not kern.exists():
        kern.symlink_to(tree / "kernels")
    return site


def run_bench(site: Path, workload: str, extra: list[str]) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(site), JAX_PLATFORMS="cpu")
    code = "import sys; from brainsim.cli import main; sys.exit(main(sys.argv[1:]))"
    out = subprocess.run(
        [sys.executable, "-c", code, "bench", "--workload", workload, "--json", "--quiet",
         *extra],
        env=env, capture_output=True, text=True, check=False, cwd=site,
    )  # fmt: skip  (cwd: `python -c` puts it first on sys.path; in the repo it is new code)
    if out.returncode:
        raise SystemExit(f"bench {workload} failed in {site}:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--workload", action="append", default=None)
    p.add_argument("--rounds", type=int, default=3)
    # any other argument goes to `brainsim bench` (e.g. --scale 0.5 --trials 8)
    args, extra = p.parse_known_args(argv)
    workloads = args.workload or ["sugar"]
    extra = [a for a in extra if a != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        sites = {rev: checkout(rev, Path(tmp)) for rev in (args.old, args.new)}
        rows: dict = {}
        try:
            for r in range(args.rounds):
                for rev in (args.old, args.new) if r % 2 == 0 else (args.new, args.old):
                    for w in workloads:
                        for rec in run_bench(sites[rev], w, extra):
                            rec |= {"rev": rev, "round": r}
                            print(json.dumps(rec), flush=True)
                            rows.setdefault((w, rec.get("kernel")), {}).setdefault(rev, []).append(
                                rec
                            )
        finally:
            for rev in (args.old, args.new):
                if rev != "WORKTREE":
                    subprocess.run(
                        ["git", "-C", str(ROOT), "worktree", "remove", "--force",
                         str(Path(tmp) / rev.replace("/", "_"))],
                        check=False, capture_output=True,
                    )  # fmt: skip
    print(
        f"\n{'workload':<14}{'kernel':<14}{'field':<14}{'old s':>10}{'new s':>10}"
        f"{'new/old':>9}  spikes"
    )
    for (w, kern), by in rows.items():
        spikes = {rev: sorted({x["spikes_per_trial_second"] for x in by[rev]}) for rev in by}
        same = spikes[args.old] == spikes[args.new]
        for field in ("wall_s", "wall_s_first"):
            med = {rev: statistics.median(x[field] for x in by[rev]) for rev in by}
            print(
                f"{w:<14}{str(kern):<14}{field:<14}{med[args.old]:>10.3f}{med[args.new]:>10.3f}"
                f"{med[args.new] / med[args.old]:>9.3f}  {'equal' if same else spikes}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
