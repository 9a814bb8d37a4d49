"""The leaky integrate-and-fire model of Shiu et al. 2024: parameters and update equations.

This is the one place where the neuron equations live:

    dv/dt = (g - (v - v_0) + i_ext) / tau_m        (unless refractory)
    dg/dt = -g / tau_syn                             (unless refractory)

integrated exactly over a step of dt (the equations are linear), with threshold ``v > v_th``,
reset ``v = v_reset, g = 0``, a presynaptic spike adding ``w_syn x signed count`` to g after
the synaptic delay, and an input event (Poisson or replayed) adding ``f_poi x w_syn`` to v.
While a neuron is refractory its v and g are frozen and writes to them are dropped
(Brian2's ``unless refractory``). ``i_ext`` is an external drive in mV (a current times the
membrane resistance); it is zero in the reference model.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from brainsim.models._base import AbstractNeuron, NeuronInput

Scalar = float | ArrayLike


class LIFState(eqx.Module):
    """``u = v - v_0`` (mV), ``g`` (mV) and the steps since the last spike (saturating)."""

    u: Float[Array, "trials neurons"]
    g: Float[Array, "trials neurons"]
    since: Int[Array, "trials neurons"]


class LIFAux(eqx.Module):
    """Per-run constants of :meth:`LIF.advance`."""

    props: tuple
    params: dict
    refractory_steps: Int[Array, " neurons"]
    gap_leak: Float[Array, " neurons"] | None  # 1 + w_gap x junctions of each neuron
    v_0: Float[Array, " neurons"]


class LIF(AbstractNeuron):
    """Shiu et al. 2024 LIF parameters; each is a scalar or a per-neuron array.

    Defaults are the published values. ``delay_ms`` and ``dt_ms`` fix array shapes
    (the delay in steps) and are therefore static Python floats. ``w_gap`` weighs gap
    junctions (dimensionless, per junction: ``tau_m du_i/dt = g_i - u_i + w_gap sum_j n_ij
    (u_j - u_i)``); the default, 10, is g_gap / G_c = 100 pS / 10 pS of the C. elegans model
    of Kunert, Shlizerman and Kutz 2014 (Phys. Rev. E 89:052805, after Varshney et al.
    2011). It only acts on connectomes with an electrical synapse table.


    ``refractory_ms`` longer than the run (any value up to ``inf``, e.g. ``1e9``) means
    what it says: a neuron never fires again after its first spike. Its step count is
    clipped to ``SINCE_MAX``, which the steps-since-spike counter of a neuron that has
    spiked cannot reach within a run (runs are at most ``MAX_RUN_STEPS`` steps long).
    """

    kind: ClassVar[str] = "lif"
    spiking: ClassVar[bool] = True
    inputs: ClassVar[frozenset[str]] = frozenset({"current", "arrivals", "events", "gap"})
    shortcuts: ClassVar[frozenset[str]] = frozenset({"exact_jump", "reach_bound"})
    trace_names: ClassVar[tuple[str, ...]] = ("v_mv", "g_mv")

    v_0_mv: Scalar = -52.0
    v_reset_mv: Scalar = -52.0
    v_th_mv: Scalar = -45.0
    tau_m_ms: Scalar = 20.0
    tau_syn_ms: Scalar = 5.0
    refractory_ms: Scalar = 2.2
    w_syn_mv: Scalar = 0.275
    f_poi: Scalar = 250.0
    w_gap: float = eqx.field(static=True, default=10.0)
    delay_ms: float = eqx.field(static=True, default=1.8)
    dt_ms: float = eqx.field(static=True, default=0.1)

    def __check_init__(self):
        if not self.dt_ms > 0:
            raise ValueError(f"dt_ms must be > 0, got {self.dt_ms}")
        steps = self.delay_ms / self.dt_ms
        if not (self.delay_ms > 0 and abs(steps - round(steps)) < 1e-6):
            raise ValueError(
                f"delay_ms={self.delay_ms} must be a positive whole number of steps of "
                f"dt_ms={self.dt_ms}"
            )
        for name in ("tau_m_ms", "tau_syn_ms"):
            val = getattr(self, name)
            if not isinstance(val, jnp.ndarray | np.ndarray) and not float(val) > 0:
                raise ValueError(f"{name} must be > 0, got {val}")
        ref = self.refractory_ms
        if not isinstance(ref, jnp.ndarray) and not np.all(np.asarray(ref) >= 0):
            raise ValueError(f"refractory_ms must be >= 0, got {ref}")
        if not (np.isfinite(self.w_gap) and self.w_gap >= 0):
            raise ValueError(f"w_gap must be a finite number >= 0, got {self.w_gap}")

    # ------------------------------------------------------------------ the interface
    def prepare(self, n_neurons: int, dtype, *, no_refractory=None, gap_conductance=None):
        """Constants of a run: one-step propagators, parameters in the engine's form
        (voltages from rest, :meth:`step_params`), refractory steps (0 for the
        ``no_refractory`` inputs). ``gap_conductance``: float [n], ``sum_j n_ij`` of each
        neuron's gap junctions (None: none). Gap junctions add ``w_gap n_i`` to the leak,
        which is integrated exactly (so strong coupling stays stable: only the neighbours'
        voltages are held over a step), by the same propagators with ``tau_m / (1 + w_gap
        n_i)`` and g scaled by ``1 / (1 + w_gap n_i)``."""
        steps = self.refractory_steps(n_neurons)
        if isinstance(no_refractory, np.ndarray):  # a host mask: no XLA program to compile
            steps = jax.device_put(np.where(no_refractory, 0, steps).astype(np.int32))
        elif no_refractory is not None:  # a traced one (brainsim.fit)
            steps = jnp.where(jnp.asarray(no_refractory), 0, steps).astype(jnp.int32)
        else:
            steps = jax.device_put(steps)
        v_0 = _host_or_traced(self.v_0_mv, dtype, lambda xp, x: xp.broadcast_to(x, (n_neurons,)))
        if gap_conductance is None:
            return LIFAux(self.propagators(1, dtype), self.step_params(dtype), steps, None, v_0)
        leak = 1.0 + self.w_gap * np.asarray(gap_conductance, np.float64)
        tau_m = np.broadcast_to(np.asarray(self.tau_m_ms, np.float64), (n_neurons,)) / leak
        tau_s = np.broadcast_to(np.asarray(self.tau_syn_ms, np.float64), (n_neurons,))
        k_m, k_s, c = _decrements(np, np.float64(self.dt_ms), tau_m, tau_s)
        props = tuple(jnp.asarray(x, dtype) for x in (k_m, k_s, c / leak))
        return LIFAux(props, self.step_params(dtype), steps, jnp.asarray(leak, dtype), v_0)

    def init_state(self, n_trials: int, n_neurons: int, dtype) -> LIFState:
        """At rest (u = 0), g = 0, never spiked: the reference model's initial condition."""
        u = jnp.zeros((n_trials, n_neurons), dtype)
        return LIFState(u, jnp.zeros_like(u), jnp.full(u.shape, SINCE_MAX, jnp.int32))

    def advance(self, aux: LIFAux, state: LIFState, inputs: NeuronInput, *, spike_fn=None):
        """One step (:meth:`step`; ``spike_fn`` as there); a gap junction drive ``inputs.gap
        = sum_j w_gap n_ij v_j`` (mV) enters with this neuron's own part folded into the
        leak (see :meth:`prepare`)."""
        current = inputs.current
        if aux.gap_leak is not None:
            # held part of w_gap sum_j n_ij (v_j - v_i), in the leak-scaled form
            own = (aux.gap_leak - 1.0) * aux.v_0
            current = (current + inputs.gap - own) / aux.gap_leak
        u, g, since, spiked = self.step(
            state.u,
            state.g,
            state.since,
            aux.refractory_steps,
            inputs.arrivals,
            inputs.events,
            current,
            aux.props,
            **aux.params,
            spike_fn=spike_fn,
        )
        return LIFState(u, g, since), spiked

    def synapse_weight(self):
        return self.w_syn_mv

    def time_constant_ms(self):
        return self.tau_m_ms

    def observe(self, state: LIFState) -> dict:
        v_0 = jnp.asarray(self.v_0_mv, state.u.dtype)
        return {"v_mv": state.u + v_0, "g_mv": state.g}

    def step_params(self, dtype, idx=None, *, deviation: bool = True) -> dict:
        """The keyword parameters of :meth:`step`, cast to ``dtype`` and, with ``idx``,
        gathered at those neuron indices.

        With ``deviation`` (the engine's choice) voltages are measured from rest: ``v_0``
        is 0 and ``v_th``, ``v_reset`` are shifted by ``-v_0``, so the state holds ``u = v -
        v_0``. Near -50 mV a float32 has a resolution of 3.8 uV, near 0 far finer: in
        float32 this keeps threshold crossings where float64 (and Brian2) puts them."""
        names = {
            "v_0": "v_0_mv",
            "v_th": "v_th_mv",
            "v_reset": "v_reset_mv",
            "w_syn": "w_syn_mv",
            "f_poi": "f_poi",
        }
        values = [getattr(self, field) for field in names.values()]
        # concrete values are prepared on the host (the same float arithmetic; eager jnp
        # operations would each compile a small XLA program)
        host = idx is None and not any(isinstance(v, jax.Array) for v in values)
        xp = np if host else jnp
        out = {}
        for k, x in zip(names, values, strict=True):
            x = xp.asarray(x, np.dtype(dtype) if host else dtype)
            out[k] = x if idx is None or x.ndim == 0 else x[idx]
        if deviation:
            out["v_th"] = out["v_th"] - out["v_0"]
            out["v_reset"] = out["v_reset"] - out["v_0"]
            out["v_0"] = xp.zeros_like(out["v_0"])
        return {k: jax.device_put(v) for k, v in out.items()} if host else out

    # ------------------------------------------------------------------ derived constants
    @property
    def delay_steps(self) -> int:
        return int(round(self.delay_ms / self.dt_ms))

    def refractory_steps(self, n_neurons: int) -> np.ndarray:
        """int32 [n_neurons]: steps a neuron stays refractory after its spike step.

        Brian2 counts refractoriness with ``timestep(t - lastspike, dt) >= timestep(ref, dt)``
        where ``timestep(x, dt) = int64((x + 1e-3 dt) / dt)`` (a floor with a small
        tolerance); so does this: 2.2 ms is 22 steps of 0.1 ms, 2.26 ms also 22. Longer
        periods than ``SINCE_MAX`` steps are ``SINCE_MAX``: never free again in a run (and
        no int32 overflow: 1e9 ms would wrap to a negative count, never refractory).
        """
        ref = np.broadcast_to(np.asarray(self.refractory_ms, dtype=np.float64), (n_neurons,))
        steps = np.floor((ref + 1e-3 * self.dt_ms) / self.dt_ms)
        return np.minimum(steps, SINCE_MAX).astype(np.int32)

    def propagators(self, n_steps=1, dtype=jnp.float32, idx=None):
        """Decrements ``(k_m, k_s, c)`` of the exact solution over ``n_steps`` steps without
        input or refractoriness, for ``u = v - v_0``::

            u' = u - u k_m + g c        g' = g - g k_s

        with ``k = -expm1(-t / tau)`` and ``c = tau_syn / (tau_syn - tau_m) (exp(-t/tau_syn)
        - exp(-t/tau_m))`` written through ``expm1`` (no cancellation). The increment form
        and these constants keep float32 runs close to float64 ones (Brian2 agreement):
        ``exp(-dt/tau_m)`` rounded to float32 would bias every neuron towards rest.
        Constants are computed in float64 on the host when the time constants and
        ``n_steps`` are concrete; ``n_steps`` may be an array (one lag per element); with
        ``idx``, per-neuron time constants are taken at those neuron indices.
        """
        concrete = not any(
            isinstance(x, jax.core.Tracer) for x in (n_steps, self.tau_m_ms, self.tau_syn_ms)
        )
        xp = np if concrete else jnp
        work = np.float64 if concrete else dtype
        t = self.dt_ms * xp.asarray(n_steps, work)
        tau_m = xp.asarray(self.tau_m_ms, work)
        tau_s = xp.asarray(self.tau_syn_ms, work)
        if idx is not None and concrete:
            idx = np.asarray(idx) if not isinstance(idx, jax.Array) else idx
        tau_m, tau_s = _at(tau_m, idx), _at(tau_s, idx)
        if isinstance(tau_m, jax.Array) or isinstance(tau_s, jax.Array) or isinstance(t, jax.Array):
            xp, tau_m, tau_s, t = jnp, jnp.asarray(tau_m), jnp.asarray(tau_s), jnp.asarray(t)
        out = _decrements(xp, t, tau_m, tau_s)
        if xp is np:  # rounded on the host (XLA's conversion would compile a program each)
            return tuple(jax.device_put(np.asarray(x, np.dtype(dtype))) for x in out)
        return tuple(jnp.asarray(x, dtype) for x in out)

    def propagator_table(self, n_steps: np.ndarray, dtype) -> np.ndarray:
        """numpy [len(n_steps), 3]: :meth:`propagators` ``(k_m, k_s, c)`` for each entry of
        ``n_steps``, computed in float64 and rounded to ``dtype``; for time constants shared
        by every neuron (concrete scalars), so usable while tracing as a constant table."""
        taus = [np.asarray(x, np.float64) for x in (self.tau_m_ms, self.tau_syn_ms)]
        if any(x.ndim for x in taus):
            raise ValueError("propagator_table needs scalar time constants")
        t = self.dt_ms * np.asarray(n_steps, np.float64)
        return np.stack(_decrements(np, t, *taus), axis=1).astype(dtype)

    def psp_peak_factor(self) -> float:
        """Largest value over t >= 0 of u(t) per unit of g(0) when u(0) = 0: the peak of the
        kernel c(t), taken over every neuron's (tau_m, tau_syn). It bounds how far a quiet
        neuron's voltage can still rise."""
        tm, ts = np.broadcast_arrays(
            np.asarray(self.tau_m_ms, np.float64), np.asarray(self.tau_syn_ms, np.float64)
        )
        tm, ts = tm.ravel(), ts.ravel()
        same = np.abs(tm - ts) < 1e-9 * tm
        ts_safe = np.where(same, ts * 0.5, ts)
        t_star = np.log(tm / ts_safe) * tm * ts_safe / (tm - ts_safe)
        peak = ts_safe / (ts_safe - tm) * (np.exp(-t_star / ts_safe) - np.exp(-t_star / tm))
        return float(np.max(np.where(same, np.exp(-1.0), peak)))

    # ------------------------------------------------------------------ the step
    def integrate(
        self,
        v: Float[Array, ...],
        g: Float[Array, ...],
        i_ext_mv: Float[Array, ...] | float,
        integrating: Bool[Array, ...],
        props,
        v_0=None,
    ):
        """Advance (v, g) by one step where ``integrating`` (not refractory); else freeze.
        ``props`` are :meth:`propagators` (one step)."""
        k_m, k_s, c = props
        v_0 = self.v_0_mv if v_0 is None else v_0
        v_new = v + (g * c - (v - v_0 - i_ext_mv) * k_m)
        g_new = g - g * k_s
        return jnp.where(integrating, v_new, v), jnp.where(integrating, g_new, g)

    def step(
        self,
        v: Float[Array, ...],
        g: Float[Array, ...],
        since: Int[Array, ...],
        refractory_steps: Int[Array, ...],
        syn_in_mv: Float[Array, ...],
        input_events: Float[Array, ...],
        i_ext_mv: Float[Array, ...] | float,
        props,
        *,
        v_0=None,
        v_th=None,
        v_reset=None,
        w_syn=None,
        f_poi=None,
        spike_fn=None,
    ):
        """One dt in Brian2's default order: integrate, threshold, synaptic arrivals and
        input events, reset.

        Args:
            since: steps since the neuron's last spike at the start of this step
                (saturating; large when it never spiked).
            syn_in_mv: synaptic arrivals due at this step, already in mV of g.
            input_events: number of input events (Poisson or replayed) due at this step;
                each adds ``f_poi x w_syn`` to v.
            spike_fn: None for the plain threshold; or a function of ``v - v_th`` returning
                0.0/1.0 in the forward pass with a surrogate derivative (``brainsim.fit``).
                Then ``spiked`` is that float, and the reset is written arithmetically
                (``v (1 - s) + v_reset s``) so gradients flow through it; the forward
                values are identical to the plain step.
        Returns:
            ``(v, g, since_next, spiked)``.
        """
        v_0 = self.v_0_mv if v_0 is None else v_0
        v_th = self.v_th_mv if v_th is None else v_th
        v_reset = self.v_reset_mv if v_reset is None else v_reset
        w_syn = self.w_syn_mv if w_syn is None else w_syn
        f_poi = self.f_poi if f_poi is None else f_poi
        free = since >= refractory_steps
        v, g = self.integrate(v, g, i_ext_mv, free, props, v_0=v_0)
        if spike_fn is None:
            spiked = free & (v > v_th)
        else:
            s = spike_fn(v - v_th) * free.astype(v.dtype)
            spiked = s > 0
        free = free & ~spiked  # refractory from the spike on: this step's writes are lost
        g = jnp.where(free, g + syn_in_mv, g)
        v = jnp.where(free, v + input_events * (f_poi * w_syn), v)
        since = jnp.where(spiked, 1, jnp.minimum(since + 1, SINCE_MAX))
        if spike_fn is None:
            v = jnp.where(spiked, v_reset, v)
            g = jnp.where(spiked, jnp.zeros_like(g), g)
            return v, g, since, spiked
        return v * (1 - s) + v_reset * s, g * (1 - s), since, s


