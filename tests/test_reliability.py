"""Reliability: a user's files are never lost, bad input is named, interrupts leave nothing.

One section per class of the reliability issue; each test holds one rule."""

import json
import os
import signal

import pyarrow.parquet as pq
import pytest
from conftest import run_config_text, write_config

from brainsim import cli
from brainsim.experiments import load_config
from brainsim.io import MARKER, OutputError, check_output_dir, output_lock

NET = run_config_text(duration_ms=50.0, stimulus=False)
BASE = run_config_text(duration_ms=50.0)


pytestmark = pytest.mark.usefixtures("own_cache")


def config(tmp_path, text=BASE, name="run.toml"):
    return write_config(tmp_path, text, name)


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
    assert entries(tmp_path) == ["dangling", "link", "run.toml", "target"]


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


@pytest.fixture
def interruptible():
    """Ctrl-C raises KeyboardInterrupt here, as in a terminal, also when the tests run in
    a background job (whose shell starts them with SIGINT ignored, which a process
    rightly keeps)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_while_writing_leaves_no_partial_folder(
    tmp_path, monkeypatch, capsys, interruptible, sig, code
):
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
    assert entries(tmp_path) == [".outsider.partial", "out", "run.toml"]


# ---- class 2: batching is a memory knob, not a change of answer ---------------------

SWEEP = (
    NET
    + """
