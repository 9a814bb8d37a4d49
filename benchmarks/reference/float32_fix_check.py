"""Experiment: would a more careful float32 step bring brainsim's float32 spikes to Brian2's?

Not part of the harness proper: it monkeypatches ``LIF.integrate`` in this process only
(brainsim's files are not touched) and compares, against Brian2 in float64, brainsim in
float32 as it is and with

  * voltages measured from rest (``v_0 = 0``, ``v_th = v_th - v_0``, ``v_reset = v_reset -
    v_0``): the stored state is u = v - v_0 (0..7 mV near threshold instead of -45 mV), so a
    float32 ulp near threshold is 0.48 uV instead of 3.8 uV; and
  * the one-step update in increment form with constants computed in float64 and cast once:
    ``v' = v + (g c - (v - v_0) k)``, ``g' = g - g k_g``, with ``k = -expm1(-dt/tau_m)``,
    ``k_g = -expm1(-dt/tau_syn)``. ``a = exp(-dt/tau_m)`` rounded to float32 is 1.7e-8 too
    small, which makes every float32 neuron relax to rest slightly too fast and spike
    slightly late (a bias, not noise); k carries the same information with a 60x smaller
    error in the effective decay.

Usage (after ``compare_brian2.py`` has run Brian2 for these seeds, or it runs it here):

    python benchmarks/reference/float32_fix_check.py --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_brian2 as cb  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--n-neurons", type=int, default=20_000)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--rate-hz", type=float, default=150.0)
    ap.add_argument("--kernel", default="windowed")
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--work-dir", default=str(cb.DEFAULT_OUT / "brian2_work"))
    args = ap.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from brainsim.connectome._synthetic import load_synthetic
    from brainsim.models import LIF

    def integrate_increment(self, v, g, i_ext_mv, integrating, props, v_0=None):
        dt, tm, ts = self.dt_ms, float(self.tau_m_ms), float(self.tau_syn_ms)
        k = jnp.asarray(-np.expm1(-dt / tm), v.dtype)
        k_g = jnp.asarray(-np.expm1(-dt / ts), v.dtype)
        c = jnp.asarray(ts / (ts - tm) * (np.exp(-dt / ts) - np.exp(-dt / tm)), v.dtype)
        v_0 = self.v_0_mv if v_0 is None else v_0
        u = v - v_0 - i_ext_mv
        v_new = v + (g * c - u * k)
        g_new = g - g * k_g
        return jnp.where(integrating, v_new, v), jnp.where(integrating, g_new, g)

    original = LIF.integrate
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    conn = load_synthetic(f"synthetic:seed=0,n_neurons={args.n_neurons}")
    ct = np.asarray(conn.neurons.column("cell_type").to_pylist(), dtype=object)
    inputs = np.nonzero(ct == "sugar_like_GRN")[0].astype(np.int64)
    model = LIF()
    shifted = dataclasses.replace(
        model,
        v_0_mv=0.0,
        v_reset_mv=float(model.v_reset_mv) - float(model.v_0_mv),
        v_th_mv=float(model.v_th_mv) - float(model.v_0_mv),
    )
    n_steps = int(round(args.duration_ms / model.dt_ms))
    print(
        f"{'seed':>4}  {'variant':<26} {'B2 reproduced':>13}  {'mismatched':>10}  "
        "first mismatch step per trial"
    )
    for seed in args.seeds:
        ev = cb.draw_events(args.trials, n_steps, inputs, args.rate_hz, model.dt_ms, seed)
        inp = work / "brian2_in.npz"
        key = cb.write_input(
            inp,
            conn,
            cb.model_params(model),
            args.trials,
            args.duration_ms,
            model.dt_ms,
            ev,
            inputs,
        )
        outp = work / f"brian2_out_{key}_float64_cython.npz"
        if not outp.exists():
            cb.run_brian2(inp, outp, "float64", "cython", 3600)
        d = np.load(outp)
        ref = (d["trial"], d["step"], d["neuron"])
        for name, m, patch in [
            ("as is", model, False),
            ("u = v - v_0", shifted, False),
            ("increment form", model, True),
            ("u = v - v_0 + increment", shifted, True),
        ]:
            LIF.integrate = integrate_increment if patch else original
            jax.clear_caches()  # else the jitted kernels keep the code traced before the patch
            r = cb.run_brainsim(
                conn,
                m,
                ev,
                inputs,
                args.trials,
                args.duration_ms,
                args.kernel,
                args.precision,
                warm=False,
            )["result"]
            c = cb.compare(
                ref, (r.trial, r.step, r.neuron), args.trials, n_steps, conn.n_neurons, model.dt_ms
            )
            print(
                f"{seed:>4}  {name:<26} {100 * c['frac_brian2_reproduced']:>12.3f}%  "
                f"{c['n_mismatched']:>10}  {c['first_mismatch_step_per_trial']}",
                flush=True,
            )
        LIF.integrate = original
    return 0


if __name__ == "__main__":
    sys.exit(main())
