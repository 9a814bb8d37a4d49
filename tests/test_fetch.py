"""``brainsim fetch``: resumable, verified downloads from a local HTTP server; dataset names.

Every request goes to a server on 127.0.0.1 that this module starts (port 0, one thread)
and shuts down; it serves small files the tests write, answers ``Range`` requests and can
cut a transfer in the middle. Each test makes a handful of requests with a short timeout.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from brainsim.connectome import ConnectomeError, load
from brainsim.fetch import (
    DATASETS,
    ChecksumError,
    Dataset,
    DatasetError,
    FetchError,
    RemoteFile,
    data_root,
    dataset_dir,
    download_file,
    fetch_dataset,
    is_dataset_name,
    resolve_dataset,
)

TIMEOUT = 5.0  # seconds: every request here is to 127.0.0.1 and small


# ------------------------------------------------------------------------ local server
class FileServer:
    """A tiny HTTP file server: ``files`` maps URL paths to bytes.

    ``cut[path] = k``: the next k responses for ``path`` announce the full length but send
    only half the body, then close the connection. ``ignore_range``: answer every request
    with the whole file (status 200), as servers without range support do. ``requests``
    records (path, Range header or None) of every request.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                with server.lock:
                    server.requests.append((self.path, rng))
                    cut = server.cut.get(self.path, 0) > 0
                    if cut:
                        server.cut[self.path] -= 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and not server.ignore_range:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if cut:
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, data: bytes) -> tuple[str, int, str]:
        """Serve ``data`` at ``path``; returns (url, size, sha256)."""
        self.files[path] = data
        return self.url(path), len(data), hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    srv = FileServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)
    assert len(srv.requests) <= 20  # bounded: no test loops on the network


def payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# ------------------------------------------------------------------------ download_file
def test_full_download_is_verified_and_renamed(server, tmp_path):
    data = payload(300_000)
    url, size, sha = server.add("/data/a.bin", data)
    seen = []
    dest = tmp_path / "out" / "a.bin"
    res = download_file(
        url,
        dest,
        size=size,
        sha256=sha,
        timeout=TIMEOUT,
        chunk_size=16_384,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert res.status == "downloaded" and res.verification == "sha256"
    assert res.bytes_transferred == size and res.requests == 1
    assert dest.read_bytes() == data
    assert not (tmp_path / "out" / "a.bin.part").exists()
    assert server.requests == [("/data/a.bin", None)]
    assert seen[-1] == (size, size) and len(seen) > 1
    assert all(b >= a for (a, _), (b, _) in zip(seen, seen[1:], strict=False))


def test_resume_after_broken_transfer(server, tmp_path):
    data = payload(200_001, seed=1)
    url, size, sha = server.add("/b.bin", data)
    server.cut["/b.bin"] = 1  # the first response stops halfway and closes
    dest = tmp_path / "b.bin"
    part = tmp_path / "b.bin.part"
    with pytest.raises(FetchError, match=r"b\.bin.*run the same command again"):
        download_file(url, dest, size=size, sha256=sha, retries=0, timeout=TIMEOUT)
    half = size // 2
    assert not dest.exists()
    assert part.read_bytes() == data[:half]  # what arrived is kept

    notices = []
    res = download_file(
        url, dest, size=size, sha256=sha, retries=0, timeout=TIMEOUT, notify=notices.append
    )
    assert res.status == "resumed" and res.verification == "sha256"
    assert res.bytes_transferred == size - half
    assert dest.read_bytes() == data and not part.exists()
    assert server.requests == [("/b.bin", None), ("/b.bin", f"bytes={half}-")]
    assert any("resuming at byte" in n for n in notices)


def test_broken_transfer_is_retried_with_a_range_request(server, tmp_path):
    data = payload(150_000, seed=2)
    url, size, sha = server.add("/c.bin", data)
    server.cut["/c.bin"] = 2  # two broken responses, then a good one
    res = download_file(
        url, tmp_path / "c.bin", size=size, sha256=sha, retries=3, backoff=0, timeout=TIMEOUT
    )
    assert res.status == "resumed" and res.requests == 3
    assert (tmp_path / "c.bin").read_bytes() == data
    ranges = [r for _, r in server.requests]
    first_cut = size // 2
    second_cut = first_cut + (size - first_cut) // 2
    assert ranges == [None, f"bytes={first_cut}-", f"bytes={second_cut}-"]


def test_server_that_ignores_range_restarts_from_zero(server, tmp_path):
    data = payload(50_000, seed=3)
    url, size, sha = server.add("/d.bin", data)
    server.ignore_range = True
    (tmp_path / "d.bin.part").write_bytes(b"\x00" * 1000)  # a stale partial download
    notices = []
    res = download_file(
        url, tmp_path / "d.bin", size=size, sha256=sha, timeout=TIMEOUT, notify=notices.append
    )
    assert res.status == "downloaded"
    assert (tmp_path / "d.bin").read_bytes() == data
    assert server.requests == [("/d.bin", "bytes=1000-")]
    assert any("ignored the range request" in n for n in notices)


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    data = payload(40_000, seed=4)
    url, size, _ = server.add("/e.bin", data)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        download_file(url, tmp_path / "e.bin", size=size, sha256=wrong, timeout=TIMEOUT)
    msg = str(info.value)
    assert "e.bin" in msg and wrong in msg and hashlib.sha256(data).hexdigest() in msg
    assert info.value.what == "sha256"
    assert list(tmp_path.iterdir()) == []  # neither the file nor a .part is left


def test_size_mismatch_is_caught_before_downloading(server, tmp_path):
    url, size, sha = server.add("/f.bin", payload(10_000, seed=5))
    with pytest.raises(ChecksumError, match=r"f\.bin: size mismatch: expected 12,345 bytes"):
        download_file(url, tmp_path / "f.bin", size=12_345, sha256=sha, timeout=TIMEOUT)
    assert list(tmp_path.iterdir()) == []


def test_present_file_is_verified_and_skipped(server, tmp_path):
    data = payload(20_000, seed=6)
    url, size, sha = server.add("/g.bin", data)
    dest = tmp_path / "g.bin"
    download_file(url, dest, size=size, sha256=sha, timeout=TIMEOUT)
    res = download_file(url, dest, size=size, sha256=sha, timeout=TIMEOUT)
    assert res.status == "present" and res.requests == 0
    assert len(server.requests) == 1

    dest.write_bytes(b"not the file")  # a different file in its place is not overwritten
    with pytest.raises(FetchError, match=r"g\.bin is already there but is not the expected"):
        download_file(url, dest, size=size, sha256=sha, timeout=TIMEOUT)
    assert dest.read_bytes() == b"not the file"


def test_complete_part_file_needs_no_transfer(server, tmp_path):
    data = payload(30_000, seed=7)
    url, size, sha = server.add("/h.bin", data)
    (tmp_path / "h.bin.part").write_bytes(data)
    res = download_file(url, tmp_path / "h.bin", size=size, sha256=sha, timeout=TIMEOUT)
    assert res.status == "downloaded" and res.requests == 0
    assert (tmp_path / "h.bin").read_bytes() == data

    # Size unknown: the range request past the end (416) says the .part is complete.
    (tmp_path / "i.bin.part").write_bytes(data)
    server.add("/i.bin", data)
    res = download_file(server.url("/i.bin"), tmp_path / "i.bin", sha256=sha, timeout=TIMEOUT)
    assert res.verification == "sha256" and res.requests == 1
    assert server.requests[-1] == ("/i.bin", f"bytes={size}-")


def test_missing_file_is_an_error_naming_the_url(server, tmp_path):
    with pytest.raises(FetchError, match=r"nope\.bin: .*/nope\.bin: HTTP 404"):
        download_file(server.url("/nope.bin"), tmp_path / "nope.bin", timeout=TIMEOUT)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ datasets
def _shiu_files(release: str = "783") -> dict[str, bytes]:
    """A tiny valid Shiu et al. release: 3 neurons, 2 connections."""
    csv = b",Completed\n30,True\n10,False\n20,True\n"
    table = pa.table(
        {
            "Presynaptic_ID": [30, 10],
            "Postsynaptic_ID": [10, 20],
            "Presynaptic_Index": [0, 1],
            "Postsynaptic_Index": [1, 2],
            "Connectivity": [5, 2],
            "Excitatory": [1, -1],
            "Excitatory x Connectivity": [5, -2],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return {f"Completeness_{release}.csv": csv, f"Connectivity_{release}.parquet": buf.getvalue()}


def _mirror_dataset(server: FileServer, files: dict[str, bytes], **checks) -> Dataset:
    """A dataset of ``files`` served under /mirror/ (sizes and checksums known)."""
    remote = []
    for name, data in files.items():
        server.add(f"/mirror/{name}", data)
        size, sha = len(data), hashlib.sha256(data).hexdigest()
        remote.append(RemoteFile(name, name, checks.get("size", size), checks.get("sha", sha)))
    return Dataset("test:1", "test_1", server.url("/nowhere"), tuple(remote), "a test dataset")


def test_fetch_dataset_from_a_mirror_then_load_it(server, tmp_path):
    ds = _mirror_dataset(server, _shiu_files())
    out = io.StringIO()
    report = fetch_dataset(
        ds, root=tmp_path, url_base=server.url("/mirror/"), stream=out, timeout=TIMEOUT
    )
    folder = tmp_path / "test_1"
    assert report.folder == folder
    assert [r.status for r in report.files] == ["downloaded", "downloaded"]
    text = out.getvalue()
    assert "Completeness_783.csv: downloaded, verified (size and sha256)" in text
    assert "100%" in text and "is ready in" in text
    conn = load(folder, "shiu")  # what the shiu loader reads
    assert conn.n_neurons == 3 and conn.n_synapses == 7

    out = io.StringIO()
    again = fetch_dataset(
        ds, root=tmp_path, url_base=server.url("/mirror"), stream=out, timeout=TIMEOUT
    )
    assert [r.status for r in again.files] == ["present", "present"]
    assert "already present" in out.getvalue()
    assert len(server.requests) == 2


def test_fetch_dataset_quiet_and_unverified_warning(server, tmp_path):
    server.add("/mirror/x.txt", b"hello")
    ds = Dataset("test:2", "test_2", server.base, (RemoteFile("x.txt", "x.txt"),))
    out = io.StringIO()
    report = fetch_dataset(
        ds, dest=tmp_path / "here", url_base=server.url("/mirror"), quiet=True, stream=out
    )
    assert report.files[0].verification == "unverified"
    assert (tmp_path / "here" / "x.txt").read_bytes() == b"hello"
    assert out.getvalue().startswith("warning: x.txt: UNVERIFIED")  # the only output


def test_fetch_dataset_checksum_mismatch_leaves_no_file(server, tmp_path):
    ds = _mirror_dataset(server, {"Completeness_783.csv": b",Completed\n1,True\n"}, sha="ab" * 32)
    with pytest.raises(ChecksumError, match="Completeness_783.csv: sha256 mismatch"):
        fetch_dataset(ds, root=tmp_path, url_base=server.url("/mirror"), quiet=True)
    assert list((tmp_path / "test_1").iterdir()) == []


def test_known_datasets_table():
    assert set(DATASETS) == {"flywire:783", "flywire:630", "flywire_feather:783",
                             "malecns:v1.0", "banc:888"}  # fmt: skip
    for key, ds in DATASETS.items():
        if not key.startswith("flywire:"):
            continue
        release = key.split(":")[1]
        assert ds.folder == f"flywire_{release}"
        assert [f.name for f in ds.files] == [
            f"Completeness_{release}.csv",
            f"Connectivity_{release}.parquet",
        ]
        assert ds.url_base.startswith("https://raw.githubusercontent.com/philshiu/")
        for f in ds.files:
            assert f.size and f.size > 1_000_000
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256)
        assert "codex.flywire.ai" in ds.manual


def test_newer_releases_table():
    """The Feather releases: the files their loaders look for, and how each is checked."""
    expect = {
        "flywire_feather:783": ("flywire_feather", ["size only", "unverified"]),
        "malecns:v1.0": ("neuprint_flat", ["sha256", "sha256", "sha256"]),
        "banc:888": ("banc", ["unverified", "sha256"]),
    }
    for name, (fmt, checks) in expect.items():
        ds = DATASETS[name]
        assert ds.fmt == fmt and ":" not in ds.folder
        assert [f.verification for f in ds.files] == checks
        assert ds.notes and ds.source
        for f in ds.files:
            assert f.url(ds.url_base).startswith("https://")
            assert f.url(ds.url_base).endswith(f.name)
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
    assert DATASETS["malecns:v1.0"].files[0].size == 1_051_241_946
    assert dataset_dir("banc:888").name == "banc_888"


def test_fetch_dataset_absolute_remotes_and_format_line(server, tmp_path):
    a_url, a_size, a_sha = server.add("/elsewhere/a.feather", b"aaaa")
    server.add("/base/b.feather", b"bb")
    server.add("/mirror/a.feather", b"aaaa")
    server.add("/mirror/b.feather", b"bb")
    files = (RemoteFile("a.feather", a_url, a_size, a_sha), RemoteFile("b.feather", "b.feather", 2))
    ds = Dataset("banc:1", "banc_1", server.url("/base"), files, fmt="banc", notes="b: size only")
    out = io.StringIO()
    fetch_dataset(ds, dest=tmp_path / "d", stream=out, timeout=TIMEOUT)
    text = out.getvalue()
    assert "checks: b: size only" in text
    assert f'format = "banc", path = "{(tmp_path / "d").resolve()}"' in text
    assert [p for p, _ in server.requests] == ["/elsewhere/a.feather", "/base/b.feather"]
    fetch_dataset(ds, dest=tmp_path / "m", url_base=server.url("/mirror"), quiet=True)
    assert [p for p, _ in server.requests[2:]] == ["/mirror/a.feather", "/mirror/b.feather"]
    assert (tmp_path / "m" / "a.feather").read_bytes() == b"aaaa"


def test_resolve_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSIM_CACHE", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "data"
    folder = tmp_path / "cache" / "data" / "flywire_783"
    assert dataset_dir("flywire:783") == dataset_dir("flywire") == folder

    missing = r"flywire:783.*not downloaded.*`brainsim fetch flywire`"
    with pytest.raises(DatasetError, match=missing):
        resolve_dataset("flywire:783")
    with pytest.raises(ConnectomeError, match=r"`brainsim fetch flywire:630`"):
        resolve_dataset("flywire:630")  # a ConnectomeError too: `brainsim run` reports it
    with pytest.raises(DatasetError, match=r"unknown dataset 'flywire:999'"):
        resolve_dataset("flywire:999")

    folder.mkdir(parents=True)
    files = DATASETS["flywire:783"].files
    (folder / f"{files[0].name}.part").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"partial download of Completeness_783\.csv"):
        resolve_dataset("flywire:783")
    for f in files:  # sparse files of the published sizes
        with open(folder / f.name, "wb") as fh:
            fh.truncate(f.size)
    assert resolve_dataset("flywire:783") == folder
    assert resolve_dataset("flywire:783", root=tmp_path / "cache" / "data") == folder

    with open(folder / files[1].name, "r+b") as fh:
        fh.truncate(files[1].size - 1)
    with pytest.raises(DatasetError, match=r"Connectivity_783\.parquet: 100,804,641 bytes"):
        resolve_dataset("flywire:783")


def test_resolve_dataset_codex_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"no FlyWire Codex connections file.*codex\.flywire"):
        resolve_dataset("flywire:783", fmt="flywire", root=tmp_path)
    (tmp_path / "flywire_783").mkdir()
    (tmp_path / "flywire_783" / "connections.csv.gz").write_bytes(b"")
    assert resolve_dataset("flywire", fmt="flywire", root=tmp_path) == tmp_path / "flywire_783"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("flywire:783", True),
        ("flywire:630", True),
        ("flywire:999", True),  # so that it gets the "unknown dataset" error
        ("flywire", False),
        ("synthetic:seed=0,scale=1.0", False),
        ("data/flywire_783", False),
        ("C:\\data\\flywire_783", False),
    ],
)
def test_is_dataset_name(source, expected):
    assert is_dataset_name(source) is expected