# saturation value of the steps-since-last-spike counter (never refractory beyond this)
SINCE_MAX = 2**30
# the longest run in steps: a neuron that spiked never counts up to SINCE_MAX within it,
# and the steppers' int32 step sums (SINCE_MAX + a run's steps) stay below 2**31
MAX_RUN_STEPS = SINCE_MAX // 2


def _decrements(xp, t, tau_m, tau_s):
    """``(k_m, k_s, c)`` over a time ``t`` (see :meth:`LIF.propagators`), in ``xp``."""
    k_m = -xp.expm1(-t / tau_m)
    k_s = -xp.expm1(-t / tau_s)
    same = xp.abs(tau_m - tau_s) < 1e-9 * tau_m
    rate = xp.where(same, 1.0, 1.0 / tau_s - 1.0 / tau_m)
    ratio = xp.where(same, 1.0, tau_s / (tau_s - tau_m))
    c_diff = ratio * xp.exp(-t / tau_m) * xp.expm1(-t * rate)
    c_same = (t / tau_m) * xp.exp(-t / tau_m)  # limit tau_syn -> tau_m
    return k_m, k_s, xp.where(same, c_same, c_diff)


def _host_or_traced(x, dtype, f):
    """``f(xp, x)`` of a parameter in ``dtype``: with numpy on the host when ``x`` is a
    concrete value (then transferred), else with jax.numpy."""
    if isinstance(x, jax.Array):
        return f(jnp, jnp.asarray(x, dtype))
    return jax.device_put(np.ascontiguousarray(f(np, np.asarray(x, np.dtype(dtype)))))


def _at(x, idx):
    return x if idx is None or x.ndim == 0 else x[idx]
