"""``brainsim fit`` for C. elegans: fit a graded worm model to the signal-propagation atlas.

The config is a ``brainsim run`` config of a graded model whose ``[experiment]`` is a
``perturbation_map`` driven by a current step (``amplitude_mv``, ``start_ms``, ...), plus a
``[fit]`` table with ``task = "atlas"``. The neurons driven are the atlas's stimulated
neurons (Randi et al. 2023 via cect, :mod:`brainsim.celegans._atlas`) that the
experiment's ``drive`` selects; the targets are the atlas's significant responses of
those neurons (amplitude, dF/F).

The split: the driven stimulated neurons, sorted by name, are permuted with
``numpy.random.default_rng(holdout_seed)`` and the first ``round(holdout_fraction x n)``
are held out with all their responses; the fit sees the others' responses only. With
``observed_fraction < 1`` only that fraction of the atlas's responder neurons (chosen the
same way with ``observed_seed``) is observed in training (Beiran and Litwin-Kumar 2024's
question: which neurons must be recorded); held-out scores use every responder.

The model: the graded neuron of :mod:`brainsim.models._graded` on the connectome's signed
chemical counts and gap junctions, simulated densely in JAX with the model's own
``advance`` (the same equations, integrator and time step as ``brainsim run``; tested
equal to the run's ``summary.parquet``). The response of a responder is the
``perturbation_map``'s: the signed peak change from the undriven baseline within the
window (:mod:`brainsim.experiments._graded_map`). Trainable (``trainable``):

- ``w_syn_by_neuron``: the synaptic gain of each presynaptic neuron, ``w_syn x exp(a_j)``
  with ``signs = "kept"`` (its outputs keep their transmitter's sign), or ``w_syn x (1 +
  a_j)`` with ``signs = "free"`` (a neuron's outputs may change sign); ``w_syn``: one
  factor ``exp(a)`` for all (with the per-neuron one, their product);
- ``w_gap``: the gain per gap junction, ``w_gap x exp(g)`` (one for all junctions);
- ``tau_by_neuron``: each neuron's time constant, ``tau x exp(b_i)``; ``tau``: one factor;
- with ``extrasynaptic`` (cect's monoamine and neuropeptide connectomes, Bentley et al. 2016
  and Ripoll-Sanchez et al. 2023; :data:`EXTRASYNAPTIC`), one gain ``c_k`` per coupling
  ``k`` (each transmitter of a dataset), sign free and starting at 0: the connection
  ``i -> j`` gains ``c_k x w_syn x E_k[i, j]`` (``w_syn`` the mean of ``[model] w_syn``,
  ``E_k`` 1 where the dataset couples ``i`` to ``j``) on top of the chemical synapses, as
  graded coupling through the same transfer. Cells that are not neurons of the connectome
  are left out and counted. The fitted run then uses a connectome whose connections carry
  the summed weights (``w_syn = 1``, each connection's size its signed weight).

Loss: the squared error of ``s x response`` against the measured amplitude over the
training pairs, divided by the mean squared amplitude, plus ``regularization`` times the
mean square of the log factors and extrasynaptic gains (toward the anatomy-only start).
``s > 0`` (``exp`` of a trained scalar) converts mV to dF/F; the scores below do not
depend on it. A non-finite loss stops the fit with a ConfigError naming the step; the
parameters of the lowest loss are kept.

Schema of ``[fit]``::

    task = "atlas"
    atlas = "Randi2023"
    trainable = ["w_syn_by_neuron", "w_gap", "tau_by_neuron"]   # also "w_syn", "tau"
    signs = "kept"            # or "free"
    holdout_fraction = 0.2
    holdout_seed = 0
    observed_fraction = 1.0
    observed_seed = 0
    steps = 200
    learning_rate = 0.05
    optimizer = "adam"
    clip_norm = 1.0           # optax.clip_by_global_norm; 0: none
    regularization = 0.001
    log_every = 10
    extrasynaptic = []        # e.g. ["Bentley2016MA", "Bentley2016Pep"]

Writes: ``params.npz`` (w_syn per neuron, w_gap, tau per neuron, the scale), ``history.parquet``
(step, loss, train and held-out Pearson r), ``scores.json`` (before and after fitting:
train and held-out Pearson r, Spearman r, sign agreement, pair counts), ``split.json``,
``manifest.json``, ``loss.png``, and ``run/``: the ``perturbation_map`` of the fitted model run by
``brainsim run``'s engine, whose manifest carries the held-out names under ``holdout``,
with its comparison to the atlas in ``run/atlas/``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from brainsim.experiments._errors import ConfigError
from brainsim.fit._config import check_optimizer_settings, check_types

TRAINABLE = ("w_syn", "w_syn_by_neuron", "w_gap", "tau", "tau_by_neuron")
DEFAULT_TRAINABLE = ("w_syn_by_neuron", "w_gap", "tau_by_neuron")
_TYPES = {
    "task": str,
    "atlas": str,
    "trainable": list,
    "signs": str,
    "holdout_fraction": float,
    "holdout_seed": int,
    "observed_fraction": float,
    "observed_seed": int,
    "steps": int,
    "learning_rate": float,
    "optimizer": str,
    "clip_norm": float,
    "regularization": float,
    "log_every": int,
    "extrasynaptic": list,
}
# extrasynaptic (wireless) connectomes packaged by cect: name -> reader
EXTRASYNAPTIC = {
    "Bentley2016MA": "Bentley2016MAReader",  # monoamines: one coupling per transmitter
    "Bentley2016Pep": "Bentley2016PepReader",  # neuropeptides
    "RipollSanchezShortRange": "RipollSanchezShortRangeReader",
    "RipollSanchezMidRange": "RipollSanchezMidRangeReader",
    "RipollSanchezLongRange": "RipollSanchezLongRangeReader",
}


@dataclasses.dataclass(frozen=True)
class AtlasTask:
    atlas: str = "Randi2023"
    trainable: tuple[str, ...] = DEFAULT_TRAINABLE
    signs: str = "kept"
    holdout_fraction: float = 0.2
    holdout_seed: int = 0
    observed_fraction: float = 1.0
    observed_seed: int = 0
    steps: int = 200
    learning_rate: float = 0.05
    optimizer: str = "adam"
    clip_norm: float = 1.0
    regularization: float = 1e-3
    log_every: int = 10
    extrasynaptic: tuple[str, ...] = ()


def is_atlas_fit(raw: dict) -> bool:
    return isinstance(raw.get("fit"), dict) and raw["fit"].get("task") == "atlas"


def parse_task(fit: dict, where: str) -> AtlasTask:
    w = f"{where}: [fit]"
    check_types(fit, _TYPES, w)
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in fit.items() if k != "task"}
    task = AtlasTask(**kw)
    bad = [t for t in task.trainable if t not in TRAINABLE]
    if bad or not task.trainable or len(set(task.trainable)) != len(task.trainable):
        raise ConfigError(f"{w} trainable: {task.trainable}; choose among {', '.join(TRAINABLE)}")
    if task.signs not in ("kept", "free"):
        raise ConfigError(f'{w} signs: "kept" or "free", got {task.signs!r}')
    if not 0 < task.holdout_fraction < 1:
        raise ConfigError(f"{w} holdout_fraction: expected a number in (0, 1)")
    if not 0 < task.observed_fraction <= 1:
        raise ConfigError(f"{w} observed_fraction: expected a number in (0, 1]")
    check_optimizer_settings(task, w)
    if not (np.isfinite(task.regularization) and task.regularization >= 0):
        raise ConfigError(f"{w} regularization: expected a number >= 0")
    bad = [e for e in task.extrasynaptic if e not in EXTRASYNAPTIC]
    if bad:
        raise ConfigError(f"{w} extrasynaptic: {bad}; choose among {', '.join(EXTRASYNAPTIC)}")
    return task


@dataclasses.dataclass
class Split:
    """Which driven neurons train and which are held out (names and condition rows)."""

    train: list[str]
    holdout: list[str]
    observed: list[str]  # responder names observed in training
    all_responders: int


def split(stimulated: list[str], responders: list[str], task: AtlasTask) -> Split:
    """The seeded held-out split of the stimulated neurons and the observed responders."""
    names = sorted(stimulated)
    perm = np.random.default_rng(task.holdout_seed).permutation(len(names))
    n_hold = int(round(task.holdout_fraction * len(names)))
    if n_hold < 1 or n_hold >= len(names):
        raise ConfigError(
            f"[fit] holdout_fraction = {task.holdout_fraction:g} of {len(names)} stimulated "
            "neurons leaves no held-out or no training neuron"
        )
    hold = sorted(names[i] for i in perm[:n_hold])
    train = sorted(names[i] for i in perm[n_hold:])
    resp = sorted(set(responders))
    perm = np.random.default_rng(task.observed_seed).permutation(len(resp))
    n_obs = max(1, int(round(task.observed_fraction * len(resp))))
    observed = sorted(resp[i] for i in perm[:n_obs])
    return Split(train, hold, observed, len(resp))


def extrasynaptic_matrices(conn, names) -> tuple[list[str], np.ndarray, dict]:
    """(coupling labels, float32 [k, n, n] indicator matrices [pre, post], counted rules)
    of the named extrasynaptic datasets on ``conn``'s neurons (by name)."""
    from brainsim.connectome._celegans import _cect_dataset

    index = {n: i for i, n in enumerate(conn.neurons.column("cell_type").to_pylist())}
    labels, mats, counts = [], [], {}
    for name in names:
        data, _ = _cect_dataset(EXTRASYNAPTIC[name])
        nodes = [str(x) for x in data.nodes]
        where = np.array([index.get(x, -1) for x in nodes])
        counts[f"{name}_cells_not_in_connectome"] = int((where < 0).sum())
        dropped = 0
        for kind, m in sorted(data.connections.items()):
            i, j = np.nonzero(np.asarray(m))
            keep = (where[i] >= 0) & (where[j] >= 0) & (i != j)
            dropped += int((~keep).sum())
            e = np.zeros((conn.n_neurons, conn.n_neurons), np.float32)
            e[where[i[keep]], where[j[keep]]] = 1.0
            labels.append(f"{name}:{kind}")
            mats.append(e)
        counts[f"{name}_entries_dropped"] = dropped
    shape = (0, conn.n_neurons, conn.n_neurons)
    return labels, (np.stack(mats) if mats else np.zeros(shape, np.float32)), counts


