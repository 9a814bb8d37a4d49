"""``brainsim run``: a config in, a results folder out."""

from __future__ import annotations

import dataclasses
import importlib
import platform
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from brainsim import __version__
from brainsim._paths import cache_dir
from brainsim.connectome import Connectome, load
from brainsim.experiments._config import RunConfig
from brainsim.experiments._errors import ConfigError
from brainsim.experiments._jobsize import JobSize, check_fits, job_size
from brainsim.experiments._kinds import (
    Condition,
    Plan,
    plan,
    silence_conditions,
    summarize,
    top_responders,
)
from brainsim.experiments._selectors import select


def default_cache_dir() -> Path:
    return cache_dir("connectomes")


def load_connectome(cfg: RunConfig) -> Connectome:
    from brainsim.fetch import is_dataset_name, resolve_dataset

    c = cfg.connectome
    source = c["path"]
    if is_dataset_name(source):  # "flywire:783" -> the folder `brainsim fetch` filled
        source = str(resolve_dataset(source, fmt=c["format"]))
    elif c["format"] == "flyvis" and source.startswith("flyvis:"):
        pass  # the copy shipped with brainsim
    elif c["format"] not in ("synthetic", "celegans") and not Path(source).is_absolute():
        # (synthetic specs and cect dataset names are names, not files)
        source = str(cfg.base_dir / source)
    cache = c.get("cache", True)
    cache_dir = None if cache is False else (default_cache_dir() if cache is True else Path(cache))
    # option values naming files (neurons, gap_path, transmitter tables) are relative to the
    # config file, as [connectome] path is
    options = {
        k: str(cfg.base_dir / v)
        if isinstance(v, str) and not Path(v).is_absolute() and (cfg.base_dir / v).exists()
        else v
        for k, v in c.get("options", {}).items()
    }
    return load(source, c["format"], cache_dir=cache_dir, **options)


def build_model(cfg: RunConfig):
    """The ``[model]`` of a config: its ``kind``'s class with the given keys and
    ``[simulation] dt_ms`` (a PQN ``preset`` first, the other keys over it)."""
    from brainsim.models import MODELS, PQN

    keys = dict(cfg.model)
    cls = MODELS[keys.pop("kind", "lif")]
    try:
        if cls is PQN and "preset" in keys:
            return PQN.preset(keys.pop("preset"), dt_ms=cfg.simulation["dt_ms"], **keys)
        return cls(dt_ms=cfg.simulation["dt_ms"], **keys)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{cfg.path}: [model]: {e}") from None


def sweep_model(cfg: RunConfig, cond) -> object:
    """The model of one ``parameter_sweep`` condition: ``[model]`` with its value set."""
    from brainsim.experiments._config import _check_model_bounds

    keys = {**cfg.model, cond.columns["parameter"]: cond.columns["value"]}
    _check_model_bounds(keys, f"{cfg.path}: [experiment] values ({cond.label})")
    return build_model(dataclasses.replace(cfg, model=keys))


def check_sweep(cfg: RunConfig, model) -> None:
    """A ``parameter_sweep``'s parameter must be a numeric key of the model's kind."""
    name = cfg.experiment["parameter"]
    numeric = [k for k in type(model).config_keys() if k not in type(model).choices]
    if name not in numeric:
        raise ConfigError(
            f"{cfg.path}: [experiment] parameter: {name!r} is not a numeric parameter of the "
            f"{model.kind} model; expected one of {', '.join(numeric)}"
        )
    for cond_value in cfg.experiment["values"]:
        sweep_model(cfg, Condition(f"{name} = {cond_value:g}",
                                   {"parameter": name, "value": float(cond_value)}))  # fmt: skip


def use_gap_junctions(cfg: RunConfig) -> bool:
    return cfg.connectome.get("gap_junctions", True)


