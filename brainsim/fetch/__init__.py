"""``brainsim fetch``: download public connectome files into the cache, find them by name.

``fetch_dataset("flywire")`` downloads the Shiu et al. 2024 files of FlyWire release 783
(``Completeness_783.csv``, ``Connectivity_783.parquet``; ``"flywire:630"`` for release
630) into ``$BRAINSIM_CACHE/data/flywire_783/``, resuming interrupted transfers and
checking each file's size and SHA-256 before it gets its final name. A run config then
names the folder by the dataset's name::

    [connectome]
    format = "shiu"
    path = "flywire:783"

and ``resolve_dataset("flywire:783")`` turns the name into the folder, or raises an error
that says to run ``brainsim fetch flywire``. FlyWire Codex files (format ``flywire``) need
a Codex login; put them in the same folder by hand.

Standard library only (``urllib.request``); no network access happens on import.
"""

from brainsim.fetch._datasets import (
    FetchReport,
    cache_root,
    data_root,
    dataset_dir,
    fetch_command,
    fetch_dataset,
    get_dataset,
    is_dataset_name,
    resolve_dataset,
)
from brainsim.fetch._download import (
    ChecksumError,
    DatasetError,
    DownloadResult,
    FetchError,
    download_file,
    sha256_of,
    verify_file,
)
from brainsim.fetch._sources import ALIASES, DATASETS, Dataset, RemoteFile

__all__ = [
    "ALIASES",
    "DATASETS",
    "ChecksumError",
    "Dataset",
    "DatasetError",
    "DownloadResult",
    "FetchError",
    "FetchReport",
    "RemoteFile",
    "cache_root",
    "data_root",
    "dataset_dir",
    "download_file",
    "fetch_command",
    "fetch_dataset",
    "get_dataset",
    "is_dataset_name",
    "resolve_dataset",
    "sha256_of",
    "verify_file",
]
