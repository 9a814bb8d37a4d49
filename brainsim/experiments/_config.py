"""The ``brainsim run`` config: TOML, checked in full before anything is simulated.

Schema (every key optional unless marked required)::

    [connectome]
    format = "shiu"            # required: a loader format (brainsim.connectome.FORMATS)
    path = "data/flywire_783"  # required: folder, file, or a "synthetic:..." spec
    cache = true               # keep a parsed copy under ~/.cache/brainsim (or a folder name)
    options = {}               # loader keyword options, e.g. { sign_rule = "per_connection" }
    gap_junctions = true       # use the connectome's electrical synapses (false: leave out)
    [model]
    kind = "lif"               # "lif" (Shiu et al. 2024), "graded" or "pqn"; then its keys:
                               # lif: v_0_mv, v_reset_mv, v_th_mv, tau_m_ms, tau_syn_ms,
                               #   refractory_ms, delay_ms, w_syn_mv, f_poi, w_gap
                               # graded: tau_ms, v_rest_mv, w_syn, w_gap, transfer, integrator
                               # pqn: preset ("class2", "class1") and any PQN field
                               # (bounds: see MAX_MV, MIN_TAU_MS)
    [simulation]
    duration_ms = 1000.0       # required
    trials = 1
    seed = 0                   # any 64-bit integer, each its own input noise
    dt_ms = 0.1
    precision = "float32"      # or "float64"
    kernel = "auto"            # the fastest stepper for the model and synapses, or
                               # "windowed", "dense_window" (every neuron driven), "reference"
    chunk_ms = 100.0
    devices = 1                # or N, or "all": trials split over devices (same results)
    poisson_stream = 2         # the Poisson input's random stream: 2 (geometric gaps), or 1
                               # (one uniform per input and step, brainsim 0.1.0's); both
                               # Bernoulli(rate x dt) per step, other events for one seed
    [[stimulus]]               # kind = "poisson": neurons (selector), rate_hz
                               # kind = "spike_times": path (trial, t_ms, neuron_id)
                               # kind = "current": neurons, amplitude_mv, start_ms, stop_ms
                               # (stop_ms: leave it out for a current on to the end)
    [[perturbation]]           # kind = "silence" (outgoing synapses zeroed) or "remove"
                               # (outgoing and incoming); neurons (selector)
    [record]
    neurons = { ids = [...] }  # v and g traces of these neurons, every step
    [output]
    dir = "results/run"        # relative to the config file; replaced only if brainsim wrote it
    [experiment]               # optional: kind = "activation_sweep", "silencing_screen",
                               # "pairwise_grid" or "perturbation_map" (see _kinds.py)

Every number must be finite (TOML's ``nan`` and ``inf`` are refused wherever they appear:
a result's manifest repeats the config, and JSON holds neither).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path
from typing import Any

from brainsim.experiments._errors import ConfigError
from brainsim.kernels import DEFAULT_STREAM, STREAMS
from brainsim.models import MAX_RUN_STEPS  # the engine's step counters bound a run

_NUM = (int, float)
# Largest magnitude of a voltage-like value in mV: v_0_mv, v_reset_mv, v_th_mv, w_syn_mv,
# an input event's kick f_poi x w_syn_mv, a current's amplitude_mv. 1 kV is thousands of
# times any membrane potential (a larger value is a unit slip); below it float32 still
# resolves 0.06 mV (under 1% of the 7 mV from rest to threshold), and no neuron's summed
# synaptic input (connections of at most 2**31 synapses, the loaders' limit) can overflow.
MAX_MV = 1e6
# Shortest time constant (tau_m_ms, tau_syn_ms): a microsecond, far below any measured one;
# near 1e-308 ms the propagators' exponentials and ratios turn into NaN.
MIN_TAU_MS = 1e-3
# the model's defaults that the bounds combine with (brainsim.models.LIF)
_LIF_DEFAULTS = {"w_syn_mv": 0.275, "f_poi": 250.0}
TOP_KEYS = (
    "connectome",
    "model",
    "simulation",
    "stimulus",
    "perturbation",
    "record",
    "output",
    "experiment",
)


@dataclasses.dataclass
class RunConfig:
    path: Path | None
    raw: dict
    connectome: dict
    model: dict
    simulation: dict
    stimuli: list[dict]
    perturbations: list[dict]
    record: dict | None
    output_dir: Path
    experiment: dict | None = None
    # [output] plots: write the PNGs with the results (``brainsim run --no-plots`` clears it;
    # ``brainsim plot FOLDER`` writes them later from the tables)
    plots: bool = True

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


def read_toml(path: str | Path) -> tuple[dict, Path]:
    """The parsed TOML of a config file; a missing file or bad TOML is a ConfigError."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        return tomllib.loads(path.read_text()), path
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def load_config(path: str | Path) -> RunConfig:
    return parse_config(*read_toml(path))


