"""Steppers as objects: how a model is advanced, chosen once where a run is configured.

Each stepper states what it can run (:meth:`AbstractStepper.supports`: ``None``, or why
not and which stepper would) so that a model, synapse kind or setting it cannot carry is
refused with a named error instead of being run wrongly:

- :class:`Reference`: any model (the model interface); delayed events, graded synapses
  and gap junctions where the model takes their input; one device;
- :class:`Windowed`: models with the ``exact_jump`` and ``reach_bound`` shortcuts (LIF);
  delayed events; one device or several;
- :class:`DenseWindow`: any spiking model (LIF, PQN); delayed events; one device.

``Windowed(dense_fraction=0.25)`` hands a one-device run in which at least that fraction of
the neurons is driven or recorded (stepped every dt anyway) to :class:`DenseWindow`; the
result's ``stats["kernel"]`` says which one ran. ``dense_fraction=None`` never does.
``kernel = "auto"`` (the config default) is :func:`auto_stepper`: the windowed stepper
where it applies, else the reference.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx

from brainsim.models import AbstractNeuron


class AbstractStepper(eqx.Module):
    name: ClassVar[str]

    def supports(self, model: AbstractNeuron, synapse_kinds: frozenset[str]) -> str | None:
        """None if this stepper runs ``model`` with these synapse kinds, else why not."""
        return None


class Reference(AbstractStepper):
    """Every neuron and every connection at every step (validation; small networks;
    graded models and gap junctions)."""

    name: ClassVar[str] = "reference"

    def supports(self, model, synapse_kinds):
        from brainsim.models import DelayedEvents, GapJunctions, GradedChemical

        channel = {k.kind: k.channel for k in (DelayedEvents, GapJunctions, GradedChemical)}
        for kind in sorted(synapse_kinds):
            if channel[kind] not in model.inputs:
                hint = (
                    "; [connectome] gap_junctions = false leaves them out"
                    if kind == GapJunctions.kind
                    else ""
                )
                return f"the {model.kind} model takes no input from {kind} synapses{hint}"
        return None


def _lif_only(name: str, model, kinds, needs: frozenset[str]) -> str | None:
    missing = needs - model.shortcuts
    if missing:
        return (
            f"the {name} stepper needs a model with the exact-solution shortcuts "
            f"{sorted(missing)}, which {type(model).__name__} does not offer; "
            + (
                'kernel = "dense_window" or "reference" runs it'
                if model.spiking
                else 'kernel = "reference" runs it'
            )
        )
    other = kinds - {"delayed_events"}
    if "gap_junctions" in other:
        return (
            f"the {name} stepper cannot run gap junctions (they couple neurons within a "
            'window); kernel = "reference" runs them, or [connectome] gap_junctions = false '
            "leaves them out"
        )
    if other:
        return (
            f"the {name} stepper runs delayed event synapses only, not {sorted(other)}; "
            'kernel = "reference" runs them'
        )
    return None


class Windowed(AbstractStepper):
    """Event-driven, once per delay window, over the active neurons only (fast; sparse
    activity). ``native``: the CPU window kernel (None: where it applies; True: required;
    False: never). ``budgets``: the kernel's starting array sizes (they grow as needed)."""

    name: ClassVar[str] = "windowed"
    native: bool | None = None
    budgets: object = None
    dense_fraction: float | None = 0.25

    def supports(self, model, synapse_kinds):
        return _lif_only(self.name, model, synapse_kinds, frozenset({"exact_jump", "reach_bound"}))


class DenseWindow(AbstractStepper):
    """Every neuron stepped every dt, synapses event-driven per window (dense activity);
    any spiking model through the model interface."""

    name: ClassVar[str] = "dense_window"
    native: bool | None = None
    budgets: object = None

    def supports(self, model, synapse_kinds):
        if not model.spiking or "arrivals" not in model.inputs:
            return (
                f"the {self.name} stepper runs spiking models with delayed event synapses; "
                f'the {model.kind} model is not one: kernel = "reference" runs it'
            )
        return _lif_only(self.name, model, synapse_kinds, frozenset())


STEPPERS = {"reference": Reference, "windowed": Windowed, "dense_window": DenseWindow}
KERNELS = ("auto", *STEPPERS)


def auto_stepper(model: AbstractNeuron, synapse_kinds: frozenset[str]) -> AbstractStepper:
    """The fastest stepper that supports the model and synapses: windowed, else
    dense-window, else reference."""
    for stepper in (Windowed(), DenseWindow()):
        if stepper.supports(model, synapse_kinds) is None:
            return stepper
    return Reference()


def stepper_for(kernel, model, synapse_kinds, *, native=None, budgets=None) -> AbstractStepper:
    """The stepper of a ``kernel`` name (with ``native`` and ``budgets``), or a stepper
    object as given, checked against the model and synapse kinds: a ValueError says why it
    cannot run them and what would."""
    if isinstance(kernel, AbstractStepper):
        if (native, budgets) != (None, None):
            raise ValueError(
                "native and budgets belong to the stepper object, e.g. "
                f"{type(kernel).__name__}(native=..., budgets=...), not beside it"
            )
        stepper = kernel
    elif kernel == "auto":
        stepper = auto_stepper(model, synapse_kinds)
        if not isinstance(stepper, Reference):
            stepper = type(stepper)(native=native, budgets=budgets)
    elif kernel in STEPPERS:
        cls = STEPPERS[kernel]
        stepper = cls() if cls is Reference else cls(native=native, budgets=budgets)
    else:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    why = stepper.supports(model, synapse_kinds)
    if why:
        raise ValueError(why)
    return stepper
