"""Fittable parameters: groups of values with a trainable leaf and frozen structure.

Each fittable quantity is a :class:`Grouped` Module: one unconstrained value per group of
neurons (``raw``, the only trainable leaf), the group of every neuron (frozen), and the
prior it is regularised toward (frozen). Positive quantities are stored as the log of their
value (``transform="exp"``; ``"softplus"`` is available too), so that they stay positive
whatever the optimiser does, and L2 toward the prior is L2 on log-scales.

:class:`FitParams` holds one optional group per quantity:

| name | transform | prior | acts on |
|---|---|---|---|
| ``w_syn_mv`` | exp | the model's ``w_syn_mv`` | every synapse and input event |
| ``syn_scale`` | exp | 1 | outgoing weights of a presynaptic group (sign kept) |
| ``v_th_mv`` | identity | the model's ``v_th_mv`` | threshold |
| ``tau_m_ms`` | exp | the model's ``tau_m_ms`` | membrane time constant |
| ``bias_mv`` | identity | 0 | a constant drive ``i_ext`` (mV), added to the protocol's currents |

A synaptic scale multiplies ``|count|`` of every outgoing connection of its presynaptic
neurons and keeps the count's sign (Dale's law: the transmitter decides it). A quantity that
is absent (``None``) keeps the base model's value. Trainable names select
the grouping: ``"w_syn_mv"`` (one value), ``"syn_scale_by_type"``, ``"v_th_mv_by_neuron"``,
``"tau_m_ms_by_class"``, ``"bias_mv_by_type"``, ...; the grouping is ``neuron`` (one value
per neuron), ``type`` (= ``cell_type``) or any column of the connectome's neuron table
(``class``, ``super_class``, ``side``, ``transmitter``, ``sign``); no suffix means one
value for all neurons. :func:`partition` splits a :class:`FitParams` into the trainable
``raw`` leaves and everything else, for ``eqx.filter_grad`` and optax.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from brainsim.connectome import Connectome
from brainsim.models import LIF

QUANTITIES = ("w_syn_mv", "syn_scale", "v_th_mv", "tau_m_ms", "bias_mv")
TRANSFORMS = {"w_syn_mv": "exp", "syn_scale": "exp", "v_th_mv": "identity", "tau_m_ms": "exp"}
TRANSFORMS["bias_mv"] = "identity"
GROUPING_ALIASES = {"type": "cell_type"}


def _forward(transform: str, raw):
    if transform == "exp":
        return jnp.exp(raw)
    if transform == "softplus":
        return jax.nn.softplus(raw)
    return raw


def _inverse(transform: str, value: np.ndarray) -> np.ndarray:
    value = np.asarray(value, np.float64)
    if transform in ("exp", "softplus") and np.any(value <= 0):
        raise ValueError(f"a positive quantity needs values > 0, got {value[value <= 0][:3]}")
    if transform == "exp":
        return np.log(value)
    if transform == "softplus":
        return value + np.log(-np.expm1(-value))  # softplus^-1, stable for large values
    return value


class Grouped(eqx.Module):
    """One value per group of neurons.

    Attributes:
        raw: float [groups], unconstrained; ``value = transform(raw)``. The trainable leaf.
        prior_raw: float [groups], the prior in the same unconstrained space (frozen).
        group: int32 [neurons], the group of every neuron (frozen); ``None`` for one value
            shared by all neurons.
        transform: ``"identity"``, ``"exp"`` or ``"softplus"``.
    """

    raw: Float[Array, " groups"]
    prior_raw: Float[Array, " groups"]
    group: Int[Array, " neurons"] | None
    transform: str = eqx.field(static=True, default="identity")

    def values(self) -> Float[Array, " groups"]:
        """The group values in their units."""
        return _forward(self.transform, self.raw)

    def per_neuron(self) -> Float[Array, ...]:
        """Scalar when shared by all neurons, else float [neurons]."""
        v = self.values()
        return v[0] if self.group is None else v[self.group]

    def penalty(self) -> Float[Array, ""]:
        """Sum of squared deviations from the prior, in the unconstrained space (log-scales
        for positive quantities, mV for thresholds and biases)."""
        return jnp.sum((self.raw - self.prior_raw) ** 2)


class FitParams(eqx.Module):
    """The fittable parameters of a network; absent quantities keep the base model's value."""

    w_syn_mv: Grouped | None = None
    syn_scale: Grouped | None = None
    v_th_mv: Grouped | None = None
    tau_m_ms: Grouped | None = None
    bias_mv: Grouped | None = None

    def groups(self) -> dict[str, Grouped]:
        return {q: getattr(self, q) for q in QUANTITIES if getattr(self, q) is not None}

    def model(self, base: LIF) -> LIF:
        """``base`` with the fitted neuron parameters in place (scalars or [neurons])."""
        repl = {}
        for q in ("w_syn_mv", "v_th_mv", "tau_m_ms"):
            p = getattr(self, q)
            if p is not None:
                repl[q] = p.per_neuron()
        return dataclasses.replace(base, **repl) if repl else base

    def weights(self, base: LIF, pre: Int[Array, " E"], counts: Float[Array, " E"]):
        """float [connections]: signed weight (mV of g) of each connection,
        ``(counts x scale[group of pre]) x w_syn[pre]`` (in the order :func:`plain_model`
        and the plain kernels compute it, so that the values are identical). The scales are
        positive, so every connection keeps the sign of its transmitter."""
        model = self.model(base)
        w = jnp.asarray(model.synapse_weight(), counts.dtype)
        w_pre = w if w.ndim == 0 else w[pre]
        if self.syn_scale is not None:
            s = self.syn_scale.per_neuron().astype(counts.dtype)
            counts = counts * (s if s.ndim == 0 else s[pre])
        return counts * w_pre

    def bias(self) -> Float[Array, ...] | None:
        return None if self.bias_mv is None else self.bias_mv.per_neuron()

    def penalty(self) -> Float[Array, ""]:
        return sum((g.penalty() for g in self.groups().values()), 0.0)


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    """Host-side names of a :class:`FitParams`' groups (kept out of the pytree so that jit
    never hashes them). ``labels[q]`` names the groups of quantity ``q``; ``trainable`` lists
    the config names, ``grouping[q]`` the grouping of each."""

    trainable: tuple[str, ...]
    grouping: Mapping[str, str]
    labels: Mapping[str, np.ndarray]