def parse_config(raw: dict, path: Path | None = None) -> RunConfig:
    where = str(path) if path else "<config>"
    _keys(raw, TOP_KEYS, where)
    conn = _table(raw, "connectome", where, required=True)
    _keys(conn, ("format", "path", "cache", "options", "gap_junctions"), f"{where}: [connectome]")
    _get(conn, "gap_junctions", bool, f"{where}: [connectome]")
    _get(conn, "format", str, f"{where}: [connectome]", required=True)
    _get(conn, "path", str, f"{where}: [connectome]", required=True)
    if "cache" in conn and not isinstance(conn["cache"], bool | str):
        raise ConfigError(f"{where}: [connectome] cache: expected true/false or a folder name")
    if "options" in conn and not isinstance(conn["options"], dict):
        raise ConfigError(f"{where}: [connectome] options: expected a table")

    from brainsim.flyvis._experiment import uses_visual

    visual = uses_visual(raw)
    model = _table(raw, "model", where)
    if visual:
        _check_visual_model(model, f"{where}: [model]")
    else:
        _check_model(model, f"{where}: [model]")
    for k in ("tau_m_ms", "tau_syn_ms", "delay_ms"):
        if k in model and model[k] <= 0:
            raise ConfigError(f"{where}: [model] {k}: must be > 0, got {model[k]}")
    if "refractory_ms" in model and model["refractory_ms"] < 0:
        raise ConfigError(f"{where}: [model] refractory_ms: must be >= 0")
    _check_model_bounds(model, f"{where}: [model]")

    sim = _table(raw, "simulation", where, required=True)
    s = f"{where}: [simulation]"
    _keys(
        sim,
        (
            "duration_ms",
            "trials",
            "seed",
            "dt_ms",
            "precision",
            "kernel",
            "chunk_ms",
            "devices",
            "poisson_stream",
        ),
        s,
    )
    devices = sim.get("devices", 1)
    if not (
        devices == "all"
        or (isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1)
    ):
        raise ConfigError(f'{s} devices: expected a positive integer or "all", got {devices!r}')
    sim = {
        # a flyvis run's stimuli set its length
        "duration_ms": _positive(sim, "duration_ms", s, required=not visual),
        "trials": _get(sim, "trials", int, s, default=1),
        "seed": _get(sim, "seed", int, s, default=0),
        "dt_ms": _positive(sim, "dt_ms", s, default=0.1),
        "precision": _choice(sim, "precision", ("float32", "float64"), s, "float32"),
        "kernel": _choice(
            sim, "kernel", ("auto", "windowed", "dense_window", "reference"), s, "auto"
        ),
        "chunk_ms": _positive(sim, "chunk_ms", s, default=100.0),
        "devices": devices,
        "poisson_stream": _get(sim, "poisson_stream", int, s, default=DEFAULT_STREAM),
    }
    if sim["trials"] < 1:
        raise ConfigError(f"{s} trials: must be >= 1, got {sim['trials']}")
    if sim["poisson_stream"] not in STREAMS:
        raise ConfigError(
            f"{s} poisson_stream: expected one of {STREAMS}, got {sim['poisson_stream']!r}"
        )
    check_seed(sim["seed"], s)
    if sim["duration_ms"] is not None:
        check_steps(sim["duration_ms"], sim["dt_ms"], s)

    stimuli = _array(raw, "stimulus", where)
    for i, st in enumerate(stimuli):
        _check_stimulus(st, f"{where}: [[stimulus]] #{i + 1}")
    perts = _array(raw, "perturbation", where)
    for i, p in enumerate(perts):
        w = f"{where}: [[perturbation]] #{i + 1}"
        _keys(p, ("kind", "neurons"), w)
        _choice(p, "kind", ("silence", "remove"), w, None, required=True)
        _get(p, "neurons", dict, w, required=True)

    record = raw.get("record")
    if record is not None:
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: [record] must be a table")
        _keys(record, ("neurons",), f"{where}: [record]")
        _get(record, "neurons", dict, f"{where}: [record]", required=True)
    experiment = raw.get("experiment")
    if experiment is not None:
        if not isinstance(experiment, dict):
            raise ConfigError(f"{where}: [experiment] must be a table")
        from brainsim.experiments._kinds import check_experiment

        check_experiment(experiment, f"{where}: [experiment]")
    _check_all_finite(raw, where)
    out = _table(raw, "output", where)
    _keys(out, ("dir", "plots"), f"{where}: [output]")
    out_dir = Path(_get(out, "dir", str, f"{where}: [output]", default="results/run"))
    plots = _get(out, "plots", bool, f"{where}: [output]", default=True)
    if not out_dir.is_absolute() and path is not None:
        out_dir = path.parent / out_dir  # relative to the config file, as [connectome] path
    return RunConfig(
        path, raw, conn, model, sim, stimuli, perts, record, out_dir, experiment, plots
    )


