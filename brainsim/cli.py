"""Command line: ``brainsim info``, ``run``, ``fit``, ``plot``, ``fetch``, ``bench`` and
``compare-atlas``.
Thin: parse, call the layers, report."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path


def _enable_compilation_cache() -> None:
    """Keep compiled programs between CLI runs (JAX's persistent cache, in the brainsim
    cache folder); ``BRAINSIM_JAX_CACHE=0`` leaves it off (the test suite does, so that
    its processes never share cache files with other runs)."""
    import os

    if os.environ.get("BRAINSIM_JAX_CACHE", "1") == "0":
        return
    import jax

    from brainsim._paths import cache_dir

    jax.config.update("jax_compilation_cache_dir", str(cache_dir("jax")))
    # (the chunk programs of the native kernels compile in 0.1-0.3 s: kept too; the many
    # smaller programs are not, their look-up would cost what compiling them does)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def _join_processes(args) -> bool:
    """With ``--coordinator``: join the other processes of the run
    (``jax.distributed.initialize``, before any other JAX work). Returns whether it did."""
    from brainsim.experiments import ConfigError

    given = [args.num_processes is not None, args.process_id is not None]
    if args.coordinator is None:
        if any(given):
            raise ConfigError("--num-processes and --process-id need --coordinator HOST:PORT")
        return False
    if not all(given):
        raise ConfigError("--coordinator needs --num-processes N and --process-id I")
    if args.num_processes < 1 or not 0 <= args.process_id < args.num_processes:
        raise ConfigError(
            f"--process-id must be in 0..{args.num_processes - 1} and --num-processes >= 1; "
            f"got {args.process_id} of {args.num_processes}"
        )
    if args.resume or args.dry_run:
        raise ConfigError("--resume and --dry-run run in one process (no --coordinator)")
    import jax

    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    return True


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        el = time.perf_counter() - start
        eta = el / done * (total - done) if done else 0.0
        bar = "#" * int(30 * done / total)
        rate = done / el if el > 0 else 0.0
        sys.stderr.write(
            f"\r[{bar:<30}] {done}/{total} steps  {rate:8.0f} steps/s  {el:6.1f}s  eta {eta:6.1f}s"
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def cmd_info(args) -> int:
    from brainsim.connectome import load
    from brainsim.fetch import is_dataset_name, resolve_dataset

    options = {}
    for kv in args.option or []:
        k, _, v = kv.partition("=")
        options[k] = _option_value(v)
    source = args.source
    if is_dataset_name(source):  # "flywire:783": the folder `brainsim fetch` filled
        source = str(resolve_dataset(source, fmt=args.format))
    conn = load(source, args.format, **options)
    s = conn.summary()
    release = conn.provenance.options.get("release")
    if release is not None:
        s["release"] = str(release)
    if args.regions:
        from brainsim.connectome._regions import neuropil_counts

        regions = neuropil_counts(conn.neurons)
        s["regions"] = {name: {"input": i, "output": o} for name, i, o in regions}
    if args.json:
        print(json.dumps(s, sort_keys=True))
        return 0
    print(f"source       {args.source} ({args.format})")
    keys = ("n_neurons", "n_connections", "n_synapses", "n_excitatory", "n_inhibitory")
    for key in (*keys, "n_gap_junctions"):
        print(f"{key:<13}{s[key]:>14,}")
    print(f"sign_rule    {s['sign_rule']}")
    print(f"checksum     {s['checksum']}")
    if release is not None:
        print(f"release      {release} (as the file names say; ids differ between releases)")
    for k, v in s["rules_applied"].items():
        print(f"rule applied {k}: {v}")
    if args.regions:
        print(f"{'neuropil':<16}{'main input':>12}{'main output':>13}  (neurons)")
        for name, n_in, n_out in regions:
            print(f"{name:<16}{n_in:>12,}{n_out:>13,}")
    return 0


def _option_value(text: str):
    """``--option`` values as a config would give them: true/false, integers, else text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def cmd_run(args) -> int:
    from brainsim.experiments import load_config, run_config

    cfg = load_config(args.config)
    if args.no_plots:
        cfg.plots = False
    if _join_processes(args):
        # the processes of a run on one host would share cache files (writes that crashed)
        os.environ["BRAINSIM_JAX_CACHE"] = "0"
    _enable_compilation_cache()
    quiet = args.quiet and not args.dry_run
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    run_config(
        cfg,
        args.out,
        progress=_progress(args.quiet),
        log=log,
        dry_run=args.dry_run,
        resume=args.resume,
    )
    return 0


