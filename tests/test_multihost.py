"""Many hosts: two CPU processes on 127.0.0.1, joined by ``jax.distributed.initialize``,
split the trials over their devices (one each) and get exactly the spikes and traces of a
one-device run.

Each process is a subprocess (JAX's distributed state is fixed when it starts) with
``JAX_PLATFORMS=cpu``, one CPU device, and JAX's CPU cross-process collectives (gloo, the
default of the ``jax_cpu_collectives_implementation`` option).
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

SPEC = "synthetic:seed=2,scale=0.005"
TRIALS, DURATION_MS, SEED = 4, 50.0, 7

WORKER = textwrap.dedent(
    """
    import sys
    import jax
    port, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid
    )
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 2, 1)
    import numpy as np
    sys.path.insert(0, sys.argv[4])
    from test_multihost import run
    r = run(devices="all")
    assert r.stats["devices"] == 2, r.stats
    np.savez(out, trial=r.trial, step=r.step, neuron=r.neuron, v=r.v_rec, g=r.g_rec)
    print("OK", pid, r.n_spikes)
    """
)


def run(devices):
    """The run both sides simulate: sugar-like inputs at four rates, one trial silencing
    five of them, the MN9-like neurons recorded."""
    from brainsim.connectome import load
    from brainsim.sim import Protocol, simulate

    conn = load(SPEC, "synthetic")
    types = np.asarray(conn.neurons.column("cell_type").to_pylist())
    grn = np.nonzero(types == "sugar_like_GRN")[0]
    rec = np.nonzero(types == "MN9_like")[0]
    sil = np.zeros((TRIALS, conn.n_neurons), bool)
    sil[1, grn[:5]] = True
    rates = np.linspace(100.0, 200.0, TRIALS)
    proto = Protocol.build(TRIALS, conn.n_neurons, poisson=[(grn, rates)], silence=sil)
    return simulate(conn, proto, duration_ms=DURATION_MS, seed=SEED, record=rec, devices=devices)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(argv, codes=(0, 0)) -> list[tuple[str, str]]:
    """Start ``python -c *argv(i, port)`` as processes 0 and 1 (one CPU device each, this
    checkout's brainsim); wait for both; assert their exit codes (``codes``); their
    standard outputs and errors."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)  # this checkout's brainsim, as in the test process
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
    }
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", *argv(i, port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    got = []
    try:
        for p in procs:
            got.append(p.communicate(timeout=600))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, (p, (_out, err)) in enumerate(zip(procs, got, strict=True)):
        assert p.returncode == codes[i], f"process {i}:\n{err[-3000:]}"
    return got


@pytest.mark.skipif(
    not hasattr(jax.config, "jax_cpu_collectives_implementation"),
    reason=f"jax {jax.__version__} has no CPU cross-process collectives "
    "(no jax_cpu_collectives_implementation option)",
)
def test_two_processes_equal_one(tmp_path):
    here = os.path.dirname(os.path.abspath(__file__))
    outs = two_processes(
        lambda i, port: [WORKER, str(port), str(i), str(tmp_path / f"p{i}.npz"), here]
    )
    for i, (out, _) in enumerate(outs):
        assert out.splitlines()[-1].startswith(f"OK {i} "), out  # (gloo logs to stdout)
    one = run(devices=1)
    assert one.n_spikes > 100
    for i in range(2):  # every process holds the whole result
        got = np.load(tmp_path / f"p{i}.npz")
        for name, want in (("trial", one.trial), ("step", one.step), ("neuron", one.neuron)):
            assert np.array_equal(got[name], want), (i, name)
        assert np.array_equal(got["v"], one.v_rec) and np.array_equal(got["g"], one.g_rec)


