"""Surrogate spike functions: an exact threshold forward, a smooth derivative backward.

A surrogate is a function of the membrane potential's distance to threshold,
``x = v - v_th`` (mV), that returns exactly ``1.0`` where ``x > 0`` and ``0.0`` elsewhere, so
a run with it gives the same spikes as the plain threshold; its derivative (``jax.custom_jvp``)
is a smooth bump around ``x = 0`` instead of a Dirac delta. Each bump has unit area, so that
it is the derivative of a smoothed step from 0 to 1, and a height of ``slope / 2`` (1/mV)
at threshold: ``slope`` sets how sharp the surrogate is, and its width is about
``2 / slope`` mV.

| name | derivative at ``x`` |
|---|---|
| ``fast_sigmoid`` (SuperSpike, Zenke & Ganguli 2018) | ``(slope / 2) / (1 + slope abs(x))**2`` |
| ``arctan`` (Fang et al. 2021) | ``(slope / 2) / (1 + (pi slope x / 2)**2)`` |
| ``straight_through`` | ``slope / 2`` where ``abs(x) < 1 / slope``, else 0 (a boxcar) |

``scale`` multiplies the derivative. In a network stepped at dt, use about
``dt_ms / tau_m_ms`` (:func:`brainsim.fit.default_scale`, the default of the fitting
loop): at unit scale every step of a threshold crossing is credited with a whole spike,
and gradients explode through recurrent connections.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def _d_fast_sigmoid(x, slope):
    return (0.5 * slope) / (1.0 + slope * jnp.abs(x)) ** 2


def _d_arctan(x, slope):
    return (0.5 * slope) / (1.0 + (0.5 * math.pi * slope * x) ** 2)


def _d_straight_through(x, slope):
    return jnp.where(jnp.abs(x) < 1.0 / slope, 0.5 * slope, 0.0).astype(x.dtype)


_DERIVATIVES = {
    "fast_sigmoid": _d_fast_sigmoid,
    "arctan": _d_arctan,
    "straight_through": _d_straight_through,
}
SURROGATES = tuple(_DERIVATIVES)
# surrogates whose derivative is exactly zero away from threshold (brainsim.fit._events)
COMPACT = ("straight_through",)
# a width of about 2 mV: the 7 mV from rest to threshold span a few widths
DEFAULT_SLOPE = 1.0


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _heaviside(x, kind: str, slope: float, scale: float):
    return (x > 0).astype(x.dtype)


@_heaviside.defjvp
def _heaviside_jvp(kind, slope, scale, primals, tangents):
    (x,), (dx,) = primals, tangents
    d = scale * _DERIVATIVES[kind](x, slope)
    return _heaviside(x, kind, slope, scale), d.astype(x.dtype) * dx


class Surrogate(eqx.Module):
    """A surrogate spike function: ``Surrogate("fast_sigmoid", slope=1.0)(v - v_th)``.

    Forward: ``1.0`` where ``x > 0`` else ``0.0`` (the plain threshold, same dtype as ``x``).
    Derivative: the ``kind``'s unit-area bump of height ``slope / 2`` (see module docs).
    Pass it as ``spike_fn`` to :meth:`brainsim.models.LIF.step`.
    """

    kind: str = eqx.field(static=True, default="fast_sigmoid")
    slope: float = eqx.field(static=True, default=DEFAULT_SLOPE)
    scale: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if self.kind not in _DERIVATIVES:
            raise ValueError(f"surrogate kind must be one of {SURROGATES}, got {self.kind!r}")
        if not (
            isinstance(self.slope, int | float) and self.slope > 0 and math.isfinite(self.slope)
        ):
            raise ValueError(
                f"surrogate slope must be a positive number (1/mV), got {self.slope!r}"
            )
        if not (
            isinstance(self.scale, int | float) and self.scale > 0 and math.isfinite(self.scale)
        ):
            raise ValueError(f"surrogate scale must be a positive number, got {self.scale!r}")

    def __call__(self, x: Float[Array, ...]) -> Float[Array, ...]:
        return _heaviside(x, self.kind, float(self.slope), float(self.scale))

    def derivative(self, x: Float[Array, ...]) -> Float[Array, ...]:
        """The surrogate derivative at ``x`` (1/mV)."""
        return self.scale * _DERIVATIVES[self.kind](jnp.asarray(x), float(self.slope))


def fast_sigmoid(slope: float = DEFAULT_SLOPE) -> Surrogate:
    """SuperSpike's fast sigmoid: derivative ``(slope/2) / (1 + slope |x|)^2``."""
    return Surrogate("fast_sigmoid", slope)


def arctan(slope: float = DEFAULT_SLOPE) -> Surrogate:
    """Arctan surrogate: derivative ``(slope/2) / (1 + (pi slope x / 2)^2)``."""
    return Surrogate("arctan", slope)


def straight_through(slope: float = DEFAULT_SLOPE) -> Surrogate:
    """Straight-through estimator on a window: derivative ``slope/2`` for ``|x| < 1/slope``."""
    return Surrogate("straight_through", slope)


def surrogate(name: str, slope: float | None = None) -> Surrogate:
    """A surrogate by name (one of :data:`SURROGATES`)."""
    return Surrogate(name, DEFAULT_SLOPE if slope is None else float(slope))