[experiment]
kind = "activation_sweep"
drive = { cell_type = "sugar_like_GRN" }
rates_hz = [50.0, 100.0, 150.0, 200.0, 250.0]
max_batch_trials = MAXB
"""
)


def sweep(tmp_path, max_batch, name):
    return config(tmp_path, SWEEP.replace("MAXB", str(max_batch)), name)


def spikes(out):
    return pq.read_table(out / "spikes.parquet")


def test_results_do_not_depend_on_max_batch_trials(tmp_path):
    outs = []
    for mb in (2, 4, 10):
        out = tmp_path / f"out{mb}"
        assert run(sweep(tmp_path, mb, f"s{mb}.toml"), "--out", out) == 0
        outs.append(out)
    first = spikes(outs[0])
    assert first.num_rows > 0
    assert len(set(first.column("condition").to_pylist())) == 5
    for out in outs[1:]:
        assert spikes(out).equals(first)
    man = json.loads((outs[0] / "manifest.json").read_text())
    assert len(man["kernel"]) == 5  # one batch per condition: the answer above was batched


# ---- class 5: long experiments resume where they stopped ----------------------------


def test_interrupted_experiment_resumes_with_identical_results(tmp_path, monkeypatch):
    import brainsim.experiments._run as run_mod

    cfg = sweep(tmp_path, 2, "s.toml")
    whole = tmp_path / "whole"
    assert run(cfg, "--out", whole) == 0

    real = run_mod.simulate_batch
    calls = []

    def dies_after_two(*a, **k):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run is killed between batches 2 and 3
        calls.append(a[5])  # the batch's first condition
        return real(*a, **k)

    monkeypatch.setattr(run_mod, "simulate_batch", dies_after_two)
    out = tmp_path / "out"
    assert run(cfg, "--out", out) == 130
    assert not out.exists()
    monkeypatch.setattr(
        run_mod, "simulate_batch", lambda *a, **k: calls.append(a[5]) or real(*a, **k)
    )
    assert run(cfg, "--out", out, "--resume") == 0
    assert calls == [0, 1, 2, 3, 4]  # batches 0 and 1 were read back, not simulated again
    assert spikes(out).equals(spikes(whole))
    man = json.loads((out / "manifest.json").read_text())
    assert man["resumed_batches"] == 2
    # a completed run leaves no saved batches; a changed config refuses to resume its own
    assert not list((tmp_path / "cache" / "resume").glob("*/batch-*"))
    calls.clear()
    monkeypatch.setattr(run_mod, "simulate_batch", dies_after_two)
    assert run(cfg, "--out", out) == 130
    changed = config(tmp_path, SWEEP.replace("MAXB", "2").replace("seed = 1", "seed = 2"), "s.toml")
    assert run(changed, "--out", out, "--resume") == 2


# ---- class 4: impossible jobs are refused up front ----------------------------------


def test_impossible_jobs_are_refused_naming_the_key(tmp_path, capsys, monkeypatch):
    huge = config(tmp_path, BASE.replace("trials = 2", "trials = 10000000"), "huge.toml")
    for args in (["--dry-run"], []):
        assert run(huge, "--out", tmp_path / "out", *args) == 2
        err = capsys.readouterr().err
        assert "MiB of device memory" in err and "[simulation] trials" in err
    endless = config(tmp_path, BASE.replace("duration_ms = 50.0", "duration_ms = 1e9"), "e.toml")
    assert run(endless, "--out", tmp_path / "out") == 2
    assert "duration_ms" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

    # traces: a known size, counted on the host
    traced = config(tmp_path, BASE + '[record]\nneurons = { cell_type = "MN9_like" }\n', "t.toml")
    import brainsim.experiments._jobsize as js

    monkeypatch.setattr(js, "available_bytes", lambda: (None, 1000))
    assert run(traced, "--out", tmp_path / "out", "--dry-run") == 2
    assert "[record] traces need" in capsys.readouterr().err


def test_dry_run_reports_the_job_size(tmp_path, capsys):
    cfg = config(tmp_path, BASE + '[record]\nneurons = { cell_type = "MN9_like" }\n')
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "500 steps" in err and "MiB of device memory per batch" in err
    assert "host memory for traces" in err and not (tmp_path / "out").exists()


# ---- class 6: random mutations of the shipped configs -------------------------------


def _mutations(raw, rng):
    """One random change of a parsed config: a key dropped, a value of another type or an
    absurd one, an unknown key, a table turned into a value."""
    import copy

    raw = copy.deepcopy(raw)
    tables = [(raw, None)]
    for k, v in raw.items():
        if isinstance(v, dict):
            tables.append((v, k))
            tables += [(x, k) for x in v.values() if isinstance(x, dict)]
        elif isinstance(v, list):
            tables += [(x, k) for x in v if isinstance(x, dict)]
    table, _ = tables[rng.integers(len(tables))]
    keys = list(table)
    values = [
        None,
        "",
        "nonsense",
        -1,
        0,
        1,
        2**63 - 1,
        -(2**63),
        1e300,
        -1e300,
        float("nan"),
        float("inf"),
        True,
        [],
        [1, "a"],
        {},
        {"ids": [1]},
        0.5,
        "../../etc",
    ]
    choice = rng.integers(4)
    if choice == 0 and keys:
        del table[keys[rng.integers(len(keys))]]
    elif choice == 1 and keys:
        v = values[rng.integers(len(values))]
        k = keys[rng.integers(len(keys))]
        if v is None:
            del table[k]
        else:
            table[k] = v
    elif choice == 2:
        table[f"unknown_{rng.integers(100)}"] = 1
    elif keys:
        k = keys[rng.integers(len(keys))]
        table[k] = [table[k]] if not isinstance(table[k], list) else {"x": table[k]}
    return raw


def _toml(raw):
    """A small TOML writer for the fuzzed dicts (tables, arrays of tables, plain values)."""
    import math

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return (
                "nan"
                if math.isnan(v)
                else ("inf" if v == math.inf else ("-inf" if v == -math.inf else repr(v)))
            )
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return "{" + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + "}"

    lines = [f"{json.dumps(k)} = {val(v)}" for k, v in raw.items() if not _is_table(v)]
    for k, v in raw.items():
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(k)}]")
            lines += [f"{json.dumps(a)} = {val(b)}" for a, b in v.items()]
        elif _is_table(v):
            for item in v:
                lines.append(f"[[{json.dumps(k)}]]")
                lines += [f"{json.dumps(a)} = {val(b)}" for a, b in item.items()]
    return "\n".join(lines) + "\n"


def _is_table(v):
    return isinstance(v, dict) or (
        isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
    )


def test_fuzzed_shipped_configs_give_a_plan_or_a_named_error(tmp_path, capsys):
    import pathlib
    import tomllib

    import numpy as np

    # the configs on synthetic networks (the others need downloaded FlyWire files), made
    # small; [fit] belongs to `brainsim fit`, so it is left out
    shipped = []
    for path in sorted((pathlib.Path(__file__).parent.parent / "configs").glob("*.toml")):
        raw = tomllib.loads(path.read_text().replace("scale=1.0", "scale=0.005"))
        if raw["connectome"]["path"].startswith("synthetic"):
            raw.pop("fit", None)
            raw["connectome"]["cache"] = False
            shipped.append(raw)
    assert len(shipped) >= 4
    rng = np.random.default_rng(0)
    outcomes = {0: 0, 2: 0}
    for i in range(120):
        raw = shipped[i % len(shipped)]
        mutated = _mutations(raw, rng) if i % 3 else _mutations(_mutations(raw, rng), rng)
        path = tmp_path / f"fuzz{i}.toml"
        path.write_text(_toml(mutated))
        code = cli.main(["run", str(path), "--dry-run", "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code in (0, 2), (mutated, err)
        if code == 2:
            last = err.strip().splitlines()[-1]
            assert last.startswith("brainsim: error: ") and "Traceback" not in err, err
        outcomes[code] += 1
    assert outcomes[0] and outcomes[2]  # both plans and refusals were exercised


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_process_prints_one_line_and_leaves_nothing(tmp_path, sig, code):
    """A real ``brainsim run`` process, interrupted while it compiles or simulates."""
    import subprocess
    import sys
    import time

    cfg = config(tmp_path, BASE.replace("duration_ms = 50.0", "duration_ms = 200000.0"))
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            # SIGINT as in a terminal, also under a background job (see interruptible)
            "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from brainsim.cli import entry; entry()",
            "run",
            str(cfg),
            "--out",
            str(tmp_path / "out"),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    first = proc.stderr.readline()  # "connectome: ...": loaded; compiling or running next
    assert first.startswith("connectome:"), first
    time.sleep(1.0)
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == code, rest
    assert "Traceback" not in rest and len(rest.strip().splitlines()) == 1, rest
    assert entries(tmp_path) == ["run.toml"]
