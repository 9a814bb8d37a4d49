"""Results on disk: Parquet tables and manifests, written atomically."""

from brainsim.io._results import neurons_table, rates_table, spikes_table, traces_table
from brainsim.io._write import atomic_dir, write_json, write_table

__all__ = [
    "atomic_dir",
    "neurons_table",
    "rates_table",
    "spikes_table",
    "traces_table",
    "write_json",
    "write_table",
]