class WormForward:
    """The differentiable ``perturbation_map`` of a graded model on a small connectome.

    ``responses(theta, rows)``: float [len(rows), neurons], the response of every neuron
    to driving the neuron of each condition row (rows index the plan's driven
    conditions), the baseline run alongside."""

    def __init__(self, model, conn, plan, sim: dict, gaps: bool, extra=None):
        import jax.numpy as jnp

        from brainsim.experiments._graded_map import window_steps
        from brainsim.experiments._run import _step_steps

        n = conn.n_neurons
        self.model, self.n = model, n
        signed, gap = conn.dense()
        self.signed = jnp.asarray(signed, jnp.float32)  # [pre, post]
        if not gaps:
            gap = np.zeros_like(gap)
        self.gap = jnp.asarray(gap, jnp.float32)  # symmetric: [neighbour, neuron]
        self.n_gap = jnp.asarray(gap.sum(axis=0), jnp.float32)
        self.w_syn0 = np.broadcast_to(np.asarray(model.w_syn, np.float64), (n,)).copy()
        self.tau0 = np.broadcast_to(np.asarray(model.tau_ms, np.float64), (n,)).copy()
        self.v_rest = jnp.asarray(np.broadcast_to(model.v_rest_mv, (n,)), jnp.float32)
        self.w_gap0 = float(model.w_gap)
        step = plan.info["step"]
        self.n_steps = int(round(sim["duration_ms"] / sim["dt_ms"]))
        self.on = _step_steps(step, sim)
        self.window = window_steps(step, self.n_steps, sim["dt_ms"])
        self.amp = step["amplitude_mv"]
        self.driven = [c.current[0][0] for c in plan.conditions[1:]]
        self.extra = None if extra is None or not len(extra) else jnp.asarray(extra)
        self.w_unit = float(np.mean(self.w_syn0))

    def weights(self, theta: dict, signs: str):
        """float32 [pre, post]: the chemical weights, plus the extrasynaptic couplings."""
        import jax.numpy as jnp

        w = self.effective(theta, signs)[0]
        weight = self.signed * w[:, None]
        if self.extra is not None:
            gains = jnp.asarray(theta["extrasynaptic"], jnp.float32) * self.w_unit
            weight = weight + jnp.tensordot(gains, self.extra, axes=1)
        return weight

    def effective(self, theta: dict, signs: str):
        """(w_syn per presynaptic neuron, w_gap, tau per neuron) of the parameters."""
        import jax.numpy as jnp

        f32 = jnp.float32

        def get(name):
            shape = () if name in ("w_syn", "w_gap", "tau") else (self.n,)
            return jnp.asarray(theta.get(name, jnp.zeros(shape)), f32)

        a = get("w_syn_by_neuron")
        w = jnp.asarray(self.w_syn0, f32) * (jnp.exp(a) if signs == "kept" else 1.0 + a)
        w = w * jnp.exp(get("w_syn"))
        g = f32(self.w_gap0) * jnp.exp(get("w_gap"))
        tau = jnp.asarray(self.tau0, f32) * jnp.exp(get("tau_by_neuron") + get("tau"))
        return w, g, tau

    def responses(self, theta: dict, rows: np.ndarray, signs: str):
        import jax
        import jax.numpy as jnp

        from brainsim.models import NeuronInput
        from brainsim.models._graded import GradedAux, propagator

        m = self.model
        _, g, tau = self.effective(theta, signs)
        weight = self.weights(theta, signs)
        leak = 1.0 + g * self.n_gap
        decay = propagator(m.integrator, jnp.float32(m.dt_ms), tau, leak, jnp)
        aux = GradedAux(tau, self.v_rest, leak, decay)
        x = np.zeros((len(rows) + 1, self.n), np.float32)  # row 0: the baseline
        for k, r in enumerate(rows):
            x[k + 1, self.driven[r]] = self.amp
        x = jnp.asarray(x)
        lo, hi = self.window
        start, stop = self.on
        state0 = m.init_state(len(rows) + 1, self.n, jnp.float32)

        def body(carry, k):
            s, best, best_abs = carry
            syn = m.output(s) @ weight
            gap_in = g * (s.v @ self.gap)
            ext = jnp.where((k >= start) & (k < stop), x, 0.0)
            s, _ = m.advance(aux, s, NeuronInput(current=syn + ext, arrivals=0.0, events=0.0,
                                                 gap=gap_in))  # fmt: skip
            d = s.v[1:] - s.v[:1]
            take = (jnp.abs(d) > best_abs) & (k >= lo) & (k < hi)
            return (s, jnp.where(take, d, best), jnp.where(take, jnp.abs(d), best_abs)), None

        zeros = jnp.zeros((len(rows), self.n), jnp.float32)
        (_, best, _), _ = jax.lax.scan(
            body, (state0, zeros, zeros - 1.0), jnp.arange(self.n_steps)
        )
        return best

    def fitted_model(self, theta: dict, signs: str):
        w, g, tau = (np.asarray(v, np.float64) for v in self.effective(theta, signs))
        if self.extra is not None:
            w = np.ones_like(w)  # the weights are the connections' sizes (fitted_connectome)
        return dataclasses.replace(self.model, w_syn=w, w_gap=float(g), tau_ms=tau)

    def fitted_connectome(self, conn, theta: dict, signs: str):
        """With extrasynaptic couplings: ``conn`` with every nonzero summed weight as a
        connection (sign in ``counts``, magnitude in ``n_syn``), for a model of ``w_syn =
        1``; without, ``conn`` itself."""
        from brainsim.connectome import Connectome, Provenance

        if self.extra is None:
            return conn
        weight = np.asarray(self.weights(theta, signs), np.float64)
        pre, post = np.nonzero(weight)
        size = weight[pre, post]
        indptr = np.zeros(conn.n_neurons + 1, np.int64)
        np.add.at(indptr, pre + 1, 1)
        prov = conn.provenance
        return Connectome(
            neurons=conn.neurons,
            indptr=np.cumsum(indptr),
            indices=post.astype(np.int32),
            counts=np.sign(size).astype(np.int32),
            provenance=Provenance(
                prov.format, prov.sources, prov.checksum + "+extrasynaptic", prov.sign_rule,
                prov.counts, {**prov.options, "extrasynaptic_fitted": True},
            ),  # fmt: skip
            gap_junctions=conn.gap_junctions,
            n_syn=np.abs(size).astype(np.float32),
        )


