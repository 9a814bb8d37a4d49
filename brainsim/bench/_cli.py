"""``brainsim bench``: run workloads (or time a config, ``--config``), print a table (default)
or one JSON object per record.

Light at import (argparse only): the CLI builds its parser without importing JAX.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys

NAMES = (
    "sugar",
    "dense",
    "scaling_trials",
    "scaling_size",
    "scaling_activity",
    "reference_ratio",
    "native_ratio",
)
_ENV_KEYS = (
    "device",
    "n_devices",
    "jax",
    "jaxlib",
    "numpy",
    "brainsim",
    "python",
    "host",
    "cpu_cores",
    "date",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``brainsim bench`` (each workload keeps its own default when unset)."""
    p.add_argument(
        "--workload",
        action="append",
        choices=[*NAMES, "all"],
        metavar="NAME",
        help=f"workload to run, repeatable: {', '.join(NAMES)} or all (default: sugar)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="time a `brainsim run` config instead of a workload (any connectome, model, "
        "stepper; its own [simulation]): a first run in a fresh process (`brainsim run FILE "
        "--out TMP --quiet`, end to end) and the steady state in this process (--repeats "
        "compiled runs); flyvis and [fit] configs are refused",
    )
    p.add_argument(
        "--no-first-run",
        action="store_true",
        help="--config: time the steady state only (no `brainsim run` subprocess)",
    )
    p.add_argument(
        "--against-brian2",
        action="store_true",
        help="--config: compare with Brian2; not wired for configs (the error names the "
        "benchmarks/reference/compare_brian2.py command for the config's network)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per record on stdout")
    p.add_argument(
        "--trials",
        type=int,
        nargs="+",
        metavar="B",
        help="trials per run; sugar runs once per value, scaling_trials sweeps the values "
        "(default sugar and native_ratio 30, dense 2, scaling_size and scaling_activity 8, "
        "reference_ratio 1)",
    )
    p.add_argument(
        "--scale",
        type=float,
        help="network size, x FlyWire v783 (default 1.0; dense 0.25)",
    )
    p.add_argument(
        "--scales", type=float, nargs="+", metavar="S", help="scaling_size: network sizes"
    )
    p.add_argument(
        "--with-4x",
        action="store_true",
        help="scaling_size: add scale 4.0 (4x FlyWire; minutes to generate the first time)",
    )
    p.add_argument(
        "--duration-ms",
        type=float,
        help="simulated time per trial (default sugar and native_ratio 1000, dense 100, "
        "reference_ratio 20, others 200)",
    )
    p.add_argument("--repeats", type=int, help="timed runs after the first (default 2)")
    p.add_argument("--rate-hz", type=float, help="Poisson rate of the sugar inputs (default 150)")
    p.add_argument(
        "--rates-hz", type=float, nargs="+", metavar="R", help="scaling_activity: input rates"
    )
    p.add_argument(
        "--input-rate-hz",
        type=float,
        help="dense: Poisson rate into every neuron (default 6)",
    )
    p.add_argument(
        "--precision", choices=("float32", "float64"), help="workloads' precision (float32)"
    )
    p.add_argument("--seed", type=int, help="synthetic network seed (default 0)")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="generate networks afresh instead of using the connectome cache",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def build_parser(prog: str = "brainsim bench") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Time brainsim on standard workloads (synthetic brains), or any run "
        "config with --config FILE.",
    )
    add_arguments(p)
    return p


def _calls(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """(workload, keyword arguments) of every record to produce."""
    from brainsim.bench._workloads import WORKLOADS

    names = args.workload or ["sugar"]
    if "all" in names:
        import jax  # the native kernel runs on the CPU only

        names = [x for x in NAMES if x != "native_ratio" or jax.default_backend() == "cpu"]
    common = {
        "scale": args.scale,
        "duration_ms": args.duration_ms,
        "repeats": args.repeats,
        "rate_hz": args.rate_hz,
        "input_rate_hz": args.input_rate_hz,
        "precision": args.precision or "float32",
        "seed": args.seed,
        "rates_hz": tuple(args.rates_hz) if args.rates_hz else None,
    }
    if args.no_cache:
        common["cache"] = False
    calls = []
    for name in dict.fromkeys(names):
        accepted = inspect.signature(WORKLOADS[name]).parameters
        kw = {k: v for k, v in common.items() if v is not None and k in accepted}
        if name == "scaling_size":
            scales = list(args.scales or WORKLOADS[name].__kwdefaults__["scales"])
            if args.with_4x and 4.0 not in scales:
                scales.append(4.0)
            kw["scales"] = tuple(scales)
        if name == "scaling_trials" and args.trials:
            kw["trials"] = tuple(args.trials)
        elif name == "sugar" and args.trials:
            calls += [(name, {**kw, "trials": b}) for b in args.trials]
            continue
        elif args.trials:
            if len(args.trials) > 1:
                raise ValueError(f"{name} takes one --trials value, got {args.trials}")
            kw["trials"] = args.trials[0]
        calls.append((name, kw))
    return calls


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:  # numpy scalars
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.3e}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(w)}" for k, w in v.items())
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(w) for w in v) + "]"
    return str(v)