def read_spike_times(path: Path, conn: Connectome, n_trials: int, dt_ms: float, n_steps: int):
    """(trial, step, neuron index) of replayed input events from a Parquet or CSV table with
    columns ``trial``, ``t_ms``, ``neuron_id``. Events are placed at step round(t_ms / dt)."""
    if not path.exists():
        raise ConfigError(f"spike_times: {path} does not exist")
    table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    for col in ("trial", "t_ms", "neuron_id"):
        if col not in table.column_names:
            raise ConfigError(f"{path}: missing column {col!r} (have {table.column_names})")
    trial = np.asarray(table.column("trial").to_numpy(zero_copy_only=False), dtype=np.float64)
    t_ms = np.asarray(table.column("t_ms").to_numpy(zero_copy_only=False), dtype=np.float64)
    nid = table.column("neuron_id").to_numpy(zero_copy_only=False)
    for name, arr in (("trial", trial), ("t_ms", t_ms)):
        bad = np.nonzero(~np.isfinite(arr))[0]
        if bad.size:
            raise ConfigError(f"{path}: row {bad[0] + 1}: {name} is not a finite number")
    bad = np.nonzero((trial < 0) | (trial >= n_trials) | (trial != np.round(trial)))[0]
    if bad.size:
        raise ConfigError(
            f"{path}: row {bad[0] + 1}: trial {trial[bad[0]]} not in 0..{n_trials - 1}"
        )
    step = np.round(t_ms / dt_ms).astype(np.int64)
    bad = np.nonzero((step < 0) | (step >= n_steps))[0]
    if bad.size:
        raise ConfigError(
            f"{path}: row {bad[0] + 1}: t_ms {t_ms[bad[0]]} outside the run [0, {n_steps * dt_ms})"
        )
    try:
        idx = conn.index_of(np.asarray(nid, np.int64), what=f"neuron_id values in {path}")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return trial.astype(np.int64), step, idx


@dataclasses.dataclass
class BaseInputs:
    """What every condition of a config shares: its [[stimulus]] and [[perturbation]]."""

    poisson: list  # (indices, rate_hz scalar or per-trial list)
    replay: tuple | None  # (trial, step, index)
    current: list  # (indices, amplitude_mv, start_step, stop_step)
    silence: np.ndarray  # bool [n_neurons]
    remove: np.ndarray  # bool [n_neurons]


def build_base(cfg: RunConfig, conn: Connectome, missing: list) -> BaseInputs:
    b = cfg.simulation["trials"]
    dt = cfg.simulation["dt_ms"]
    n_steps = int(round(cfg.simulation["duration_ms"] / dt))
    poisson, current, replay = [], [], []
    for i, st in enumerate(cfg.stimuli):
        where = f"{cfg.path}: [[stimulus]] #{i + 1}"
        if st["kind"] in ("poisson", "current"):
            idx = select(
                conn,
                st["neurons"],
                where=f"{where} neurons",
                base_dir=cfg.base_dir,
                missing=missing,
            )
        if st["kind"] == "poisson":
            rate = st["rate_hz"]
            if isinstance(rate, list) and len(rate) != b:
                raise ConfigError(f"{where} rate_hz: {len(rate)} rates for {b} trials")
            poisson.append((idx, np.asarray(rate, np.float64)))
        elif st["kind"] == "current":
            start = int(round(st.get("start_ms", 0.0) / dt))
            stop_ms = st.get("stop_ms", float("inf"))
            stop = n_steps if stop_ms == float("inf") else int(round(stop_ms / dt))
            current.append((idx, st["amplitude_mv"], start, stop))
        else:
            path = Path(st["path"])
            path = path if path.is_absolute() else cfg.base_dir / path
            replay.append(read_spike_times(path, conn, b, dt, n_steps))
    silence = np.zeros(conn.n_neurons, bool)
    remove = np.zeros(conn.n_neurons, bool)
    for i, p in enumerate(cfg.perturbations):
        where = f"{cfg.path}: [[perturbation]] #{i + 1} neurons"
        idx = select(conn, p["neurons"], where=where, base_dir=cfg.base_dir, missing=missing)
        (silence if p["kind"] == "silence" else remove)[idx] = True
    rep = tuple(np.concatenate([r[j] for r in replay]) for j in range(3)) if replay else None
    return BaseInputs(poisson, rep, current, silence, remove)