def cmd_fit(args) -> int:
    from brainsim.experiments._config import read_toml
    from brainsim.fit import parse_fit_config, run_fit
    from brainsim.flyvis._experiment import uses_visual

    raw, path = read_toml(args.config)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    from brainsim.celegans._fit import is_atlas_fit

    if is_atlas_fit(raw):  # a graded model fitted to the C. elegans atlas
        from brainsim.celegans._fit import run_atlas_fit

        _enable_compilation_cache()
        run_atlas_fit(raw, path, args.out, log=log)
        return 0
    if uses_visual(raw):  # a flyvis network: the motion task (brainsim.flyvis._train)
        from brainsim.flyvis._train import run_training

        _enable_compilation_cache()
        run_training(raw, path, args.out, log=log)
        return 0
    cfg = parse_fit_config(raw, path)
    _enable_compilation_cache()
    run_fit(cfg, args.out, log=log)
    return 0


def cmd_plot(args) -> int:
    from brainsim.viz import make_plots

    folder = Path(args.dir)
    if not (folder / "manifest.json").exists():
        print(
            f"brainsim: error: {folder} is not a results folder (no manifest.json)", file=sys.stderr
        )
        return 2
    from brainsim.io import add_to_marker

    written = make_plots(folder, log=lambda m: print(f"brainsim: {m}", file=sys.stderr))
    add_to_marker(folder, written)  # (the folder stays one that brainsim may replace)
    for path in written:
        print(path)
    return 0


def cmd_fetch(args) -> int:
    from brainsim.fetch import fetch_dataset

    try:
        fetch_dataset(
            args.dataset,
            dest=args.dest,
            url_base=args.url_base,
            quiet=args.quiet,
            retries=args.retries,
        )
    except KeyboardInterrupt:
        print("\nbrainsim: fetch interrupted; run the same command to resume", file=sys.stderr)
        return 130
    return 0


