"""Each neuron's main input and output neuropil, from connection rows split by neuropil.

FlyWire's tables (Codex ``connections*.csv``, Zenodo ``proofread_connections_783.feather``)
give one row per (pre, post, neuropil) with the synapse count there. A neuron's *output
neuropil* is the neuropil holding most of its output synapses (rows where it is
presynaptic), its *input neuropil* the one holding most of its input synapses (rows where it
is postsynaptic). Ties go to the alphabetically first neuropil name; rows without a neuropil
take no part; a neuron without such synapses gets null. numpy only.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def main_neuropils(
    n: int,
    pre: np.ndarray,
    post: np.ndarray,
    syn: np.ndarray,
    code: np.ndarray,
    labels: list[str | None],
) -> dict[str, pa.Array]:
    """``{"input_neuropil": ..., "output_neuropil": ...}`` (strings, one per neuron).

    ``code`` indexes ``labels`` (sorted, None first if present) for each row; ``pre`` and
    ``post`` are neuron indices in ``0..n-1`` and ``syn`` the rows' synapse counts.
    """
    named = np.array([s is not None for s in labels], dtype=bool)
    if not named.any():
        empty = pa.nulls(n, pa.string())
        return {"input_neuropil": empty, "output_neuropil": empty}
    n_labels = len(labels)
    out: dict[str, pa.Array] = {}
    weights = syn.astype(np.float64)
    for name, side in (("input_neuropil", post), ("output_neuropil", pre)):
        by = np.bincount(
            side.astype(np.int64) * n_labels + code, weights=weights, minlength=n * n_labels
        ).reshape(n, n_labels)
        by[:, ~named] = 0.0
        best = np.argmax(by, axis=1)  # first maximum: alphabetically first label
        has = by[np.arange(n), best] > 0
        pairs = zip(best.tolist(), has.tolist(), strict=True)
        out[name] = pa.array([labels[b] if h else None for b, h in pairs], pa.string())
    return out


def neuropil_counts(neurons: pa.Table) -> list[tuple[str, int, int]]:
    """``(neuropil, neurons with it as main input, as main output)``, sorted by name.

    Raises :class:`ConnectomeError` for a neuron table without the two columns.
    """
    from brainsim.connectome._errors import ConnectomeError

    missing = [c for c in ("input_neuropil", "output_neuropil") if c not in neurons.column_names]
    if missing:
        raise ConnectomeError(
            f"the neuron table has no {' or '.join(missing)} column: this source gives no "
            f"neuropils per connection (the formats flywire and flywire_feather do)"
        )
    counts: dict[str, list[int]] = {}
    for k, column in enumerate(("input_neuropil", "output_neuropil")):
        for name in neurons.column(column).to_pylist():
            if name is not None:
                counts.setdefault(name, [0, 0])[k] += 1
    return [(name, c[0], c[1]) for name, c in sorted(counts.items())]
