"""``brainsim fit`` for flyvis networks: train per-type and per-pair parameters on a motion
task with optax, and measure the direction selectivity that emerges.

The task (``[fit] task = "motion"``): stimuli moving at a known velocity on the lattice
(moving ON and OFF edges, and/or drifting random textures: ``stimuli``), a linear decoder of
the velocity ``(v_x, v_y)`` (in units of the fastest speed) from the output types' activity
(the rectified depolarisation from grey, ``relu(V - V_grey)``, divided by its root mean
square over the batch), and the mean squared error of the decoded velocity relative to its
size while the stimulus moves (from ``loss_delay_ms`` after its onset to its end), over all
stimuli of the batch. The decoder is trained with the network. ``readout`` says what it
reads: ``"columns"``, every column (within ``pool_radius`` of the centre) from that
column's own cells, one decoder shared by the columns as flyvis decodes optic flow per
column; a cell without direction selectivity sees opposite motions pass in mirror image,
so this readout is solved only by direction-selective cells. ``"steps"`` pools each type
over the columns; the cells at the lattice's edge, whose inputs are cut off on one side,
then carry the direction without becoming selective (``benchmarks/RESULTS.md``).

The gradient runs through the grey steady state that every stimulus starts from and that
the features are measured from, so a parameter that moves the resting levels is not read
as a response (the steady state is computed once per batch, for all stimuli).

Trained, with flyvis's parameters (Lappalainen et al. 2024): the bias of every type, its
time constant (clamped below at dt in the dynamics, as flyvis) and the strength of every
type pair (non-negative). Strengths and time constants are trained as log factors of their
initial values (``s = s0 exp(a)``, ``tau = tau0 exp(b)``): one learning rate then suits
parameters of different scales, and they stay positive without flyvis's projection step
(which clamps at 0 after each update; a strength here can approach 0 but not reach it).
The start is ``[model] params`` (default ``"flyvis:initial"``: flyvis's initialisation,
not the trained networks).

Schema of ``[fit]`` (all optional but ``task``)::

    task = "motion"
    stimuli = ["edges"]            # "edges" (ON and OFF), "textures" (random, drifting)
    angles_deg = [0, 45, 90, 135, 180, 225, 270, 315]
    speeds = [9.7, 19.0]           # columns (5.8 deg) per second
    steps = 300
    learning_rate = 0.02
    optimizer = "adam"             # any of brainsim fit's optimizers
    loss_delay_ms = 60.0
    steady_state_s = 0.5           # grey before each batch (differentiated: see make_loss)
    textures_per_direction = 1
    log_every = 25
    evaluate = true                # DSI at moving edges before and after (12 directions,
                                   # 19 columns/s, at the training step: tau >= dt)
    clip_norm = 1.0                # optax.clip_by_global_norm; 0: none
    max_loss_ratio = 1000.0        # a loss above this many times step 1's stops the
                                   # training as diverged, as a NaN does (0: only NaN, inf)
    decode_from = []               # cell types the decoder reads (default: the output
                                   # types); "T4a+T5a": one input summing both
    readout = "steps"              # "steps": pooled over columns, every step; "columns":
                                   # every column from its own cells, every step; "mean",
                                   # "peak": pooled, once per stimulus (see make_loss)
    pool_radius = 3                # read only the columns this close to the centre
                                   # (hexagonal distance; default: every column)
    activity_penalty = {}          # flyvis's activity penalty on the biases, with its
                                   # defaults (baseline = 5.0, weight = 0.1, below = 1.0,
                                   # above = 0.1; see ActivityPenalty); default: none

Writes: ``params.npz`` (the parameters of the lowest loss, as flyvis keeps its best
checkpoint; ``[model] params`` can name it),
``history.parquet`` (step, loss), ``dsi.parquet`` (cell_type, intensity, dsi and preferred
direction before and after), ``t4t5.json``, ``manifest.json``, ``loss.png``, and ``run/``:
the ``moving_edge`` experiment of the trained network (at the training step). A training
whose loss goes NaN or infinite, or above ``max_loss_ratio`` times step 1's, stops there
and writes instead ``params_last_finite.npz`` (the parameters of the step before),
``history.parquet`` up to that step and ``manifest.json`` with ``diverged`` (beside a
finished training in the folder: ``<folder>-diverged``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from brainsim.experiments._errors import ConfigError
from brainsim.fit._config import check_optimizer_settings, check_types

_KEYS = {
    "task": str,
    "stimuli": list,
    "angles_deg": list,
    "speeds": list,
    "steps": int,
    "learning_rate": float,
    "optimizer": str,
    "loss_delay_ms": float,
    "steady_state_s": float,
    "textures_per_direction": int,
    "log_every": int,
    "evaluate": bool,
    "clip_norm": float,
    "max_loss_ratio": float,
    "decode_from": list,
    "readout": str,
    "pool_radius": int,
    "activity_penalty": dict,
}


@dataclasses.dataclass(frozen=True)
class MotionTask:
    stimuli: tuple[str, ...] = ("edges",)
    angles_deg: tuple[float, ...] = (0, 45, 90, 135, 180, 225, 270, 315)
    speeds: tuple[float, ...] = (9.7, 19.0)
    steps: int = 300
    learning_rate: float = 0.02
    optimizer: str = "adam"
    loss_delay_ms: float = 60.0
    steady_state_s: float = 0.5
    textures_per_direction: int = 1
    log_every: int = 25
    evaluate: bool = True
    clip_norm: float = 1.0
    max_loss_ratio: float = 1000.0
    decode_from: tuple[str, ...] = ()  # cell types read by the decoder; () = output types
    readout: str = "steps"  # see make_loss
    pool_radius: int | None = None  # read the columns this close to the centre; None: all
    activity_penalty: ActivityPenalty | None = None  # flyvis's, on the biases; None: none


@dataclasses.dataclass(frozen=True)
class ActivityPenalty:
    """flyvis's activity penalty (its ``config/penalizer/penalizer.yaml``; ``Penalty`` in
    ``flyvis/solver.py``): for each cell type, the temporal mean voltage of its central
    cell over the last three quarters of each training stimulus, pulled toward
    ``baseline``, ``weight * mean((below * relu(baseline - m) - above * relu(m - baseline))
    ** 2)`` over stimuli and types. flyvis applies it to the biases only, with an optimiser
    of its own at the network's learning rate (:func:`make_update`); it keeps cell types
    from falling silent, where no gradient reaches them again."""

    baseline: float = 5.0
    weight: float = 0.1
    below: float = 1.0
    above: float = 0.1

    def __post_init__(self):
        for name in ("baseline", "weight", "below", "above"):
            x = getattr(self, name)
            finite = isinstance(x, int | float) and np.isfinite(x)
            if not finite or (name != "baseline" and x < 0):
                raise ValueError(f"activity penalty {name} must be a finite number"
                                 f"{'' if name == 'baseline' else ' >= 0'}, got {x!r}")  # fmt: skip


def parse_task(fit: dict, where: str) -> MotionTask:
    w = f"{where}: [fit]"
    check_types(fit, _KEYS, w)
    if fit.get("task") != "motion":
        raise ConfigError(f'{w} task: a flyvis network trains on task = "motion"')
    kw = {k: v for k, v in fit.items() if k != "task"}
    for k in ("stimuli", "angles_deg", "speeds", "decode_from"):
        if k in kw:
            if not kw[k]:
                raise ConfigError(f"{w} {k}: must not be empty")
            kw[k] = tuple(kw[k])
    if "activity_penalty" in kw:
        kw["activity_penalty"] = _parse_activity_penalty(kw["activity_penalty"], w)
    task = MotionTask(**kw)
    bad = [s for s in task.stimuli if s not in ("edges", "textures")]
    if bad:
        raise ConfigError(f'{w} stimuli: expected "edges" and/or "textures", got {bad}')
    if not all(isinstance(s, int | float) and np.isfinite(s) and s > 0 for s in task.speeds):
        raise ConfigError(f"{w} speeds: expected numbers > 0 (columns/s)")
    if not all(isinstance(a, int | float) and np.isfinite(a) for a in task.angles_deg):
        raise ConfigError(f"{w} angles_deg: expected finite numbers")
    check_optimizer_settings(task, w)
    if task.textures_per_direction < 1:
        raise ConfigError(f"{w} textures_per_direction: must be >= 1")
    if not all(isinstance(t, str) for t in task.decode_from):
        raise ConfigError(f"{w} decode_from: expected a list of cell type names")
    if task.readout not in READOUTS:
        raise ConfigError(f"{w} readout: expected one of {', '.join(READOUTS)}, "
                          f"got {task.readout!r}")  # fmt: skip
    if task.pool_radius is not None and task.pool_radius < 0:
        raise ConfigError(f"{w} pool_radius: must be >= 0 (omit it to read every column)")
    r = task.max_loss_ratio
    if not (np.isfinite(r) and (r == 0 or r > 1)):
        raise ConfigError(f"{w} max_loss_ratio: must be > 1, or 0 (off), got {r:g}")
    if task.loss_delay_ms < 0 or task.steady_state_s < 0:
        raise ConfigError(f"{w}: loss_delay_ms and steady_state_s must be >= 0")
    return task


def _parse_activity_penalty(table: dict, w: str) -> ActivityPenalty:
    w = f"{w} activity_penalty"
    check_types(table, dict.fromkeys(("baseline", "weight", "below", "above"), float), w)
    try:
        return ActivityPenalty(**{k: float(v) for k, v in table.items()})
    except ValueError as e:
        raise ConfigError(f"{w}: {e}") from None


# ---------------------------------------------------------------------------- stimuli


def motion_batch(extent: int, task: MotionTask, dt_s: float, seed: int):
    """(frames [steps, b, columns], velocity [b, 2] columns/s, moving [steps, b] bool: the
    frames during which the stimulus moves, from the loss delay on)."""
    from brainsim.flyvis import _stimuli as S
    from brainsim.flyvis._experiment import pad_frames

    stims, vel, spans = [], [], []
    t_pre = 0.1
    rng = np.random.default_rng(seed)
    for a in task.angles_deg:
        d = np.array([np.cos(np.deg2rad(a)), np.sin(np.deg2rad(a))])
        for s in task.speeds:
            if "edges" in task.stimuli:
                for i in (0.0, 1.0):
                    stims.append(S.moving_edge(extent, a, i, s, dt_s, t_pre_s=t_pre, t_post_s=0.1))
                    vel.append(s * d)
                    spans.append((t_pre, t_pre + S.edge_duration_s(s)))
            if "textures" in task.stimuli:
                for _ in range(task.textures_per_direction):
                    dur = S.edge_duration_s(s)
                    seed = int(rng.integers(2**31))
                    stims.append(S.texture(extent, a, s * S.OMMATIDIUM_DEG, dur, dt_s,
                                           seed=seed, t_pre_s=t_pre))  # fmt: skip
                    vel.append(s * d)
                    spans.append((t_pre, t_pre + dur))
    frames = pad_frames(stims)
    t = np.arange(frames.shape[0]) * dt_s
    delay = task.loss_delay_ms / 1000.0
    moving = np.stack([(t >= a + delay) & (t <= b) for a, b in spans], axis=1)
    return frames, np.array(vel), moving


# ---------------------------------------------------------------------------- the loss


def decoded_types(lattice, task: MotionTask) -> list[str]:
    """The cell types the decoder reads, each once, in the order named: those of
    ``decode_from`` (an entry ``"T4a+T5a"`` names two), else the file's output types; a
    name that is not a type is an error."""
    names = []
    for entry in _channel_entries(lattice, task):
        names += [t for t in entry.split("+") if t not in names]
    unknown = [t for t in names if t not in lattice.spec.type_names]
    if unknown:
        raise ConfigError(f"[fit] decode_from: {unknown} are not cell types of the connectome")
    return names


def decoder_channels(lattice, task: MotionTask) -> np.ndarray:
    """float32 [decoded types, channels]: which types each decoder input sums. One channel
    per ``decode_from`` entry; ``"T4a+T5a"`` sums the two types' features (each in units of
    its own size), as the tangential cells of one lobula plate layer read both T4a and
    T5a: the decoder then cannot weigh them apart."""
    types = decoded_types(lattice, task)
    entries = _channel_entries(lattice, task)
    m = np.zeros((len(types), len(entries)), np.float32)
    for c, entry in enumerate(entries):
        parts = entry.split("+")
        if len(set(parts)) != len(parts):
            raise ConfigError(f"[fit] decode_from: {entry!r} names a type twice")
        for t in parts:
            m[types.index(t), c] = 1.0
    return m


def _channel_entries(lattice, task: MotionTask) -> list[str]:
    return list(task.decode_from) or list(lattice.spec.output_types)


def _is_identity(channels) -> bool:
    if channels is None:
        return True
    m = np.asarray(channels)
    return m.shape[0] == m.shape[1] and bool(np.array_equal(m, np.eye(len(m))))


def _trainables(lattice, params, seed: int, task: MotionTask):
    """Start values: the parameters' own, factors of 1, and a small random decoder (a zero
    decoder would pass no gradient to the network)."""
    import jax.numpy as jnp

    n_out = len(_channel_entries(lattice, task))
    rng = np.random.default_rng(seed)
    return _network_start(params) | {
        "decoder_w": jnp.asarray(rng.normal(0, 0.1, (2, n_out)), jnp.float32),
        "decoder_b": jnp.zeros(2, jnp.float32),
    }


def _network_start(params) -> dict:
    """The network's trainable values at ``params``: its biases, and factors of 1."""
    import jax.numpy as jnp

    return {
        "bias": jnp.asarray(params.bias, jnp.float32),
        "log_tau_factor": jnp.zeros(len(params.time_const_s), jnp.float32),
        "log_strength_factor": jnp.zeros(len(params.strength), jnp.float32),
    }


