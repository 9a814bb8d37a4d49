"""The optimisation: a fitting task, its loss, one jitted training step, the loop.

A :class:`FitTask` holds everything the loss needs that is not fitted: the base model, the
network, the protocol of every condition (conditions x trials on the trial axis, as
``brainsim.experiments`` batches them), the target tables and their weights. The loss is

    sum over terms of weight x mean squared rate error (Hz^2, one term per target table)
    + regularization x sum of squared deviations of the trainable values from the prior
      (log-scales for positive quantities, mV otherwise).

:func:`train_step` is one ``eqx.filter_jit`` step: ``eqx.filter_value_and_grad`` of the loss
with respect to the trainable part of the parameters (``eqx.partition``), then an optax
update. :func:`fit` loops it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from brainsim.experiments._errors import ConfigError
from brainsim.fit._differentiable import differentiable_run
from brainsim.fit._events import EventCapacity, native_events_choice
from brainsim.fit._losses import RateTargets, condition_rates, rate_loss
from brainsim.fit._params import FitParams, partition
from brainsim.fit._surrogate import Surrogate
from brainsim.kernels import DEFAULT_STREAM
from brainsim.models import LIF
from brainsim.sim import Drive, Network, seed_key

OPTIMIZERS = ("adam", "adamw", "adabelief", "rmsprop", "sgd", "lion")
# the key of a loss's terms that carries the event path's per-step maxima (not a term)
EVENT_PEAKS = "event_peaks"


class FitDivergedError(ConfigError):
    """The loss, its gradient or a fitted parameter became NaN or infinite at ``step``, or
    the loss exploded (more than ``max_loss_ratio`` times the first step's, ``first_loss``,
    of step ``first_step``): too
    large a learning rate. ``quantity`` and ``group`` (its index) name the parameter, None
    for the loss; ``term`` names the loss terms that went non-finite or grew the most (or
    "gradient"); ``value`` is the non-finite or exploded value. ``last_finite`` holds the
    last parameters with a finite (not exploded) loss (``last_finite_step``): the ones the
    failing update started from when the gradient or the updated parameters went
    non-finite, those of the step before when the loss did or exploded (-1: the initial
    parameters, whose loss was already non-finite); ``history`` the records up to that
    step (with the exploded step's, whose values are finite), so that a caller can write
    them."""

    def __init__(
        self,
        step: int,
        value: float,
        quantity=None,
        group: int = 0,
        message=None,
        *,
        term: str | None = None,
        last_finite=None,
        last_finite_step: int = -1,
        history: list | None = None,
        first_loss: float | None = None,
        max_loss_ratio: float | None = None,
        first_step: int = 0,
    ):
        self.step, self.value, self.quantity, self.group = step, value, quantity, group
        self.first_loss, self.max_loss_ratio = first_loss, max_loss_ratio
        self.first_step = first_step
        self.term, self.last_finite, self.last_finite_step = term, last_finite, last_finite_step
        self.history = history or []
        self.message = message
        default = f"step {step}: {self.what()}: the fit diverged; try a smaller learning_rate"
        super().__init__(message or default)

    def with_message(self, message: str) -> FitDivergedError:
        """The same divergence told another way (every field kept)."""
        return FitDivergedError(**(vars(self) | {"message": message}))

    def __reduce__(self):  # (args hold the message only: rebuild from every field)
        return _from_fields, (dict(vars(self)),)

    def what(self, name: str | None = None) -> str:
        """What went non-finite; ``name``: the parameter's name to use (default its
        quantity and group index)."""
        if self.quantity is None:
            if self.term == "gradient":
                return f"the gradient's norm is {self.value}"
            of = f" (term {self.term})" if self.term else ""
            if self.max_loss_ratio is not None:
                return (
                    f"the loss is {self.value:.6g}{of}, more than max_loss_ratio = "
                    f"{self.max_loss_ratio:g} times step {self.first_step}'s "
                    f"{self.first_loss:.6g}"
                )
            return f"the loss is {self.value}{of}"
        name = name or f"{self.quantity}[{self.group}]"
        return f"{name} became {self.value} in this step's update"


def _from_fields(fields: dict) -> FitDivergedError:
    return FitDivergedError(**fields)


class FitTask(eqx.Module):
    """What the loss compares and runs, apart from the fitted parameters.

    Attributes:
        base: the model whose parameters are not fitted (and the prior of those that are).
        net: the network (``with_pre=True``).
        drive, refractory_steps, replay: the protocol of all conditions' trials.
        targets: one :class:`RateTargets` per loss term.
        term_names, term_weights: the terms' names (``loss.parquet`` columns) and weights.
        n_steps, n_conditions, duration_ms: run length and trial layout.
        regularization: weight of the L2 penalty toward the prior.
        surrogate and the remaining fields: options of :func:`differentiable_run`.
    """

    base: LIF
    net: Network
    drive: Drive
    refractory_steps: Int[Array, " neurons"]
    replay: Float[Array, "steps trials inputs"] | None
    targets: tuple[RateTargets, ...]
    term_names: tuple[str, ...] = eqx.field(static=True)
    term_weights: tuple[float, ...] = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    n_conditions: int = eqx.field(static=True)
    regularization: float = eqx.field(static=True, default=0.0)
    surrogate: Surrogate = eqx.field(default_factory=Surrogate)
    checkpoint_steps: int = eqx.field(static=True, default=100)
    remat_steps: bool = eqx.field(static=True, default=True)
    detach_reset: bool = eqx.field(static=True, default=True)
    propagation: str = eqx.field(static=True, default="csr")
    capacity: EventCapacity = eqx.field(static=True, default=EventCapacity())
    native: bool = eqx.field(static=True, default=False)

    @property
    def duration_ms(self) -> float:
        return self.n_steps * self.base.dt_ms

    def rates(self, params: FitParams, key: Array) -> Float[Array, "conditions neurons"]:
        """Model rates (Hz) per condition and neuron, differentiable in ``params``."""
        return self._rates(params, key)[0]

    def _rates(self, params: FitParams, key: Array):
        res = differentiable_run(
            params,
            self.base,
            self.net,
            self.drive,
            self.refractory_steps,
            key,
            self.n_steps,
            surrogate=self.surrogate,
            replay=self.replay,
            checkpoint_steps=self.checkpoint_steps,
            remat_steps=self.remat_steps,
            detach_reset=self.detach_reset,
            propagation=self.propagation,
            capacity=self.capacity,
            native=self.native,
        )
        rates = condition_rates(res.counts, self.n_conditions, self.duration_ms)
        return rates, res.event_peaks

    def loss(self, params: FitParams, key: Array) -> tuple[Float[Array, ""], dict]:
        """``(loss, terms)``; ``terms`` maps each term name and ``"regularization"`` to its
        weighted contribution: they sum to the loss. With ``propagation="events"`` it also
        holds ``EVENT_PEAKS`` (not a term: the run's per-step event maxima, which
        ``capacity`` must hold)."""
        rates, peaks = self._rates(params, key)
        terms = {
            name: w * rate_loss(rates, t)
            for name, t, w in zip(self.term_names, self.targets, self.term_weights, strict=True)
        }
        terms["regularization"] = self.regularization * params.penalty()
        loss = sum(terms.values(), jnp.zeros((), rates.dtype))
        if peaks is not None:
            terms[EVENT_PEAKS] = peaks
        return loss, terms


def default_scale(model: LIF) -> float:
    """``dt_ms / tau`` (the model's ``time_constant_ms``, LIF's ``tau_m_ms``; mean over
    neurons): the surrogate height factor with which a
    threshold crossing's summed surrogate derivative is about the change of spike count it
    causes (a unit-area surrogate instead credits a whole spike to every step of a crossing,
    about tau_m / dt times too much, and gradients then grow without bound through
    recurrent connections)."""
    return float(model.dt_ms / np.mean(np.asarray(model.time_constant_ms(), np.float64)))


def build_task(
    network: Network,
    protocol,
    model: LIF,
    targets: dict[str, RateTargets],
    *,
    duration_ms: float,
    n_conditions: int = 1,
    weights: dict[str, float] | None = None,
    regularization: float = 0.0,
    surrogate: Surrogate | None = None,
    checkpoint_ms: float = 10.0,
    remat_steps: bool | None = None,
    detach_reset: bool = True,
    propagation: str | None = None,
    capacity: EventCapacity | None = None,
    poisson_stream: int = DEFAULT_STREAM,
    native: bool | None = None,
) -> FitTask:
    """A :class:`FitTask` from a host-side :class:`brainsim.sim.Protocol`.

    ``targets`` maps term names to tables; ``weights`` their weights (default 1).
    ``surrogate`` defaults to the fast sigmoid of slope 1/mV scaled by
    :func:`default_scale`.
    ``propagation`` and ``remat_steps`` default by size: a dense weight matrix and no
    per-step recomputation up to 2,048 neurons, CSR with per-step recomputation above.
    ``native`` (``propagation="events"`` only): the propagation in C++ on the CPU; ``None``
    where it can run (:func:`brainsim.fit._events.native_events_choice`).
    """
    _native_only_for_events(native, propagation)
    dtype = network.counts.dtype
    n_steps = int(round(duration_ms / model.dt_ms))
    if n_steps < 1:
        raise ValueError(f"duration_ms={duration_ms} is shorter than one step")
    small = network.n_neurons <= 2048
    replay = None
    if protocol.replay_events is not None and len(protocol.replay_events):
        replay = jnp.asarray(protocol.replay_dense(0, n_steps), dtype)
    weights = weights or {}
    names = tuple(targets)
    return FitTask(
        base=model,
        net=network,
        drive=protocol.device(
            dtype, dt_ms=model.dt_ms, block_steps=model.delay_steps, stream=poisson_stream
        ),
        refractory_steps=jnp.asarray(protocol.refractory_steps(_refractory(model, network))),
        replay=replay,
        targets=tuple(targets[k] for k in names),
        term_names=names,
        term_weights=tuple(float(weights.get(k, 1.0)) for k in names),
        n_steps=n_steps,
        n_conditions=n_conditions,
        regularization=float(regularization),
        surrogate=surrogate or Surrogate(scale=default_scale(model)),
        checkpoint_steps=max(1, int(round(checkpoint_ms / model.dt_ms))),
        # (the event path stores no per-connection intermediates: no per-step recomputation)
        remat_steps=(not small and propagation != "events") if remat_steps is None else remat_steps,
        detach_reset=detach_reset,
        propagation=propagation or ("matrix" if small else "csr"),
        capacity=capacity or EventCapacity(),
        native=propagation == "events" and native_events_choice(native),
    )


def _native_only_for_events(native, propagation) -> None:
    if native and propagation != "events":
        raise ValueError(f'native=True is for propagation="events", not {propagation!r}')


def split_trials(task: FitTask, n_devices: int) -> FitTask:
    """The task with its trial axis split over ``n_devices`` devices (a one-axis
    ``trials`` mesh): the drive's per-trial fields and the replayed events are placed
    split, everything else stays replicated, and XLA partitions the differentiable run and
    its gradient accordingly (GSPMD). Every trial draws its noise from its global trial
    number, so the loss and gradient equal one device's up to the order of the sums over
    trials (tested). The event path runs in its JAX form there: GSPMD would replicate the
    C++ propagation (every device propagating every trial)."""
    if n_devices == 1:
        return task
    task = dataclasses.replace(task, native=False)
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from brainsim.sim._sharding import AXIS, _drive_spec, trial_mesh

    n_trials = int(task.drive.trial_ids.shape[0])
    if n_trials % n_devices:
        raise ValueError(f"{n_trials} trials cannot be split evenly over {n_devices} devices")
    mesh = trial_mesh(n_devices)
    put = lambda x, spec: jax.device_put(x, NamedSharding(mesh, spec))  # noqa: E731
    drive = task.drive
    spec = _drive_spec(drive.silenced is not None, drive.removed is not None, drive.stream)
    drive = jax.tree.map(put, drive, spec)
    replay = None if task.replay is None else put(task.replay, P(None, AXIS))
    # the rest on the same devices, replicated (arrays of one jit must share devices)
    task = jax.tree.map(lambda x: put(x, P()) if eqx.is_array(x) else x, task)
    return dataclasses.replace(task, drive=drive, replay=replay)


def _refractory(model, network) -> np.ndarray:
    """The model's refractory steps per neuron (0 for a model without refractoriness)."""
    if hasattr(model, "refractory_steps"):
        return model.refractory_steps(network.n_neurons)
    return np.zeros(network.n_neurons, np.int32)