def parse_trainable(name: str) -> tuple[str, str]:
    """``"v_th_mv_by_type"`` -> ``("v_th_mv", "cell_type")``; ``"w_syn_mv"`` -> ``("w_syn_mv",
    "global")``."""
    quantity, _, grouping = name.partition("_by_")
    if quantity not in QUANTITIES:
        raise ValueError(
            f"trainable {name!r}: unknown quantity {quantity!r}; expected one of {QUANTITIES}, "
            "optionally with _by_neuron, _by_type or _by_<neuron table column>"
        )
    if not grouping:
        return quantity, "global"
    return quantity, GROUPING_ALIASES.get(grouping, grouping)


def _groups_of(conn: Connectome, grouping: str) -> tuple[np.ndarray | None, np.ndarray]:
    """(group index [neurons] or None, labels [groups])."""
    n = conn.n_neurons
    if grouping == "global":
        return None, np.array(["all"], dtype=object)
    if grouping == "neuron":
        return np.arange(n, dtype=np.int32), conn.ids.astype(np.int64)
    if grouping not in conn.neurons.column_names:
        raise ValueError(
            f"grouping {grouping!r}: the connectome's neuron table has no such column "
            f"(columns: {', '.join(conn.neurons.column_names)})"
        )
    col = conn.neurons.column(grouping).to_pylist()
    labels, inv = np.unique(
        np.array(["<none>" if x is None else str(x) for x in col]), return_inverse=True
    )
    return inv.astype(np.int32), labels.astype(object)


def _base_value(base: LIF, quantity: str, n: int) -> np.ndarray:
    if quantity == "syn_scale":
        return np.ones(n)
    if quantity == "bias_mv":
        return np.zeros(n)
    return np.broadcast_to(np.asarray(getattr(base, quantity), np.float64), (n,))


