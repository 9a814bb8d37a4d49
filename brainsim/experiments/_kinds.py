"""Experiment kinds: each turns an ``[experiment]`` table into conditions and a summary.

A *condition* is one setting of the drive and perturbations; every condition is simulated
for ``[simulation] trials`` trials, and conditions run together as one batch of trials
(trials are an array axis of one compiled program), split only where memory requires.

Kinds and their keys (selectors as in ``brainsim.experiments._selectors``):

``activation_sweep``
    ``drive`` (selector), ``rates_hz`` (list), ``readout`` (selector, optional).
    One condition per rate. Summary: readout rate per drive rate.
``silencing_screen``
    ``drive``, ``rate_hz``, ``readout`` (required), and the neurons to silence one at a
    time: ``candidates`` (selector) or ``top_k`` (the K strongest responders, not driven
    and not readouts, of ``from_result`` = a previous results folder, or of this job's own
    control condition), ``required_fraction`` (default 0.8, the paper's criterion: a
    neuron is required when the readout falls to 80% of control or less).
``pairwise_grid``
    ``drive_a``, ``rates_a_hz``, ``drive_b``, ``rates_b_hz``, ``readout``. One condition per
    pair of rates.
``perturbation_map``
    ``drive`` (each of its neurons in turn) or ``groups`` (a list of selectors, each driven
    as a whole), ``responders`` (selector, optional: restrict the reported responders), and
    the drive: ``rate_hz`` (Poisson input, spiking models) or an optogenetic-like current
    step, ``amplitude_mv`` with ``start_ms`` (default 0), ``stop_ms`` (default: the end of
    the run) and ``window_ms`` (default: from onset to the end of the run; any model, and
    the only drive a graded model takes). A baseline condition without drive comes first.
    Summary: each driven neuron or group x each responding neuron: for a spiking model its
    rate and change from baseline; for a graded model ``response`` (mV), the signed peak
    change of the responder's voltage from the baseline condition's within ``window_ms``
    after onset (trials averaged first; see :mod:`brainsim.experiments._graded_map`), and
    ``peak_ms`` (its time after onset): an effective connectivity matrix as a table.
``parameter_sweep``
    ``parameter`` (a numeric ``[model]`` key of the model's kind, e.g. ``w_syn_mv``),
    ``values`` (list), ``readout`` (selector, optional), ``high_rate_hz`` (default 100: the
    rate above which a neuron counts as runaway). One condition per value, each a run of
    the config's stimuli with that value (every value sees the same input noise: common
    random numbers, so differences are the parameter's). Summary per value: neurons active
    (fired at least once), their fraction, mean rate over all neurons and over the active
    ones, the highest rate, neurons above ``high_rate_hz`` and the readout's mean rate:
    what calibrating a model on a new connectome looks at (docs/CALIBRATION.md).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from brainsim.connectome import Connectome
from brainsim.experiments._errors import ConfigError

KINDS = (
    "activation_sweep",
    "silencing_screen",
    "pairwise_grid",
    "perturbation_map",
    "parameter_sweep",
)
_KEYS = {
    "activation_sweep": ("drive", "rates_hz", "readout"),
    "silencing_screen": (
        "drive",
        "rate_hz",
        "readout",
        "candidates",
        "top_k",
        "from_result",
        "required_fraction",
    ),
    "pairwise_grid": ("drive_a", "rates_a_hz", "drive_b", "rates_b_hz", "readout"),
    "perturbation_map": (
        "drive",
        "groups",
        "rate_hz",
        "responders",
        "amplitude_mv",
        "start_ms",
        "stop_ms",
        "window_ms",
    ),
    "parameter_sweep": ("parameter", "values", "readout", "high_rate_hz"),
}
_COMMON = ("kind", "max_batch_trials")


@dataclasses.dataclass
class Condition:
    """One setting: Poisson drives (neuron indices, rate in Hz), current steps (neuron
    indices, amplitude in mV; their timing is the experiment's) and silenced neurons."""

    label: str
    columns: dict
    poisson: list = dataclasses.field(default_factory=list)
    current: list = dataclasses.field(default_factory=list)  # (indices, amplitude_mv)
    silence: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))


