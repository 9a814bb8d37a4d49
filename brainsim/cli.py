"""Command line: ``brainsim info`` and ``brainsim run``. Thin: parse, call the layers, report."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _enable_compilation_cache() -> None:
    """Keep compiled programs between CLI runs (JAX's persistent cache)."""
    import jax

    cache = Path(os.environ.get("BRAINSIM_CACHE", Path.home() / ".cache" / "brainsim")) / "jax"
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        el = time.perf_counter() - start
        eta = el / done * (total - done) if done else 0.0
        bar = "#" * int(30 * done / total)
        sys.stderr.write(f"\r[{bar:<30}] {done}/{total} steps  {el:6.1f}s  eta {eta:6.1f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def cmd_info(args) -> int:
    from brainsim.connectome import load

    options = {}
    for kv in args.option or []:
        k, _, v = kv.partition("=")
        options[k] = v
    conn = load(args.source, args.format, **options)
    s = conn.summary()
    if args.json:
        print(json.dumps(s, sort_keys=True))
        return 0
    print(f"source       {args.source} ({args.format})")
    for key in ("n_neurons", "n_connections", "n_synapses", "n_excitatory", "n_inhibitory"):
        print(f"{key:<13}{s[key]:>14,}")
    print(f"sign_rule    {s['sign_rule']}")
    print(f"checksum     {s['checksum']}")
    for k, v in s["rules_applied"].items():
        print(f"rule applied {k}: {v}")
    return 0


def cmd_run(args) -> int:
    from brainsim.experiments import load_config, run_config

    cfg = load_config(args.config)
    _enable_compilation_cache()
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    run_config(cfg, args.out, progress=_progress(args.quiet), log=log)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from brainsim.connectome import FORMATS

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
    info.set_defaults(func=cmd_info)
    run = sub.add_parser("run", help="simulate the experiment a TOML config describes")
    run.add_argument("config", help="TOML config (see configs/)")
    run.add_argument("--out", help="results folder (default: [output] dir of the config)")
    run.add_argument("--quiet", action="store_true", help="no progress or log output")
    run.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    from brainsim.connectome import ConnectomeError
    from brainsim.experiments import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ConnectomeError) as e:
        print(f"brainsim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
