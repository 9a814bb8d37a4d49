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