def check_experiment(exp: dict, where: str) -> None:
    """Validate an ``[experiment]`` table's keys and value types (before any loading)."""
    from brainsim.flyvis._experiment import VISUAL_KINDS
    from brainsim.flyvis._experiment import check_experiment as check_visual

    kind = exp.get("kind")
    if kind in VISUAL_KINDS:
        return check_visual(exp, where)
    if kind not in KINDS + VISUAL_KINDS:
        raise ConfigError(f"{where} kind: expected one of {KINDS + VISUAL_KINDS}, got {kind!r}")
    allowed = _COMMON + _KEYS[kind]
    for k in exp:
        if k not in allowed:
            expected = ", ".join(allowed)
            raise ConfigError(
                f"{where}: unknown key {k!r} for kind {kind!r}; expected one of {expected}"
            )

    def need(key):
        if key not in exp:
            raise ConfigError(f"{where}: kind {kind!r} needs key {key!r}")
        return exp[key]

    def rate_list(key):
        v = need(key)
        if not isinstance(v, list) or not v or not all(_is_rate(r) for r in v):
            raise ConfigError(f"{where} {key}: expected a non-empty list of rates in Hz (0-10000)")

    def rate(key):
        if not _is_rate(need(key)):
            raise ConfigError(f"{where} {key}: expected a rate in Hz (0-10000), got {exp[key]!r}")

    def selector(key, required=True):
        if key in exp or required:
            if not isinstance(need(key), dict):
                raise ConfigError(
                    f"{where} {key}: expected a neuron selector table, e.g. {{ ids = [...] }}"
                )

    if "max_batch_trials" in exp and (
        not isinstance(exp["max_batch_trials"], int) or exp["max_batch_trials"] < 1
    ):
        raise ConfigError(f"{where} max_batch_trials: expected a positive integer")
    if kind == "activation_sweep":
        selector("drive")
        rate_list("rates_hz")
        selector("readout", required=False)
    elif kind == "silencing_screen":
        selector("drive")
        rate("rate_hz")
        selector("readout")
        if ("candidates" in exp) == ("top_k" in exp):
            raise ConfigError(f"{where}: give exactly one of 'candidates' (selector) or 'top_k'")
        selector("candidates", required=False)
        if "top_k" in exp and (not isinstance(exp["top_k"], int) or exp["top_k"] < 1):
            raise ConfigError(f"{where} top_k: expected a positive integer")
        if "from_result" in exp and not isinstance(exp["from_result"], str):
            raise ConfigError(f"{where} from_result: expected a results folder path")
        frac = exp.get("required_fraction", 0.8)
        if not isinstance(frac, int | float) or not 0 < frac < 1:
            raise ConfigError(f"{where} required_fraction: expected a number in (0, 1)")
    elif kind == "parameter_sweep":
        if not isinstance(need("parameter"), str):
            raise ConfigError(f"{where} parameter: expected a [model] key, e.g. \"w_syn_mv\"")
        vals = need("values")
        if not (
            isinstance(vals, list)
            and vals
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals)
            and all(math.isfinite(v) for v in vals)
        ):
            raise ConfigError(f"{where} values: expected a non-empty list of finite numbers")
        if len(set(vals)) != len(vals):
            raise ConfigError(f"{where} values: a value is listed twice")
        high = exp.get("high_rate_hz", 100.0)
        if not _is_rate(high) or high <= 0:
            raise ConfigError(f"{where} high_rate_hz: expected a rate in Hz > 0")
        selector("readout", required=False)
    elif kind == "pairwise_grid":
        for key in ("drive_a", "drive_b", "readout"):
            selector(key)
        rate_list("rates_a_hz")
        rate_list("rates_b_hz")
    else:
        if ("drive" in exp) == ("groups" in exp):
            raise ConfigError(f"{where}: give exactly one of 'drive' (selector) or 'groups' (list)")
        selector("drive", required=False)
        if "groups" in exp and (
            not isinstance(exp["groups"], list)
            or not all(isinstance(g, dict) for g in exp["groups"])
        ):
            raise ConfigError(f"{where} groups: expected a list of neuron selector tables")
        if ("rate_hz" in exp) == ("amplitude_mv" in exp):
            raise ConfigError(
                f"{where}: give exactly one drive: 'rate_hz' (Poisson input) or "
                "'amplitude_mv' (a current step)"
            )
        if "rate_hz" in exp:
            rate("rate_hz")
            for k in ("start_ms", "stop_ms", "window_ms"):
                if k in exp:
                    raise ConfigError(f"{where} {k}: goes with 'amplitude_mv' (a current step)")
        else:
            check_step(exp, where)
        selector("responders", required=False)