def build_params(
    base: LIF,
    conn: Connectome,
    trainable: list[str] | tuple[str, ...],
    *,
    init: Mapping[str, float | Mapping] | None = None,
    dtype=jnp.float32,
) -> tuple[FitParams, ParamInfo]:
    """The :class:`FitParams` with a group for each trainable name, at the prior values
    (``base``'s parameters, scales 1, biases 0) unless ``init`` gives a start.

    Args:
        trainable: names such as ``"w_syn_mv"``, ``"syn_scale_by_type"``,
            ``"v_th_mv_by_neuron"`` (see module docs).
        init: starting values by trainable name: a number for every group, or a mapping of
            group label (cell type, class, or neuron id) to value; groups not named start
            at the prior.
    Raises:
        ValueError: an unknown name, a quantity given twice, an unknown group label or a
            non-positive start for a positive quantity.
    """
    init = dict(init or {})
    unknown = sorted(set(init) - set(trainable))
    if unknown:
        raise ValueError(
            f"init: {unknown[0]!r} is not one of the trainable names {list(trainable)}"
        )
    n = conn.n_neurons
    fields: dict[str, Grouped] = {}
    grouping: dict[str, str] = {}
    labels: dict[str, np.ndarray] = {}
    for name in trainable:
        quantity, how = parse_trainable(name)
        if quantity in fields:
            raise ValueError(
                f"trainable {name!r}: {quantity} is already trainable ({grouping[quantity]})"
            )
        group, lab = _groups_of(conn, how)
        base_n = _base_value(base, quantity, n)
        if group is None:
            prior = np.array([base_n.mean()])
        else:
            sums = np.bincount(group, weights=base_n, minlength=lab.size)
            prior = sums / np.maximum(np.bincount(group, minlength=lab.size), 1)
        start = prior.copy()
        if name in init:
            start = _start_values(name, init[name], lab, start)
        tf = TRANSFORMS[quantity]
        try:
            raw, prior_raw = _inverse(tf, start), _inverse(tf, prior)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
        fields[quantity] = Grouped(
            raw=jnp.asarray(raw, dtype),
            prior_raw=jnp.asarray(prior_raw, dtype),
            group=None if group is None else jnp.asarray(group),
            transform=tf,
        )
        grouping[quantity] = how
        labels[quantity] = lab
    return FitParams(**fields), ParamInfo(tuple(trainable), grouping, labels)


def _start_values(name: str, given, labels: np.ndarray, start: np.ndarray) -> np.ndarray:
    if isinstance(given, Mapping):
        index = {str(lab): i for i, lab in enumerate(labels)}
        for key, val in given.items():
            if str(key) not in index:
                raise ValueError(f"init {name}: no group named {key!r}")
            start[index[str(key)]] = float(val)
        return start
    val = float(given)
    if not math.isfinite(val):
        raise ValueError(f"init {name}: expected a finite number, got {given!r}")
    return np.full_like(start, val)


def plain_model(params: FitParams, base: LIF, net):
    """The fitted model as a plain run takes it: ``(model, network, bias)``.

    ``model`` is ``base`` with the fitted neuron parameters (numpy scalars or [neurons]);
    ``network`` is ``net`` (a :class:`brainsim.sim.Network`) with its signed counts
    multiplied by the synaptic scales, so that ``counts x w_syn`` is the fitted weight;
    ``bias`` is None or float [neurons] of constant drive in mV (a current for
    ``Protocol.build``)."""
    model = params.model(base)
    repl = {
        q: _host(getattr(model, q))
        for q in ("w_syn_mv", "v_th_mv", "tau_m_ms")
        if hasattr(model, q)
    }
    model = dataclasses.replace(model, **repl)
    if params.syn_scale is not None:
        s = params.syn_scale.per_neuron().astype(net.counts.dtype)
        counts = net.counts * (s if s.ndim == 0 else s[_pre_of(net)])
        net = dataclasses.replace(net, counts=counts)
    bias = params.bias()
    if bias is not None:
        bias = np.broadcast_to(np.asarray(bias, np.float64), (net.n_neurons,)).copy()
    return model, net, bias


def _pre_of(net) -> np.ndarray:
    """Presynaptic index of every connection of a Network (with its padding connection)."""
    if net.pre is not None:
        return np.asarray(net.pre)
    indptr = np.asarray(net.indptr, np.int64)
    pre = np.repeat(np.arange(net.n_neurons, dtype=np.int32), np.diff(indptr))
    return np.append(pre, np.zeros(net.counts.shape[0] - pre.size, np.int32))


def _host(x):
    a = np.asarray(x, np.float64)
    return float(a) if a.ndim == 0 else a


def trainable_spec(params: FitParams):
    """The ``filter_spec`` of :func:`eqx.partition`: True at every group's ``raw`` only."""
    spec = jax.tree_util.tree_map(lambda _: False, params)
    groups = list(params.groups().values())
    if not groups:
        return spec
    return eqx.tree_at(
        lambda p: [getattr(p, q).raw for q in QUANTITIES if getattr(p, q) is not None],
        spec,
        replace=[True] * len(groups),
    )


def partition(params: FitParams):
    """``(trainable, frozen)``: ``eqx.combine(trainable, frozen)`` gives ``params`` back."""
    return eqx.partition(params, trainable_spec(params))


def values_by_name(params: FitParams, info: ParamInfo) -> dict:
    """Plain-Python values for ``params.json``: a number for a global quantity, else
    ``{group label: value}``."""
    out = {}
    for name in info.trainable:
        quantity, _ = parse_trainable(name)
        vals = np.asarray(getattr(params, quantity).values(), np.float64)
        if info.grouping[quantity] == "global":
            out[name] = float(vals[0])
        else:
            out[name] = {
                str(lab): float(v) for lab, v in zip(info.labels[quantity], vals, strict=True)
            }
    return out
