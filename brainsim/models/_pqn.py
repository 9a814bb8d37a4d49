"""The piecewise quadratic neuron (PQN), two-variable form (Nanami and Kohno, Front.
Neurosci. 16:1069133, 2023)::

    dv/dt = (phi / tau) (f(v) - n + I0 + k I)        dn/dt = (g(v) - n) / tau

    f(v) = a_fn (v - b_fn)^2 + c_fn  (v < 0)      a_fp (v - b_fp)^2 + c_fp  (v >= 0)
    g(v) = a_gn (v - b_gn)^2 + c_gn  (v < r_g)    a_gp (v - b_gp)^2 + c_gp  (v >= r_g)

with ``b_fp, c_fp, b_gp, c_gp`` fixed by the others so that f and g are continuous with a
continuous slope at their break points. v and n are dimensionless; time is in ms here
(``tau_ms``). PQN has no reset: a spike is v crossing ``v_spike`` (0) upward (``v <
v_spike`` before the step, ``v > v_spike`` after it), as the
authors' hardware flags it, and the recovery variable n brings v back.

Parameter sets (``PQN.preset(name)``):

- ``"class2"``: the two-variable set of the authors' reference code (T. Nanami,
  github.com/tnanami/PQN_py, ``src/model.py`` mode ``Class2``, commit d8209ca, I0 = -16;
  tau = 6.4 ms, Euler dt = 0.1 ms). Class 2 excitability: rest loses stability at a Hopf
  bifurcation, and the f-I curve jumps from 0 to a nonzero rate (about 23 Hz at I = 2.5).
- ``"class1"``: a class 1 set transcribed from a third-party implementation that follows
  the paper's equations (Tiny Tapeout ttihp25b project 130, "PQN Model with Verilog"; not
  from the paper's own table): the f-I curve starts continuously from 0 Hz (a saddle-node
  on an invariant circle).

Synaptic input: a spike sends ``w_syn`` per synapse (signed count) to the targets' synaptic
drive ``s`` after ``delay_ms``; ``s`` decays with ``tau_syn_ms`` and adds to the stimulus
``I``; an input event (Poisson or replayed) adds ``f_poi x w_syn`` to ``s``. These network
parameters are brainsim's, not published with PQN. The integrator is explicit Euler, as
the authors' code (``dt_ms`` should stay near their 0.1 ms: v's rate is phi / tau).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from brainsim.models._base import AbstractNeuron, NeuronInput

PRESETS = {
    "class2": dict(
        a_fn=4.0, a_fp=-4.0, b_fn=-2.0, c_fn=0.0, a_gn=-3.0, a_gp=3.0, b_gn=-2.0,
        c_gn=-16.0, r_g=-3.0, tau_ms=6.4, phi=0.09375, i0=-16.0, k=8.0,
    ),
    "class1": dict(
        a_fn=3.5, a_fp=-3.5, b_fn=-2.0, c_fn=0.5, a_gn=-0.5, a_gp=2.5, b_gn=-3.0,
        c_gn=-16.0, r_g=-2.5, tau_ms=6.4, phi=0.125, i0=-16.0, k=8.0,
    ),
}  # fmt: skip


class PQNState(eqx.Module):
    v: Float[Array, "trials neurons"]
    n: Float[Array, "trials neurons"]
    s: Float[Array, "trials neurons"]  # synaptic drive, in stimulus units


class PQNAux(eqx.Module):
    decay_s: Float[Array, ""]  # 1 - exp(-dt / tau_syn)
    events_s: Float[Array, " neurons"]  # f_poi x w_syn


class PQN(AbstractNeuron):
    """Two-variable PQN; defaults: the ``"class2"`` preset (see the module docstring)."""

    kind: ClassVar[str] = "pqn"
    spiking: ClassVar[bool] = True
    inputs: ClassVar[frozenset[str]] = frozenset({"current", "arrivals", "events"})
    trace_names: ClassVar[tuple[str, ...]] = ("v", "n")
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"preset": tuple(PRESETS)}

    a_fn: float = 4.0
    a_fp: float = -4.0
    b_fn: float = -2.0
    c_fn: float = 0.0
    a_gn: float = -3.0
    a_gp: float = 3.0
    b_gn: float = -2.0
    c_gn: float = -16.0
    r_g: float = -3.0
    tau_ms: float = 6.4
    phi: float = 0.09375
    i0: float = -16.0
    k: float = 8.0
    v_spike: float = 0.0
    tau_syn_ms: float = 5.0
    w_syn: float = 0.05
    f_poi: float = 250.0
    delay_ms: float = eqx.field(static=True, default=1.8)
    dt_ms: float = eqx.field(static=True, default=0.1)

    @classmethod
    def preset(cls, name: str, **overrides) -> PQN:
        if name not in PRESETS:
            raise ValueError(f"unknown PQN preset {name!r}; known: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        return (*super().config_keys(), "preset")

    def __check_init__(self):
        for f in dataclasses.fields(self):
            x = getattr(self, f.name)
            if not np.all(np.isfinite(np.asarray(x, np.float64))):
                raise ValueError(f"{f.name} must be finite, got {x}")
        for name in ("tau_ms", "tau_syn_ms", "dt_ms", "delay_ms"):
            if not np.all(np.asarray(getattr(self, name)) > 0):
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.a_fp == 0 or self.a_gp == 0:
            raise ValueError("a_fp and a_gp must be nonzero (they fix the smooth joins)")
        steps = self.delay_ms / self.dt_ms
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(
                f"delay_ms={self.delay_ms} must be a whole number of steps of dt_ms={self.dt_ms}"
            )

    def time_constant_ms(self):
        """``tau / phi``: v moves at the rate ``phi / tau`` (68 ms for the class 2 set)."""
        return self.tau_ms / self.phi

    @property
    def delay_steps(self) -> int:
        return int(round(self.delay_ms / self.dt_ms))

    # ------------------------------------------------------------------ the equations
    def joins(self) -> tuple[float, float, float, float]:
        """``(b_fp, c_fp, b_gp, c_gp)``: the values that make f and g C^1 at 0 and r_g."""
        b_fp = self.a_fn * self.b_fn / self.a_fp
        c_fp = self.a_fn * self.b_fn**2 + self.c_fn - self.a_fp * b_fp**2
        b_gp = self.r_g - self.a_gn * (self.r_g - self.b_gn) / self.a_gp
        c_gp = (
            self.a_gn * (self.r_g - self.b_gn) ** 2 + self.c_gn - self.a_gp * (self.r_g - b_gp) ** 2
        )
        return b_fp, c_fp, b_gp, c_gp

    def f(self, v, xp=jnp):
        b_fp, c_fp, _, _ = self.joins()
        return xp.where(
            v < 0, self.a_fn * (v - self.b_fn) ** 2 + self.c_fn, self.a_fp * (v - b_fp) ** 2 + c_fp
        )

    def g(self, v, xp=jnp):
        _, _, b_gp, c_gp = self.joins()
        return xp.where(
            v < self.r_g,
            self.a_gn * (v - self.b_gn) ** 2 + self.c_gn,
            self.a_gp * (v - b_gp) ** 2 + c_gp,
        )

    def rest(self, stimulus: float = 0.0) -> tuple[float, float]:
        """(v, n) of the lowest fixed point under a constant stimulus (the resting state
        where one exists): the lowest root of ``f(v) - g(v) + I0 + k I = 0``."""
        v = np.linspace(-20.0, 20.0, 400_001)
        h = self.f(v, np) - self.g(v, np) + self.i0 + self.k * stimulus
        change = np.nonzero(np.sign(h[:-1]) != np.sign(h[1:]))[0]
        if not change.size:
            raise ValueError(f"PQN has no fixed point at stimulus {stimulus}")
        lo, hi = v[change[0]], v[change[0] + 1]
        for _ in range(60):  # bisection to float64 precision
            mid = 0.5 * (lo + hi)
            hm = self.f(mid, np) - self.g(mid, np) + self.i0 + self.k * stimulus
            hl = self.f(lo, np) - self.g(lo, np) + self.i0 + self.k * stimulus
            lo, hi = (mid, hi) if np.sign(hm) == np.sign(hl) else (lo, mid)
        v0 = 0.5 * (lo + hi)
        return float(v0), float(self.g(v0, np))

    # ------------------------------------------------------------------ the interface
    def prepare(self, n_neurons, dtype, *, no_refractory=None, gap_conductance=None):
        if gap_conductance is not None:
            raise ValueError("the PQN model takes no gap-junction input")
        decay = -np.expm1(-self.dt_ms / self.tau_syn_ms)
        events = np.broadcast_to(np.asarray(self.f_poi * self.w_syn, np.float64), (n_neurons,))
        return PQNAux(jnp.asarray(decay, dtype), jnp.asarray(events, dtype))

    def init_state(self, n_trials, n_neurons, dtype) -> PQNState:
        v0, n0 = self.rest()
        shape = (n_trials, n_neurons)
        return PQNState(
            jnp.full(shape, v0, dtype), jnp.full(shape, n0, dtype), jnp.zeros(shape, dtype)
        )

    def advance(self, aux: PQNAux, state: PQNState, inputs: NeuronInput, *, spike_fn=None):
        """One Euler step; a spike is ``v`` crossing ``v_spike`` upward in it. With
        ``spike_fn`` the crossing is ``spike_fn(v_new - v_spike)`` where ``v < v_spike``
        (PQN has no reset, so nothing else changes)."""
        v, n, s = state.v, state.n, state.s
        stim = inputs.current + s
        dv = self.dt_ms * self.phi / self.tau_ms * (self.f(v) - n + self.i0 + self.k * stim)
        dn = self.dt_ms / self.tau_ms * (self.g(v) - n)
        v_new, n_new = v + dv, n + dn
        s = s - s * aux.decay_s + inputs.arrivals + inputs.events * aux.events_s
        below = v < self.v_spike
        if spike_fn is None:
            spiked = below & (v_new > self.v_spike)
        else:
            spiked = spike_fn(v_new - self.v_spike) * below.astype(v.dtype)
        return PQNState(v_new, n_new, s), spiked

    def observe(self, state: PQNState) -> dict:
        return {"v": state.v, "n": state.n}
