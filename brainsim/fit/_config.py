"""The ``brainsim fit`` config: the ``brainsim run`` schema plus a ``[fit]`` table.

Schema of ``[fit]`` (every key optional unless marked required)::

    [fit]
    targets = "targets.parquet"    # required: neuron_id, rate_hz (optional condition);
                                   # Parquet or CSV, relative to the config file
    trainable = ["w_syn_mv"]       # required: names such as "syn_scale_by_type",
                                   # "v_th_mv_by_neuron", "tau_m_ms_by_class", "bias_mv"
    init = { w_syn_mv = 0.25 }     # start values (default: the prior, i.e. [model]);
                                   # a number, or { group label = value }
    steps = 200                    # optimisation steps
    learning_rate = 0.01
    optimizer = "adam"             # optax: adam, adamw, adabelief, rmsprop, sgd, lion
    clip_norm = 100.0              # optax.clip_by_global_norm before the optimizer; 0: none
    max_loss_ratio = 1000.0        # a loss above this many times step 0's stops the fit as
                                   # diverged, as a NaN does (0: only NaN and infinity)
    gradient = "dense"             # or "events": forward and backward follow the spikes and
                                   # the near-threshold neurons (brainsim.fit._events; same
                                   # gradients; needs surrogate = "straight_through")
    surrogate = "fast_sigmoid"     # or "arctan", "straight_through"
    surrogate_slope = 1.0          # 1/mV: width of the surrogate about 2 / slope mV
    surrogate_scale = 0.005        # height factor; default dt_ms / tau_m_ms
    regularization = 0.0           # weight of L2 toward the prior (log-scales, mV)
    weights = { rates = 1.0, perturbations = 1.0 }   # loss term weights
    trials = 8                     # trials per condition of the gradient runs
                                   # (default [simulation] trials)
    duration_ms = 200.0            # of the gradient runs (default [simulation] duration_ms)
    checkpoint_ms = 10.0           # simulated time per checkpointed chunk of the backward pass
    resample_noise = true          # fresh Poisson input noise at every step
    detach_reset = true            # no gradient through the reset (see differentiable_run)
    seed = 0                       # noise of the gradient runs (default [simulation] seed + 1)
                                   # (a 64-bit integer, as [simulation] seed)
    log_every = 10                 # progress lines
    [[fit.condition]]              # perturbations the targets may refer to by label
    label = "silence_L1"           # required, unique; "baseline" is the unperturbed run
    kind = "silence"               # required: "silence" (outgoing synapses zeroed) or
                                   # "activate" (Poisson drive at rate_hz)
    neurons = { cell_type = "sugar_like_L1" }   # required selector
    rate_hz = 150.0                # required for "activate"

Every condition runs with the config's ``[[stimulus]]`` and ``[[perturbation]]`` entries.
A target's ``condition`` is a label, or a number (0 = baseline, i = the i-th
``[[fit.condition]]``, so that a ``brainsim run`` folder's ``rates.parquet`` can serve as
targets); rows without one (or ``"baseline"``) are the ``rates`` term, the others the
``perturbations`` term. ``[experiment]`` cannot be combined with ``[fit]``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from brainsim.connectome import Connectome, ConnectomeError
from brainsim.experiments import ConfigError, RunConfig, parse_config
from brainsim.experiments._config import (
    MAX_MV,
    MIN_TAU_MS,
    _check_all_finite,
    _choice,
    _finite,
    _get,
    check_seed,
    check_steps,
    read_toml,
)
from brainsim.fit._loop import OPTIMIZERS
from brainsim.fit._params import parse_trainable
from brainsim.fit._surrogate import COMPACT, DEFAULT_SLOPE, SURROGATES

GRADIENTS = ("dense", "events")

FIT_KEYS = (
    "targets",
    "trainable",
    "init",
    "steps",
    "learning_rate",
    "optimizer",
    "clip_norm",
    "max_loss_ratio",
    "gradient",
    "surrogate",
    "surrogate_slope",
    "surrogate_scale",
    "regularization",
    "weights",
    "trials",
    "duration_ms",
    "checkpoint_ms",
    "resample_noise",
    "detach_reset",
    "seed",
    "log_every",
    "condition",
)
TERMS = ("rates", "perturbations")
BASELINE = "baseline"


@dataclasses.dataclass
class FitConfig:
    """A checked ``brainsim fit`` config: the run part and the ``[fit]`` settings."""

    run: RunConfig
    path: Path | None
    targets: Path
    trainable: list[str]
    init: dict
    steps: int
    learning_rate: float
    optimizer: str
    clip_norm: float | None
    max_loss_ratio: float | None
    gradient: str
    surrogate: str
    surrogate_slope: float
    surrogate_scale: float | None
    regularization: float
    weights: dict[str, float]
    trials: int
    duration_ms: float
    checkpoint_ms: float
    resample_noise: bool
    detach_reset: bool
    seed: int
    log_every: int
    conditions: list[dict]

    @property
    def where(self) -> str:
        return f"{self.path if self.path else '<config>'}: [fit]"

    @property
    def output_dir(self) -> Path:
        return self.run.output_dir


def check_types(table: dict, types: dict, w: str) -> None:
    """Every key of a ``[fit]`` table known, each value of its type (``types``: key ->
    type; an integer serves as a float, a boolean never as a number). Shared by the task
    schemas of flyvis's motion training and the worm's atlas fit."""
    for k, v in table.items():
        if k not in types:
            raise ConfigError(f"{w}: unknown key {k!r}; expected one of {', '.join(types)}")
        t = types[k]
        ok = isinstance(v, t) or (t is float and isinstance(v, int))
        if not ok or (isinstance(v, bool) and t is not bool):
            raise ConfigError(f"{w} {k}: expected {t.__name__}, got {v!r}")


def check_optimizer_settings(task, w: str) -> None:
    """A task's ``steps``, ``log_every``, ``learning_rate``, ``optimizer`` and
    ``clip_norm`` (0: no clipping) in range."""
    if task.steps < 0 or task.log_every < 1:
        raise ConfigError(f"{w}: steps must be >= 0 and log_every >= 1")
    if not (np.isfinite(task.learning_rate) and task.learning_rate > 0):
        raise ConfigError(f"{w} learning_rate: must be > 0, got {task.learning_rate}")
    if task.optimizer not in OPTIMIZERS:
        raise ConfigError(f"{w} optimizer: expected one of {', '.join(OPTIMIZERS)}")
    if not (np.isfinite(task.clip_norm) and task.clip_norm >= 0):
        raise ConfigError(f"{w} clip_norm: must be >= 0 (0: no clipping)")


def load_fit_config(path: str | Path) -> FitConfig:
    return parse_fit_config(*read_toml(path))


def parse_fit_config(raw: dict, path: Path | None = None) -> FitConfig:
    where = f"{path if path else '<config>'}"
    if "fit" not in raw:
        raise ConfigError(f"{where}: missing section [fit] (brainsim fit needs it)")
    fit = raw["fit"]
    if not isinstance(fit, dict):
        raise ConfigError(f"{where}: [fit] must be a table")
    run = parse_config({k: v for k, v in raw.items() if k != "fit"}, path)
    run = dataclasses.replace(run, raw=raw)
    if run.experiment is not None:
        raise ConfigError(
            f"{where}: [experiment] cannot be combined with [fit]; describe perturbations "
            "with [[fit.condition]] tables"
        )
    w = f"{where}: [fit]"
    unknown = [k for k in fit if k not in FIT_KEYS]
    if unknown:
        raise ConfigError(f"{w}: unknown key {unknown[0]!r}; expected one of {', '.join(FIT_KEYS)}")
    targets = _get(fit, "targets", str, w, required=True)
    base_dir = path.parent if path else Path.cwd()
    targets_path = Path(targets) if Path(targets).is_absolute() else base_dir / targets
    trainable = _get(fit, "trainable", list, w, required=True)
    if not trainable or not all(isinstance(t, str) for t in trainable):
        raise ConfigError(f'{w} trainable: expected a non-empty list of names, e.g. ["w_syn_mv"]')
    quantities = []
    for t in trainable:
        try:
            q, _ = parse_trainable(t)
        except ValueError as e:
            raise ConfigError(f"{w} trainable: {e}") from None
        if q in quantities:
            raise ConfigError(f"{w} trainable: {q} appears twice ({t!r})")
        quantities.append(q)
    init = _get(fit, "init", dict, w, default={})
    for k, v in init.items():
        if k not in trainable:
            raise ConfigError(f"{w} init: {k!r} is not one of the trainable names {trainable}")
        vals = v.values() if isinstance(v, dict) else [v]
        if not all(_is_num(x) for x in vals):
            raise ConfigError(f"{w} init {k}: expected a number or a table of numbers, got {v!r}")
        _check_init_bounds(k, list(vals), w)
    sim = run.simulation
    steps = _get(fit, "steps", int, w, default=200)
    if steps < 1:
        raise ConfigError(f"{w} steps: must be >= 1, got {steps}")
    trials = _get(fit, "trials", int, w, default=sim["trials"])
    if trials < 1:
        raise ConfigError(f"{w} trials: must be >= 1, got {trials}")
    clip = _positive(fit, "clip_norm", w, default=100.0, allow_zero=True)
    scale = fit.get("surrogate_scale")
    if scale is not None:
        scale = _positive(fit, "surrogate_scale", w)
    weights = _get(fit, "weights", dict, w, default={})
    for k, v in weights.items():
        if k not in TERMS:
            raise ConfigError(f"{w} weights: unknown term {k!r}; expected one of {TERMS}")
        if not _is_num(v) or v < 0:
            raise ConfigError(f"{w} weights {k}: expected a number >= 0, got {v!r}")
    duration = _positive(fit, "duration_ms", w, default=sim["duration_ms"])
    check_steps(duration, sim["dt_ms"], w)
    log_every = _get(fit, "log_every", int, w, default=10)
    if log_every < 1:
        raise ConfigError(f"{w} log_every: must be >= 1, got {log_every}")
    conditions = _conditions(fit.get("condition", []), w)
    _check_all_finite({"fit": fit}, where)  # what the checks above did not read
    return FitConfig(
        run=run,
        path=path,
        targets=targets_path,
        trainable=list(trainable),
        init=dict(init),
        steps=steps,
        learning_rate=_positive(fit, "learning_rate", w, default=0.01),
        optimizer=_choice(fit, "optimizer", OPTIMIZERS, w, "adam"),
        clip_norm=clip or None,
        max_loss_ratio=_loss_ratio(fit, w),
        gradient=_gradient(fit, w),
        surrogate=_choice(fit, "surrogate", SURROGATES, w, "fast_sigmoid"),
        surrogate_slope=_positive(fit, "surrogate_slope", w, default=DEFAULT_SLOPE),
        surrogate_scale=scale,
        regularization=_positive(fit, "regularization", w, default=0.0, allow_zero=True),
        weights={t: float(weights.get(t, 1.0)) for t in TERMS},
        trials=trials,
        duration_ms=duration,
        checkpoint_ms=_positive(fit, "checkpoint_ms", w, default=10.0),
        resample_noise=_get(fit, "resample_noise", bool, w, default=True),
        detach_reset=_get(fit, "detach_reset", bool, w, default=True),
        seed=_seed(fit, w, sim["seed"]),
        log_every=log_every,
        conditions=conditions,
    )


def _loss_ratio(fit: dict, w: str) -> float | None:
    ratio = _positive(fit, "max_loss_ratio", w, default=1000.0, allow_zero=True)
    if 0 < ratio <= 1:
        raise ConfigError(
            f"{w} max_loss_ratio: must be > 1 (a loss above step 0's is not a divergence) "
            f"or 0 (off), got {ratio:g}"
        )
    return ratio or None


def _gradient(fit: dict, w: str) -> str:
    """``gradient``: "dense" or "events" (which needs a surrogate of compact support)."""
    gradient = _choice(fit, "gradient", GRADIENTS, w, "dense")
    kind = fit.get("surrogate", "fast_sigmoid")
    if gradient == "events" and kind not in COMPACT:
        raise ConfigError(
            f'{w} gradient = "events" needs surrogate = one of {", ".join(COMPACT)} (its '
            f"derivative is zero away from threshold), got {kind!r}"
        )
    return gradient


def _conditions(raw, w: str) -> list[dict]:
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise ConfigError(f"{w} condition: expected an array of tables ([[fit.condition]])")
    out, labels = [], set()
    for i, c in enumerate(raw):
        wc = f"{w} [[fit.condition]] #{i + 1}"
        for k in c:
            if k not in ("label", "kind", "neurons", "rate_hz"):
                raise ConfigError(
                    f"{wc}: unknown key {k!r}; expected one of label, kind, neurons, rate_hz"
                )
        label = _get(c, "label", str, wc, required=True)
        if label == BASELINE or label in labels:
            raise ConfigError(f"{wc} label: {label!r} is reserved or used twice")
        labels.add(label)
        kind = _choice(c, "kind", ("silence", "activate"), wc, None, required=True)
        _get(c, "neurons", dict, wc, required=True)
        if kind == "activate":
            rate = c.get("rate_hz")
            if not _is_num(rate) or not 1e-3 <= rate <= 1e4:
                raise ConfigError(
                    f"{wc} rate_hz: expected a rate in Hz (0.001-10000), got {rate!r}"
                )
        elif "rate_hz" in c:
            raise ConfigError(f"{wc} rate_hz: only an 'activate' condition takes a rate")
        out.append(dict(c))
    return out


@dataclasses.dataclass
class TargetRows:
    """A target table resolved against a connectome: internal indices and condition
    numbers (0 = baseline, i = the i-th ``[[fit.condition]]``)."""

    condition: np.ndarray
    neuron: np.ndarray
    rate_hz: np.ndarray


def read_targets(cfg: FitConfig, conn: Connectome) -> TargetRows:
    """Read ``[fit] targets``; every error names the file and the row or column."""
    path = cfg.targets
    w = f"{cfg.where} targets"
    if not path.exists():
        raise ConfigError(f"{w}: {path} does not exist")
    try:
        table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    except Exception as e:  # noqa: BLE001 - any reader error is a bad file
        raise ConfigError(f"{w}: {path} cannot be read as a table: {e}") from None
    for col in ("neuron_id", "rate_hz"):
        if col not in table.column_names:
            raise ConfigError(f"{w}: {path}: missing column {col!r} (have {table.column_names})")
    if table.num_rows == 0:
        raise ConfigError(f"{w}: {path}: no target rows")
    rate = np.asarray(table.column("rate_hz").to_numpy(zero_copy_only=False), np.float64)
    bad = np.nonzero(~np.isfinite(rate) | (rate < 0))[0]
    if bad.size:
        raise ConfigError(
            f"{w}: {path}: row {bad[0] + 1}: rate_hz {rate[bad[0]]} is not a rate >= 0 Hz"
        )
    nid = table.column("neuron_id").to_numpy(zero_copy_only=False)
    try:
        neuron = conn.index_of(np.asarray(nid, np.int64), what=f"neuron_id values in {path}")
    except (ConnectomeError, ValueError, TypeError) as e:
        raise ConfigError(f"{w}: {e}") from None
    labels = [BASELINE] + [c["label"] for c in cfg.conditions]
    condition = np.zeros(rate.size, np.int32)
    if "condition" in table.column_names:
        index = {lab: i for i, lab in enumerate(labels)}
        for row, c in enumerate(table.column("condition").to_pylist()):
            if isinstance(c, int) and 0 <= c < len(labels):
                condition[row] = c  # a condition number, as in a results folder's rates
                continue
            key = BASELINE if c is None or c == "" else str(c)
            if key not in index:
                raise ConfigError(
                    f"{w}: {path}: row {row + 1}: condition {c!r} is neither a "
                    f"[[fit.condition]] label nor a number 0..{len(labels) - 1} "
                    f"(known: {', '.join(labels)})"
                )
            condition[row] = index[key]
    return TargetRows(condition, neuron, rate)


def _seed(fit: dict, w: str, run_seed: int) -> int:
    """``[fit] seed``, default ``[simulation] seed + 1`` (2**63 - 1 wraps to -2**63)."""
    default = run_seed + 1 if run_seed < 2**63 - 1 else -(2**63)
    seed = _get(fit, "seed", int, w, default=default)
    check_seed(seed, w)
    return seed


def _is_num(v) -> bool:
    return _finite(v)


def _check_init_bounds(name: str, values: list, w: str) -> None:
    """Start values within the run config's bounds on the model (MAX_MV, MIN_TAU_MS)."""
    quantity = name.partition("_by_")[0]
    for x in values:
        if quantity == "tau_m_ms" and x < MIN_TAU_MS:
            raise ConfigError(f"{w} init {name}: must be >= {MIN_TAU_MS:g} ms, got {x}")
        if quantity != "tau_m_ms" and abs(x) > MAX_MV:
            raise ConfigError(f"{w} init {name}: its magnitude must be <= {MAX_MV:g}, got {x}")


def _positive(d: dict, key: str, where: str, *, default=None, allow_zero=False) -> float:
    if key not in d:
        return default
    v = d[key]
    ok = _is_num(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        need = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{where} {key}: expected a number {need}, got {v!r}")
    return float(v)
