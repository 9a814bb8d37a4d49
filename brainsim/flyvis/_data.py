"""flyvis's shipped files (package data, MIT; see brainsim/data/flyvis/README.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from brainsim.connectome._errors import ConnectomeError

PREFIX = "flyvis:"
CONNECTOMES = ("fib25-fib19_v2.2",)
ENSEMBLES = {"flow/0000": "flow_0000.npz"}


def data_dir() -> Path:
    return Path(str(resources.files("brainsim") / "data" / "flyvis"))


def connectome_file(source: str) -> Path:
    """The file of a connectome ``source``: ``"flyvis:fib25-fib19_v2.2"`` for the shipped
    copy, else a path to a file in flyvis's JSON format."""
    if source.startswith(PREFIX):
        name = source[len(PREFIX) :].removesuffix(".json")
        if name not in CONNECTOMES:
            raise ConnectomeError(
                f"unknown shipped flyvis connectome {source!r}; known: "
                + ", ".join(PREFIX + c for c in CONNECTOMES)
            )
        return data_dir() / f"{name}.json"
    return Path(source)


def ensemble_file(name: str) -> Path:
    if name not in ENSEMBLES:
        raise ValueError(f"unknown flyvis ensemble {name!r}; shipped: {', '.join(ENSEMBLES)}")
    return data_dir() / ENSEMBLES[name]