def batch_protocol(
    base: BaseInputs,
    conds: list[Condition],
    trials: int,
    n: int,
    first: int = 0,
    step_steps: tuple[int, int] | None = None,
):
    """One protocol for a batch of conditions: the batch's condition c owns trials
    [c*T, (c+1)*T). ``first`` is the experiment's number of the batch's first condition:
    trial t of condition k draws its input noise as trial ``k x T + t``, whichever batch it
    runs in. ``step_steps``: the (start, stop) steps of the conditions' current steps."""
    from brainsim.sim import Protocol

    nc = len(conds)
    b = nc * trials
    poisson = []
    for ci, cond in enumerate(conds):
        for idx, rate in cond.poisson:
            r = np.zeros(b)
            r[ci * trials : (ci + 1) * trials] = rate
            poisson.append((idx, r))
    for idx, rate in base.poisson:
        poisson.append((idx, np.tile(np.broadcast_to(rate, (trials,)), nc)))
    replay = None
    if base.replay is not None:
        tr, st, ix = base.replay
        replay = (
            np.concatenate([tr + ci * trials for ci in range(nc)]),
            np.tile(st, nc),
            np.tile(ix, nc),
        )
    current = [
        (idx, np.tile(np.broadcast_to(amp, (trials,)), nc), start, stop)
        for idx, amp, start, stop in base.current
    ]
    for ci, cond in enumerate(conds):
        for idx, amp in cond.current:
            a = np.zeros(b)
            a[ci * trials : (ci + 1) * trials] = amp
            current.append((idx, a, *step_steps))
    silence = None
    if base.silence.any() or any(c.silence.size for c in conds):
        silence = np.repeat(base.silence[None, :], b, axis=0)
        for ci, cond in enumerate(conds):
            silence[ci * trials : (ci + 1) * trials, cond.silence] = True
    remove = base.remove if base.remove.any() else None
    return Protocol.build(
        b,
        n,
        poisson=poisson,
        replay=replay,
        current=current,
        silence=silence,
        remove=remove,
        trial_ids=first * trials + np.arange(b),
    )


