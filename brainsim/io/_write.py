"""Result files: Parquet tables and JSON (the folder they go in: ``_outdir``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_table(table: pa.Table, path: str | Path) -> None:
    pq.write_table(table, path)


def write_json(obj: dict, path: str | Path) -> None:
    """``obj`` as strict JSON: a NaN or infinity (which JSON cannot hold) is a ValueError
    naming its key, and nothing is written."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    except ValueError:
        key = _non_finite_key(obj)
        if key is None:
            raise
        raise ValueError(
            f"{path}: {key} is not a finite number; JSON cannot hold NaN or infinity"
        ) from None
    Path(path).write_text(text + "\n")


def _non_finite_key(x, key: str = "") -> str | None:
    """The key path (``a.b[2]``) of the first NaN or infinity in ``x``."""
    if isinstance(x, np.ndarray | np.generic):
        x = x.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return key or "<value>"
    if isinstance(x, dict):
        items = ((f"{key}.{k}" if key else str(k), v) for k, v in x.items())
    elif isinstance(x, list | tuple):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(x))
    else:
        return None
    return next((found for k, v in items if (found := _non_finite_key(v, k))), None)


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