def check_step(exp: dict, where: str) -> None:
    """A current step's keys: a finite nonzero amplitude, 0 <= start < stop, window > 0."""

    def number(key):
        v = exp[key]
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise ConfigError(f"{where} {key}: expected a finite number, got {v!r}")
        return float(v)

    if number("amplitude_mv") == 0 or abs(exp["amplitude_mv"]) > 1000:
        raise ConfigError(f"{where} amplitude_mv: expected a nonzero amplitude of at most 1 kV")
    start = number("start_ms") if "start_ms" in exp else 0.0
    if start < 0:
        raise ConfigError(f"{where} start_ms: expected a time >= 0, got {start:g}")
    if "stop_ms" in exp and number("stop_ms") <= start:
        raise ConfigError(f"{where} stop_ms: must be after start_ms ({start:g} ms)")
    if "window_ms" in exp and number("window_ms") <= 0:
        raise ConfigError(f"{where} window_ms: expected a duration > 0")


def _is_rate(r) -> bool:
    return (
        isinstance(r, int | float)
        and not isinstance(r, bool)
        and 0 <= r <= 1e4  # (before isfinite: a huge integer cannot be a float)
        and math.isfinite(r)
    )


@dataclasses.dataclass
class Plan:
    """Resolved experiment: conditions plus what the summary needs."""

    kind: str
    conditions: list[Condition]
    readout: np.ndarray
    info: dict
    deferred_top_k: int | None = None  # silencing screen from this job's own control


def plan(exp: dict, conn: Connectome, sel) -> Plan:
    """Resolve selectors and list the conditions. ``sel(selector, key)`` resolves one."""
    kind = exp["kind"]
    readout = sel(exp["readout"], "readout") if "readout" in exp else np.zeros(0, np.int32)
    info: dict = {}
    if kind == "activation_sweep":
        drive = sel(exp["drive"], "drive")
        conds = [
            Condition(f"{r:g} Hz", {"rate_hz": float(r)}, poisson=[(drive, float(r))])
            for r in exp["rates_hz"]
        ]
        return Plan(kind, conds, readout, info)
    if kind == "parameter_sweep":
        name = exp["parameter"]
        conds = [
            Condition(f"{name} = {v:g}", {"parameter": name, "value": float(v)})
            for v in exp["values"]
        ]
        info["high_rate_hz"] = float(exp.get("high_rate_hz", 100.0))
        return Plan(kind, conds, readout, info)
    if kind == "pairwise_grid":
        a, b = sel(exp["drive_a"], "drive_a"), sel(exp["drive_b"], "drive_b")
        info["drive_a_label"] = _selector_label(exp["drive_a"])
        info["drive_b_label"] = _selector_label(exp["drive_b"])
        conds = [
            Condition(
                f"A {ra:g} Hz, B {rb:g} Hz",
                {"rate_a_hz": float(ra), "rate_b_hz": float(rb)},
                poisson=[(a, float(ra)), (b, float(rb))],
            )
            for ra in exp["rates_a_hz"]
            for rb in exp["rates_b_hz"]
        ]
        return Plan(kind, conds, readout, info)
    if kind == "silencing_screen":
        drive = sel(exp["drive"], "drive")
        rate = float(exp["rate_hz"])
        info["required_fraction"] = float(exp.get("required_fraction", 0.8))
        control = Condition(
            "control", {"silenced_id": -1, "is_control": True}, poisson=[(drive, rate)]
        )
        if "candidates" in exp:
            cands = sel(exp["candidates"], "candidates")
        elif "from_result" in exp:
            cands = top_responders_from(
                Path(exp["from_result"]), conn, exp["top_k"], np.union1d(drive, readout)
            )
        else:
            return Plan(kind, [control], readout, info, deferred_top_k=exp["top_k"])
        return Plan(kind, [control, *silence_conditions(conn, cands, drive, rate)], readout, info)
    # perturbation_map
    step = "amplitude_mv" in exp
    if step:
        info["step"] = {
            "amplitude_mv": float(exp["amplitude_mv"]),
            "start_ms": float(exp.get("start_ms", 0.0)),
            # None: to the end of the run
            "stop_ms": float(exp["stop_ms"]) if "stop_ms" in exp else None,
            "window_ms": float(exp["window_ms"]) if "window_ms" in exp else None,
        }
    else:
        rate = float(exp["rate_hz"])
    if "groups" in exp:
        groups = [(_selector_label(g), sel(g, f"groups[{i}]")) for i, g in enumerate(exp["groups"])]
    else:
        ids = conn.ids
        groups = [(str(ids[i]), np.array([i], np.int32)) for i in sel(exp["drive"], "drive")]
    conds = [Condition("baseline", {"driven_label": "baseline", "driven_id": -1})]
    for label, idx in groups:
        first = int(conn.ids[idx[0]]) if idx.size == 1 else -1
        columns = {"driven_label": label, "driven_id": first}
        if step:
            amp = info["step"]["amplitude_mv"]
            conds.append(Condition(label, columns, current=[(idx, amp)]))
        else:
            conds.append(Condition(label, columns, poisson=[(idx, rate)]))
    if "responders" in exp:
        info["responders"] = sel(exp["responders"], "responders")
    return Plan(kind, conds, readout, info)