def batches(n_conditions: int, trials: int, max_batch_trials: int) -> list[range]:
    per = max(1, max_batch_trials // trials)
    return [range(i, min(i + per, n_conditions)) for i in range(0, n_conditions, per)]


def run_config(
    cfg: RunConfig,
    out_dir: Path | None = None,
    *,
    progress=None,
    log=print,
    dry_run: bool = False,
    resume: bool = False,
) -> Path:
    """Run a config (a plain run or an ``[experiment]``) and write its results folder
    atomically. With ``dry_run``, resolve everything and report the job without simulating.
    An experiment of several batches saves each batch as it completes; with ``resume`` the
    batches that an interrupted run of the same config saved are reused (same results).
    Returns the results folder.

    In a run over several processes (``jax.distributed.initialize`` called before, as
    ``brainsim run --coordinator`` does) every process simulates its share of the trials
    over all the processes' devices and process 0 alone writes the results."""
    import jax

    if cfg.simulation["precision"] == "float64":
        jax.config.update("jax_enable_x64", True)
    from brainsim.io import check_output_dir, output_lock

    if jax.process_count() > 1:
        if dry_run or resume:
            raise ConfigError("a dry run and --resume run in one process")
        cfg = _across_processes(cfg, log)
        # process 0 checks where it will write; every process learns the outcome, so that
        # none is left simulating alone when process 0 cannot go on
        checked, error = None, None
        if jax.process_index() == 0:
            try:
                checked = check_output_dir(out_dir or cfg.output_dir)
            except Exception as e:  # (raised again below, after the others are told)
                error = e
        from jax.experimental import multihost_utils

        ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
        if error is not None:
            raise error
        if not int(ok):
            raise ConfigError("process 0 cannot write the results folder (its error says why)")
        if jax.process_index() != 0:  # computes its share; process 0 writes
            return _run_config(cfg, None, None, lambda *a: None, False, False)
        out_dir = checked
    else:
        # the destination is checked before anything is loaded or simulated
        out_dir = check_output_dir(out_dir or cfg.output_dir)
    if dry_run:
        return _run_config(cfg, out_dir, progress, log, dry_run, resume)
    with output_lock(out_dir):
        return _run_config(cfg, out_dir, progress, log, dry_run, resume)


def _across_processes(cfg: RunConfig, log) -> RunConfig:
    """The config as a run over several processes runs it: its trials split over every
    process's devices."""
    import jax

    from brainsim.flyvis._experiment import uses_visual

    where = f"{cfg.path}: " if cfg.path else ""
    if uses_visual(cfg.raw):
        raise ConfigError(f"{where}a flyvis run is one process (no --coordinator)")
    n = jax.device_count()
    sim = cfg.simulation
    if sim["devices"] != "all":
        log(f"{jax.process_count()} processes: [simulation] devices = \"all\" ({n} devices)")
    if sim["trials"] % n:
        raise ConfigError(
            f"{where}[simulation] trials: {sim['trials']} trials cannot be split evenly over "
            f"the {n} devices of {jax.process_count()} processes"
        )
    return dataclasses.replace(cfg, simulation={**sim, "devices": "all"})


def _run_config(cfg: RunConfig, out_dir, progress, log, dry_run: bool, resume) -> Path | None:
    """``out_dir`` None: a run's process other than the first (computes, writes nothing)."""
    from brainsim.io import check_output_dir

    t0 = time.perf_counter()
    conn = load_connectome(cfg)
    t_load = time.perf_counter() - t0
    log(f"connectome: {conn}")
    from brainsim.flyvis._experiment import uses_visual

    if uses_visual(cfg.raw):
        from brainsim.flyvis._experiment import run as run_visual

        return run_visual(cfg, out_dir, conn, log, dry_run, t_load)
    job = prepare_job(cfg, conn, log)
    model, p, rec, sim, trials = job.model, job.plan, job.rec, cfg.simulation, job.trials
    size, groups, n_cond = job.size, job.groups, job.n_conditions
    if out_dir is not None:
        check_output_dir(out_dir, need_bytes=size.host_bytes // 2)
        if cfg.plots and not dry_run:
            _import_plotting_meanwhile()
    if dry_run:
        files = [
            "spikes.parquet",
            "rates.parquet",
            "conditions.parquet",
            "neurons.parquet",
            "manifest.json",
        ]
        files += ["summary.parquet"] if cfg.experiment else []
        files += ["traces.parquet"] if rec.size else []
        if cfg.plots:
            files += _plot_names(p.kind)
            files += ["traces.png"] if rec.size and p.kind == "run" else []
        log(
            f"dry run: kind {p.kind}; {n_cond} condition(s) x {trials} trial(s) x "
            f"{sim['duration_ms']:g} ms = {n_cond * trials * sim['duration_ms'] / 1000:g} "
            f"trial-seconds ({size.n_steps} steps); {len(groups)} batch(es) of up to "
            f"{size.batch_trials} trials; model {model.kind}, stepper {job.stepper.name}; "
            f"{size.describe()}; would write {out_dir}/: "
            f"{', '.join(files)}"
        )
        return out_dir

    store = None
    if len(groups) > 1 and p.kind != "parameter_sweep" and out_dir is not None:
        import jax

        from brainsim.experiments._resume import BatchStore, run_identity

        identity = run_identity(
            cfg.raw,
            conn.provenance.checksum,
            jax.default_backend(),
            cfg.simulation["poisson_stream"],
        )
        store = BatchStore(out_dir, identity)
        if store.start(resume):
            log(f"--resume: reusing the batches saved by an interrupted run of {out_dir}")
        elif resume:
            log("--resume: no saved batches of this run; starting from the first batch")
    elif resume:
        log("--resume: this run is a single batch; nothing to resume")
    t1 = time.perf_counter()
    parts = simulate_conditions(cfg, conn, model, job.base, p, rec, progress, log, store)
    t_sim = time.perf_counter() - t1
    if out_dir is None:
        return None
    write_results(cfg, conn, model, p, parts, rec, job.missing, out_dir, t_load, t_sim)
    if store is not None:
        store.clear()
    n_spikes = sum(r.n_spikes for _, r in parts)
    log(f"{n_spikes} spikes, {len(p.conditions)} condition(s); simulated in {t_sim:.2f} s")
    log(f"results in {out_dir}")
    return out_dir


@dataclasses.dataclass
class Job:
    """A (non-visual) config resolved against its connectome, checked, ready to simulate."""

    conn: Connectome
    model: object
    base: BaseInputs
    rec: np.ndarray
    plan: Plan
    missing: list
    stepper: object
    size: JobSize
    groups: list
    n_conditions: int
    trials: int


def prepare_job(cfg: RunConfig, conn: Connectome, log=print) -> Job:
    """Everything ``brainsim run`` resolves and checks before it simulates: the model, the
    stimuli and perturbations, the recorded neurons, the experiment's conditions, the
    stepper, and that the job fits in memory (ConfigErrors name the key)."""
    model = build_model(cfg)
    missing: list[int] = []
    base = build_base(cfg, conn, missing)
    rec = record_indices(cfg, conn, missing)
    exp = cfg.experiment
    where = f"{cfg.path}: [experiment]"

    def sel(selector: dict, key: str) -> np.ndarray:
        return select(
            conn, selector, where=f"{where} {key}", base_dir=cfg.base_dir, missing=missing
        )

    p = plan(exp, conn, sel) if exp else Plan("run", [Condition("run", {})], rec, {})
    if p.kind == "parameter_sweep":
        check_sweep(cfg, model)
    if missing:
        log(f"ids not in this connectome, left out (allow_missing): {sorted(set(missing))}")
    sim = cfg.simulation
    trials = sim["trials"]
    max_batch = (exp or {}).get("max_batch_trials", 256)
    n_cond = len(p.conditions) if p.deferred_top_k is None else 1 + p.deferred_top_k
    groups = batches(n_cond, trials, max_batch)
    stepper = chosen_stepper(conn, sim, model, use_gap_junctions(cfg))
    graded_map = p.kind == "perturbation_map" and not model.spiking
    if "step" in p.info and p.info["step"]["start_ms"] >= sim["duration_ms"]:
        raise ConfigError(
            f"{where} start_ms: the step starts at {p.info['step']['start_ms']:g} ms, not before "
            f"the end of the run ([simulation] duration_ms = {sim['duration_ms']:g})"
        )
    if p.kind != "run" and not model.spiking and not (graded_map and "step" in p.info):
        if graded_map:
            raise ConfigError(
                f"{where} rate_hz: the {model.kind} model takes no Poisson input; drive it "
                "with a current step (amplitude_mv, start_ms, stop_ms, window_ms)"
            )
        raise ConfigError(
            f"{where} kind = {exp['kind']!r} reads firing rates; the {model.kind} model does "
            "not spike (a plain run records its traces; perturbation_map takes a current step)"
        )
    for i, st in enumerate(cfg.stimuli):
        if st["kind"] in ("poisson", "spike_times") and "events" not in model.inputs:
            raise ConfigError(
                f"{cfg.path}: [[stimulus]] #{i + 1}: kind = {st['kind']!r} sends input events, "
                f'which the {model.kind} model does not take; use kind = "current"'
            )
    size = job_size(sim, conn, n_cond, max_batch, recorded(p, model, rec, conn.n_neurons).size)
    check_fits(size, f"{cfg.path}:", is_experiment=exp is not None)
    return Job(conn, model, base, rec, p, missing, stepper, size, groups, n_cond, trials)


def recorded(p: Plan, model, rec: np.ndarray, n_neurons: int) -> np.ndarray:
    """The neurons a run records: the config's ``[record]``, and for a graded
    ``perturbation_map`` also its responders (whose traces make the summary)."""
    if p.kind == "perturbation_map" and not model.spiking:
        from brainsim.experiments._graded_map import trace_neurons

        return np.union1d(rec, trace_neurons(p, n_neurons)).astype(np.int32)
    return rec


def record_indices(cfg: RunConfig, conn: Connectome, missing: list) -> np.ndarray:
    """Neurons whose traces the config's ``[record]`` asks for (empty without one)."""
    if not cfg.record:
        return np.zeros(0, np.int32)
    return select(
        conn,
        cfg.record["neurons"],
        where=f"{cfg.path}: [record] neurons",
        base_dir=cfg.base_dir,
        missing=missing,
    )


def simulate_batch(
    sim: dict,
    network,
    model,
    base: BaseInputs,
    conds,
    first: int,
    rec,
    ids,
    *,
    progress=None,
    budgets=None,
    gap_junctions: bool = True,
    where: str = "<config>",
    step: dict | None = None,
):
    """Simulate one batch of conditions (``[simulation]`` settings ``sim``): one protocol,
    condition c owning trials [c*T, (c+1)*T); ``first`` is the experiment's number of the
    batch's first condition, which keys the input noise (so batching changes no answer).
    ``budgets``: the windowed kernel's starting sizes (a previous batch's, to skip growing
    them again). A run whose state turns non-finite is a ConfigError naming the config
    ``where``. ``step``: the timing of the conditions' current steps (a graded
    ``perturbation_map``'s ``info["step"]``)."""
    from brainsim.sim import NonFiniteError, simulate

    proto = batch_protocol(
        base, conds, sim["trials"], len(ids), first, _step_steps(step, sim) if step else None
    )
    try:
        return simulate(
            network,
            proto,
            model=model,
            duration_ms=sim["duration_ms"],
            seed=sim["seed"],
            kernel=sim["kernel"],
            precision=sim["precision"],
            record=rec if rec.size else None,
            chunk_ms=sim["chunk_ms"],
            devices=_devices_for(sim["devices"], proto.n_trials),
            progress=progress,
            ids=ids,
            budgets=budgets,
            gap_junctions=gap_junctions,
            poisson_stream=sim["poisson_stream"],
        )
    except NonFiniteError as e:
        raise ConfigError(
            f"{where}: {e}; no results were written (check the [model] and [[stimulus]] values)"
        ) from None


def _step_steps(step: dict, sim: dict) -> tuple[int, int]:
    dt = sim["dt_ms"]
    n_steps = int(round(sim["duration_ms"] / dt))
    start = int(round(step["start_ms"] / dt))
    stop = n_steps if step["stop_ms"] is None else int(round(step["stop_ms"] / dt))
    return start, min(stop, n_steps)


def simulate_conditions(cfg, conn, model, base, p: Plan, rec, progress, log, store=None, net=None):
    """Run every condition in batches; returns [(first condition index, SimResult)].
    With a :class:`BatchStore`, each batch is saved when done, and a batch saved by an
    interrupted run of the same config is read back instead of simulated. ``net``: the
    network already on the device (:func:`prepared_network`; else prepared here). ``p`` is
    updated by a deferred ``top_k`` screen: pass a copy to run a plan again."""
    from brainsim.sim import Budgets

    sim = cfg.simulation
    trials = sim["trials"]
    max_batch = (cfg.experiment or {}).get("max_batch_trials", 256)
    parts = []
    rec = recorded(p, model, rec, conn.n_neurons)
    # the device copy of the network and the kernel's grown budgets serve every batch
    gaps = use_gap_junctions(cfg)
    if net is None:
        net = prepared_network(conn, sim, model, gaps)
    grown: dict = {}
    import jax

    from brainsim.experiments._budget_memory import budget_key, recall, remember

    def key_of(n_trials: int) -> str:
        # budgets size one device's lists: keyed by the trials each device holds
        per_device = n_trials // _devices_for(sim["devices"], n_trials)
        return budget_key(cfg.raw, conn.provenance.checksum, per_device, jax.default_backend())

    # (the processes of a run over several hosts read different caches, and budgets shape
    # the program they run together: they start from the same predicted sizes instead)
    shared = jax.process_count() == 1

    def start_budgets(n_trials: int):
        """This job's budgets: a previous batch's, else those an earlier run remembered."""
        if n_trials in grown:
            return grown[n_trials], False
        if not shared:
            return None, False
        got = recall(key_of(n_trials), tuple(f.name for f in dataclasses.fields(Budgets)))
        return (Budgets(**got), True) if got else (None, False)

    def run(conds, first, batch_no, n_batches):
        prog = None
        if progress is not None:
            prog = lambda done, total: progress(batch_no * total + done, n_batches * total)  # noqa: E731
        n_trials = len(conds) * trials
        r = store.load(first, len(conds), conn.ids) if store is not None else None
        if r is not None:
            log(f"batch {batch_no + 1}/{n_batches}: read back from the interrupted run")
            if prog is not None:
                prog(r.n_steps, r.n_steps)
            parts.append((first, r))
            return
        budgets, recalled = start_budgets(n_trials)
        r = simulate_batch(
            sim,
            net,
            model,
            base,
            conds,
            first,
            rec,
            conn.ids,
            progress=prog,
            budgets=budgets,
            gap_junctions=gaps,
            where=str(cfg.path),
            step=p.info.get("step"),
        )
        r.stats["budgets_remembered"] = recalled
        if r.stats.get("kernel") in ("windowed", "dense_window"):
            grown[n_trials] = Budgets(**r.stats["budgets"])
            if shared:
                remember(key_of(n_trials), r.stats["budgets"])
        if store is not None:
            store.save(first, len(conds), r)
        parts.append((first, r))

    conds = p.conditions
    if p.kind == "parameter_sweep":
        # one run per value, each with its own model; the same input noise (first = 0)
        for c, cond in enumerate(conds):
            log(f"{cond.label}: condition {c + 1}/{len(conds)}")
            m = sweep_model(cfg, cond)
            r = simulate_batch(sim, prepared_network(conn, sim, m, gaps), m, base,
                               [Condition(cond.label, {})], 0, rec, conn.ids,
                               gap_junctions=gaps, where=str(cfg.path))  # fmt: skip
            parts.append((c, r))
        return parts
    if p.deferred_top_k is not None:
        # the control first, then the top responders of that control, one at a time
        run(conds, 0, 0, 2)
        first_result = parts[0][1]
        counts = first_result.spike_counts().sum(axis=0)
        rates = {int(i): float(c) for i, c in enumerate(counts) if c > 0}
        drive = conds[0].poisson[0][0]
        cands = top_responders(rates, p.deferred_top_k, np.union1d(drive, p.readout))
        log(f"silencing screen: top {cands.size} responders of the control chosen")
        extra = silence_conditions(conn, cands, drive, conds[0].poisson[0][1])
        p.conditions = conds = [*conds, *extra]
        p.deferred_top_k = None
        groups = [range(1 + g.start, 1 + g.stop) for g in batches(len(extra), trials, max_batch)]
        offset = 1
    else:
        groups = batches(len(conds), trials, max_batch)
        offset = 0
    for bi, g in enumerate(groups):
        run([conds[c] for c in g], g.start, bi + offset, len(groups) + offset)
    return parts


def chosen_stepper(conn, sim: dict, model, gap_junctions: bool = True):
    """The stepper ``[simulation] kernel`` names (or "auto" picks) for this model and the
    connectome's synapses; one that cannot run them is a ConfigError saying what would."""
    from brainsim.sim import stepper_for, synapse_kinds

    has_gaps = conn.gap_junctions is not None and conn.gap_junctions.num_rows > 0
    try:
        return stepper_for(sim["kernel"], model, synapse_kinds(model, has_gaps and gap_junctions))
    except ValueError as e:
        raise ConfigError(f"[simulation] kernel = {sim['kernel']!r}: {e}") from None


def prepared_network(conn, sim: dict, model=None, gap_junctions: bool = True):
    """The connectome as the device arrays the chosen stepper and precision read."""
    from brainsim.models import LIF
    from brainsim.sim import Network, Reference
    from brainsim.sim._units import dtype_of

    dtype = dtype_of(sim["precision"])
    stepper = chosen_stepper(conn, sim, model or LIF(), gap_junctions)
    return Network.from_connectome(conn, dtype, with_pre=isinstance(stepper, Reference))


def _devices_for(devices, n_trials: int) -> int:
    """Devices for a batch: as configured, but never more than divide its trials evenly."""
    import jax

    n = jax.device_count() if devices == "all" else devices
    while n_trials % n:
        n -= 1
    return n


def write_results(
    cfg, conn, model, p: Plan, parts, rec, missing, out_dir, t_load, t_sim, extra=None
):
    """Write a run's results folder atomically; ``extra``: entries added to its manifest
    (e.g. a fit's held-out split)."""
    from brainsim.io import (
        atomic_dir,
        neurons_table,
        rates_table,
        rows_table,
        spikes_table,
        traces_table,
        write_json,
        write_table,
    )

    trials = cfg.simulation["trials"]
    ids = conn.ids
    cond = np.concatenate([first + r.trial // trials for first, r in parts])
    trial = np.concatenate([r.trial % trials for _, r in parts])
    step = np.concatenate([r.step for _, r in parts])
    neuron = np.concatenate([r.neuron for _, r in parts])
    order = by_trial(cond * trials + trial, (neuron, step, trial, cond))
    cond, trial, step, neuron = cond[order], trial[order], step[order], neuron[order]
    r0 = parts[0][1]
    rates = rates_table(cond, trial, neuron, ids, trials, r0.duration_ms)
    cond_rows = [
        {"condition": i, "label": c.label, **c.columns} for i, c in enumerate(p.conditions)
    ]
    rec_sim = recorded(p, model, rec, conn.n_neurons)
    if p.kind == "perturbation_map" and not model.spiking:
        from brainsim.experiments._graded_map import summary as graded_summary

        summary = graded_summary(p, parts, trials, rec_sim, ids)
    else:
        summary = summarize(p, rates, conn) if p.kind != "run" else None
    # the [record] neurons among those recorded
    at = np.arange(rec.size) if rec_sim is rec else np.searchsorted(rec_sim, rec)
    driven = [idx for c in p.conditions for idx, _ in c.current]
    named = np.unique(np.concatenate([neuron, p.readout, rec_sim, *driven]).astype(np.int64))
    with atomic_dir(out_dir) as tmp:
        write_table(spikes_table(cond, trial, step * r0.dt_ms, ids[neuron]), tmp / "spikes.parquet")
        write_table(rates, tmp / "rates.parquet")
        write_table(rows_table(cond_rows), tmp / "conditions.parquet")
        write_table(neurons_table(conn.neurons, named), tmp / "neurons.parquet")
        if summary is not None:
            write_table(summary, tmp / "summary.parquet")
        if rec.size:
            tr_tables = []
            for first, r in parts:
                tr_tables.append(
                    traces_table(
                        first + np.arange(r.n_trials) // trials,
                        np.arange(r.n_trials) % trials,
                        r.dt_ms,
                        ids[rec],
                        {k: np.asarray(v)[:, :, at] for k, v in r.traces.items()},
                    )
                )
            write_table(pa.concat_tables(tr_tables), tmp / "traces.parquet")
        write_json(
            manifest(cfg, conn, p, parts, model, missing, t_load, t_sim) | (extra or {}),
            tmp / "manifest.json",
        )
        if cfg.plots:
            _plots(tmp)


def by_trial(trial: np.ndarray, keys: tuple) -> np.ndarray:
    """The order of spikes by trial, then step, then neuron, given spikes already ordered by
    step, trial, neuron within each trial (as ``simulate`` returns them): a stable sort on
    the trial alone, a linear-time radix sort for up to 32,767 trials (a lexsort of the
    four ``keys``, last key first, took 0.2 s of a run with a million spikes)."""
    if trial.size and trial.max() < 2**15 and trial.min() >= 0:
        return np.argsort(trial.astype(np.int16), kind="stable")
    return np.lexsort(keys)


def _plot_names(kind: str) -> list[str]:
    extra = {
        "activation_sweep": ["rate_curve.png"],
        "silencing_screen": ["silencing.png"],
        "pairwise_grid": ["grid.png"],
        "perturbation_map": ["perturbation_map.png"],
        "parameter_sweep": ["sweep.png"],
    }
    return ["raster.png", *extra.get(kind, [])]


def _import_plotting_meanwhile() -> None:
    """Import matplotlib (0.3 s) on a thread while the run computes: the simulation waits in
    XLA or the native kernel with the interpreter lock released. ``_plots`` then finds the
    module imported (or waits on Python's import lock for the rest)."""
    import threading

    def target():
        try:
            importlib.import_module("brainsim.viz")
        except Exception:  # noqa: BLE001 (``_plots`` imports it again and reports the error)
            pass

    # not a daemon: the interpreter waits for it at exit instead of stopping it inside a
    # module's initialisation (a run that fails early)
    threading.Thread(target=target, name="import-viz").start()


def _plots(folder: Path) -> None:
    from brainsim.viz import make_plots

    make_plots(folder)


def environment() -> dict:
    """What a manifest records of the software and the machine."""
    import equinox
    import jax
    import pyarrow

    dev = jax.devices()[0]
    return {
        "versions": {
            "brainsim": __version__,
            "jax": jax.__version__,
            "numpy": np.__version__,
            "equinox": equinox.__version__,
            "pyarrow": pyarrow.__version__,
            "python": platform.python_version(),
        },
        "device": {
            "platform": dev.platform,
            "kind": dev.device_kind,
            "count": jax.device_count(),
            "processes": jax.process_count(),
        },
        "host": platform.node(),
    }


def manifest(
    cfg: RunConfig, conn: Connectome, p: Plan, parts, model, missing, t_load: float, t_sim: float
) -> dict:
    r0 = parts[0][1]
    return {
        "config": cfg.raw,
        "config_path": str(cfg.path) if cfg.path else None,
        "experiment": {"kind": p.kind, **(cfg.experiment or {})},
        "readout_ids": [int(i) for i in conn.ids[p.readout]],
        **{k: v for k, v in p.info.items() if k != "responders"},
        "connectome": conn.summary() | {"provenance": conn.provenance.to_json()},
        "seed": cfg.simulation["seed"],
        "poisson_stream": cfg.simulation["poisson_stream"],
        "n_conditions": len(p.conditions),
        "trials_per_condition": cfg.simulation["trials"],
        "duration_ms": r0.duration_ms,
        "dt_ms": r0.dt_ms,
        "n_spikes": int(sum(r.n_spikes for _, r in parts)),
        "missing_ids_left_out": sorted(set(missing)),
        "kernel": [r.stats for _, r in parts],
        "resumed_batches": sum(bool(r.stats.get("resumed")) for _, r in parts),
        **environment(),
        "wall_time_s": {"load": t_load, "simulate": t_sim},
        "model": {"kind": model.kind, **model.parameters()},
        "gap_junctions": {
            "in_connectome": conn.n_gap_junctions,
            "used": bool(use_gap_junctions(cfg)) and conn.n_gap_junctions > 0,
            "directed_rows_used": max(
                (r.stats.get("gap_junctions", 0) for _, r in parts), default=0
            ),
        },
    }