def type_params(lattice, params0, theta, dt_s):
    """The :class:`TypeParams` that the trainable values ``theta`` stand for."""
    from brainsim.flyvis._params import TypeParams

    return TypeParams(
        name="trained",
        bias=np.asarray(theta["bias"], np.float64),
        time_const_s=np.maximum(
            params0.time_const_s * np.exp(np.asarray(theta["log_tau_factor"], np.float64)), dt_s
        ),
        strength=params0.strength * np.exp(np.asarray(theta["log_strength_factor"], np.float64)),
    )


def make_loss(
    lattice,
    params0,
    dt_ms,
    frames,
    velocity,
    moving,
    steady_s,
    types,
    leak=0.0,
    readout="steps",
    radius=None,
    scale="batch",
    rest_floor=None,
    steady_gradient=True,
    channels=None,
    activity=None,
    feature_eps=0.0,
):
    """``(loss, fixed)``: ``loss(theta, fixed)`` and the arrays it reads (passed as an
    argument, not closed over, so that jit does not fold them as constants). Everything on
    the lattice is fixed but the weights, biases and time constants that ``theta`` sets.
    ``leak``: the slope of the pooled features below grey (0: rectified, the task's; > 0
    keeps a gradient through cells that only hyperpolarise, as
    ``benchmarks/flyvis_train_variants.py`` tries). ``readout``: ``"steps"`` decodes the
    velocity at every step while the stimulus moves (the task's), ``"mean"`` once from the
    features averaged over those steps (no timing cue: only the size of the responses),
    ``"peak"`` once from their maxima over those steps (what the DSI reads), ``"columns"``
    at every step and every column from that column's cells (one decoder shared by the
    columns, as flyvis decodes optic flow per column; a cell without direction selectivity
    sees opposite motions pass in mirror image, so it cannot tell them apart).
    ``radius``: read only the columns this close to the centre (hexagonal distance; None:
    all), leaving out the edge columns, whose inputs are cut off on one side. ``scale``:
    the features are divided by their root mean square over this batch (``"batch"``, the
    task's: the loss does not depend on the network's gain) or over the start parameters'
    responses (``"initial"``: larger responses read as larger), or by the larger of the two
    (``"floored"``: a response that shrinks reads as smaller, so its gradient is not
    amplified as the batch's own size would). ``rest_floor``: adds the mean over cells of
    ``(relu(rest_floor - V_grey) / rest_floor)**2``, which keeps cells from resting near or
    below 0, where they stop transmitting (None: no such term). ``steady_gradient``:
    differentiate through the grey steady state where the stimuli start and which the
    features are measured from (False: hold it fixed, as before 2026-12-06). ``channels``:
    float [types, decoder inputs], the types each decoder input sums after scaling
    (:func:`decoder_channels`; None: one input per type). ``activity``: an
    :class:`ActivityPenalty` (None: none). The loss is the sum of ``loss.parts(theta,
    fixed)``, ``[task loss, penalty]`` from one simulation (the penalty 0 without one),
    which :func:`make_update` uses to send the penalty's gradient to the biases alone.
    ``feature_eps`` > 0: each feature is divided by ``sqrt(size**2 + feature_eps)``
    instead of its size, as flyvis's decoder batch-normalises its inputs (PyTorch's
    epsilon 1e-5): responses far below ``sqrt(feature_eps)`` then read as small."""
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if channels is not None and (np.ndim(channels) != 2 or len(channels) != len(types)):
        raise ValueError(f"channels must be [{len(types)} types, inputs], got shape "
                         f"{np.shape(channels)}")  # fmt: skip
    if not (np.isfinite(feature_eps) and feature_eps >= 0):
        raise ValueError(f"feature_eps must be a number >= 0, got {feature_eps!r}")
    if rest_floor is not None and not (np.isfinite(rest_floor) and rest_floor > 0):
        raise ValueError(f"rest_floor must be a number > 0 or None, got {rest_floor!r}")
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from brainsim.flyvis import _simulate as sim
    from brainsim.models._graded import GradedAux

    dt_s = dt_ms / 1000.0
    spec = lattice.spec
    out_types = [spec.type_names.index(t) for t in types]
    from brainsim.flyvis._lattice import hex_distance_of

    near = np.ones(lattice.n_cells, bool)
    if radius is not None:
        near = hex_distance_of(lattice.u, lattice.v) <= radius
    # pooling matrix [cells, decoded types]: the mean over each type's (chosen) cells
    pool = np.zeros((lattice.n_cells, len(out_types)), np.float32)
    for k, t in enumerate(out_types):
        cells = np.flatnonzero((lattice.cell_type == t) & near)
        if not cells.size:
            raise ValueError(f"cell type {types[k]} has no cell within radius {radius}")
        pool[cells, k] = 1.0 / cells.size
    by_column = readout == "columns"
    fixed = {
        "net": sim.build(lattice, params0, dt_ms),
        "sign_nsyn": jnp.asarray(lattice.sign * lattice.n_syn.astype(np.float64), jnp.float32),
        "pair": jnp.asarray(lattice.pair, jnp.int32),
        "strength0": jnp.asarray(params0.strength, jnp.float32),
        "tau0": jnp.asarray(params0.time_const_s, jnp.float32),
        "cell_type": jnp.asarray(lattice.cell_type, jnp.int32),
        "pool": jnp.asarray(pool),
        # [columns, decoded types]: the cells the per-column readout reads
        "at_columns": jnp.asarray(
            _cells_at_columns(lattice, out_types, types, near) if by_column else np.zeros((0, 0)),
            jnp.int32,
        ),
        # None where each input is one type in order (no product then)
        "channels": None if _is_identity(channels) else jnp.asarray(channels, jnp.float32),
        "frames": jnp.asarray(frames, jnp.float32),
        "velocity": jnp.asarray(velocity, jnp.float32),
        "moving": jnp.asarray(moving, jnp.float32),
        # every type's central cell, whose voltage the activity penalty reads
        "central": jnp.asarray(lattice.central_cells(), jnp.int32),
    }
    n_steady = int(round(steady_s / dt_s))
    n_cells = lattice.n_cells

    def network(theta, f):
        # the model object only names the integrator and transfer; the values live in aux
        factor = jnp.exp(theta["log_strength_factor"])
        w = f["sign_nsyn"] * f["strength0"][f["pair"]] * factor[f["pair"]]
        tau = jnp.maximum(f["tau0"] * jnp.exp(theta["log_tau_factor"]), dt_s)
        tau_ms = tau[f["cell_type"]] * 1000.0
        v_rest = theta["bias"][f["cell_type"]]
        aux = GradedAux(tau=tau_ms, v_rest=v_rest, leak=jnp.ones_like(tau_ms), decay=dt_ms / tau_ms)
        net = eqx.tree_at(lambda n: n.aux, f["net"], aux)
        return eqx.tree_at(lambda n: n.synapses, net, net.synapses.with_weight(w))

    def features(theta, f):
        net = network(theta, f)
        frames = f["frames"]
        b = frames.shape[1]
        v = theta["bias"][f["cell_type"]][None]
        if n_steady:  # the same for every stimulus: once, then broadcast
            grey = jnp.full((n_steady, 1, net.n_columns), 0.5, jnp.float32)
            v = jax.lax.scan(lambda x, fr: (sim.step(net, x, fr), None), v, grey)[0]
        rest = v[0]
        if not steady_gradient:
            v = jax.lax.stop_gradient(v)
        # each cell's voltage at grey, where every stimulus starts. Differentiated (the
        # default), a parameter that moves the resting levels moves the start and the
        # reference of the features with them, so that only the change of the responses
        # reaches the loss; held fixed, the same change reads as a response (the network
        # relaxing from the old rest to the new one), a gradient of the biases thousands of
        # times the others' at flyvis's initial parameters
        v = grey_v = jnp.broadcast_to(v, (b, n_cells))

        def body(x, fr):
            x = sim.step(net, x, fr)
            # rectified changes from grey, pooled per output type: for a cell without
            # direction selectivity, motion in opposite directions gives mirror-image
            # responses and equal pooled values
            d = x - grey_v
            r = jnp.maximum(d, leak * d)
            central = x[:, f["central"]] if activity is not None else None
            if by_column:  # [b, columns, output types]
                return x, (r[:, f["at_columns"]], central)
            return x, (r @ f["pool"], central)

        # [steps, b, (columns,) output types], every cell's voltage at grey, and the
        # central cells' voltages [steps, b, types] (None without an activity penalty)
        feats, central = jax.lax.scan(body, v, frames)[1]
        return feats, rest, central

    def rms(feats):
        return jnp.sqrt(jnp.mean(feats**2, axis=tuple(range(feats.ndim - 1))))

    def parts(theta, f):
        feats, rest, central = features(theta, f)
        task = task_loss(theta, feats, f["velocity"], f["moving"], f) + floor_term(rest)
        return jnp.stack([task, activity_term(central)])

    def loss(theta, f):
        return jnp.sum(parts(theta, f))

    def activity_term(central):
        if activity is None:
            return jnp.zeros((), jnp.float32)
        m = jnp.mean(central[central.shape[0] // 4 :], axis=0)  # [b, types]
        d = activity.baseline - m
        w = activity.below * jnp.maximum(d, 0.0) - activity.above * jnp.maximum(-d, 0.0)
        return activity.weight * jnp.mean(w**2)

    def floor_term(rest):
        if rest_floor is None:
            return 0.0
        return jnp.mean(jnp.maximum(rest_floor - rest, 0.0) ** 2) / rest_floor**2

    def task_loss(theta, feats, velocity, moving, f):
        # each feature in units of its size (not differentiated): the decoder's scale does
        # not depend on the network's gain, which starts small (flyvis's init). "batch":
        # this batch's size (gain-invariant), "initial": the start's (a larger response
        # then reads as larger), "floored": this batch's but never below the start's
        size = jax.lax.stop_gradient(rms(feats))
        if scale == "initial":
            size = f["feature_scale"]
        elif scale == "floored":
            size = jnp.maximum(size, f["feature_scale"])
        if feature_eps > 0:  # as a batch norm's epsilon: a response far below its
            # square root reads as small, so the loss asks for gain
            feats = feats / jnp.sqrt(size**2 + feature_eps)
        else:
            feats = feats / (size + 1e-6 * jnp.max(size) + 1e-12)
        if f["channels"] is not None:
            feats = feats @ f["channels"]  # [..., decoder inputs]
        target = velocity / jnp.max(jnp.linalg.norm(velocity, axis=1))
        if by_column:
            decoded = feats @ theta["decoder_w"].T + theta["decoder_b"]  # [s, b, cols, 2]
            err = jnp.sum((decoded - target[None, :, None]) ** 2, -1)
            err = jnp.mean(err, -1) / jnp.sum(target**2, 1)[None]
            return jnp.sum(err * moving) / jnp.maximum(jnp.sum(moving), 1.0)
        if readout != "steps":  # [b, types]: each stimulus's features while it moves
            m = moving[..., None]
            if readout == "mean":
                feats = jnp.sum(feats * m, 0) / jnp.maximum(jnp.sum(m, 0), 1.0)
            else:  # (0 for a stimulus that never moves)
                peak = jnp.max(jnp.where(m > 0, feats, -jnp.inf), 0)
                feats = jnp.where(jnp.any(m > 0, 0), peak, 0.0)
            decoded = feats @ theta["decoder_w"].T + theta["decoder_b"]
            return jnp.mean(jnp.sum((decoded - target) ** 2, -1) / jnp.sum(target**2, 1))
        decoded = feats @ theta["decoder_w"].T + theta["decoder_b"]
        err = jnp.sum((decoded - target[None]) ** 2, axis=-1) / jnp.sum(target**2, 1)[None]
        return jnp.sum(err * moving) / jnp.maximum(jnp.sum(moving), 1.0)

    if scale != "batch":
        start = _network_start(params0)
        fixed["feature_scale"] = jax.jit(lambda t, f: rms(features(t, f)[0]))(start, fixed)
    loss.parts = parts
    return loss, fixed


def make_task_loss(lattice, params0, dt_ms, task: MotionTask, frames, velocity, moving,
                   **variant):
    """:func:`make_loss` with the task's own options (the types and channels it decodes,
    its readout, radius, steady state and activity penalty); ``variant``: the further
    keywords of :func:`make_loss` that only the benchmarks vary."""
    return make_loss(
        lattice, params0, dt_ms, frames, velocity, moving, task.steady_state_s,
        decoded_types(lattice, task), readout=task.readout, radius=task.pool_radius,
        channels=decoder_channels(lattice, task), activity=task.activity_penalty, **variant,
    )  # fmt: skip


READOUTS = ("steps", "mean", "peak", "columns")
SCALES = ("batch", "initial", "floored")


def _cells_at_columns(lattice, out_types, names, near) -> np.ndarray:
    """int [columns, decoded types]: the cell of each decoded type at each chosen column (the
    columns where the first type has a cell); a type missing at one of them is an error."""
    key = lattice.u.astype(np.int64) * 100_003 + lattice.v
    first = np.flatnonzero((lattice.cell_type == out_types[0]) & near)
    cols = key[first]
    out = np.empty((cols.size, len(out_types)), np.int64)
    for k, t in enumerate(out_types):
        cells = np.flatnonzero(lattice.cell_type == t)
        at = dict(zip(key[cells].tolist(), cells.tolist(), strict=True))
        missing = [c for c in cols.tolist() if c not in at]
        if missing:
            raise ValueError(
                f"cell type {names[k]} lacks cells at {len(missing)} of the columns where "
                f"{names[0]} has them: the per-column readout needs the same columns"
            )
        out[:, k] = [at[c] for c in cols.tolist()]
    return out


def make_update(loss_fn, opt, penalty_opt=None):
    """One jit-compiled optimisation step: ``(theta, state, fixed) -> (theta, state, loss)``.
    With ``penalty_opt`` (for a loss with an activity penalty, :func:`make_loss`), as flyvis
    trains: ``opt`` steps every parameter along the task loss's gradient, ``penalty_opt``
    the biases along the penalty's (both from the same simulation); ``state`` is then
    ``(opt state, penalty_opt state)``, from :func:`init_state`, and ``loss`` the pair
    ``[task loss, penalty]``."""
    import jax
    import jax.numpy as jnp
    import optax

    if penalty_opt is None:

        @jax.jit
        def update(theta, state, fixed):
            loss, g = jax.value_and_grad(loss_fn)(theta, fixed)
            upd, state = opt.update(g, state, theta)
            return optax.apply_updates(theta, upd), state, loss

        return update

    @jax.jit
    def update_with_penalty(theta, state, fixed):
        both, pull = jax.vjp(lambda t: loss_fn.parts(t, fixed), theta)
        (g_task,) = pull(jnp.array([1.0, 0.0], both.dtype))
        (g_pen,) = pull(jnp.array([0.0, 1.0], both.dtype))
        upd, s_task = opt.update(g_task, state[0], theta)
        new = optax.apply_updates(theta, upd)
        upd_b, s_pen = penalty_opt.update(g_pen["bias"], state[1], theta["bias"])
        new = new | {"bias": optax.apply_updates(new["bias"], upd_b)}
        return new, (s_task, s_pen), both

    return update_with_penalty


def init_state(theta, opt, penalty_opt=None):
    """The optimiser state :func:`make_update` steps."""
    if penalty_opt is None:
        return opt.init(theta)
    return opt.init(theta), penalty_opt.init(theta["bias"])


# ---------------------------------------------------------------------------- running


def run_training(raw: dict, path: Path, out_dir=None, *, log=print) -> Path:
    """Train the config's flyvis network on its motion task; write the results folder."""
    import jax
    import jax.numpy as jnp

    from brainsim.experiments._config import parse_config
    from brainsim.io import check_output_dir, output_lock

    where = str(path)
    fit = raw.get("fit")
    if not isinstance(fit, dict):
        raise ConfigError(f"{where}: missing section [fit] (brainsim fit needs it)")
    task = parse_task(fit, where)
    cfg = parse_config({k: v for k, v in raw.items() if k != "fit"}, path)
    cfg = dataclasses.replace(cfg, raw=raw)
    if cfg.experiment is not None or cfg.stimuli:
        raise ConfigError(f"{where}: a flyvis training config has no [experiment] or [[stimulus]]")
    if cfg.simulation["precision"] == "float64":
        jax.config.update("jax_enable_x64", True)
    out_dir = check_output_dir(out_dir or cfg.output_dir)
    with output_lock(out_dir):
        return _train(cfg, task, out_dir, log, jnp)


def _train(cfg, task: MotionTask, out_dir: Path, log, jnp) -> Path:
    import jax
    import optax

    from brainsim.experiments._run import environment, load_connectome
    from brainsim.flyvis._experiment import _setup
    from brainsim.flyvis._params import write_npz
    from brainsim.io import atomic_dir, write_json, write_table

    t0 = time.perf_counter()
    conn = load_connectome(cfg)
    lattice, params0 = _setup(cfg, conn, log)
    dt_ms = cfg.simulation["dt_ms"]
    dt_s = dt_ms / 1000.0
    frames, velocity, moving = motion_batch(lattice.extent, task, dt_s, cfg.simulation["seed"])
    log(
        f"motion task: {frames.shape[1]} stimuli ({', '.join(task.stimuli)}; "
        f"{len(task.angles_deg)} directions x {len(task.speeds)} speeds), {frames.shape[0]} "
        f"steps of {dt_ms:g} ms; {task.steps} {task.optimizer} steps, lr {task.learning_rate:g}"
    )
    loss_fn, fixed = make_task_loss(lattice, params0, dt_ms, task, frames, velocity, moving)
    theta = _trainables(lattice, params0, cfg.simulation["seed"], task)
    opt = getattr(optax, task.optimizer)(task.learning_rate)
    if task.clip_norm > 0:
        opt = optax.chain(optax.clip_by_global_norm(task.clip_norm), opt)
    # flyvis: the penalty's optimiser is of the network's kind, at its learning rate
    pen_opt = getattr(optax, task.optimizer)(task.learning_rate) if task.activity_penalty else None
    state = init_state(theta, opt, pen_opt)
    update = make_update(loss_fn, opt, pen_opt)

    before = edge_tuning(lattice, params0, dt_s) if task.evaluate else None
    history = []
    best = (np.inf, 0, theta)  # (loss, step, parameters before that step's update)
    t1 = time.perf_counter()
    from brainsim.fit._loop import loss_exploded

    ratio = task.max_loss_ratio or None
    previous = theta  # the parameters of the last step whose loss was finite and in range
    for k in range(task.steps):
        new_theta, state, loss = update(theta, state, fixed)
        # with an activity penalty, [task loss, penalty]: the task's is the loss that
        # chooses the best parameters and is checked for divergence
        loss = np.asarray(loss, np.float64)
        rec = {"step": k + 1, "loss": float(loss.flat[0]), "t_s": time.perf_counter() - t1}
        if loss.size == 2:
            rec["activity_penalty"] = float(loss[1])
        if not np.isfinite(loss).all():
            rec["loss"] = float("nan")
        loss = rec["loss"]
        exploded = bool(history) and loss_exploded(loss, history[0]["loss"], ratio)
        if not np.isfinite(loss) or exploded:
            # the loss of step k + 1 is that of the parameters before its update
            raise _diverged(cfg, task, lattice, params0, dt_s, out_dir, rec, history, previous,
                            history[0]["loss"] if exploded else None)  # fmt: skip
        if loss < best[0]:
            best = (loss, k + 1, theta)
        previous, theta = theta, new_theta
        history.append(rec)
        if k == 0 or (k + 1) % task.log_every == 0 or k + 1 == task.steps:
            pen = rec.get("activity_penalty")
            pen = "" if pen is None else f", activity penalty {pen:.4f}"
            log(f"step {k + 1}/{task.steps}: loss {loss:.4f}{pen} "
                f"({time.perf_counter() - t1:.1f} s)")
    t_train = time.perf_counter() - t1
    # the parameters of the lowest loss seen (the loss of step k is that of the parameters
    # before its update), as flyvis keeps its best checkpoint
    trained_p = dataclasses.replace(
        type_params(lattice, params0, jax.device_get(best[2]), dt_s),
        name=str(out_dir / "params.npz"),
    )
    after = edge_tuning(lattice, trained_p, dt_s) if task.evaluate else None
    with atomic_dir(out_dir) as tmp:
        write_npz(lattice.spec, trained_p, tmp / "params.npz")
        write_table(_history(history), tmp / "history.parquet")
        if before is not None:
            write_table(_dsi_table(before[0], after[0]), tmp / "dsi.parquet")
            write_json({"before": before[1], "after": after[1]}, tmp / "t4t5.json")
        write_json(
            {
                "config": cfg.raw,
                "config_path": str(cfg.path),
                "task": dataclasses.asdict(task),
                "start_params": params0.name,
                "lattice": {
                    "extent": lattice.extent,
                    "n_cells": lattice.n_cells,
                    "n_connections": lattice.n_connections,
                },
                "n_stimuli": int(frames.shape[1]),
                "final_loss": history[-1]["loss"] if history else None,
                "best_loss": best[0] if history else None,
                "best_step": best[1] if history else None,
                "first_loss": history[0]["loss"] if history else None,
                **environment(),
                "wall_time_s": {"total": time.perf_counter() - t0, "train": t_train},
            },
            tmp / "manifest.json",
        )
        from brainsim.fit._plot import plot_history

        plot_history(history, tmp / "loss.png", "velocity loss (relative MSE)")
        _run_folder(cfg, tmp, trained_p, out_dir, log)
    log(f"trained in {t_train:.1f} s; results in {out_dir}")
    return out_dir


def _diverged(cfg, task, lattice, params0, dt_s, out_dir, rec, history, last, first_loss):
    """The :class:`FitDivergedError` of a training whose loss went non-finite or exploded
    at ``rec``'s step, after writing its record (``params_last_finite.npz``: the parameters
    of the step before, which ``[model] params`` can name; ``history.parquet``, with the
    exploded step's finite record; ``manifest.json`` with ``diverged``), into ``out_dir``
    or beside a finished training there."""
    from brainsim.fit._loop import FitDivergedError
    from brainsim.fit._run import where_written, write_diverged_record
    from brainsim.flyvis._params import write_npz
    from brainsim.io import atomic_dir, write_json, write_table

    step, loss = rec["step"], rec["loss"]
    kept = history + ([rec] if np.isfinite(loss) else [])
    last_step = step - 1  # 0: the start
    p = type_params(lattice, params0, last, dt_s)
    e = FitDivergedError(step, loss, term="velocity", history=kept, last_finite=p,
                         last_finite_step=last_step, first_loss=first_loss, first_step=1,
                         max_loss_ratio=task.max_loss_ratio if first_loss else None)  # fmt: skip

    def write(dest):
        with atomic_dir(dest) as tmp:
            write_npz(lattice.spec, dataclasses.replace(p, name="last finite"),
                      tmp / "params_last_finite.npz")  # fmt: skip
            if kept:
                write_table(_history(kept), tmp / "history.parquet")
            diverged = {"step": step, "what": e.what(), "value": str(loss),
                        "last_finite_step": last_step, "first_loss": first_loss,
                        "max_loss_ratio": e.max_loss_ratio}  # fmt: skip
            write_json({"config": cfg.raw, "config_path": str(cfg.path),
                        "task": dataclasses.asdict(task), "start_params": params0.name,
                        "diverged": diverged}, tmp / "manifest.json")  # fmt: skip

    where = where_written(write_diverged_record(out_dir, "params.npz", write),
                          "params_last_finite.npz")  # fmt: skip
    if last_step == 0:
        msg = (f"{cfg.path}: [fit] step 1: {e.what()} with the start parameters, before "
               f"any update; check [model] params and the task (the start parameters "
               f"{where})")  # fmt: skip
    else:
        msg = (f"{cfg.path}: [fit] learning_rate: step {step}: {e.what()}: the training "
               f"diverged; try a smaller learning_rate than {task.learning_rate:g}; the last "
               f"finite parameters (step {last_step}'s) {where}; no trained results were "
               "written")  # fmt: skip
    return e.with_message(msg)


def edge_tuning(lattice, params, dt_s: float):
    """(dsi.parquet's table, t4t5.json's checks) of ``params`` at ON and OFF edges in 12
    directions at 19 columns/s, stepped at ``dt_s`` (the training step: the time constants
    were trained with tau >= dt): how a training's direction selectivity is measured."""
    from brainsim.flyvis._experiment import edge_tables, pad_frames, simulate_frames
    from brainsim.flyvis._stimuli import moving_edge

    angles, intens, speeds = list(range(0, 360, 30)), [0, 1], [19.0]
    conds = [(a, i, s) for a in angles for i in intens for s in speeds]
    fr = pad_frames([moving_edge(lattice.extent, a, i, s, dt_s) for a, i, s in conds])
    tr = simulate_frames(lattice, params, dt_s * 1000, fr, lattice.central_cells())
    time_s = np.arange(fr.shape[0]) * dt_s - 1.0
    tables, extra = edge_tables(tr, time_s, conds, angles, intens, speeds,
                                list(lattice.spec.type_names))  # fmt: skip
    return tables["dsi.parquet"], extra.get("t4t5.json")


def _history(history):
    import pyarrow as pa

    keys = ("step", "loss", "t_s") + (("activity_penalty",) if "activity_penalty" in history[0]
                                      else ())  # fmt: skip
    return pa.table({k: pa.array([h[k] for h in history], pa.float64()) for k in keys})


def _dsi_table(before, after):
    import pyarrow as pa

    b, a = before.to_pydict(), after.to_pydict()
    cols = {"cell_type": b["cell_type"], "intensity": b["intensity"]}
    for k in ("dsi", "preferred_angle_deg", "dsi_change", "preferred_angle_deg_change"):
        cols[f"{k}_before"] = b[k]
        cols[f"{k}_after"] = a[k]
    return pa.table(cols)


def _run_folder(cfg, tmp: Path, params, final: Path, log) -> None:
    """``run/``: the moving_edge experiment of the trained network."""
    import copy

    from brainsim.experiments._config import parse_config
    from brainsim.experiments._run import load_connectome
    from brainsim.flyvis._experiment import run as run_visual
    from brainsim.io import check_output_dir

    raw = copy.deepcopy({k: v for k, v in cfg.raw.items() if k not in ("fit", "output")})
    raw["model"] = {"kind": "graded", "params": str(final / "params.npz")}
    raw["simulation"] = dict(raw.get("simulation", {}))
    raw["experiment"] = {"kind": "moving_edge"}
    run_cfg = parse_config(raw, cfg.path)
    out = check_output_dir(tmp / "run")
    run_visual(run_cfg, out, load_connectome(run_cfg), log, False, 0.0, params=params)