def model_class(kind: str):
    from brainsim.models import MODELS

    return MODELS[kind]


def _check_model(model: dict, w: str) -> None:
    """``kind`` (default "lif") and that kind's keys: numbers finite (per-neuron values come
    from the model's constructor checks), choices among their options."""
    from brainsim.models import MODELS

    kind = _choice(model, "kind", tuple(MODELS), w, "lif")
    cls = MODELS[kind]
    _keys(model, ("kind", *cls.config_keys()), f"{w} (kind = {kind!r})")
    for k, v in model.items():
        if k == "kind":
            continue
        if k in cls.choices:
            _choice(model, k, cls.choices[k], w, None)
        elif not _finite(v):
            raise ConfigError(f"{w} {k}: expected a finite number, got {v!r}")


def _check_visual_model(model: dict, w: str) -> None:
    """A flyvis network's [model]: kind "graded" and optionally params (a name or a file)."""
    _keys(model, ("kind", "params"), f"{w} (a flyvis network: flyvis's dynamics)")
    _choice(model, "kind", ("graded",), w, "graded")
    _get(model, "params", str, w)


def _check_stimulus(st: dict, w: str) -> None:
    kinds = ("poisson", "spike_times", "current", "visual")
    kind = _choice(st, "kind", kinds, w, None, required=True)
    if kind == "visual":
        from brainsim.flyvis._experiment import check_stimulus

        check_stimulus(st, w)
    elif kind == "poisson":
        _keys(st, ("kind", "neurons", "rate_hz"), w)
        _get(st, "neurons", dict, w, required=True)
        rate = st.get("rate_hz")
        rates = rate if isinstance(rate, list) else [rate]
        if rate is None or not all(isinstance(r, _NUM) and not isinstance(r, bool) for r in rates):
            raise ConfigError(
                f"{w} rate_hz: expected a rate in Hz (number, or a list of one per trial)"
            )
        if any(not _finite(r) or r < 0 for r in rates):
            raise ConfigError(f"{w} rate_hz: must be finite and >= 0 Hz, got {rate}")
        if any(0 < r < 1e-3 for r in rates) or any(r > 1e4 for r in rates):
            raise ConfigError(
                f"{w} rate_hz: {rate} is not a plausible rate in Hz (give Hz, not kHz or per-ms)"
            )
    elif kind == "spike_times":
        _keys(st, ("kind", "path"), w)
        _get(st, "path", str, w, required=True)
    else:
        _keys(st, ("kind", "neurons", "amplitude_mv", "start_ms", "stop_ms"), w)
        _get(st, "neurons", dict, w, required=True)
        amp = _get(st, "amplitude_mv", _NUM, w, required=True)
        start = _get(st, "start_ms", _NUM, w, default=0.0)
        stop = _get(st, "stop_ms", _NUM, w, default=math.inf)
        if not (_finite(amp) and abs(amp) <= MAX_MV):
            raise ConfigError(
                f"{w} amplitude_mv: expected a finite number of mV, |amplitude_mv| <= "
                f"{MAX_MV:g}, got {amp!r}"
            )
        if not _finite(start):
            raise ConfigError(f"{w} start_ms: expected a finite number, got {start!r}")
        if "stop_ms" in st and not _finite(stop):
            raise ConfigError(
                f"{w} stop_ms: expected a finite number, got {stop!r} (leave stop_ms out for "
                "a current on to the end of the run)"
            )
        if start < 0 or stop <= start:
            raise ConfigError(f"{w}: need 0 <= start_ms < stop_ms, got {start}, {stop}")


def check_seed(seed: int, where: str) -> None:
    """A seed is any 64-bit integer (TOML's range), each giving its own input noise."""
    if not -(2**63) <= seed < 2**63:
        raise ConfigError(f"{where} seed: expected an integer in [-2**63, 2**63), got {seed}")


def check_steps(duration_ms: float, dt_ms: float, where: str) -> None:
    """A run is at most MAX_RUN_STEPS steps (the engine's step counters, see
    ``brainsim.models.MAX_RUN_STEPS``)."""
    if duration_ms / dt_ms > MAX_RUN_STEPS + 0.5:
        raise ConfigError(
            f"{where} duration_ms: {duration_ms:g} ms is {duration_ms / dt_ms:.4g} steps of "
            f"dt_ms = {dt_ms:g}; a run has at most {MAX_RUN_STEPS} steps (split it in several)"
        )


