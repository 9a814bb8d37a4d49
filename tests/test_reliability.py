"""Reliability: a user's files are never lost, bad input is named, interrupts leave nothing.

One section per class of the reliability issue; each test holds one rule."""

import json
import os
import signal

import pyarrow.parquet as pq
import pytest

from brainsim import cli
from brainsim.experiments import load_config
from brainsim.io import MARKER, OutputError, check_output_dir, output_lock

SPEC = "synthetic:seed=0,scale=0.005"

BASE = f"""
[connectome]
format = "synthetic"
path = "{SPEC}"
cache = false
[simulation]
duration_ms = 50.0
trials = 2
seed = 1
[[stimulus]]
kind = "poisson"
neurons = {{ cell_type = "sugar_like_GRN" }}
rate_hz = 150.0
"""


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSIM_CACHE", str(tmp_path / "cache"))


def config(tmp_path, text=BASE, name="run.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def run(*args):
    return cli.main(["run", *map(str, args), "--quiet"])


def user_folder(path):
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work")
    (path / "data").mkdir()
    (path / "data" / "raw.csv").write_text("1,2,3")
    return path


def entries(folder):
    """What a folder holds, less the test's own cache."""
    return sorted(p.name for p in folder.iterdir() if p.name != "cache")


def unchanged(path):
    return (path / "thesis.tex").read_text() == "years of work" and (
        path / "data" / "raw.csv"
    ).read_text() == "1,2,3"


# ---- class 1: data loss at the output path ------------------------------------------


@pytest.mark.parametrize("dry", [False, True])
def test_foreign_folder_is_refused_before_simulating(tmp_path, capsys, dry):
    cfg = config(tmp_path)
    out = user_folder(tmp_path / "mine")
    assert run(cfg, "--out", out, *(["--dry-run"] if dry else [])) == 2
    err = capsys.readouterr().err
    assert "is not a brainsim results folder" in err and "data, thesis.tex" in err
    assert unchanged(out)
    assert entries(tmp_path) == ["mine", "run.toml"]


def test_current_folder_and_its_parents_are_refused(tmp_path, monkeypatch, capsys):
    cfg = config(tmp_path)
    here = tmp_path / "work" / "deep"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    for out in (".", here, "..", tmp_path):
        assert run(cfg, "--out", out, "--dry-run") == 2
        assert "current folder" in capsys.readouterr().err
    # the current folder is refused even when empty: replacing it would pull it away
    assert run(cfg, "--out", here) == 2


def test_output_dir_is_relative_to_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    cfg = config(tmp_path / "configs", BASE + '[output]\ndir = "../somewhere"\n')
    monkeypatch.chdir(user_folder(tmp_path / "elsewhere"))
    assert load_config(cfg).output_dir == tmp_path / "configs" / ".." / "somewhere"
    victim = user_folder(tmp_path / "somewhere")
    assert run(cfg) == 2  # a shared config cannot wipe the folder it names
    assert unchanged(victim) and unchanged(tmp_path / "elsewhere")


def test_existing_file_is_not_replaced(tmp_path, capsys):
    cfg = config(tmp_path)
    out = tmp_path / "results.parquet"
    out.write_text("precious")
    assert run(cfg, "--out", out) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert out.read_text() == "precious"


def test_symlink_is_refused_and_nothing_is_left(tmp_path, capsys):
    cfg = config(tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for out in (link, dangling):
        assert run(cfg, "--out", out) == 2
        assert "symbolic link" in capsys.readouterr().err
        assert out.is_symlink()
    assert entries(tmp_path) == [
        "dangling", "link", "run.toml", "target"
    ]


def test_brainsim_folder_is_replaced_but_not_with_user_files_in_it(tmp_path, capsys):
    cfg = config(tmp_path)
    out = tmp_path / "out"
    assert run(cfg, "--out", out) == 0
    marker = json.loads((out / MARKER).read_text())
    assert set(marker["entries"]) == {p.name for p in out.iterdir()} - {MARKER}
    first = pq.read_table(out / "spikes.parquet")
    assert run(cfg, "--out", out) == 0  # a folder brainsim wrote is replaced
    assert pq.read_table(out / "spikes.parquet").equals(first)
    (out / "my_analysis.ipynb").write_text("{}")
    assert run(cfg, "--out", out) == 2
    assert "brainsim did not write (my_analysis.ipynb)" in capsys.readouterr().err
    assert (out / "my_analysis.ipynb").read_text() == "{}"
    # an empty folder is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    check_output_dir(empty)


def test_folder_of_an_earlier_version_is_recognised(tmp_path):
    old = tmp_path / "old"
    (old / "run").mkdir(parents=True)
    man = json.dumps({"versions": {"brainsim": "0.1.0"}})
    for folder in (old, old / "run"):
        (folder / "manifest.json").write_text(man)
        (folder / "spikes.parquet").write_text("x")
        (folder / "raster.png").write_text("x")
    check_output_dir(old)  # a 0.1 run/fit folder: replaceable
    (old / "run" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a brainsim results folder"):
        check_output_dir(old)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").write_text(json.dumps({"name": "my package"}))
    with pytest.raises(OutputError, match="not a brainsim results folder"):
        check_output_dir(fake)


def test_unwritable_or_full_location_is_refused_up_front(tmp_path, monkeypatch, capsys):
    cfg = config(tmp_path)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert run(cfg, "--out", blocker / "sub" / "out", "--dry-run") == 2
    assert "is a file, not a folder" in capsys.readouterr().err

    import shutil

    class Usage:
        free = 1024

    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage)
    assert run(cfg, "--out", tmp_path / "out", "--dry-run") == 2
    assert "MiB free" in capsys.readouterr().err


def test_a_second_writer_is_told_at_once(tmp_path, capsys):
    cfg = config(tmp_path)
    out = tmp_path / "out"
    with output_lock(out):
        assert run(cfg, "--out", out) == 2
        assert f"pid {os.getpid()}" in capsys.readouterr().err
        assert not out.exists()
    assert run(cfg, "--out", out) == 0  # released with the holder


# ---- class 3: interrupts and leftovers ----------------------------------------------


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_while_writing_leaves_no_partial_folder(tmp_path, monkeypatch, capsys, sig, code):
    cfg = config(tmp_path)
    out = tmp_path / "out"
    import brainsim.io._write as write_mod

    real = write_mod.pq.write_table
    calls = []

    def write_then_signal(table, path):
        real(table, path)
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(write_mod.pq, "write_table", write_then_signal)
    assert run(cfg, "--out", out) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results folders were left as they were" in err[0]
    assert entries(tmp_path) == ["run.toml"]


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    cfg = config(tmp_path)
    for name in (".out.k3j2.partial", ".out.old-12345"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spikes.parquet").write_text("half")
    (tmp_path / ".outsider.partial").mkdir()  # another destination's: not touched
    assert run(cfg, "--out", tmp_path / "out") == 0
    assert entries(tmp_path) == [
        ".outsider.partial", "out", "run.toml"
    ]
