"""C. elegans against the measured signal-propagation atlas (Randi et al. 2023, via cect):
the anatomy-only graded model and fitted ones, in-sample and held out.

    python benchmarks/celegans_atlas.py [--steps N] [--fractions 1,0.5,0.25,0.1] [--out DIR]

Runs, from configs/celegans_atlas.toml and configs/celegans_atlas_fit.toml (the same
seeded 20% held-out split everywhere):

1. the stability point of the linear network: the largest w_syn for which every eigenvalue
   of ``w_syn N + w_gap (G - diag(sum G)) - I`` has a negative real part (the config's
   w_syn is half of it), with and without gap junctions;
2. the anatomy-only model (nothing fitted): with and without gap junctions, and with
   glutamate inhibitory as well as GABA (the Shiu et al. rule) instead of GABA only;
3. the fit (``brainsim fit``) with and without gap junctions;
4. the fit with only a fraction of the responders observed in training (the held-out
   scores use every responder): how prediction degrades as fewer neurons are recorded;
5. low-dimensional fits (``--low-dim``, alone with ``--low-dim-only``): the three global
   gains (w_syn, w_gap, tau) alone, then with the extrasynaptic couplings of cect's
   monoamine (Bentley 2016, 4 transmitters) and neuropeptide connectomes (Bentley 2016;
   Ripoll-Sanchez 2023 short range), one sign-free gain each.

Prints a JSON record and Markdown tables; writes ``observed_fraction.png`` into --out.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def critical_w_syn(conn, w_gap: float) -> float:
    """Bisection for the largest stable w_syn of the linear graded network."""
    n = conn.n_neurons
    syn, gap = conn.dense()
    syn = syn.T  # [post, pre]: d v_post / dt gets w_syn x counts x v_pre
    base = w_gap * (gap - np.diag(gap.sum(axis=1))) - np.eye(n)
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.linalg.eigvals(mid * syn + base).real.max() < 0 else (lo, mid)
    return lo


def split_scores(folder: Path, holdout: list[str], train: list[str]) -> dict:
    from brainsim.celegans import compare

    with tempfile.TemporaryDirectory() as tmp:
        return {
            "all": compare(folder, out=Path(tmp) / "a").scores,
            "train": compare(folder, stimulated=train, out=Path(tmp) / "t").scores,
            "holdout": compare(folder, stimulated=holdout, out=Path(tmp) / "h").scores,
        }


def anatomy(raw: dict, holdout, train, out: Path, log) -> dict:
    from brainsim.experiments import parse_config, run_config

    cfg = parse_config(raw, ROOT / "configs" / "celegans_atlas.toml")
    t0 = time.perf_counter()
    folder = run_config(cfg, out, log=log)
    return {"wall_s": time.perf_counter() - t0, **split_scores(folder, holdout, train)}


def fit(raw: dict, out: Path, log) -> dict:
    from brainsim.celegans._fit import run_atlas_fit

    t0 = time.perf_counter()
    run_atlas_fit(raw, ROOT / "configs" / "celegans_atlas_fit.toml", out, log=log)
    s = json.loads((out / "scores.json").read_text())
    return {"wall_s": time.perf_counter() - t0, "before": s["before"], "after": s["after"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="default: the fit config's")
    ap.add_argument("--fractions", default="1,0.5,0.25,0.1")
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="celegans_")))
    ap.add_argument("--low-dim", action="store_true", help="also the low-dimensional fits")
    ap.add_argument("--low-dim-only", action="store_true", help="only those")
    args = ap.parse_args()
    from brainsim.celegans import read_atlas
    from brainsim.celegans._fit import AtlasTask, split
    from brainsim.experiments import parse_config
    from brainsim.experiments._config import read_toml
    from brainsim.experiments._run import load_connectome

    quiet = lambda *a: None  # noqa: E731
    raw_run, _ = read_toml(ROOT / "configs" / "celegans_atlas.toml")
    raw_fit, _ = read_toml(ROOT / "configs" / "celegans_atlas_fit.toml")
    if args.steps is not None:
        raw_fit["fit"]["steps"] = args.steps
    cfg = parse_config(raw_run, ROOT / "configs" / "celegans_atlas.toml")
    conn = load_connectome(cfg)
    atlas = read_atlas(conn)
    task = AtlasTask(**{k: v for k, v in raw_fit["fit"].items()
                        if k in ("holdout_fraction", "holdout_seed")})  # fmt: skip
    driven = set(raw_run["experiment"]["drive"]["cell_type"])
    stim = sorted(set(atlas.stimulated) & driven)
    sp = split(stim, stim, task)
    record: dict = {
        "machine": platform.processor() or platform.machine(),
        "steps": raw_fit["fit"]["steps"],
    }
    m = raw_run["model"]
    record["stability"] = {
        "w_syn": m["w_syn"],
        "critical_w_syn_with_gaps": critical_w_syn(conn, m["w_gap"]),
        "critical_w_syn_without_gaps": critical_w_syn(conn, 0.0),
    }
    if args.low_dim or args.low_dim_only:
        record["low_dim"] = low_dim(raw_fit, args.out, quiet)
        if args.low_dim_only:
            (args.out / "celegans_atlas_low_dim.json").write_text(json.dumps(record, indent=1))
            print(json.dumps(record, indent=1))
            _low_dim_table(record["low_dim"])
            return
    rows = {}
    no_gap = copy.deepcopy(raw_run)
    no_gap["connectome"]["gap_junctions"] = False
    glu = copy.deepcopy(raw_run)
    glu["connectome"]["options"]["inhibitory"] = ["GABA", "Glutamate"]
    for name, raw in (("anatomy, gap junctions", raw_run), ("anatomy, no gap junctions", no_gap),
                      ("anatomy, GABA + glutamate inhibitory", glu)):  # fmt: skip
        rows[name] = anatomy(raw, sp.holdout, sp.train, args.out / name.replace(" ", "_"), quiet)
        print(name, json.dumps(rows[name]["holdout"]), flush=True)
    fits = {}
    fit_ng = copy.deepcopy(raw_fit)
    fit_ng["connectome"]["gap_junctions"] = False
    fit_ng["fit"]["trainable"] = [t for t in raw_fit["fit"]["trainable"] if t != "w_gap"]
    for name, raw in (("fitted, gap junctions", raw_fit), ("fitted, no gap junctions", fit_ng)):
        fits[name] = fit(raw, args.out / name.replace(" ", "_").replace(",", ""), quiet)
        print(name, json.dumps(fits[name]["after"]["holdout"]), flush=True)
    curve = []
    for f in [float(x) for x in args.fractions.split(",")]:
        if f == 1.0:
            res = fits["fitted, gap junctions"]
        else:
            raw = copy.deepcopy(raw_fit)
            raw["fit"]["observed_fraction"] = f
            res = fit(raw, args.out / f"observed_{f:g}", quiet)
        curve.append({"observed_fraction": f, **res["after"]["holdout"],
                      "train": res["after"]["train"]})  # fmt: skip
        print("observed", f, json.dumps(res["after"]["holdout"]), flush=True)
    record |= {"anatomy": rows, "fits": fits, "observed_curve": curve}
    (args.out / "celegans_atlas.json").write_text(json.dumps(record, indent=1))
    _plot(curve, rows["anatomy, gap junctions"]["holdout"], args.out / "observed_fraction.png")
    print(json.dumps(record, indent=1))
    _tables(record)
    if "low_dim" in record:
        _low_dim_table(record["low_dim"])


LOW_DIM = {
    "global gains (w_syn, w_gap, tau)": [],
    "global gains + monoamines": ["Bentley2016MA"],
    "global gains + monoamines + neuropeptides": [
        "Bentley2016MA", "Bentley2016Pep", "RipollSanchezShortRange",
    ],
}  # fmt: skip


def low_dim(raw_fit: dict, out: Path, log) -> dict:
    res = {}
    for name, extra in LOW_DIM.items():
        raw = copy.deepcopy(raw_fit)
        raw["fit"]["trainable"] = ["w_syn", "w_gap", "tau"]
        raw["fit"]["extrasynaptic"] = extra
        folder = out / ("low_dim_" + "_".join(["global", *extra]))
        res[name] = fit(raw, folder, log)
        man = json.loads((folder / "manifest.json").read_text())
        res[name]["extrasynaptic"] = man["extrasynaptic"]
        print(name, json.dumps(res[name]["after"]["holdout"]), flush=True)
    return res


def _low_dim_table(res: dict) -> None:
    print("\n| fit | split | pairs | Pearson r | Spearman r | sign | balanced sign |")
    print("|---|---|---|---|---|---|---|")
    for name, r in res.items():
        for part in ("train", "holdout"):
            s = r["after"][part]
            print(f"| {name} | {part} | {s['n_pairs']} | {_f(s['pearson_r'])} | "
                  f"{_f(s['spearman_r'])} | {_f(s['sign_agreement'])} | "
                  f"{_f(s['balanced_sign_agreement'])} |")  # fmt: skip


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _tables(rec: dict) -> None:
    print("\n| model | split | pairs | Pearson r | Spearman r | sign agreement | balanced sign |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rec["anatomy"].items():
        for part in ("train", "holdout"):
            s = r[part]
            print(f"| {name} | {part} | {s['n_pairs']} | {_f(s['pearson_r'])} | "
                  f"{_f(s['spearman_r'])} | {_f(s['sign_agreement'])} | "
                  f"{_f(s['balanced_sign_agreement'])} |")  # fmt: skip
    for name, r in rec["fits"].items():
        for part in ("train", "holdout"):
            s = r["after"][part]
            print(f"| {name} | {part} | {s['n_pairs']} | {_f(s['pearson_r'])} | "
                  f"{_f(s['spearman_r'])} | {_f(s['sign_agreement'])} | "
                  f"{_f(s['balanced_sign_agreement'])} |")  # fmt: skip
    print("\n| observed responders | held-out Pearson r | Spearman r | sign | train r |")
    print("|---|---|---|---|---|")
    for c in rec["observed_curve"]:
        print(f"| {c['observed_fraction']:g} | {_f(c['pearson_r'])} | {_f(c['spearman_r'])} | "
              f"{_f(c['sign_agreement'])} | {_f(c['train']['pearson_r'])} |")  # fmt: skip


def _plot(curve: list[dict], anatomy: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.4), layout="constrained")
    ax = fig.subplots()
    f = [c["observed_fraction"] for c in curve]
    ax.plot(f, [c["pearson_r"] for c in curve], marker="o", label="fitted: held-out Pearson r")
    ax.plot(f, [c["train"]["pearson_r"] for c in curve], marker="s", ls="--",
            label="fitted: training Pearson r")  # fmt: skip
    ax.axhline(anatomy["pearson_r"], color="0.5", ls=":", label="anatomy only: held-out r")
    ax.set_xlabel("fraction of responders observed in training")
    ax.set_ylabel("Pearson r with the atlas")
    ax.set_xscale("log")
    ax.legend(fontsize=7)
    ax.set_title("C. elegans atlas: prediction vs neurons recorded", fontsize=9)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