def run_atlas_fit(raw: dict, path: Path, out_dir=None, *, log=print) -> Path:
    """Fit the config's graded model to the atlas; write the results folder."""
    from brainsim.experiments import parse_config
    from brainsim.io import check_output_dir, output_lock

    where = str(path)
    task = parse_task(raw["fit"], where)
    cfg = parse_config({k: v for k, v in raw.items() if k != "fit"}, path)
    out_dir = check_output_dir(Path(out_dir) if out_dir else cfg.output_dir)
    with output_lock(out_dir):
        return _fit(cfg, task, out_dir, log)


def _fit(cfg, task: AtlasTask, out_dir: Path, log) -> Path:
    import jax
    import jax.numpy as jnp
    import optax
    import pyarrow as pa

    from brainsim.celegans._atlas import read_atlas
    from brainsim.celegans._compare import score as scores
    from brainsim.experiments._run import load_connectome, prepare_job, use_gap_junctions
    from brainsim.io import atomic_dir, write_json, write_table

    t0 = time.perf_counter()
    w = f"{cfg.path}"
    exp = cfg.experiment or {}
    if exp.get("kind") != "perturbation_map" or "amplitude_mv" not in exp:
        raise ConfigError(
            f"{w}: [experiment] must be a perturbation_map driven by a current step "
            "(amplitude_mv) for task = \"atlas\""
        )
    conn = load_connectome(cfg)
    job = prepare_job(cfg, conn, log)
    if job.model.spiking:
        raise ConfigError(f"{w}: [model] task = \"atlas\" fits a graded model")
    atlas = read_atlas(conn, task.atlas)
    tab = atlas.table.to_pydict()
    names = conn.neurons.column("cell_type").to_pylist()
    ids = conn.ids
    id_to_index = {int(i): k for k, i in enumerate(ids)}
    # driven conditions whose neuron the atlas stimulated
    row_of = {}
    for r, c in enumerate(job.plan.conditions[1:]):
        idx = c.current[0][0]
        if idx.size == 1 and names[int(idx[0])] in atlas.stimulated:
            row_of[names[int(idx[0])]] = r
    if len(row_of) < 5:
        raise ConfigError(
            f"{w}: [experiment] drive: only {len(row_of)} of the driven neurons are "
            f"stimulated neurons of the atlas {task.atlas}; drive them one by one"
        )
    responders = sorted({n for n, s in zip(tab["responder"], tab["stimulated"], strict=True)
                         if s in row_of and n != s})  # fmt: skip
    sp = split(list(row_of), responders, task)
    observed = set(sp.observed)

    def pairs(stim: list[str], only_observed: bool):
        """(condition rows, responder indices, amplitudes) of the atlas pairs of ``stim``."""
        sset = set(stim)
        rr, jj, aa = [], [], []
        for s, rname, rid, amp in zip(tab["stimulated"], tab["responder"], tab["responder_id"],
                                      tab["amplitude"], strict=True):  # fmt: skip
            if s in sset and rname != s and rid >= 0 and (not only_observed or rname in observed):
                rr.append(row_of[s])
                jj.append(id_to_index[int(rid)])
                aa.append(amp)
        return np.asarray(rr, np.int64), np.asarray(jj, np.int64), np.asarray(aa, np.float64)

    train_rows = np.asarray(sorted(row_of[s] for s in sp.train))
    tr, tj, ta = pairs(sp.train, True)
    hr, hj, ha = pairs(sp.holdout, False)
    ir, ij, ia = pairs(sp.train, False)  # in-sample, every responder
    if tr.size < 3 or hr.size < 3:
        raise ConfigError(f"{w}: too few atlas pairs to fit and score ({tr.size}, {hr.size})")
    log(
        f"atlas {task.atlas}: {len(sp.train)} training and {len(sp.holdout)} held-out "
        f"stimulated neurons; {tr.size} training pairs ({len(observed)} of {sp.all_responders} "
        f"responders observed), {hr.size} held-out pairs"
    )
    labels, extra, extra_counts = extrasynaptic_matrices(conn, task.extrasynaptic)
    if labels:
        log(f"extrasynaptic couplings: {', '.join(labels)} ({extra_counts})")
    fwd = WormForward(
        job.model, conn, job.plan, cfg.simulation, use_gap_junctions(cfg), extra if labels else None
    )
    pos = {int(r): k for k, r in enumerate(train_rows)}
    tk = np.asarray([pos[int(r)] for r in tr])
    ta_j = jnp.asarray(ta, jnp.float32)
    norm = float(np.mean(ta**2))

    theta = {"log_scale": jnp.asarray(0.0)}
    for name in task.trainable:
        scalar = name in ("w_syn", "w_gap", "tau")
        theta[name] = jnp.asarray(0.0) if scalar else jnp.zeros(conn.n_neurons)
    if labels:
        theta["extrasynaptic"] = jnp.zeros(len(labels))

    def loss_fn(th):
        resp = fwd.responses(th, train_rows, task.signs)
        pred = jnp.exp(th["log_scale"]) * resp[tk, tj]
        err = jnp.mean((pred - ta_j) ** 2) / norm
        logs = [jnp.ravel(v) for k, v in th.items() if k != "log_scale"]
        reg = jnp.mean(jnp.concatenate(logs) ** 2) if logs else 0.0
        return err + task.regularization * reg

    # the scale that best converts the anatomy-only responses to dF/F (least squares, > 0)
    r0 = np.asarray(fwd.responses(theta, train_rows, task.signs))[tk, tj]
    s0 = float(np.dot(r0, ta) / max(np.dot(r0, r0), 1e-30))
    theta["log_scale"] = jnp.asarray(np.log(s0) if s0 > 0 else 0.0)

    opt = getattr(optax, task.optimizer)(task.learning_rate)
    if task.clip_norm > 0:
        opt = optax.chain(optax.clip_by_global_norm(task.clip_norm), opt)
    state = opt.init(theta)

    @jax.jit
    def update(th, st):
        val, grads = jax.value_and_grad(loss_fn)(th)
        upd, st = opt.update(grads, st, th)
        return optax.apply_updates(th, upd), st, val

    all_rows = np.arange(len(job.plan.conditions) - 1)
    respond = jax.jit(lambda th: fwd.responses(th, all_rows, task.signs))

    def evaluate(th) -> dict:
        resp = np.asarray(respond(th), np.float64)
        return {
            "train": scores(resp[tr, tj], ta),
            "train_all_responders": scores(resp[ir, ij], ia),
            "holdout": scores(resp[hr, hj], ha),
        }

    before = evaluate(theta)
    log(
        f"anatomy only: train r {before['train']['pearson_r']:.3f}, held-out r "
        f"{before['holdout']['pearson_r']:.3f}, sign {before['holdout']['sign_agreement']:.3f}"
    )
    history = []
    best, best_loss = theta, float("inf")
    t_fit = time.perf_counter()
    for k in range(task.steps):
        new, state, val = update(theta, state)
        val = float(val)
        if not np.isfinite(val):
            raise ConfigError(
                f"{w}: [fit] the loss became {val} at step {k + 1} (the network may have "
                "become unstable: lower learning_rate or raise regularization); nothing written"
            )
        if val < best_loss:
            best, best_loss = theta, val
        theta = new
        row = {"step": k + 1, "loss": val}
        if k == 0 or (k + 1) % task.log_every == 0 or k + 1 == task.steps:
            ev = evaluate(theta)
            row |= {"train_r": ev["train"]["pearson_r"], "holdout_r": ev["holdout"]["pearson_r"]}
            log(f"step {k + 1}/{task.steps}: loss {val:.4f}, train r {row['train_r']:.3f}, "
                f"held-out r {row['holdout_r']:.3f}")  # fmt: skip
        history.append(row)
    t_fit = time.perf_counter() - t_fit
    final = float(jax.jit(loss_fn)(theta)) if task.steps else float("inf")
    if np.isfinite(final) and final < best_loss:
        best, best_loss = theta, final
    after = evaluate(best)
    fitted = fwd.fitted_model(best, task.signs)
    w_syn, w_gap, tau = (np.asarray(v) for v in fwd.effective(best, task.signs))
    split_json = {
        "holdout": sp.holdout,
        "train": sp.train,
        "observed_responders": sp.observed,
        "holdout_fraction": task.holdout_fraction,
        "holdout_seed": task.holdout_seed,
        "observed_fraction": task.observed_fraction,
        "observed_seed": task.observed_seed,
    }
    with atomic_dir(out_dir) as tmp:
        np.savez(
            tmp / "params.npz",
            neuron_id=ids,
            name=np.asarray(names),
            w_syn=w_syn,
            tau_ms=tau,
            w_gap=np.float64(w_gap),
            scale=np.float64(np.exp(float(best["log_scale"]))),
            extrasynaptic_labels=np.asarray(labels, dtype=str),
            extrasynaptic_gains=np.asarray(best.get("extrasynaptic", np.zeros(0)), np.float64),
        )
        cols = sorted({k for r in history for k in r}, key=["step", "loss", "train_r",
                                                              "holdout_r"].index)  # fmt: skip
        write_table(
            pa.table({c: [r.get(c) for r in history] for c in cols}) if history else
            pa.table({"step": pa.array([], pa.int64()), "loss": pa.array([], pa.float64())}),
            tmp / "history.parquet",
        )  # fmt: skip
        write_json({"before": before, "after": after, "loss": best_loss}, tmp / "scores.json")
        write_json(split_json, tmp / "split.json")
        run_conn = fwd.fitted_connectome(conn, best, task.signs)
        run_dir = _fitted_run(cfg, run_conn, job, fitted, tmp / "run", split_json, log)
        _compare_run(run_dir, task, sp)
        write_json(
            {
                "task": dataclasses.asdict(task),
                "config": cfg.raw,
                "connectome": conn.summary() | {"provenance": conn.provenance.to_json()},
                "atlas": {"source": task.atlas, "file": str(atlas.source_file),
                          "counts": atlas.counts},  # fmt: skip
                "split": split_json,
                "extrasynaptic": {
                    "couplings": labels,
                    "gains": np.asarray(best.get("extrasynaptic", np.zeros(0))).tolist(),
                    "counts": extra_counts,
                },
                "scores": {"before": before, "after": after},
                "wall_time_s": {"total": time.perf_counter() - t0, "fit": t_fit},
            },
            tmp / "manifest.json",
        )
        _plot(tmp, history)
    log(
        f"fitted: train r {after['train']['pearson_r']:.3f}, held-out r "
        f"{after['holdout']['pearson_r']:.3f}, held-out sign "
        f"{after['holdout']['sign_agreement']:.3f}; results in {out_dir}"
    )
    return out_dir


def _fitted_run(cfg, conn, job, model, run_dir: Path, split_json: dict, log) -> Path:
    """The fitted model's perturbation_map through ``brainsim run``'s engine."""
    import copy

    from brainsim.experiments._run import simulate_conditions, write_results

    t1 = time.perf_counter()
    p = copy.copy(job.plan)
    parts = simulate_conditions(cfg, conn, model, job.base, p, job.rec, None, log)
    t_sim = time.perf_counter() - t1
    write_results(cfg, conn, model, p, parts, job.rec, job.missing, run_dir, 0.0, t_sim,
                  extra={"holdout": split_json["holdout"], "fit_split": split_json})  # fmt: skip
    return run_dir


def _compare_run(run_dir: Path, task: AtlasTask, sp: Split) -> None:
    from brainsim.celegans._compare import compare

    compare(run_dir, task.atlas, out=run_dir / "atlas")
    compare(run_dir, task.atlas, stimulated=sp.holdout, out=run_dir / "atlas_holdout")


def _plot(folder: Path, history: list[dict]) -> None:
    from brainsim.fit._plot import plot_history

    plot_history(
        history, folder / "loss.png", "atlas loss (relative MSE)", ("train_r", "holdout_r")
    )
