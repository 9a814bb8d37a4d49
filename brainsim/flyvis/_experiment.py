"""``brainsim run`` for flyvis networks: visual stimuli, and the experiment kinds
``moving_edge`` and ``flash`` (flyvis's standard analyses).

A config runs here when its connectome has format ``flyvis``, its experiment is one of
:data:`VISUAL_KINDS`, or a stimulus has ``kind = "visual"``. The model is ``[model] kind =
"graded"`` with ``params`` (see :func:`brainsim.flyvis.load_params`); flyvis's dynamics are
fixed (explicit Euler, relu, tau clamped at dt), so the graded model's other keys are
refused here. Every run starts from flyvis's steady state: ``steady_state_s`` (default 1) of
grey from rest.

``[experiment] kind = "moving_edge"``: ``angles_deg`` (default every 30 degrees),
``intensities`` (default [0, 1]: OFF and ON edges), ``speeds`` (columns/s, default [19]),
optional ``t_pre_s``, ``t_post_s`` (1.0 each), ``height_deg`` (180: full field). Writes
``summary.parquet`` (one row per cell_type, angle_deg, intensity, speed: ``peak``,
``baseline``, ``peak_change``), ``dsi.parquet`` (cell_type, intensity, dsi,
``preferred_angle_deg``: flyvis's definition, on the rectified voltage; and ``dsi_change``,
``preferred_angle_deg_change``: the same formula on the rectified baseline-subtracted peaks,
which shows direction selectivity of cells whose resting voltage dwarfs their responses),
``t4t5.json`` (the T4/T5 pattern checks), ``traces.parquet``
(central cells, every step), ``conditions.parquet``, ``neurons.parquet``,
``manifest.json`` and ``dsi_polar.png``.

``[experiment] kind = "flash"``: ``intensities`` (default [0, 1]), ``radius`` (columns;
default 6, -1 = full field), ``t_stim_s``, ``t_pre_s`` (1.0 each). Writes
``summary.parquet`` (cell_type, intensity, peak, baseline), ``fri.parquet`` (cell_type,
fri, polarity, known_polarity) with an ON and an OFF flash, and ``fri.png``.

A plain run with one ``[[stimulus]] kind = "visual"`` (``pattern`` = ``moving_edge``,
``flash``, ``grating`` or ``movie``, with that pattern's keys) records the ``[record]``
neurons (default: the central cell of every type) and writes ``traces.parquet`` and
``traces.png``.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from brainsim.experiments._errors import ConfigError
from brainsim.flyvis import _analysis as A
from brainsim.flyvis import _stimuli as S

VISUAL_KINDS = ("moving_edge", "flash")
_EXP_KEYS = {
    "moving_edge": ("angles_deg", "intensities", "speeds", "t_pre_s", "t_post_s", "height_deg"),
    "flash": ("intensities", "radius", "t_stim_s", "t_pre_s"),
}
_COMMON = ("kind", "steady_state_s", "max_batch_trials")
_PATTERN_KEYS = {
    "moving_edge": ("angle_deg", "intensity", "speed", "t_pre_s", "t_post_s", "height_deg"),
    "flash": ("intensity", "radius", "t_stim_s", "t_pre_s"),
    "grating": ("angle_deg", "period_deg", "speed_deg_s", "contrast", "shape", "t_pre_s"),
    "movie": ("path", "frame_rate_hz"),
}


def uses_visual(raw: dict) -> bool:
    """Whether a (parsed) config belongs to this runner."""
    def table(x):  # (the config parser names malformed tables; here they are no sign)
        return x if isinstance(x, dict) else {}

    stimuli = raw.get("stimulus")
    return (
        table(raw.get("connectome")).get("format") == "flyvis"
        or table(raw.get("experiment")).get("kind") in VISUAL_KINDS
        or isinstance(stimuli, list) and any(table(s).get("kind") == "visual" for s in stimuli)
    )


def _numbers(exp: dict, key: str, where: str, *, lo=None, hi=None, positive=False):
    vals = exp[key] if isinstance(exp[key], list) else [exp[key]]
    if not vals or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vals):
        raise ConfigError(f"{where} {key}: expected a number or a non-empty list of numbers")
    for x in vals:
        if not np.isfinite(x) or (lo is not None and x < lo) or (hi is not None and x > hi):
            raise ConfigError(f"{where} {key}: {x} outside [{lo}, {hi}]")
        if positive and x <= 0:
            raise ConfigError(f"{where} {key}: must be > 0, got {x}")
    if len(set(vals)) != len(vals):
        raise ConfigError(f"{where} {key}: a value is listed twice")
    return vals


def check_experiment(exp: dict, where: str) -> None:
    kind = exp["kind"]
    allowed = _COMMON + _EXP_KEYS[kind]
    for k in exp:
        if k not in allowed:
            raise ConfigError(
                f"{where}: unknown key {k!r} for kind {kind!r}; expected one of "
                + ", ".join(allowed)
            )
    for k in ("angles_deg",):
        if k in exp:
            _numbers(exp, k, where)
    if "intensities" in exp:
        _numbers(exp, "intensities", where, lo=0, hi=1)
    if "speeds" in exp:
        _numbers(exp, "speeds", where, positive=True)
    for k in ("t_pre_s", "t_post_s", "t_stim_s", "steady_state_s"):
        if k in exp:
            _numbers(exp, k, where, lo=0)
    if "height_deg" in exp:
        _numbers(exp, "height_deg", where, positive=True)
    if "radius" in exp and not (isinstance(exp["radius"], int) and exp["radius"] >= -1):
        raise ConfigError(f"{where} radius: expected -1 (full field) or columns >= 0")
    if kind == "flash":
        if sorted(exp.get("intensities", [0, 1])) != [0, 1]:
            raise ConfigError(f"{where} intensities: the flash response index needs [0, 1]")


def check_stimulus(st: dict, where: str) -> None:
    pattern = st.get("pattern")
    if pattern not in _PATTERN_KEYS:
        raise ConfigError(
            f"{where} pattern: expected one of {tuple(_PATTERN_KEYS)}, got {pattern!r}"
        )
    allowed = ("kind", "pattern", *_PATTERN_KEYS[pattern])
    for k in st:
        if k not in allowed:
            raise ConfigError(
                f"{where}: unknown key {k!r} for pattern {pattern!r}; expected one of "
                + ", ".join(allowed)
            )
    if pattern == "movie":
        for k in ("path", "frame_rate_hz"):
            if k not in st:
                raise ConfigError(f"{where}: pattern 'movie' needs {k!r}")


# ---------------------------------------------------------------------------- running


def _setup(cfg, conn, log, params=None):
    from brainsim.connectome._flyvis import connectome_lattice
    from brainsim.flyvis._params import load as load_params

    if conn.provenance.format != "flyvis":
        raise ConfigError(
            f"{cfg.path}: visual stimuli and the kinds {VISUAL_KINDS} need a flyvis lattice "
            f'connectome ([connectome] format = "flyvis"), not {conn.provenance.format!r}'
        )
    lattice = connectome_lattice(conn)  # (not a second expansion of the file)
    if params is None:
        try:
            params = load_params(
                lattice, cfg.model.get("params"), seed=cfg.simulation["seed"],
                base_dir=cfg.base_dir,
            )
        except ValueError as e:
            raise ConfigError(f"{cfg.path}: [model] params: {e}") from None
    log(f"flyvis lattice: extent {lattice.extent}, {lattice.n_cells} cells; params {params.name}")
    return lattice, params


def simulate_frames(
    lattice, params, dt_ms, frames, record, steady_s=1.0, max_batch=64, dtype=None
):
    """Traces [steps, conditions, recorded] of ``frames`` [steps, conditions, columns]."""
    import jax.numpy as jnp

    from brainsim.flyvis import _simulate as sim

    dtype = dtype or jnp.float32
    net = sim.build(lattice, params, dt_ms, dtype=dtype)
    grey = sim.steady_state(net, 1, steady_s)  # the same for every condition: once
    out = []
    for b0 in range(0, frames.shape[1], max_batch):
        part = jnp.asarray(frames[:, b0 : b0 + max_batch], dtype)
        v0 = jnp.broadcast_to(grey, (part.shape[1], grey.shape[1]))
        _, tr = sim.integrate(net, v0, part, jnp.asarray(record, jnp.int32))
        tr = np.asarray(tr)
        if not np.all(np.isfinite(tr)):
            raise FloatingPointError("the network's voltages became non-finite")
        out.append(tr)
    return np.concatenate(out, axis=1)


def pad_frames(stims: list[np.ndarray]) -> np.ndarray:
    """[steps, conditions, columns]: each stimulus held at its last frame to the longest."""
    n = max(s.shape[0] for s in stims)
    return np.stack(
        [np.concatenate([s, np.repeat(s[-1:], n - s.shape[0], axis=0)]) for s in stims], axis=1
    )


def run(cfg, out_dir: Path, conn, log, dry_run: bool, t_load: float, params=None) -> Path:
    """Run a visual config; ``params`` (a :class:`TypeParams`) instead of ``[model] params``
    (``brainsim fit`` runs its trained network so)."""
    import jax.numpy as jnp

    lattice, params = _setup(cfg, conn, log, params)
    exp = cfg.experiment or {}
    kind = exp.get("kind", "run")
    dt_ms = cfg.simulation["dt_ms"]
    dt_s = dt_ms / 1000.0
    steady_s = float(exp.get("steady_state_s", 1.0))
    max_batch = int(exp.get("max_batch_trials", 64))
    dtype = jnp.float64 if cfg.simulation["precision"] == "float64" else jnp.float32
    central = lattice.central_cells()
    names = list(lattice.spec.type_names)
    ext = lattice.extent

    if kind == "moving_edge":
        angles = exp.get("angles_deg", list(range(0, 360, 30)))
        intens = exp.get("intensities", [0, 1])
        speeds = exp.get("speeds", [19])
        kw = {k: exp[k] for k in ("t_pre_s", "t_post_s", "height_deg") if k in exp}
        conds = list(itertools.product(angles, intens, speeds))
        try:
            stims = [S.moving_edge(ext, a, i, s, dt_s, **kw) for a, i, s in conds]
        except ValueError as e:
            raise ConfigError(f"{cfg.path}: [experiment]: {e}") from None
        cond_rows = [{"condition": c, "angle_deg": a, "intensity": i, "speed": s}
                     for c, (a, i, s) in enumerate(conds)]  # fmt: skip
        t_pre = kw.get("t_pre_s", 1.0)
        record = central
    elif kind == "flash":
        intens = exp.get("intensities", [0, 1])
        kw = {k: exp[k] for k in ("radius", "t_stim_s", "t_pre_s") if k in exp}
        kw.setdefault("radius", 6)
        stims = [S.flash(ext, i, dt_s, **kw) for i in intens]
        cond_rows = [{"condition": c, "intensity": i} for c, i in enumerate(intens)]
        t_pre = kw.get("t_pre_s", 1.0)
        record = central
    else:
        stims, t_pre = [_plain_stimulus(cfg, ext, dt_s)], 0.0
        cond_rows = [{"condition": 0, "label": "run"}]
        record = _record(cfg, conn, central)
    frames = pad_frames(stims)
    trials = cfg.simulation["trials"]
    if kind == "run" and trials > 1:
        frames = np.repeat(frames, trials, axis=1)
    n_steps, n_cond = frames.shape[0], frames.shape[1]
    files = _files(kind)
    if not cfg.plots:
        files = [f for f in files if not f.endswith(".png")]
    if dry_run:
        log(
            f"dry run: kind {kind}; {n_cond} stimulus condition(s) x {n_steps} steps of "
            f"{dt_ms:g} ms (+ {steady_s:g} s steady state) on {lattice.n_cells} cells; "
            f"would write {out_dir}/: {', '.join(files)}"
        )
        return out_dir
    t0 = time.perf_counter()
    traces = simulate_frames(lattice, params, dt_ms, frames, record, steady_s, max_batch, dtype)
    t_sim = time.perf_counter() - t0
    time_s = np.arange(n_steps) * dt_s - t_pre
    tables, extra = {}, {}
    if kind == "moving_edge":
        tables, extra = edge_tables(traces, time_s, conds, angles, intens, speeds, names)
    elif kind == "flash":
        tables = flash_tables(traces, time_s, intens, names, kw, dt_s)
    _write(cfg, conn, lattice, params, out_dir, kind, tables, extra, traces, record, cond_rows,
           trials if kind == "run" else 1, dt_ms, t_pre, t_load, t_sim)  # fmt: skip
    log(f"{n_cond} condition(s) simulated in {t_sim:.2f} s; results in {out_dir}")
    return out_dir


def _files(kind: str) -> list[str]:
    base = ["traces.parquet", "conditions.parquet", "neurons.parquet", "manifest.json"]
    return base + {
        "moving_edge": ["summary.parquet", "dsi.parquet", "t4t5.json", "dsi_polar.png"],
        "flash": ["summary.parquet", "fri.parquet", "fri.png"],
        "run": ["traces.png"],
    }[kind]


def _plain_stimulus(cfg, extent: int, dt_s: float) -> np.ndarray:
    visual = [st for st in cfg.stimuli if st["kind"] == "visual"]
    others = [st["kind"] for st in cfg.stimuli if st["kind"] != "visual"]
    where = f"{cfg.path}: [[stimulus]]"
    if others:
        raise ConfigError(f"{where}: a flyvis network takes visual stimuli only, not {others}")
    if len(visual) != 1:
        raise ConfigError(
            f'{where}: a flyvis run needs exactly one kind = "visual" stimulus (or an '
            f"[experiment] of kind {VISUAL_KINDS}), got {len(visual)}"
        )
    st = dict(visual[0])
    pattern = st.pop("pattern")
    st.pop("kind")
    dur = cfg.simulation.get("duration_ms")
    try:
        if pattern == "moving_edge":
            f = S.moving_edge(extent, st.pop("angle_deg", 0.0), st.pop("intensity", 1.0),
                              st.pop("speed", 19.0), dt_s, **st)  # fmt: skip
        elif pattern == "flash":
            f = S.flash(extent, st.pop("intensity", 1.0), dt_s, **st)
        elif pattern == "grating":
            if dur is None:
                raise ValueError("a grating needs [simulation] duration_ms")
            f = S.grating(extent, st.pop("angle_deg", 0.0), st.pop("period_deg", 30.0),
                          st.pop("speed_deg_s", 30.0), dur / 1000.0, dt_s, **st)  # fmt: skip
        else:
            path = Path(st["path"])
            path = path if path.is_absolute() else cfg.base_dir / path
            f = S.movie(S.read_movie(path, extent), st["frame_rate_hz"], dt_s)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where} (pattern {pattern!r}): {e}") from None
    if dur is not None:  # cut, or hold the last frame, to the run's duration
        n = int(round(dur / 1000.0 / dt_s))
        hold = np.repeat(f[-1:], max(n - f.shape[0], 0), axis=0)
        f = f[:n] if f.shape[0] >= n else np.concatenate([f, hold])
    return f


def _record(cfg, conn, central):
    if not cfg.record:
        return central
    from brainsim.experiments._selectors import select

    return select(conn, cfg.record["neurons"], where=f"{cfg.path}: [record] neurons",
                  base_dir=cfg.base_dir)  # fmt: skip


def edge_tables(traces, time_s, conds, angles, intens, speeds, names):
    peaks = np.zeros((len(angles), len(intens), len(speeds), len(names)))
    changes = np.zeros_like(peaks)
    rows = {k: [] for k in ("cell_type", "angle_deg", "intensity", "speed", "peak", "baseline",
                            "peak_change")}  # fmt: skip
    for c, (a, i, s) in enumerate(conds):
        peak, base, change = A.edge_peaks(traces[:, c], time_s, S.edge_duration_s(s))
        peaks[angles.index(a), intens.index(i), speeds.index(s)] = peak
        changes[angles.index(a), intens.index(i), speeds.index(s)] = np.maximum(change, 0)
        rows["cell_type"] += names
        for k, val in (("angle_deg", a), ("intensity", i), ("speed", s)):
            rows[k] += [float(val)] * len(names)
        rows["peak"] += peak.tolist()
        rows["baseline"] += base.tolist()
        rows["peak_change"] += change.tolist()
    dsi, pref = A.direction_selectivity(peaks, np.asarray(angles))
    dsi_c, pref_c = A.direction_selectivity(changes, np.asarray(angles))
    d_rows = {k: [] for k in ("cell_type", "intensity", "dsi", "preferred_angle_deg",
                              "dsi_change", "preferred_angle_deg_change")}  # fmt: skip
    for k, i in enumerate(intens):
        d_rows["cell_type"] += names
        d_rows["intensity"] += [float(i)] * len(names)
        d_rows["dsi"] += dsi[k].tolist()
        d_rows["preferred_angle_deg"] += pref[k].tolist()
        d_rows["dsi_change"] += dsi_c[k].tolist()
        d_rows["preferred_angle_deg_change"] += pref_c[k].tolist()
    extra = {}
    if {0, 1} <= set(intens) and all(f"T{f}{x}" in names for f in "45" for x in "abcd"):
        on, off = intens.index(1), intens.index(0)
        sel = {f"T4{x}": on for x in "abcd"} | {f"T5{x}": off for x in "abcd"}
        dd = {t: float(dsi[k, names.index(t)]) for t, k in sel.items()}
        pp = {t: float(pref[k, names.index(t)]) for t, k in sel.items()}
        dc = {t: float(dsi_c[k, names.index(t)]) for t, k in sel.items()}
        pc = {t: float(pref_c[k, names.index(t)]) for t, k in sel.items()}
        extra["t4t5.json"] = {"dsi": dd, "preferred_angle_deg": pp,
                              "known_preferred_angle_deg": A.KNOWN_PREFERRED_DEG,
                              "checks": A.t4t5_pattern(dd, pp),
                              "dsi_change": dc, "preferred_angle_deg_change": pc,
                              "checks_change": A.t4t5_pattern(dc, pc)}  # fmt: skip
    return {"summary.parquet": pa.table(rows), "dsi.parquet": pa.table(d_rows)}, extra


def flash_tables(traces, time_s, intens, names, kw, dt_s):
    rows = {"cell_type": [], "intensity": [], "peak": [], "baseline": []}
    onset = int(np.flatnonzero(time_s >= 0)[0])
    for c, i in enumerate(intens):
        rows["cell_type"] += names
        rows["intensity"] += [float(i)] * len(names)
        rows["peak"] += traces[onset:, c].max(axis=0).tolist()
        rows["baseline"] += traces[onset, c].tolist()
    fri = A.flash_response_index(traces[:, intens.index(1)], traces[:, intens.index(0)], time_s,
                                 kw.get("t_stim_s", 1.0), dt_s)  # fmt: skip
    known = [A.KNOWN_POLARITY.get(t) for t in names]
    f_rows = {
        "cell_type": names,
        "fri": fri.tolist(),
        "polarity": np.sign(fri).astype(int).tolist(),
        "known_polarity": pa.array(known, pa.int8()),
    }
    return {"summary.parquet": pa.table(rows), "fri.parquet": pa.table(f_rows)}


def _write(cfg, conn, lattice, params, out_dir, kind, tables, extra, traces, record, cond_rows,
           trials, dt_ms, t_pre, t_load, t_sim):  # fmt: skip
    from brainsim.experiments._run import environment
    from brainsim.io import atomic_dir, neurons_table, traces_table, write_json, write_table

    n_cond = traces.shape[1]
    with atomic_dir(out_dir) as tmp:
        for name, table in tables.items():
            write_table(table, tmp / name)
        for name, obj in extra.items():
            write_json(obj, tmp / name)
        tt = traces_table(np.arange(n_cond) // trials, np.arange(n_cond) % trials, dt_ms,
                          conn.ids[record], {"v_mv": traces})  # fmt: skip
        # t_ms from the stimulus onset (0 for a plain run): negative during the grey lead-in
        tt = tt.set_column(tt.column_names.index("t_ms"), "t_ms",
                           pa.array(tt.column("t_ms").to_numpy() - t_pre * 1000.0))  # fmt: skip
        write_table(tt, tmp / "traces.parquet")
        write_table(pa.Table.from_pylist(cond_rows), tmp / "conditions.parquet")
        write_table(neurons_table(conn.neurons, record), tmp / "neurons.parquet")
        write_json(
            {
                "config": cfg.raw,
                "config_path": str(cfg.path) if cfg.path else None,
                "experiment": {"kind": kind, **(cfg.experiment or {})},
                "connectome": conn.summary() | {"provenance": conn.provenance.to_json()},
                "model": {"kind": "graded", "dynamics": "flyvis PPNeuronIGRSynapses (euler, "
                          "relu, tau clamped at dt)"},  # fmt: skip
                "params": params.name,
                "lattice": {"extent": lattice.extent, "n_syn_fill": lattice.n_syn_fill},
                "n_conditions": n_cond,
                "dt_ms": dt_ms,
                "stimulus_onset_ms": t_pre * 1000.0,
                **environment(),
                "wall_time_s": {"load": t_load, "simulate": t_sim},
            },
            tmp / "manifest.json",
        )
        if cfg.plots:
            from brainsim.viz import make_plots

            make_plots(tmp)
