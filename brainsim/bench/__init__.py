"""Benchmarks as a library: standard workloads that return JSON-able records, and
``brainsim bench`` (:func:`main`) that runs them.

Workloads (synthetic brains, :mod:`brainsim.connectome`'s ``synthetic:`` spec):
``sugar``, ``dense``, ``scaling_trials``, ``scaling_size``, ``scaling_activity``,
``reference_ratio`` and ``native_ratio``; see each function's docstring for its keys.
:func:`config` times any ``brainsim run`` config (``brainsim bench --config FILE``). JAX is
imported on first use of a workload, not by ``import brainsim.bench``.
"""

from brainsim.bench._cli import NAMES, add_arguments, build_parser, format_table, main, run_args

_LAZY = (
    "WORKLOADS",
    "dense",
    "native_ratio",
    "reference_ratio",
    "scaling_activity",
    "scaling_size",
    "scaling_trials",
    "sugar",
)
_LAZY_CONFIG = ("BenchError", "config")
_LAZY_COMMON = ("environment", "memory_bandwidth", "load_network", "spec_for", "synaptic_events")


def __getattr__(name: str):
    if name in _LAZY:
        from brainsim.bench import _workloads

        return getattr(_workloads, name)
    if name in _LAZY_CONFIG:
        from brainsim.bench import _config

        return getattr(_config, name)
    if name in _LAZY_COMMON:
        from brainsim.bench import _common

        return getattr(_common, name)
    raise AttributeError(f"module 'brainsim.bench' has no attribute {name!r}")


__all__ = [
    "NAMES",
    "BenchError",
    "WORKLOADS",
    "add_arguments",
    "build_parser",
    "config",
    "dense",
    "environment",
    "format_table",
    "load_network",
    "main",
    "memory_bandwidth",
    "native_ratio",
    "reference_ratio",
    "run_args",
    "scaling_activity",
    "scaling_size",
    "scaling_trials",
    "spec_for",
    "sugar",
    "synaptic_events",
]
