"""``brainsim fit``: a config in, a folder of fitted parameters, loss curve and final run out.

The folder (written atomically, :func:`brainsim.io.atomic_dir`):

- ``params.json``: fitted values by trainable name, a number or ``{group label: value}``;
- ``loss.parquet``: ``step``, ``loss``, its weighted terms ``rates`` and ``perturbations``
  (Hz^2) and ``regularization`` (they sum to ``loss``), ``grad_norm``, ``wall_s``, and each
  global fitted value (e.g. ``w_syn_mv``) at which the step's loss was evaluated;
- ``loss.png``: the loss curve;
- ``fit_rates.parquet``: per target row ``condition``, ``label``, ``neuron_id``,
  ``target_rate_hz``, ``initial_rate_hz``, ``fitted_rate_hz`` (plain runs of the initial
  and the fitted model, [simulation] trials and duration);
- ``run/``: a ``brainsim run`` results folder of the fitted model, one condition for the
  baseline and one per ``[[fit.condition]]`` (spikes, rates, conditions, neurons,
  manifest, raster);
- ``manifest.json``: the config, initial, prior and fitted values, final loss, wall times.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from brainsim.experiments import ConfigError
from brainsim.experiments._kinds import Condition, Plan
from brainsim.experiments._run import (
    _devices_for,
    batch_protocol,
    batches,
    build_base,
    build_model,
    environment,
    load_connectome,
    manifest,
    record_indices,
    simulate_batch,
    write_results,
)
from brainsim.experiments._selectors import select
from brainsim.fit._config import BASELINE, FitConfig, read_targets
from brainsim.fit._loop import (
    FitDivergedError,
    build_task,
    default_scale,
    fit,
    make_optimizer,
    split_trials,
)
from brainsim.fit._losses import RateTargets
from brainsim.fit._params import FitParams, ParamInfo, build_params, plain_model, values_by_name
from brainsim.fit._plot import plot_loss
from brainsim.fit._surrogate import Surrogate

MAX_BATCH_TRIALS = 256


def run_fit(cfg: FitConfig, out_dir: str | Path | None = None, *, log=print) -> Path:
    """Fit the config's trainable parameters to its targets, then run the fitted model and
    write the results folder. Returns the folder."""
    import jax
    import jax.numpy as jnp

    from brainsim.io import check_output_dir, output_lock

    if cfg.run.simulation["precision"] == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if cfg.run.simulation["precision"] == "float64" else jnp.float32

    # the destination is checked before anything is loaded or fitted
    out_dir = check_output_dir(out_dir or cfg.output_dir)
    with output_lock(out_dir):
        return _run_fit(cfg, out_dir, dtype, log)


def _run_fit(cfg: FitConfig, out_dir: Path, dtype, log) -> Path:
    from brainsim.sim import Network

    run = cfg.run
    sim = run.simulation
    t0 = time.perf_counter()
    conn = load_connectome(run)
    t_load = time.perf_counter() - t0
    log(f"connectome: {conn}")
    model = build_model(run)
    _check_fittable(cfg, model)
    missing: list[int] = []
    base = build_base(run, conn, missing)
    _check_trials(cfg, base)
    conds = _conditions(cfg, conn, missing)
    rows = read_targets(cfg, conn)
    try:
        params, info = build_params(model, conn, cfg.trainable, init=cfg.init, dtype=dtype)
    except ValueError as e:
        raise ConfigError(f"{cfg.where} trainable/init: {e}") from None
    rec = record_indices(run, conn, missing)

    n = conn.n_neurons
    net = Network.from_connectome(conn, dtype, with_pre=True)
    is_base = rows.condition == 0
    targets = {
        "rates": RateTargets.from_arrays(
            rows.condition[is_base], rows.neuron[is_base], rows.rate_hz[is_base], dtype
        ),
        "perturbations": RateTargets.from_arrays(
            rows.condition[~is_base], rows.neuron[~is_base], rows.rate_hz[~is_base], dtype
        ),
    }
    scale = cfg.surrogate_scale or default_scale(model)
    task = build_task(
        net,
        batch_protocol(base, conds, cfg.trials, n),
        model,
        targets,
        duration_ms=cfg.duration_ms,
        n_conditions=len(conds),
        weights=cfg.weights,
        regularization=cfg.regularization,
        surrogate=Surrogate(cfg.surrogate, cfg.surrogate_slope, scale),
        checkpoint_ms=cfg.checkpoint_ms,
        detach_reset=cfg.detach_reset,
        poisson_stream=cfg.run.simulation["poisson_stream"],
        propagation="events" if cfg.gradient == "events" else None,
    )
    # [simulation] devices: the gradient's trials split over them (as a run's are)
    n_dev = _devices_for(sim["devices"], len(conds) * cfg.trials)
    try:
        task = split_trials(task, n_dev)
    except ValueError as e:
        raise ConfigError(f"{run.path}: [simulation] devices: {e}") from None
    globals_ = [t for t in cfg.trainable if info.grouping[t.partition("_by_")[0]] == "global"]
    log(
        f"fitting {', '.join(cfg.trainable)} to {rows.rate_hz.size} target rate(s) in "
        f"{len(conds)} condition(s) x {cfg.trials} trial(s) x {cfg.duration_ms:g} ms; "
        f"{cfg.steps} {cfg.optimizer} steps"
        + (f"; trials over {n_dev} devices" if n_dev > 1 else "")
    )

    history: list[dict] = []

    def track(p: FitParams) -> dict:
        vals = values_by_name(p, info)
        return {name: vals[name] for name in globals_}

    def progress(rec_: dict) -> None:
        i = rec_["step"]
        if i % cfg.log_every == 0 or i == cfg.steps - 1:
            extra = " ".join(f"{k}={rec_[k]:.4g}" for k in globals_)
            log(f"step {i:4d}  loss {rec_['loss']:.4g}  {extra}  ({rec_['wall_s']:.2f} s)")

    t1 = time.perf_counter()
    try:
        fitted, history = fit(
            params,
            task,
            steps=cfg.steps,
            optimizer=make_optimizer(cfg.optimizer, cfg.learning_rate, cfg.clip_norm),
            seed=cfg.seed,
            resample_noise=cfg.resample_noise,
            callback=progress,
            track=track,
            max_loss_ratio=cfg.max_loss_ratio,
        )
    except FitDivergedError as e:
        raise _diverged(cfg, info, e, _write_diverged(cfg, info, e, out_dir)) from None
    t_fit = time.perf_counter() - t1

    t2 = time.perf_counter()
    plain_net = Network.from_connectome(conn, dtype, with_pre=sim["kernel"] == "reference")
    initial_parts = _plain_runs(cfg, conn, model, params, plain_net, base, conds, rec, dtype)
    parts = _plain_runs(cfg, conn, model, fitted, plain_net, base, conds, rec, dtype)
    t_sim = time.perf_counter() - t2
    fitted_model = plain_model(fitted, model, plain_net)[0]
    initial_rates = _rates(initial_parts, sim["trials"], len(conds), n)
    fitted_rates = _rates(parts, sim["trials"], len(conds), n)
    labels = np.array([c.label for c in conds], dtype=object)
    fit_rates = pa.table(
        {
            "condition": pa.array(rows.condition.astype(np.int32)),
            "label": pa.array(labels[rows.condition].tolist(), pa.string()),
            "neuron_id": pa.array(conn.ids[rows.neuron].astype(np.int64)),
            "target_rate_hz": pa.array(rows.rate_hz),
            "initial_rate_hz": pa.array(initial_rates[rows.condition, rows.neuron]),
            "fitted_rate_hz": pa.array(fitted_rates[rows.condition, rows.neuron]),
        }
    )
    rmse = {
        "initial": float(
            np.sqrt(np.mean((initial_rates[rows.condition, rows.neuron] - rows.rate_hz) ** 2))
        ),
        "fitted": float(
            np.sqrt(np.mean((fitted_rates[rows.condition, rows.neuron] - rows.rate_hz) ** 2))
        ),
    }
    readout = np.unique(rows.neuron)
    plan = Plan("run", conds, readout, {})
    from brainsim.io import atomic_dir, write_json, write_table

    with atomic_dir(out_dir) as tmp:
        write_json(values_by_name(fitted, info), tmp / "params.json")
        write_table(_history_table(history), tmp / "loss.parquet")
        if run.plots:
            plot_loss(tmp / "loss.parquet")
        write_table(fit_rates, tmp / "fit_rates.parquet")
        write_results(
            run, conn, fitted_model, plan, parts, rec, missing, tmp / "run", t_load, t_sim
        )
        m = manifest(run, conn, plan, parts, fitted_model, missing, t_load, t_sim)
        m["fit"] = _fit_manifest(cfg, params, fitted, info, history, rmse, t_fit)
        # "events" propagated in C++ (brainsim.fit._events.propagate_events_native)
        m["fit"]["native_events"] = bool(task.native)
        write_json(m, tmp / "manifest.json")
    log(
        f"rate RMSE over the targets: {rmse['initial']:.3g} Hz initial -> "
        f"{rmse['fitted']:.3g} Hz fitted; fit {t_fit:.1f} s"
    )
    log(f"results in {out_dir}")
    return out_dir


def _diverged(
    cfg: FitConfig, info: ParamInfo, e: FitDivergedError, written: Path | str
) -> FitDivergedError:
    """``e`` with the config's file and key, the trainable's name and its group label, and
    where its record was written (``written``: the folder, or why it could not be)."""
    name = None
    if e.quantity is not None:
        name = next(t for t in cfg.trainable if t.partition("_by_")[0] == e.quantity)
        if info.grouping[e.quantity] != "global":
            name += f" (group {info.labels[e.quantity][e.group]})"
    where = where_written(written, DIVERGED_PARAMS)
    if e.last_finite_step < 0:  # no update has run: not the learning rate
        message = (
            f"{cfg.where}: step 0: {e.what(name)} with the initial parameters, before any "
            f"update; check [fit] init, the targets and the model (the initial parameters "
            f"{where}); no fitted results were written"
        )
    else:
        message = (
            f"{cfg.where} learning_rate: step {e.step}: {e.what(name)}: the fit diverged; "
            f"try a smaller learning_rate than {cfg.learning_rate:g}; the last finite "
            f"parameters (step {e.last_finite_step}'s) {where}, no fitted results were "
            "written"
        )
    return e.with_message(message)


# what a diverged fit leaves in its output folder (and no params.json: nothing is fitted)
DIVERGED_PARAMS = "params_last_finite.json"


def _write_diverged(
    cfg: FitConfig, info: ParamInfo, e: FitDivergedError, out_dir: Path
) -> Path | str:
    """The record of a fit that diverged (see :func:`write_diverged_record`): the last
    finite parameters, the loss history up to them (``loss.parquet``) and a manifest naming
    the step, the term or parameter and the value."""
    return write_diverged_record(
        out_dir, "params.json", lambda dest: _write_diverged_to(cfg, info, e, dest)
    )


def where_written(written: Path | str, name: str) -> str:
    """How a divergence message says where its last finite parameters went: ``written``
    is :func:`write_diverged_record`'s answer, ``name`` the parameters' file."""
    if isinstance(written, Path):
        return f"are in {written / name}"
    return f"could not be written: {written}"


def write_diverged_record(out_dir: Path, finished: str, write) -> Path | str:
    """Write a diverged fit's record with ``write(folder)`` (which writes it atomically)
    into ``out_dir``, or beside it (``<out_dir>-diverged``) when ``out_dir`` holds a
    finished fit (its file ``finished``), which is kept; that folder is locked as
    ``out_dir`` is. Returns the folder, or why it could not be written (the divergence is
    reported either way)."""
    from brainsim.io import check_output_dir, output_lock

    dest = out_dir
    try:
        if (out_dir / finished).is_file():  # (out_dir's lock is the caller's)
            dest = check_output_dir(out_dir.with_name(out_dir.name + "-diverged"))
            with output_lock(dest):
                write(dest)
        else:
            write(check_output_dir(dest))
    except Exception as err:  # (the divergence is the error to report)
        return f"{type(err).__name__}: {err}"
    return dest


def _write_diverged_to(cfg: FitConfig, info: ParamInfo, e: FitDivergedError, out_dir: Path):
    from brainsim.io import atomic_dir, write_json, write_table

    with atomic_dir(out_dir) as tmp:
        write_json(values_by_name(e.last_finite, info), tmp / DIVERGED_PARAMS)
        if e.history:
            write_table(_history_table(e.history), tmp / "loss.parquet")
        write_json(
            {
                "config": cfg.run.raw,
                "fit": {
                    "diverged": {
                        "step": e.step,
                        "what": e.what(),
                        "term": e.term,
                        "quantity": e.quantity,
                        "group": e.group if e.quantity is not None else None,
                        "value": str(e.value),
                        "last_finite_step": e.last_finite_step,
                        "first_loss": e.first_loss,
                        "max_loss_ratio": e.max_loss_ratio,
                    },
                    "trainable": cfg.trainable,
                    "steps": cfg.steps,
                    "optimizer": cfg.optimizer,
                    "learning_rate": cfg.learning_rate,
                },
                **environment(),
            },
            tmp / "manifest.json",
        )


def _check_fittable(cfg: FitConfig, model) -> None:
    """The fit's rate targets need a spiking model, and its trainable quantities must be
    parameters of that model: LIF fits every quantity; other spiking kinds (PQN) the
    synaptic scales (``bias_mv`` is a drive in mV, LIF's units)."""
    where = f"{cfg.run.path}: [model] kind = {model.kind!r}"
    if not model.spiking:
        raise ConfigError(
            f"{where}: brainsim fit fits firing rates, and the {model.kind} model does not spike"
        )
    for name in cfg.trainable:
        quantity = name.partition("_by_")[0]
        if model.kind != "lif" and quantity != "syn_scale":
            raise ConfigError(
                f"{cfg.where} trainable: {name!r}: the {model.kind} model has no {quantity} "
                "(for it: syn_scale, syn_scale_by_...)"
            )


def _check_trials(cfg: FitConfig, base) -> None:
    if cfg.trials == cfg.run.simulation["trials"]:
        return
    per_trial = any(np.asarray(r).size > 1 for _, r in base.poisson)
    if per_trial or base.replay is not None:
        raise ConfigError(
            f"{cfg.where} trials: per-trial rates or spike_times stimuli need [fit] trials "
            f"equal to [simulation] trials ({cfg.run.simulation['trials']})"
        )


def _conditions(cfg: FitConfig, conn, missing) -> list[Condition]:
    conds = [Condition(BASELINE, {"kind": "baseline"})]
    for i, c in enumerate(cfg.conditions):
        where = f"{cfg.where} [[fit.condition]] #{i + 1} neurons"
        idx = select(conn, c["neurons"], where=where, base_dir=cfg.run.base_dir, missing=missing)
        if c["kind"] == "activate":
            rate = float(c["rate_hz"])
            conds.append(
                Condition(c["label"], {"kind": "activate", "rate_hz": rate}, poisson=[(idx, rate)])
            )
        else:
            conds.append(Condition(c["label"], {"kind": "silence"}, silence=idx))
    return conds


def _plain_runs(cfg: FitConfig, conn, model, params, net, base, conds, rec, dtype):
    """Plain ``simulate`` runs of every condition with ``params`` in place:
    [(first condition, SimResult)], as ``brainsim.experiments`` batches them."""
    sim = cfg.run.simulation
    trials = sim["trials"]
    fitted_model, fitted_net, bias = plain_model(params, model, net)
    if bias is not None:
        n_steps = int(round(sim["duration_ms"] / model.dt_ms))
        values, inv = np.unique(bias, return_inverse=True)
        currents = [
            (np.nonzero(inv == j)[0].astype(np.int32), float(v), 0, n_steps)
            for j, v in enumerate(values)
            if v != 0
        ]
        base = dataclasses.replace(base, current=[*base.current, *currents])
    parts = []
    groups = batches(len(conds), trials, MAX_BATCH_TRIALS)
    for g in groups:
        r = simulate_batch(
            sim,
            fitted_net,
            fitted_model,
            base,
            [conds[c] for c in g],
            g.start,
            rec,
            conn.ids,
            where=str(cfg.path),
        )
        parts.append((g.start, r))
    return parts


def _rates(parts, trials: int, n_conditions: int, n: int) -> np.ndarray:
    """float [conditions, neurons]: mean rate over each condition's trials."""
    out = np.zeros((n_conditions, n))
    for first, r in parts:
        per = r.rates_hz().reshape(-1, trials, n).mean(axis=1)
        out[first : first + per.shape[0]] = per
    return out


def _history_table(history: list[dict]) -> pa.Table:
    cols = list(history[0])
    data = {c: [h[c] for h in history] for c in cols}
    out = {"step": pa.array(np.asarray(data.pop("step"), np.int32))}
    out.update({c: pa.array(np.asarray(v, np.float64)) for c, v in data.items()})
    return pa.table(out)


def _fit_manifest(
    cfg: FitConfig, initial: FitParams, fitted: FitParams, info: ParamInfo, history, rmse, t_fit
) -> dict:
    prior = jax_prior(initial)
    return {
        "trainable": cfg.trainable,
        "groupings": dict(info.grouping),
        "initial": values_by_name(initial, info),
        "prior": values_by_name(prior, info),
        "fitted": values_by_name(fitted, info),
        "steps": cfg.steps,
        "optimizer": cfg.optimizer,
        "learning_rate": cfg.learning_rate,
        "clip_norm": cfg.clip_norm,
        "max_loss_ratio": cfg.max_loss_ratio,
        "surrogate": {"kind": cfg.surrogate, "slope": cfg.surrogate_slope},
        "gradient": cfg.gradient,
        "trials": cfg.trials,
        "duration_ms": cfg.duration_ms,
        "final_loss": history[-1]["loss"],
        "rate_rmse_hz": rmse,
        "wall_time_s": t_fit,
        "mean_step_s": float(np.mean([h["wall_s"] for h in history[1:]] or [history[0]["wall_s"]])),
    }


def jax_prior(params: FitParams) -> FitParams:
    """``params`` with every group at its prior."""
    out = params
    for q, g in params.groups().items():
        out = dataclasses.replace(out, **{q: dataclasses.replace(g, raw=g.prior_raw)})
    return out