def silence_conditions(conn: Connectome, cands: np.ndarray, drive, rate: float) -> list[Condition]:
    ids = conn.ids
    return [
        Condition(
            f"silence {ids[i]}",
            {"silenced_id": int(ids[i]), "is_control": False},
            poisson=[(drive, rate)],
            silence=np.array([i], np.int32),
        )
        for i in cands
    ]


def top_responders(rates: dict[int, float], k: int, exclude: np.ndarray) -> np.ndarray:
    """Indices of the k highest rates (ties broken by index), excluding some neurons."""
    items = [(-r, i) for i, r in rates.items() if r > 0 and i not in set(exclude.tolist())]
    return np.array([i for _, i in sorted(items)[:k]], np.int32)


def top_responders_from(folder: Path, conn: Connectome, k: int, exclude: np.ndarray) -> np.ndarray:
    path = folder / "rates.parquet"
    if not path.exists():
        raise ConfigError(f"from_result: {path} does not exist (run that experiment first)")
    t = _columns(pq.read_table(path), "neuron_id", "rate_hz")
    # each neuron's highest rate over the conditions
    best_ids, where = np.unique(t["neuron_id"], return_inverse=True)
    best = np.full(best_ids.size, -np.inf)
    np.maximum.at(best, where, t["rate_hz"])
    known = np.isin(best_ids, conn.ids)
    if not known.all():
        raise ConfigError(f"from_result: {path} names neurons not in this connectome")
    idx = conn.index_of(best_ids)
    return top_responders(dict(zip(idx.tolist(), best.tolist(), strict=True)), k, exclude)


def _columns(table: pa.Table, *names: str) -> dict[str, np.ndarray]:
    """Columns of a table as numpy arrays (no pandas: it is not a dependency)."""
    return {n: table.column(n).to_numpy() for n in names}


def _selector_label(selector: dict) -> str:
    for key in ("set", "cell_type", "class", "super_class", "side"):
        if key in selector:
            v = selector[key]
            return v if isinstance(v, str) else "+".join(v)
    if "ids" in selector:
        ids = selector["ids"]
        return str(ids[0]) if len(ids) == 1 else f"{len(ids)} neurons"
    return "selection"


