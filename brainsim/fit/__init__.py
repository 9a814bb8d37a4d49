"""Fitting: surrogate spike functions, differentiable runs with checkpointed BPTT, losses,
optax loops, and ``brainsim fit``.

A differentiable run (:func:`differentiable_run`) steps :class:`brainsim.models.LIF` with a
:class:`Surrogate` spike function: the same spikes as a plain run, with gradients of rates
or spike times with respect to :class:`FitParams` (global ``w_syn_mv``, synaptic scales per
presynaptic cell type or class, per-neuron or per-type thresholds, time constants and
biases; signs fixed by transmitter, positive quantities kept positive).
"""

from brainsim.fit._config import FitConfig, load_fit_config, parse_fit_config, read_targets
from brainsim.fit._differentiable import PROPAGATIONS, DiffResult, differentiable_run
from brainsim.fit._loop import (
    OPTIMIZERS,
    FitDivergedError,
    FitTask,
    build_task,
    default_scale,
    fit,
    make_optimizer,
    split_trials,
    train_step,
    value_and_grad,
)
from brainsim.fit._losses import (
    RateTargets,
    condition_rates,
    first_crossing_ms,
    rate_loss,
    van_rossum,
)
from brainsim.fit._params import (
    QUANTITIES,
    FitParams,
    Grouped,
    ParamInfo,
    build_params,
    parse_trainable,
    partition,
    plain_model,
    trainable_spec,
    values_by_name,
)
from brainsim.fit._plot import loss_figure, plot_loss
from brainsim.fit._run import run_fit
from brainsim.fit._surrogate import (
    SURROGATES,
    Surrogate,
    arctan,
    fast_sigmoid,
    straight_through,
    surrogate,
)

__all__ = [
    "OPTIMIZERS",
    "PROPAGATIONS",
    "QUANTITIES",
    "SURROGATES",
    "DiffResult",
    "FitDivergedError",
    "FitConfig",
    "FitParams",
    "FitTask",
    "Grouped",
    "ParamInfo",
    "RateTargets",
    "Surrogate",
    "arctan",
    "build_params",
    "build_task",
    "condition_rates",
    "default_scale",
    "differentiable_run",
    "fast_sigmoid",
    "first_crossing_ms",
    "fit",
    "load_fit_config",
    "loss_figure",
    "make_optimizer",
    "parse_fit_config",
    "parse_trainable",
    "partition",
    "plain_model",
    "plot_loss",
    "rate_loss",
    "read_targets",
    "run_fit",
    "split_trials",
    "straight_through",
    "surrogate",
    "train_step",
    "trainable_spec",
    "value_and_grad",
    "values_by_name",
    "van_rossum",
]