def cmd_compare_atlas(args) -> int:
    from brainsim.celegans import AtlasError, compare

    try:
        c = compare(args.dir, args.atlas, out=args.out)
    except AtlasError as e:
        print(f"brainsim: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print((c.out_dir / "scores.json").read_text().strip())
        return 0

    def fmt(r):
        return "undefined" if r is None else f"{r:+.3f}"

    s = c.scores
    print(f"atlas          {args.atlas} ({c.counts['atlas_pairs']:,} significant pairs)")
    print(f"pairs scored   {s['n_pairs']:>8,}")
    print(f"pearson r      {fmt(s['pearson_r']):>8}")
    print(f"spearman r     {fmt(s['spearman_r']):>8}")
    print(f"sign agreement {s['sign_agreement']:>8.3f}")
    print(f"not simulated  {c.counts['pairs_not_simulated']:>8,} pairs")
    print(c.out_dir)
    return 0


def cmd_bench(args) -> int:
    from brainsim.bench import run_args

    return run_args(args)


def build_parser() -> argparse.ArgumentParser:
    from brainsim.connectome import FORMATS
    from brainsim.fetch import ALIASES, DATASETS

    p = argparse.ArgumentParser(
        prog="brainsim", description="Whole-brain spiking simulation from connectomes."
    )
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="summarise a connectome source")
    info.add_argument(
        "source", help="folder or file of the source, or a spec like synthetic:seed=0,scale=1.0"
    )
    info.add_argument("--format", required=True, choices=FORMATS, help="loader format")
    info.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="loader option (repeatable)"
    )
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument(
        "--regions",
        action="store_true",
        help="per neuropil, the neurons whose main input / output neuropil it is (formats "
        "flywire, flywire_feather)",
    )
    info.set_defaults(func=cmd_info)
    run = sub.add_parser("run", help="simulate the experiment a TOML config describes")
    run.add_argument("config", help="TOML config (see configs/)")
    run.add_argument("--out", help="results folder (default: [output] dir of the config)")
    run.add_argument("--quiet", action="store_true", help="no progress or log output")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="check the config, resolve every selector, print the job's size, memory and "
        "output files; simulate nothing",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="go on from the batches that an interrupted or crashed run of the same config "
        "and --out completed (an experiment in several batches saves each as it ends; "
        "results equal an uninterrupted run's)",
    )
    run.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="run over several processes (hosts): the address of process 0, where every "
        "process started with the same config and its own --process-id joins; the trials "
        "split over all their devices and process 0 writes the results",
    )
    run.add_argument("--num-processes", type=int, default=None, help="with --coordinator")
    run.add_argument("--process-id", type=int, default=None, help="with --coordinator")
    run.add_argument(
        "--no-plots",
        action="store_true",
        help="write the tables and manifest only, no PNGs (as [output] plots = false; "
        "`brainsim plot FOLDER` draws them later)",
    )
    run.set_defaults(func=cmd_run)
    fit = sub.add_parser(
        "fit",
        help="fit model parameters to target rates by gradient descent (a run config + [fit])",
    )
    fit.add_argument("config", help="TOML config with a [fit] table (see configs/fit_w_syn.toml)")
    fit.add_argument("--out", help="results folder (default: [output] dir of the config)")
    fit.add_argument("--quiet", action="store_true", help="no progress or log output")
    fit.set_defaults(func=cmd_fit)
    plot = sub.add_parser("plot", help="remake the plots of a results folder from its tables")
    plot.add_argument("dir", help="results folder written by brainsim run")
    plot.set_defaults(func=cmd_plot)
    fetch = sub.add_parser(
        "fetch",
        help="download public connectome files (resumable, checksum-verified)",
        description="Download a dataset's public files into $BRAINSIM_CACHE/data/<folder> "
        "(default ~/.cache/brainsim/data), where run configs find them by name: "
        'format = "shiu", path = "flywire:783".',
    )
    fetch.add_argument(
        "dataset",
        choices=[*ALIASES, *DATASETS],
        help="flywire (= flywire:783) or flywire:630: the Shiu et al. 2024 files; "
        "flywire_feather:783: FlyWire's Zenodo release; malecns:v1.0; banc:888",
    )
    fetch.add_argument("--dest", metavar="DIR", help="put the files in DIR instead of the cache")
    fetch.add_argument(
        "--url-base",
        metavar="URL",
        help="download from a mirror: URL/<file name> (default: the Shiu et al. repository, "
        "pinned commit)",
    )
    fetch.add_argument(
        "--retries", type=int, default=3, help="retries per file after a broken transfer"
    )
    fetch.add_argument("--quiet", action="store_true", help="no progress or status output")
    fetch.set_defaults(func=cmd_fetch)
    cmp_atlas = sub.add_parser(
        "compare-atlas",
        help="score a graded perturbation_map run against the measured C. elegans "
        "signal-propagation atlas (needs cect)",
        description="Join the model's responses to the atlas's significant pairs by neuron "
        "name and write pairs.parquet, scores.json (Pearson, Spearman, sign agreement), "
        "scatter.png and heatmaps.png (brainsim.celegans.compare).",
    )
    cmp_atlas.add_argument("dir", metavar="RESULTS_DIR", help="results folder of the run")
    cmp_atlas.add_argument(
        "--atlas", default="Randi2023", help="atlas to compare with (default Randi2023)"
    )
    cmp_atlas.add_argument("--out", metavar="DIR", help="output folder (default RESULTS_DIR/atlas)")
    cmp_atlas.add_argument("--json", action="store_true", help="print scores.json")
    cmp_atlas.set_defaults(func=cmd_compare_atlas)
    from brainsim.bench import add_arguments as add_bench_arguments

    bench = sub.add_parser(
        "bench",
        help="time standard workloads on synthetic brains, or any run config (--config); "
        "a table, or JSON with --json",
        description="Time brainsim on standard workloads: sugar, dense, scaling_trials, "
        "scaling_size, scaling_activity, reference_ratio, native_ratio (brainsim.bench); "
        "networks come from the connectome cache; wall_s_first includes compilation. Or time "
        "any `brainsim run` config with --config FILE: its first run in a fresh process and "
        "its steady state (compiled repeats) in this one.",
    )
    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    return p


class Terminated(BaseException):
    """SIGTERM, raised where Python is so that temporary result folders are removed."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    from brainsim.connectome import ConnectomeError
    from brainsim.experiments import ConfigError
    from brainsim.fetch import FetchError
    from brainsim.io import OutputError

    args = build_parser().parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return args.func(args)
    except (ConfigError, ConnectomeError, FetchError, OutputError) as e:
        print(f"brainsim: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted(args, "interrupted", 130)
    except Terminated:
        return _interrupted(args, "terminated", 143)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupted(args, what: str, code: int) -> int:
    """One line instead of a traceback; by now every temporary folder has been removed."""
    out = getattr(args, "out", None)
    kept = "; results folders were left as they were" if args.command in ("run", "fit") else ""
    print(f"\nbrainsim: {what}{kept}{f' ({out})' if out else ''}", file=sys.stderr)
    return code


def entry() -> None:
    """The console script: exit without Python's interpreter teardown after an interrupt
    (XLA's threads can crash it), with every output stream flushed first."""
    code = main()
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
