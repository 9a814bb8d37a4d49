"""Resumable, verified HTTP downloads with the standard library (``urllib.request``).

:func:`download_file` writes into ``<dest>.part``, resumes a ``.part`` left by an earlier,
interrupted attempt with an HTTP ``Range`` request (starting over when the server ignores
the range), checks the result's size and SHA-256, and only then renames it to ``dest``. A
file that fails the check is deleted and a :class:`ChecksumError` names it, with the
expected and the actual value.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from brainsim import __version__
from brainsim.connectome._errors import ConnectomeError

USER_AGENT = f"brainsim/{__version__} (+https://github.com/philshiu/Drosophila_brain_model data)"
CHUNK = 1 << 20
# Statuses worth another try: the server or a proxy is busy or briefly broken.
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")

Progress = Callable[[int, "int | None"], None]


class FetchError(Exception):
    """A download that failed. The message names the file or URL and what to do next."""


class ChecksumError(FetchError):
    """A file whose size or SHA-256 is not the expected one.

    Attributes:
        path: the file that was checked (already deleted when it was a download).
        what: ``"size"`` or ``"sha256"``.
        expected: the expected value.
        got: the actual value.
    """

    def __init__(self, message: str, path: Path, what: str, expected, got):
        super().__init__(message)
        self.path, self.what, self.expected, self.got = path, what, expected, got


class DatasetError(FetchError, ConnectomeError):
    """A dataset name that is unknown, or whose files are not (all) on disk.

    Also a :class:`~brainsim.connectome.ConnectomeError`, so that ``brainsim run`` reports
    it like any other missing connectome source.
    """


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download_file` did.

    Attributes:
        path: the final file.
        status: ``"present"`` (already there and verified, nothing downloaded),
            ``"downloaded"`` (from the first byte) or ``"resumed"`` (continued a ``.part``).
        verification: ``"sha256"``, ``"size only"`` or ``"unverified"``: what was checked.
        bytes_transferred: bytes received over the network by this call.
        requests: HTTP requests this call made.
    """

    path: Path
    status: str
    verification: str
    bytes_transferred: int
    requests: int


class _Interrupted(Exception):
    """A transfer that ended early; the ``.part`` file keeps what arrived."""