def format_table(rec: dict) -> str:
    """A record as readable text: header, one field per line, sweeps as a table."""
    env = ", ".join(f"{k} {rec[k]}" for k in ("device", "jax", "host", "date") if k in rec)
    lines = [f"== {rec['workload']}  ({env})"]
    width = max(len(k) for k in rec)
    for k, v in rec.items():
        if k in ("workload", "points", *_ENV_KEYS) or v == "":
            continue
        lines.append(f"  {k:<{width}}  {_fmt(v)}")
    points = rec.get("points")
    if points:
        cols = [k for k, v in points[0].items() if not isinstance(v, dict | list)]
        cells = [[_fmt(p.get(c)) for c in cols] for p in points]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
        lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
        for r in cells:
            lines.append("  " + "  ".join(x.rjust(w) for x, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


# workload options that a config's own tables set instead (argparse dest, flag)
_WORKLOAD_ONLY = (
    ("workload", "--workload"),
    ("trials", "--trials"),
    ("scale", "--scale"),
    ("scales", "--scales"),
    ("with_4x", "--with-4x"),
    ("duration_ms", "--duration-ms"),
    ("rate_hz", "--rate-hz"),
    ("rates_hz", "--rates-hz"),
    ("input_rate_hz", "--input-rate-hz"),
    ("precision", "--precision"),
    ("seed", "--seed"),
    ("no_cache", "--no-cache"),
)


def _log(args: argparse.Namespace):
    def log(msg: str) -> None:
        if not args.quiet:
            print(f"brainsim bench: {msg}", file=sys.stderr, flush=True)

    return log


def _run_config(args: argparse.Namespace) -> int:
    """``--config FILE``: one record of the config's first run and steady state."""
    given = [flag for dest, flag in _WORKLOAD_ONLY if getattr(args, dest, None)]
    if given:
        print(
            f"brainsim bench: error: --config times the config as it is ([simulation], "
            f"[connectome], [[stimulus]] set its run); {', '.join(given)} apply to workloads",
            file=sys.stderr,
        )
        return 2
    from brainsim.bench._config import config
    from brainsim.connectome import ConnectomeError

    try:
        rec = config(
            args.config,
            repeats=2 if args.repeats is None else args.repeats,
            with_first_run=not args.no_first_run,
            against_brian2=args.against_brian2,
            log=_log(args),
        )
    except (ValueError, ConnectomeError) as e:  # ConfigError, BenchError, ConnectomeError
        print(f"brainsim bench: error: --config: {e}", file=sys.stderr)
        return 2
    rec = _jsonable(rec)
    print(json.dumps(rec) if args.json else format_table(rec) + "\n", flush=True)
    return 0


def run_args(args: argparse.Namespace) -> int:
    """Run the workloads an argument namespace names (or time its ``--config``); print each
    record when it is done."""
    if getattr(args, "config", None):
        return _run_config(args)
    for dest, flag in (("no_first_run", "--no-first-run"), ("against_brian2", "--against-brian2")):
        if getattr(args, dest, False):
            print(f"brainsim bench: error: {flag} applies to --config FILE", file=sys.stderr)
            return 2
    try:
        calls = _calls(args)
    except ValueError as e:
        print(f"brainsim bench: error: {e}", file=sys.stderr)
        return 2
    if args.precision == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    from brainsim.bench._workloads import WORKLOADS

    log = _log(args)
    for name, kw in calls:
        try:
            rec = _jsonable(WORKLOADS[name](**kw, log=log))
        except ValueError as e:
            print(f"brainsim bench: error: {name}: {e}", file=sys.stderr)
            return 2
        print(json.dumps(rec) if args.json else format_table(rec) + "\n", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``brainsim bench`` as a function: ``main(["--workload", "sugar", "--json"])``."""
    return run_args(build_parser().parse_args(argv))
