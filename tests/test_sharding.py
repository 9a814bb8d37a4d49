"""Trials split over 4 (virtual CPU) devices give exactly the spikes of one device.

Runs in a subprocess because the device count is fixed when JAX starts.
"""

import subprocess
import sys
import textwrap


def test_four_devices_equal_one():
    code = textwrap.dedent(
        """
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
        os.environ["JAX_PLATFORMS"] = "cpu"
        import jax, numpy as np
        assert jax.device_count() == 4
        from brainsim.connectome import load
        from brainsim.sim import Protocol, simulate
        conn = load("synthetic:seed=2,scale=0.01", "synthetic")
        types = np.asarray(conn.neurons.column("cell_type").to_pylist())
        grn = np.nonzero(types == "sugar_like_GRN")[0]
        rec = np.nonzero(types == "MN9_like")[0]
        sil = np.zeros((8, conn.n_neurons), bool)
        sil[3, grn[:5]] = True
        rates = np.linspace(50, 200, 8)
        proto = Protocol.build(8, conn.n_neurons, poisson=[(grn, rates)], silence=sil)
        kw = dict(duration_ms=60.0, seed=7, record=rec)
        one = simulate(conn, proto, devices=1, **kw)
        four = simulate(conn, proto, devices=4, **kw)
        assert four.stats["devices"] == 4
        assert one.n_spikes > 100
        for a in ("trial", "step", "neuron"):
            assert np.array_equal(getattr(one, a), getattr(four, a)), a
        assert np.array_equal(one.v_rec, four.v_rec)
        # chunks of 9 ms: the last one (6 ms) runs padded to a full chunk on every shard
        padded = simulate(conn, proto, devices=4, chunk_ms=9.0, **kw)
        assert padded.stats["chunk_windows"] == [5] and padded.stats["devices"] == 4
        for a in ("trial", "step", "neuron"):
            assert np.array_equal(getattr(one, a), getattr(padded, a)), a
        assert np.array_equal(one.v_rec, padded.v_rec)
        try:
            simulate(conn, Protocol.build(6, conn.n_neurons), duration_ms=1.0, devices=4)
            raise SystemExit("no error for 6 trials on 4 devices")
        except ValueError as e:
            assert "cannot be split evenly" in str(e)
        print("OK", one.n_spikes)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("OK")


def test_a_fit_with_its_trials_on_two_devices_equals_one_device():
    """`split_trials`: the gradient's trials split over 2 (virtual CPU) devices give the
    same losses, gradient norms and fitted values as one device, on both gradient paths."""
    code = textwrap.dedent(
        """
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        os.environ["JAX_PLATFORMS"] = "cpu"
        import jax, jax.numpy as jnp, numpy as np
        assert jax.device_count() == 2
        from conftest import random_connectome
        from brainsim.fit import (RateTargets, Surrogate, build_params, build_task, fit,
                                  make_optimizer, split_trials)
        from brainsim.models import LIF
        from brainsim.sim import Network, Protocol
        conn = random_connectome(300, 0.05, seed=1)
        net = Network.from_connectome(conn, jnp.float32, with_pre=True)
        rates = np.array([100.0, 150.0, 200.0, 120.0])
        proto = Protocol.build(4, 300, poisson=[(np.arange(20), rates)])
        rows = np.arange(20, 300)
        targets = {"rates": RateTargets.from_arrays(0 * rows, rows, 30.0 + 0 * rows, jnp.float32)}
        for prop in (None, "events"):
            sur = Surrogate("straight_through", 1.0, 0.005) if prop else None
            task = build_task(net, proto, LIF(), targets, duration_ms=30.0, propagation=prop,
                              surrogate=sur)
            params, _ = build_params(LIF(), conn, ["w_syn_mv", "syn_scale_by_neuron"])
            opt = make_optimizer("adam", 1e-2)
            one, h1 = fit(params, task, steps=3, optimizer=opt)
            split = split_trials(task, 2)
            assert len(split.drive.rate_hz.sharding.device_set) == 2
            assert task.native == (prop == "events") and not split.native  # (the JAX form)
            two, h2 = fit(params, split, steps=3, optimizer=opt)
            assert h1[0]["loss"] > 0 and h1[-1]["loss"] < h1[0]["loss"]
            for a, b in zip(h1, h2):
                np.testing.assert_allclose(
                    [a["loss"], a["grad_norm"]], [b["loss"], b["grad_norm"]], rtol=1e-5)
            for q in ("w_syn_mv", "syn_scale"):
                np.testing.assert_allclose(np.asarray(getattr(one, q).values()),
                                           np.asarray(getattr(two, q).values()), rtol=1e-5)
            assert len(getattr(two, "w_syn_mv").values().sharding.device_set) == 2
        try:
            split_trials(task, 3)
            raise SystemExit("no error for 4 trials on 3 devices")
        except ValueError as e:
            assert "4 trials cannot be split evenly over 3" in str(e)
        print("OK")
        """
    )
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=here
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]