def sha256_of(path: str | Path, chunk: int = CHUNK) -> str:
    """The SHA-256 of a file, lower-case hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_file(
    path: str | Path, *, size: int | None = None, sha256: str | None = None, name: str = ""
) -> str:
    """Check a file's size, then its SHA-256, against the expected values.

    Returns what was checked: ``"sha256"``, ``"size only"`` or ``"unverified"`` (neither
    value known). Raises :class:`ChecksumError` on a mismatch (the file is left alone).
    """
    path = Path(path)
    name = name or path.name
    got = path.stat().st_size
    if size is not None and got != size:
        raise ChecksumError(
            f"{name}: size mismatch: expected {size:,} bytes, got {got:,}", path, "size", size, got
        )
    if sha256:
        digest = sha256_of(path)
        if digest != sha256.lower():
            raise ChecksumError(
                f"{name}: sha256 mismatch: expected {sha256.lower()}, got {digest}",
                path,
                "sha256",
                sha256.lower(),
                digest,
            )
        return "sha256"
    return "size only" if size is not None else "unverified"


def download_file(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: Progress | None = None,
    notify: Callable[[str], None] | None = None,
    chunk_size: int = CHUNK,
) -> DownloadResult:
    """Download ``url`` to ``dest``, resumably, and verify it before it gets its name.

    Args:
        url: the file's URL (http or https).
        dest: the final path. The transfer goes to ``<dest>.part``, which is renamed to
            ``dest`` (atomically, same folder) only after the checks pass.
        size: expected size in bytes, or None.
        sha256: expected SHA-256 (hex), or None.
        retries: further attempts after a broken or failed transfer; each continues the
            ``.part`` file with a ``Range`` request.
        timeout: seconds a connection may stay silent before the attempt counts as broken.
        backoff: seconds to wait before retry k (times k).
        progress: called as ``progress(bytes_done, total_or_None)`` while bytes arrive.
        notify: called with one-line notices (resuming, restarting, retrying).
        chunk_size: bytes per read.

    An existing ``dest`` is verified and kept (status ``"present"``); if it does not match,
    :class:`FetchError` asks the user to remove it (it is not deleted: it may be theirs).
    A ``.part`` file is resumed; one longer than ``size`` is discarded. When the server
    answers a range request with the whole file (status 200), the download starts over.
    After the transfer, a size or checksum mismatch deletes the ``.part`` file and raises
    :class:`ChecksumError` naming the file, the expected and the actual value. A transfer
    that is still broken after ``retries`` retries raises :class:`FetchError`; the
    ``.part`` file stays, so the next call continues where this one stopped.
    """
    dest = Path(dest)
    say = notify or (lambda _msg: None)
    if dest.exists():
        try:
            level = verify_file(dest, size=size, sha256=sha256)
        except ChecksumError as e:
            raise FetchError(
                f"{dest} is already there but is not the expected file ({e}). Remove it (or "
                f"move it away) and run again to download the published one."
            ) from None
        dest.with_name(dest.name + ".part").unlink(missing_ok=True)  # a stale leftover
        return DownloadResult(dest, "present", level, 0, 0)

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    opener = _opener(url)
    transferred = requests = failures = 0
    resumed = False
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if size is not None and offset > size:
            say(f"{part.name} is longer than {dest.name} should be; starting over")
            part.unlink()
            offset = 0
        if size is not None and offset == size and part.exists():
            break  # a complete .part from an earlier run: only the checks are left
        try:
            requests += 1
            got, continued = _transfer(
                opener, url, part, offset, size, timeout, progress, say, chunk_size
            )
            transferred += got
            resumed = resumed or continued
            break
        except _Interrupted as e:
            transferred += e.args[1] if len(e.args) > 1 else 0
            failures += 1
            have = part.stat().st_size if part.exists() else 0
            if failures > retries:
                kept = (
                    f"{part} keeps the {have:,} bytes received; run the same command again "
                    f"to continue from there."
                    if have
                    else "Nothing was received; check the network (or the mirror URL) and "
                    "run again."
                )
                raise FetchError(
                    f"{dest.name}: download from {url} failed after {failures} attempt(s): "
                    f"{e.args[0]}. {kept}"
                ) from None
            say(f"{dest.name}: {e.args[0]}; retrying from byte {have:,}")
            if backoff > 0:
                time.sleep(backoff * failures)

    try:
        level = verify_file(part, size=size, sha256=sha256, name=dest.name)
    except ChecksumError as e:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{e} (downloaded from {url}); the bad download was deleted. Run again to retry; "
            f"if it fails again, the source no longer serves the expected file.",
            dest,
            e.what,
            e.expected,
            e.got,
        ) from None
    os.replace(part, dest)
    return DownloadResult(
        dest, "resumed" if resumed else "downloaded", level, transferred, requests
    )


def _opener(url: str) -> urllib.request.OpenerDirector:
    """The default opener (honours proxy settings), but never a proxy for loopback URLs."""
    if (urlsplit(url).hostname or "") in _LOOPBACK:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _transfer(
    opener: urllib.request.OpenerDirector,
    url: str,
    part: Path,
    offset: int,
    size: int | None,
    timeout: float,
    progress: Progress | None,
    say: Callable[[str], None],
    chunk_size: int,
) -> tuple[int, bool]:
    """One HTTP request appending to ``part`` from ``offset``.

    Returns (bytes received, whether they continued an existing ``.part``). Raises
    :class:`_Interrupted` (message, bytes received) when the transfer ends early or cannot
    start for a passing reason, :class:`FetchError` or :class:`ChecksumError` otherwise.
    """
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        with e:
            if e.code == 416 and offset:
                m = _UNSATISFIED_RANGE.search(e.headers.get("Content-Range", "") or "")
                if m and int(m.group(1)) == offset:
                    return 0, True  # the .part already holds the whole file
                part.unlink(missing_ok=True)
                raise _Interrupted(
                    "the server cannot continue the partial file; starting over"
                ) from None
            if e.code in _TRANSIENT_HTTP:
                raise _Interrupted(f"HTTP {e.code} {e.reason}") from None
            raise FetchError(f"{part.name[:-5]}: {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise _Interrupted(f"cannot connect to {urlsplit(url).netloc}: {reason}") from None

    name = part.name[:-5]
    with response:
        status = response.status
        if status == 206 and offset:
            m = _CONTENT_RANGE.search(response.headers.get("Content-Range", "") or "")
            if not m or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Interrupted(
                    f"the server sent another range ({response.headers.get('Content-Range')}) "
                    f"than requested (from byte {offset:,}); starting over"
                )
            total = None if m.group(3) == "*" else int(m.group(3))
            mode, done, continued = "ab", offset, True
            say(f"{name}: resuming at byte {offset:,}")
        elif status == 200:
            if offset:
                say(f"{name}: the server ignored the range request; starting over")
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode, done, continued = "wb", 0, False
        else:
            raise FetchError(f"{name}: {url}: unexpected HTTP status {status}")
        if size is not None and total is not None and total != size:
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"{name}: size mismatch: expected {size:,} bytes, but {url} serves {total:,}; "
                f"nothing was kept",
                part.with_name(name),
                "size",
                size,
                total,
            )
        expected = size if size is not None else total
        received = 0
        with open(part, mode) as out:
            while True:
                try:
                    block = response.read(chunk_size)
                except (OSError, http.client.HTTPException) as e:
                    out.flush()
                    raise _Interrupted(
                        f"connection broken ({e or type(e).__name__})", received
                    ) from None
                if not block:
                    break
                out.write(block)
                received += len(block)
                done += len(block)
                if progress is not None:
                    progress(done, expected)
            out.flush()
            os.fsync(out.fileno())
    if expected is not None and done < expected:
        raise _Interrupted(f"connection closed after {done:,} of {expected:,} bytes", received)
    return received, continued