def summarize(p: Plan, rates: pa.Table, conn: Connectome) -> pa.Table | None:
    """The per-condition summary table of a kind (see the module docstring)."""
    df = _columns(rates, "condition", "neuron_id", "rate_hz", "rate_hz_std", "rate_hz_sem")
    ids = conn.ids
    readout_ids = ids[p.readout]

    def readout_stats(c: int):
        sub = (df["condition"] == c) & np.isin(df["neuron_id"], readout_ids)
        n = max(len(readout_ids), 1)
        # neurons that never fired are absent from rates: they count as 0 Hz
        mean = float(df["rate_hz"][sub].sum()) / n
        sem = math.sqrt(float((df["rate_hz_sem"][sub] ** 2).sum())) / n
        return mean, sem

    def rates_of(c: int) -> dict[int, float]:
        """neuron id -> rate in condition c (neurons that fired)"""
        sub = df["condition"] == c
        return dict(zip(df["neuron_id"][sub].tolist(), df["rate_hz"][sub].tolist(), strict=True))

    if p.kind == "activation_sweep":
        # row of each (condition, neuron id), the first where one repeats
        row_of: dict[tuple[int, int], int] = {}
        keys = zip(df["condition"].tolist(), df["neuron_id"].tolist(), strict=True)
        for i, key in enumerate(keys):
            row_of.setdefault(key, i)
        rows = []
        for c, cond in enumerate(p.conditions):
            for nid in readout_ids:
                r = row_of.get((c, int(nid)))
                rows.append(
                    {
                        "condition": c,
                        "rate_hz": cond.columns["rate_hz"],
                        "neuron_id": int(nid),
                        **{
                            f"readout_{col}": float(df[col][r]) if r is not None else 0.0
                            for col in ("rate_hz", "rate_hz_std", "rate_hz_sem")
                        },
                    }
                )
        return _table(
            rows,
            [
                "condition",
                "rate_hz",
                "neuron_id",
                "readout_rate_hz",
                "readout_rate_hz_std",
                "readout_rate_hz_sem",
            ],
        )
    if p.kind == "parameter_sweep":
        n = max(conn.n_neurons, 1)
        high = p.info["high_rate_hz"]
        rows = []
        for c, cond in enumerate(p.conditions):
            r = np.array(list(rates_of(c).values()), float)
            mean, sem = readout_stats(c)
            rows.append(
                {
                    "condition": c,
                    "parameter": cond.columns["parameter"],
                    "value": cond.columns["value"],
                    "n_active": int(r.size),
                    "fraction_active": r.size / n,
                    "mean_rate_hz": float(r.sum()) / n,
                    "mean_active_rate_hz": float(r.mean()) if r.size else 0.0,
                    "max_rate_hz": float(r.max()) if r.size else 0.0,
                    "n_above_high_rate": int((r > high).sum()),
                    "readout_rate_hz": mean if p.readout.size else float("nan"),
                    "readout_rate_hz_sem": sem if p.readout.size else float("nan"),
                }
            )
        return _table(rows, list(rows[0]))
    if p.kind == "pairwise_grid":
        rows = []
        for c, cond in enumerate(p.conditions):
            mean, sem = readout_stats(c)
            rows.append(
                {
                    "condition": c,
                    **cond.columns,
                    "readout_rate_hz": mean,
                    "readout_rate_hz_sem": sem,
                }
            )
        return _table(
            rows, ["condition", "rate_a_hz", "rate_b_hz", "readout_rate_hz", "readout_rate_hz_sem"]
        )
    if p.kind == "silencing_screen":
        control, _ = readout_stats(0)
        frac_needed = p.info["required_fraction"]
        rows = []
        for c, cond in enumerate(p.conditions):
            if c == 0:
                continue
            mean, sem = readout_stats(c)
            frac = mean / control if control > 0 else float("nan")
            rows.append(
                {
                    "condition": c,
                    "silenced_id": cond.columns["silenced_id"],
                    "readout_rate_hz": mean,
                    "readout_rate_hz_sem": sem,
                    "control_rate_hz": control,
                    "fraction_of_control": frac,
                    "required": bool(control > 0 and frac <= frac_needed),
                }
            )
        return _table(
            rows,
            [
                "condition",
                "silenced_id",
                "readout_rate_hz",
                "readout_rate_hz_sem",
                "control_rate_hz",
                "fraction_of_control",
                "required",
            ],
        )
    # perturbation_map
    base = rates_of(0)
    keep = None if "responders" not in p.info else set(ids[p.info["responders"]].tolist())
    rows = []
    for c, cond in enumerate(p.conditions):
        if c == 0:
            continue
        sub = rates_of(c)
        responders = sorted(set(sub) | set(base))
        for nid in responders:
            if keep is not None and nid not in keep:
                continue
            r, b0 = float(sub.get(nid, 0.0)), float(base.get(nid, 0.0))
            rows.append(
                {
                    "driven_label": cond.columns["driven_label"],
                    "driven_id": cond.columns["driven_id"],
                    "neuron_id": int(nid),
                    "rate_hz": r,
                    "baseline_rate_hz": b0,
                    "delta_hz": r - b0,
                }
            )
    return _table(
        rows, ["driven_label", "driven_id", "neuron_id", "rate_hz", "baseline_rate_hz", "delta_hz"]
    )


def _table(rows: list[dict], columns: list[str]) -> pa.Table:
    if not rows:
        # no rows, no types: null columns
        return pa.table({c: pa.nulls(0) for c in columns})
    return pa.Table.from_pylist(rows).select(columns)
