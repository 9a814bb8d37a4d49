"""Where results go, and the rules that keep a user's files safe there.

A results folder is written under a hidden temporary name beside its destination and
renamed into place when complete, so a failed or interrupted run leaves no partial result
that looks whole. Replacing a destination that already exists is the one destructive step,
so it is allowed only for a folder that brainsim itself wrote:

- brainsim marks each folder it writes with ``.brainsim-results.json``, which lists the
  entries it wrote. A marked folder is replaced only while it holds nothing else: a user's
  notes saved into it make it theirs;
- a folder written before the marker existed is recognised by its ``manifest.json``
  (naming a brainsim version) and by holding only the file names brainsim writes;
- an empty folder may be replaced;
- anything else (a file, a symbolic link, a folder of other files, the current folder or
  one above it) is refused with an :class:`OutputError` before anything is simulated.

One process at a time writes a destination: :func:`output_lock` takes an exclusive lock
in the cache (``$BRAINSIM_CACHE/locks``), so a second run on the same ``--out`` is told at
once instead of losing its results after a whole simulation. Temporary folders left by a
killed process (``.NAME.*.partial``, ``.NAME.old-*``) are removed by the next run that holds
the lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from brainsim._paths import cache_dir

MARKER = ".brainsim-results.json"

# entries of results folders written before the marker (brainsim 0.1 run and fit folders)
_LEGACY_FILES = {
    "spikes.parquet",
    "rates.parquet",
    "conditions.parquet",
    "neurons.parquet",
    "summary.parquet",
    "traces.parquet",
    "manifest.json",
    "params.json",
    "loss.parquet",
    "fit_rates.parquet",
    "run",
}

# room a results folder needs at the least, beyond the caller's estimate
_MIN_FREE_BYTES = 16 * 2**20


class OutputError(Exception):
    """The output location cannot be used; the message names it and says what to do."""


def check_output_dir(dest: str | Path, *, need_bytes: int = 0) -> Path:
    """Check, before anything is simulated, that ``dest`` may be (re)written.

    Creates nothing. Raises :class:`OutputError` when ``dest`` is not a folder brainsim
    may replace (see the module docstring), when the folder it would be made in cannot be
    written, or when its file system has less than ``need_bytes`` (plus 16 MiB) free.
    Returns ``dest`` made absolute (symbolic links above it resolved, not ``dest`` itself).
    """
    dest = Path(dest)
    if dest.name in ("", ".", ".."):
        dest = Path(os.path.abspath(dest))
    dest = Path(os.path.abspath(dest.parent.resolve() / dest.name))
    cwd = Path.cwd().resolve()
    if dest == cwd or dest in cwd.parents:
        raise OutputError(
            f"{dest}: is the current folder or a folder above it; brainsim replaces its "
            "output folder whole, so give --out (or [output] dir) a new folder's name"
        )
    if dest.is_symlink():
        raise OutputError(
            f"{dest}: is a symbolic link (to {os.readlink(dest)}); brainsim replaces its output "
            "folder whole and will not replace a link: give the link's target or a new name"
        )
    if dest.exists():
        if not dest.is_dir():
            raise OutputError(
                f"{dest}: exists and is not a folder; brainsim will not replace it: "
                "give --out (or [output] dir) a new folder's name"
            )
        why = _not_replaceable(dest)
        if why:
            raise OutputError(
                f"{dest}: {why}; brainsim replaces only results folders it wrote. Give --out "
                "(or [output] dir) a new folder's name, or move those files away yourself"
            )
    _check_writable(dest, need_bytes)
    return dest


def _not_replaceable(folder: Path) -> str | None:
    """None if ``folder`` is empty or a results folder brainsim wrote, else why not."""
    try:
        entries = sorted(p.name for p in folder.iterdir())
    except OSError as e:
        return f"cannot be listed ({e.strerror})"
    if not entries:
        return None
    marker = folder / MARKER
    if marker.is_file():
        try:
            written = set(json.loads(marker.read_text())["entries"])
        except (OSError, ValueError, KeyError, TypeError):
            return f"has a damaged {MARKER}"
        extra = [e for e in entries if e not in written and e != MARKER]
        if extra:
            return (
                f"is a brainsim results folder but also holds {len(extra)} entr"
                f"{'y' if len(extra) == 1 else 'ies'} brainsim did not write "
                f"({_names(extra)})"
            )
        return None
    if _is_legacy_results(folder, entries):
        return None
    return f"exists and is not a brainsim results folder (it holds {_names(entries)})"


def _is_legacy_results(folder: Path, entries: list[str]) -> bool:
    try:
        man = json.loads((folder / "manifest.json").read_text())
        if "brainsim" not in man["versions"]:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for e in entries:
        p = folder / e
        if p.is_symlink():
            return False
        if e == "run":
            if not (p.is_dir() and _is_legacy_results(p, sorted(q.name for q in p.iterdir()))):
                return False
        elif not (p.is_file() and (e in _LEGACY_FILES or e.endswith(".png"))):
            return False
    return True


def _names(entries: list[str], k: int = 3) -> str:
    shown = ", ".join(entries[:k])
    return shown + (f" and {len(entries) - k} more" if len(entries) > k else "")


def _check_writable(dest: Path, need_bytes: int) -> None:
    anc = dest.parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"{dest}: cannot be made: {anc} is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputError(f"{dest}: cannot be written: no write permission in {anc}")
    free = shutil.disk_usage(anc).free
    need = need_bytes + _MIN_FREE_BYTES
    if free < need:
        raise OutputError(
            f"{dest}: only {free / 2**20:.0f} MiB free on its file system, about "
            f"{need / 2**20:.0f} MiB needed for the results"
        )


@contextlib.contextmanager
def output_lock(dest: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the results folder ``dest`` for the body's duration.

    Raises :class:`OutputError` at once when another process holds it. The lock is a file
    in ``$BRAINSIM_CACHE/locks`` named by the hash of the absolute path, so nothing is
    written beside ``dest``; the operating system releases it if the process dies."""
    dest = Path(os.path.abspath(dest))
    locks = cache_dir("locks")
    try:
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(
            locks / (hashlib.sha256(str(dest).encode()).hexdigest()[:32] + ".lock"),
            os.O_RDWR | os.O_CREAT,
            0o644,
        )
    except OSError as e:
        raise OutputError(
            f"{dest}: cannot take the results lock in {locks} ({e.strerror}); "
            "set BRAINSIM_CACHE to a writable folder"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise OutputError(
                f"{dest}: another brainsim process (pid {holder}) is writing these results "
                "now; wait for it to finish or give another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _remove_leftovers(dest)
        yield
    finally:
        os.close(fd)


def _remove_leftovers(dest: Path) -> None:
    """Temporary folders of ``dest`` left by a killed run (the caller holds the lock)."""
    parent = dest.parent
    if not parent.is_dir():
        return
    for p in parent.glob(f".{dest.name}.*"):
        leftover = p.name.endswith(".partial") or p.name.startswith(f".{dest.name}.old-")
        if leftover and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``dest``; on success it replaces ``dest``.

    ``dest`` is checked first (:func:`check_output_dir`). If the body raises (or the
    process is interrupted), the temporary folder is deleted and ``dest`` is left as it
    was. The finished folder carries the marker that lets a later run replace it."""
    dest = check_output_dir(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        yield tmp
        _write_marker(tmp)
        # checked again: the folder may have changed while the body ran
        check_output_dir(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def add_to_marker(folder: str | Path, names) -> None:
    """Record files that brainsim added to a finished results folder (``brainsim plot``'s
    PNGs), so that the folder stays replaceable; a folder without a marker is left as it
    is."""
    marker = Path(folder) / MARKER
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    data["entries"] = sorted(set(data.get("entries", [])) | {Path(n).name for n in names})
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, marker)


def _write_marker(folder: Path) -> None:
    from brainsim import __version__

    entries = sorted(p.name for p in folder.iterdir())
    (folder / MARKER).write_text(
        json.dumps({"written_by": "brainsim", "version": __version__, "entries": entries}) + "\n"
    )