CLI_WORKER = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from brainsim import cli
    port, pid, cfg, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    code = cli.main(["run", cfg, "--out", out, "--quiet", "--no-plots",
                     "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                     "--process-id", pid])
    print("OK", pid, code)
    sys.exit(code)
    """
)


@pytest.mark.skipif(
    not hasattr(jax.config, "jax_cpu_collectives_implementation"),
    reason=f"jax {jax.__version__} has no CPU cross-process collectives "
    "(no jax_cpu_collectives_implementation option)",
)
def test_brainsim_run_over_two_processes_writes_one_result_equal_to_one_process(tmp_path):
    """`brainsim run --coordinator ...` in two processes: process 0 writes the results
    folder, process 1 writes nothing, and the spikes and traces equal a one-process run."""
    import pyarrow.parquet as pq
    from conftest import run_config_text

    from brainsim import cli

    cfg = tmp_path / "run.toml"
    cfg.write_text(
        run_config_text(SPEC, duration_ms=DURATION_MS, trials=TRIALS, seed=SEED)
        + '[record]\nneurons = { cell_type = "MN9_like" }\n'
    )
    outs = [tmp_path / f"out{i}" for i in range(2)]
    two_processes(lambda i, port: [CLI_WORKER, str(port), str(i), str(cfg), str(outs[i])])
    assert not outs[1].exists()  # only process 0 writes
    one = tmp_path / "one"
    assert cli.main(["run", str(cfg), "--out", str(one), "--quiet", "--no-plots"]) == 0
    man = json.loads((outs[0] / "manifest.json").read_text())
    assert man["device"]["processes"] == 2 and man["kernel"][0]["devices"] == 2
    for name in ("spikes.parquet", "traces.parquet", "rates.parquet"):
        a, b = pq.read_table(outs[0] / name), pq.read_table(one / name)
        assert a.num_rows > 0 and a.equals(b), name


def test_multi_process_options_are_checked(tmp_path, capsys):
    from conftest import run_config_text

    from brainsim import cli

    cfg = tmp_path / "run.toml"
    cfg.write_text(run_config_text())
    for argv, msg in [
        (["--num-processes", "2"], "need --coordinator"),
        (["--coordinator", "127.0.0.1:1"], "needs --num-processes N and --process-id I"),
        (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"],
         "--process-id must be in 0..1"),
        (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "0",
          "--resume"], "one process"),
    ]:  # fmt: skip
        assert cli.main(["run", str(cfg), *argv]) == 2
        assert msg in capsys.readouterr().err


@pytest.mark.skipif(
    not hasattr(jax.config, "jax_cpu_collectives_implementation"),
    reason=f"jax {jax.__version__} has no CPU cross-process collectives "
    "(no jax_cpu_collectives_implementation option)",
)
def test_when_process_0_cannot_write_every_process_stops(tmp_path):
    """A results folder process 0 may not replace (a folder of someone else's files): both
    processes stop with an error at once, none is left simulating alone."""
    from conftest import run_config_text

    cfg = tmp_path / "run.toml"
    cfg.write_text(run_config_text(SPEC, duration_ms=DURATION_MS, trials=TRIALS, seed=SEED))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not brainsim's")
    outs = two_processes(
        lambda i, port: [CLI_WORKER, str(port), str(i), str(cfg), str(foreign)], codes=(2, 2)
    )
    err0, err1 = outs[0][1], outs[1][1]
    assert "brainsim: error:" in err0 and str(foreign) in err0, err0[-2000:]
    assert "process 0 cannot write the results folder" in err1, err1[-2000:]
    assert (foreign / "notes.txt").read_text() == "not brainsim's"


def test_what_a_multi_process_run_refuses(tmp_path, monkeypatch):
    """In a run over several processes (faked here: 2 processes, 2 devices): trials that do
    not divide over all devices, a flyvis config, a dry run or --resume from Python, and
    the reference stepper asked to split trials are refused with errors naming them."""
    from conftest import run_config_text

    from brainsim.experiments import ConfigError, load_config, run_config
    from brainsim.experiments._run import _across_processes
    from brainsim.sim import Protocol, simulate

    cfg_path = tmp_path / "run.toml"
    cfg_path.write_text(run_config_text(SPEC, duration_ms=5.0, trials=3))
    cfg = load_config(cfg_path)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"run.toml: \[simulation\] trials: 3 trials cannot be"):
        _across_processes(cfg, lambda *a: None)
    visual = tmp_path / "v.toml"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    visual.write_text(open(os.path.join(root, "configs", "flyvis_moving_edges.toml")).read())
    with pytest.raises(ConfigError, match="a flyvis run is one process"):
        _across_processes(load_config(visual), lambda *a: None)
    for kw in ({"dry_run": True}, {"resume": True}):
        with pytest.raises(ConfigError, match="run in one process"):
            run_config(cfg, tmp_path / "out", log=lambda *a: None, **kw)
    from brainsim.connectome import load

    conn = load(SPEC, "synthetic")
    proto = Protocol.build(2, conn.n_neurons)
    with pytest.raises(ValueError, match="the reference stepper runs in one process"):
        simulate(conn, proto, duration_ms=1.0, kernel="reference", devices=2)