def _finite(v) -> bool:
    """A number (not a bool) that is finite as a float (a huge TOML integer is not)."""
    if isinstance(v, bool) or not isinstance(v, _NUM):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _check_model_bounds(model: dict, w: str) -> None:
    """Magnitudes that leave the float arithmetic meaningful (see MAX_MV, MIN_TAU_MS); for
    the graded and PQN kinds: time constants >= MIN_TAU_MS, other numbers within MAX_MV."""
    if model.get("kind", "lif") != "lif":
        for k, v in model.items():
            if isinstance(v, str):
                continue
            if k.startswith("tau") and v < MIN_TAU_MS:
                raise ConfigError(f"{w} {k}: must be >= {MIN_TAU_MS:g} ms, got {v}")
            if abs(v) > MAX_MV:
                raise ConfigError(f"{w} {k}: |{k}| must be <= {MAX_MV:g}, got {v}")
        return
    for k in ("v_0_mv", "v_reset_mv", "v_th_mv", "w_syn_mv"):
        if k in model and abs(model[k]) > MAX_MV:
            raise ConfigError(f"{w} {k}: |{k}| must be <= {MAX_MV:g} mV, got {model[k]}")
    for k in ("tau_m_ms", "tau_syn_ms"):
        if k in model and model[k] < MIN_TAU_MS:
            raise ConfigError(f"{w} {k}: must be >= {MIN_TAU_MS:g} ms, got {model[k]}")
    if "f_poi" in model:
        kick = model["f_poi"] * model.get("w_syn_mv", _LIF_DEFAULTS["w_syn_mv"])
        if abs(kick) > MAX_MV:
            raise ConfigError(
                f"{w} f_poi: an input event adds f_poi x w_syn_mv = {kick:g} mV; its "
                f"magnitude must be <= {MAX_MV:g} mV"
            )
    elif "w_syn_mv" in model and abs(model["w_syn_mv"] * _LIF_DEFAULTS["f_poi"]) > MAX_MV:
        raise ConfigError(
            f"{w} w_syn_mv: an input event adds f_poi x w_syn_mv = "
            f"{model['w_syn_mv'] * _LIF_DEFAULTS['f_poi']:g} mV (f_poi = "
            f"{_LIF_DEFAULTS['f_poi']:g}); its magnitude must be <= {MAX_MV:g} mV"
        )


def _check_all_finite(raw, where: str) -> None:
    """No ``nan`` or ``inf`` anywhere in a config (what the specific checks did not read:
    loader options, selectors, ...); the error names the table and key."""

    def walk(v, path: str) -> None:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where}: {path}: expected a finite number, got {v!r}")
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")

    for top, v in raw.items():
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"[{top}] {k}")
        elif isinstance(v, list) and all(isinstance(t, dict) for t in v):
            for i, t in enumerate(v):
                for k, x in t.items():
                    walk(x, f"[[{top}]] #{i + 1} {k}")
        else:
            walk(v, top)


def _keys(d: dict, allowed: tuple, where: str) -> None:
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; expected one of {', '.join(allowed)}"
        )


def _table(raw: dict, name: str, where: str, required: bool = False) -> dict:
    if name not in raw:
        if required:
            raise ConfigError(f"{where}: missing section [{name}]")
        return {}
    if not isinstance(raw[name], dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return raw[name]


def _array(raw: dict, name: str, where: str) -> list[dict]:
    v = raw.get(name, [])
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise ConfigError(f"{where}: {name} must be an array of tables ([[{name}]])")
    return v


def _get(d: dict, key: str, types, where: str, *, required=False, default=None) -> Any:
    if key not in d:
        if required:
            raise ConfigError(f"{where}: missing key {key!r}")
        return default
    v = d[key]
    if isinstance(v, bool) and types is not bool or not isinstance(v, types):
        names = getattr(types, "__name__", None) or "/".join(t.__name__ for t in types)
        raise ConfigError(f"{where} {key}: expected {names}, got {v!r}")
    return v


def _positive(d: dict, key: str, where: str, *, required=False, default=None) -> float | None:
    v = _get(d, key, _NUM, where, required=required, default=default)
    if v is None and not required and default is None:
        return None
    if not (_finite(v) and v > 0):
        raise ConfigError(f"{where} {key}: must be a positive number, got {v!r}")
    return float(v)


def _choice(d: dict, key: str, options: tuple, where: str, default, *, required=False):
    v = _get(d, key, str, where, required=required, default=default)
    if v is not None and v not in options:
        raise ConfigError(f"{where} {key}: expected one of {options}, got {v!r}")
    return v
