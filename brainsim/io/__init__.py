"""Results on disk: Parquet tables and manifests, written atomically."""

from brainsim._arrow import rows_table
from brainsim.io._outdir import (
    MARKER,
    OutputError,
    add_to_marker,
    atomic_dir,
    check_output_dir,
    output_lock,
)
from brainsim.io._results import (
    neurons_table,
    rates_table,
    spikes_table,
    traces_table,
)
from brainsim.io._write import write_json, write_table

__all__ = [
    "MARKER",
    "OutputError",
    "add_to_marker",
    "atomic_dir",
    "check_output_dir",
    "output_lock",
    "neurons_table",
    "rates_table",
    "rows_table",
    "spikes_table",
    "traces_table",
    "write_json",
    "write_table",
]
