"""Datasets by name: fetch them into the cache, find them there.

The cache folder is ``$BRAINSIM_CACHE/data`` (``BRAINSIM_CACHE`` defaults to
``~/.cache/brainsim``); dataset ``flywire:783`` lives in ``<cache>/data/flywire_783/``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from brainsim._paths import cache_root
from brainsim.fetch._download import DatasetError, DownloadResult, download_file
from brainsim.fetch._sources import ALIASES, DATASETS, FAMILIES, Dataset

CODEX_CONNECTION_PATTERNS = ("connections*.csv", "connections*.csv.gz")


def data_root() -> Path:
    """The folder that holds the fetched datasets: ``<cache>/data``."""
    return cache_root() / "data"


def get_dataset(name: str) -> Dataset:
    """The :class:`Dataset` called ``name`` (``"flywire"`` means ``"flywire:783"``)."""
    key = ALIASES.get(name, name)
    if key not in DATASETS:
        known = ", ".join([f"{a} (= {t})" for a, t in ALIASES.items()] + list(DATASETS))
        raise DatasetError(f"unknown dataset {name!r}; known: {known}")
    return DATASETS[key]


def is_dataset_name(source: str) -> bool:
    """Whether a connectome ``path`` is a dataset name like ``"flywire:783"``.

    True for ``<family>:<anything>`` with a known family (so that ``"flywire:999"`` gets
    the "unknown dataset" error rather than "no such folder"); False for paths, Windows
    drive letters and specs of other formats (``"synthetic:seed=0"``).
    """
    family, sep, _ = str(source).partition(":")
    return bool(sep) and family in FAMILIES


def dataset_dir(name: str, root: str | Path | None = None) -> Path:
    """Where dataset ``name`` lives (whether or not it has been fetched)."""
    return (Path(root) if root is not None else data_root()) / get_dataset(name).folder


def fetch_command(name: str) -> str:
    """The shortest ``brainsim fetch`` command that downloads dataset ``name``."""
    key = get_dataset(name).name
    alias = next((a for a, t in ALIASES.items() if t == key), None)
    return f"brainsim fetch {alias or key}"


def resolve_dataset(name: str, *, fmt: str = "shiu", root: str | Path | None = None) -> Path:
    """The folder of a fetched dataset, e.g. ``"flywire:783"`` -> ``<cache>/data/flywire_783``.

    Args:
        name: the dataset name (``"flywire:783"``, ``"flywire:630"``; ``"flywire"`` is 783).
        fmt: the loader that will read the folder. ``"shiu"`` (default) needs the files
            ``brainsim fetch`` downloads, present and of the published size; ``"flywire"``
            needs a FlyWire Codex ``connections*.csv(.gz)`` put there by hand.
        root: the data root; default ``$BRAINSIM_CACHE/data``.

    Raises:
        DatasetError: unknown name, or files missing (the message says to run
            ``brainsim fetch ...``), or a file whose size is not the published one.
    """
    ds = get_dataset(name)
    folder = dataset_dir(name, root)
    cmd = fetch_command(name)
    if fmt == "flywire":
        found = [p for pat in CODEX_CONNECTION_PATTERNS for p in folder.glob(pat)]
        if not found:
            raise DatasetError(
                f"dataset {name!r} has no FlyWire Codex connections file in {folder}. "
                + ds.manual.format(folder=folder)
            )
        return folder
    missing = [f.name for f in ds.files if not (folder / f.name).is_file()]
    if missing:
        partial = [m for m in missing if (folder / f"{m}.part").is_file()]
        hint = (
            f" (a partial download of {', '.join(partial)} is there; the command continues it)"
            if partial
            else ""
        )
        mb = sum(f.size or 0 for f in ds.files if f.name in missing) / 1e6
        raise DatasetError(
            f"dataset {name!r} is not downloaded: {folder} lacks {', '.join(missing)}. "
            f"Run `{cmd}` to download it (about {mb:.0f} MB){hint}."
        )
    for f in ds.files:
        path = folder / f.name
        if f.size is not None and path.stat().st_size != f.size:
            raise DatasetError(
                f"{path}: {path.stat().st_size:,} bytes, but the published file has "
                f"{f.size:,}; delete it and run `{cmd}` to download it again."
            )
    return folder


@dataclass(frozen=True)
class FetchReport:
    """What :func:`fetch_dataset` did: the dataset, its folder and one result per file."""

    dataset: str
    folder: Path
    files: tuple[DownloadResult, ...]


_VERIFIED = {
    "sha256": "verified (size and sha256)",
    "size only": "verified by size only (no published checksum)",
    "unverified": "UNVERIFIED (no known size or checksum)",
}


def fetch_dataset(
    name: str | Dataset = "flywire",
    *,
    dest: str | Path | None = None,
    root: str | Path | None = None,
    url_base: str | None = None,
    quiet: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
    backoff: float = 1.0,
    stream: TextIO | None = None,
) -> FetchReport:
    """Download a dataset's public files, resumably, and verify each one.

    Args:
        name: a dataset name (``"flywire"`` = ``"flywire:783"``, ``"flywire:630"``) or a
            :class:`Dataset`.
        dest: put the files in this folder instead of the dataset's cache folder (a run
            config then names it as ``path = "<dest>"``).
        root: the data root to use instead of ``$BRAINSIM_CACHE/data`` (ignored with
            ``dest``).
        url_base: a mirror to download from instead of the dataset's source; file URLs
            are ``<url_base>/<remote name>`` (the last part of a remote that is a URL).
        quiet: no progress or status output (warnings about unverified files still show).
        retries: retries per file after a broken transfer (each resumes the ``.part``).
        timeout: seconds a connection may stay silent.
        backoff: seconds before retry k (times k).
        stream: where output goes; default ``sys.stderr``.

    Files already present and verified are skipped. A file that fails verification is
    deleted and :class:`~brainsim.fetch.ChecksumError` names it with the expected and the
    actual value; files verified before it stay.
    """
    ds = name if isinstance(name, Dataset) else get_dataset(name)
    out = stream if stream is not None else sys.stderr
    folder = (
        Path(dest)
        if dest is not None
        else ((Path(root) if root is not None else data_root()) / ds.folder)
    )
    base = (url_base or ds.url_base).rstrip("/")

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=out, flush=True)

    say(f"{ds.name}: {ds.description}" if ds.description else ds.name)
    say(f"  from {base}" + (f"  [{ds.source}]" if ds.source and url_base is None else ""))
    say(f"  into {folder}")
    results = []
    if ds.notes:
        say(f"  checks: {ds.notes}")
    for f in ds.files:
        # a mirror holds every file under its base, by the file's own remote name
        remote = Path(f.remote).name if "://" in f.remote else f.remote
        url = f.url(base) if url_base is None else f"{base}/{remote.lstrip('/')}"
        bar = None if quiet else _ProgressLine(f.name, out)
        try:
            res = download_file(
                url,
                folder / f.name,
                size=f.size,
                sha256=f.sha256,
                retries=retries,
                timeout=timeout,
                backoff=backoff,
                progress=bar,
                notify=(bar.notice if bar is not None else None),
            )
        finally:
            if bar is not None:
                bar.close()
        verb = {"present": "already present", "resumed": "resumed and complete"}.get(
            res.status, "downloaded"
        )
        say(f"  {f.name}: {verb}, {_VERIFIED[res.verification]}")
        if res.verification != "sha256":
            print(
                f"warning: {f.name}: {_VERIFIED[res.verification]}; its content could not be "
                f"checked against the published file.",
                file=out,
                flush=True,
            )
        results.append(res)
    if dest is None and root is None and ds.name in DATASETS:
        use = f'format = "{ds.fmt}", path = "{ds.name}"'
    else:
        use = f'format = "{ds.fmt}", path = "{folder.resolve()}"'
    say(f"{ds.name} is ready in {folder}; in a run config: [connectome] {use}")
    if ds.manual:
        say("note: " + ds.manual.format(folder=folder))
    return FetchReport(ds.name, folder, tuple(results))


class _ProgressLine:
    """Progress of one file: bytes and percent. Rewrites one line on a terminal; elsewhere
    (logs, CI) prints a line every 10%."""

    def __init__(self, label: str, stream: TextIO, min_interval: float = 0.25):
        self.label, self.stream, self.min_interval = label, stream, min_interval
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.last_time = 0.0
        self.last_decile = -1
        self.open_line = False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        scale, unit = _unit(total or done)
        digits = 1 if scale > 1 else 0
        if total:
            pct = min(100, int(100 * done / total))
            text = (
                f"  {self.label}: {done / scale:7.{digits}f} / {total / scale:.{digits}f} "
                f"{unit}  {pct:3d}%"
            )
        else:
            pct = None
            text = f"  {self.label}: {done / scale:7.{digits}f} {unit}"
        if self.tty:
            if finished or now - self.last_time >= self.min_interval:
                self.stream.write("\r" + text)
                self.stream.flush()
                self.last_time, self.open_line = now, True
            return
        decile = pct // 10 if pct is not None else int(now // 10)
        if decile != self.last_decile:
            self.last_decile = decile
            print(text, file=self.stream, flush=True)

    def notice(self, msg: str) -> None:
        self._end_line()
        print(f"  {msg}", file=self.stream, flush=True)

    def close(self) -> None:
        self._end_line()

    def _end_line(self) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False


def _unit(n: int) -> tuple[float, str]:
    """A decimal unit that suits a byte count: (bytes per unit, name)."""
    for scale, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= scale:
            return scale, unit
    return 1.0, "bytes"