def test_dest_folder_outside_the_cache(server, tmp_path):
    ds = _mirror_dataset(server, _shiu_files("630"))
    out = io.StringIO()
    fetch_dataset(ds, dest=tmp_path / "mine", url_base=server.url("/mirror"), stream=out)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == [
        "Completeness_630.csv",
        "Connectivity_630.parquet",
    ]
    assert f'path = "{(tmp_path / "mine").resolve()}"' in out.getvalue()
    assert load(tmp_path / "mine", "shiu").n_neurons == 3


def test_paths_are_plain(tmp_path):
    """The dataset folders are plain names under the data root (no nesting, no colon)."""
    for name in DATASETS:
        assert ":" not in dataset_dir(name, tmp_path).name
        assert dataset_dir(name, tmp_path).parent == Path(tmp_path)


def test_progress_line_on_a_terminal():
    """On a terminal the progress rewrites one line (\\r) and ends it with a newline."""
    from brainsim.fetch._datasets import _ProgressLine

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = _ProgressLine("x.bin", out, min_interval=0.0)
    for done in (0, 500_000, 1_000_000):
        bar(done, 1_000_000)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("1.0 / 1.0 MB  100%\n")
    assert "  50%" in text


def test_unreachable_server_is_a_clear_error(tmp_path):
    """A port nobody listens on (the server of this test is already shut down)."""
    srv = FileServer()
    url = srv.url("/gone.bin")
    srv.httpd.server_close()
    with pytest.raises(FetchError, match=r"gone\.bin: .*2 attempt\(s\).*Nothing was received"):
        download_file(url, tmp_path / "gone.bin", retries=1, backoff=0, timeout=TIMEOUT)
    assert list(tmp_path.iterdir()) == []