def _loss(trainable, frozen, task: FitTask, key):
    return task.loss(eqx.combine(trainable, frozen), key)


def value_and_grad(params: FitParams, task: FitTask, key: Array):
    """``((loss, terms), grads)`` with ``grads`` shaped like the trainable part of ``params``."""
    trainable, frozen = partition(params)
    return eqx.filter_value_and_grad(_loss, has_aux=True)(trainable, frozen, task, key)


@eqx.filter_jit
def train_step(trainable, frozen, opt_state, task: FitTask, key: Array, optimizer):
    """One optimisation step: loss, gradient w.r.t. ``trainable``, optax update.

    Returns ``(trainable, opt_state, loss, terms, grad_norm)``."""
    (loss, terms), grads = eqx.filter_value_and_grad(_loss, has_aux=True)(
        trainable, frozen, task, key
    )
    updates, opt_state = optimizer.update(grads, opt_state, trainable)
    trainable = eqx.apply_updates(trainable, updates)
    return trainable, opt_state, loss, terms, _norm(grads)


def _norm(tree) -> Float[Array, ""]:
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return jnp.sqrt(sum((jnp.sum(x.astype(jnp.float32) ** 2) for x in leaves), jnp.float32(0)))


def make_optimizer(
    name: str = "adam", learning_rate: float = 0.01, clip_norm: float | None = None
) -> optax.GradientTransformation:
    """``optax.chain(optax.clip_by_global_norm(clip_norm), optax.<name>(learning_rate))``
    (without the clip when ``clip_norm`` is None)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    opt = getattr(optax, name)(learning_rate)
    if clip_norm is None:
        return opt
    return optax.chain(optax.clip_by_global_norm(clip_norm), opt)


def fit(
    params: FitParams,
    task: FitTask,
    *,
    steps: int,
    optimizer: optax.GradientTransformation | None = None,
    seed: int = 0,
    resample_noise: bool = True,
    callback: Callable[[dict], None] | None = None,
    track: Callable[[FitParams], dict] | None = None,
    max_loss_ratio: float | None = None,
) -> tuple[FitParams, list[dict]]:
    """Run ``steps`` optimisation steps from ``params``.

    Args:
        optimizer: an optax transformation (default :func:`make_optimizer`'s Adam).
        seed: seed of the input noise; with ``resample_noise`` each step draws fresh noise
            (``fold_in(key, step)``), otherwise every step sees the same trials.
        callback: called with each step's record.
        track: ``track(params)`` returns values to add to a step's record (e.g. the fitted
            global values), taken before the step's update, where its loss was evaluated.
        max_loss_ratio: a finite loss above this many times step 0's (when that is > 0)
            counts as a divergence too (None: only NaN and infinity do).
    Returns:
        the fitted parameters and one record per step: ``step``, ``loss``, each weighted
        term, ``grad_norm``, ``wall_s`` (the record of step i holds the loss of the
        parameters before update i).
    Raises:
        FitDivergedError: at the first step whose loss, gradient or updated parameters
            are NaN or infinite, or whose loss exploded (``max_loss_ratio``): nothing after
            it would mean anything. It carries the last finite parameters and the history
            up to them.
    """
    optimizer = optimizer or make_optimizer()
    trainable, frozen = partition(params)
    opt_state = optimizer.init(eqx.filter(trainable, eqx.is_inexact_array))
    key = seed_key(seed)
    history: list[dict] = []
    last = params
    for i in range(steps):
        t0 = time.perf_counter()
        tracked = {} if track is None else track(eqx.combine(trainable, frozen))
        k = jax.random.fold_in(key, i) if resample_noise else key
        regrown = 0
        while True:
            new, new_state, loss, terms, gnorm = train_step(
                trainable, frozen, opt_state, task, k, optimizer
            )
            peaks = terms.pop(EVENT_PEAKS, None)
            if peaks is None or task.capacity.holds(peaks):
                break
            # events left out: grow the capacities and repeat the step (a recompilation)
            task = dataclasses.replace(task, capacity=task.capacity.grown(peaks))
            regrown += 1
        before = eqx.combine(trainable, frozen)
        rec = {"step": i, "loss": float(loss), **{k_: float(v) for k_, v in terms.items()}}
        rec["grad_norm"] = float(gnorm)
        if task.propagation == "events":
            rec["event_regrowths"] = regrown  # steps repeated with larger capacities
        rec["wall_s"] = time.perf_counter() - t0
        if not (math.isfinite(rec["loss"]) and math.isfinite(rec["grad_norm"])):
            # the parameters of the last finite step: this step's were updated from them
            bad = [k_ for k_, v in terms.items() if not math.isfinite(float(v))]
            grad = math.isfinite(rec["loss"])
            raise FitDivergedError(
                i,
                rec["grad_norm"] if grad else rec["loss"],
                term="gradient" if grad else ", ".join(bad) or None,
                last_finite=before if grad else last,
                last_finite_step=i if grad else i - 1,
                history=history + [rec | tracked] if grad else history,
            )
        if i > 0 and loss_exploded(rec["loss"], history[0]["loss"], max_loss_ratio):
            raise FitDivergedError(
                i,
                rec["loss"],
                term=_grown_most(terms, history[0]),
                last_finite=last,
                last_finite_step=i - 1,
                history=history + [rec | tracked],
                first_loss=history[0]["loss"],
                max_loss_ratio=max_loss_ratio,
            )
        history.append(rec | tracked)
        last = before
        trainable, opt_state = new, new_state
        try:
            _check_finite(eqx.combine(trainable, frozen), i)
        except FitDivergedError as e:
            e.last_finite, e.last_finite_step, e.history = before, i, history
            raise
        if callback is not None:
            callback(history[-1])
    return eqx.combine(trainable, frozen), history


def loss_exploded(loss: float, first: float, max_ratio: float | None) -> bool:
    """A finite ``loss`` above ``max_ratio`` times step 0's (``first``, when that is > 0;
    never when ``max_ratio`` is None)."""
    return max_ratio is not None and first > 0 and loss > max_ratio * first


def _grown_most(terms: dict, first: dict) -> str | None:
    """The loss term that added the most to the loss since step 0 (its increase, not its
    ratio: a regularization term starts at exactly 0)."""
    growth = {k: float(v) - float(first.get(k, 0.0)) for k, v in terms.items()}
    return max(growth, key=growth.get) if growth else None


def _check_finite(params: FitParams, step: int) -> None:
    """Raise :class:`FitDivergedError` if update ``step`` left a parameter value (after
    its transform: exp of a finite log can overflow) NaN or infinite."""
    groups = params.groups()
    ok = [jnp.isfinite(g.values()).all() for g in groups.values()]
    if not groups or bool(jnp.stack(ok).all()):
        return
    for q, g in groups.items():
        vals = np.asarray(g.values())
        bad = np.nonzero(~np.isfinite(vals))[0]
        if bad.size:
            raise FitDivergedError(step, float(vals[bad[0]]), q, int(bad[0]))
