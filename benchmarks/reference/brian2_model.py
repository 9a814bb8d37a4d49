"""The Shiu et al. 2024 whole-brain LIF model in Brian2, driven by replayed input events.

Runs inside ``benchmarks/reference/.venv-brian2`` (Brian2 2.9, numpy < 2): no JAX and no
brainsim import. ``compare_brian2.py`` writes the input file and reads the output file.

Input .npz (all times in ms, voltages in mV):
    indptr, indices, counts   CSR by presynaptic neuron; counts are signed synapse counts
    n_neurons, n_trials, duration_ms, dt_ms
    v_0, v_rst, v_th, t_mbr, tau, t_rfc, t_dly, w_syn, f_poi   model parameters
    inputs (optional)         the input neurons (rfc = 0); default: those named by events
    ev_trial, ev_step, ev_neuron   replayed input events; each acts like one event of the
                                   reference code's PoissonInput on v (v += f_poi * w_syn)
    record (optional)         neuron indices whose v and g are recorded at the end of every
                              step (after resets)
    poisson_rate_hz (optional) drive the inputs with Brian2's own PoissonInput at this rate,
                              as the published code does, instead of replayed events (the
                              ev_* arrays are then empty): one PoissonInput on the whole
                              group when every neuron is an input, else one per input neuron
                              (the published code's form)

Output .npz:
    trial, step, neuron       one entry per spike; step = round(t / dt)
    wall_s                    float [n_trials]: wall time of each trial's run() call
    build_s, compile_s        network construction time and the warm-up (code generation)
    v_rec, g_rec              float [n_trials, steps, n_record] when ``record`` was given
    brian2_version, float_dtype, target

The model is built as in the published code (Shiu et al. 2024, ``model.py``):

    dv/dt = (g - (v - v_0)) / t_mbr : volt (unless refractory)
    dg/dt = -g / tau               : volt (unless refractory)
    rfc                            : second
    NeuronGroup(..., method='linear', threshold='v > v_th',
                reset='v = v_rst; g = 0 * mV', refractory='rfc')
    Synapses(neu, neu, 'w : volt', on_pre='g += w', delay=t_dly), w = count * w_syn

with v = v_0, g = 0 initially, rfc = 0 ms for input neurons and t_rfc for all others. The
reference code drives inputs with ``PoissonInput(target_var='v', N=1, weight=f_poi*w_syn)``;
here the same events come from a SpikeGeneratorGroup through a zero-delay Synapses with
``on_pre='v += f_poi * w_syn'`` (same scheduling slot, 'synapses', and the same conditional
write on refractory targets), so that both simulators see identical input.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", help="network + events .npz")
    ap.add_argument("output", help="spikes .npz to write")
    ap.add_argument("--precision", choices=("float64", "float32"), default="float64")
    ap.add_argument(
        "--target",
        choices=("cython", "numpy"),
        default="cython",
        help="Brian2 code generation target (runtime mode)",
    )
    ap.add_argument(
        "--cython-cache",
        default=None,
        help="folder of Brian2's compiled Cython code (default: its own, ~/.cython)",
    )
    ap.add_argument(
        "--show-code",
        action="store_true",
        help="print the state update code Brian2 generates and exit after building",
    )
    args = ap.parse_args(argv)

    import brian2 as b2
    from brian2 import (
        Hz,
        Network,
        NeuronGroup,
        PoissonInput,
        SpikeGeneratorGroup,
        SpikeMonitor,
        StateMonitor,
        Synapses,
        ms,
        mV,
        prefs,
    )

    prefs.codegen.target = args.target
    if args.cython_cache:
        prefs.codegen.runtime.cython.cache_dir = args.cython_cache
    prefs.core.default_float_dtype = np.float64 if args.precision == "float64" else np.float32
    b2.BrianLogger.log_level_warn()

    d = np.load(args.input)
    n = int(d["n_neurons"])
    n_trials = int(d["n_trials"])
    dt_ms = float(d["dt_ms"])
    duration_ms = float(d["duration_ms"])
    p = {
        k: float(d[k])
        for k in ("v_0", "v_rst", "v_th", "t_mbr", "tau", "t_rfc", "t_dly", "w_syn", "f_poi")
    }
    ev_trial, ev_step, ev_neuron = (
        np.asarray(d[k], np.int64) for k in ("ev_trial", "ev_step", "ev_neuron")
    )
    record = np.asarray(d["record"], np.int64) if "record" in d.files else np.zeros(0, np.int64)
    indptr, indices, counts = (
        np.asarray(d["indptr"]),
        np.asarray(d["indices"]),
        np.asarray(d["counts"]),
    )

    b2.defaultclock.dt = dt_ms * ms
    t0 = time.perf_counter()
    namespace = {
        "v_0": p["v_0"] * mV,
        "v_rst": p["v_rst"] * mV,
        "v_th": p["v_th"] * mV,
        "t_mbr": p["t_mbr"] * ms,
        "tau": p["tau"] * ms,
        "w_syn": p["w_syn"] * mV,
        "f_poi": p["f_poi"],
    }
    eqs = """
    dv/dt = (g - (v - v_0)) / t_mbr : volt (unless refractory)
    dg/dt = -g / tau               : volt (unless refractory)
    rfc                            : second
    """
    neu = NeuronGroup(
        n,
        model=eqs,
        method="linear",
        threshold="v > v_th",
        reset="v = v_rst; g = 0 * mV",
        refractory="rfc",
        name="neu",
        namespace=namespace,
    )
    neu.v = p["v_0"] * mV
    neu.g = 0 * mV
    inputs = (
        np.unique(np.asarray(d["inputs"], np.int64))
        if "inputs" in d.files
        else np.unique(ev_neuron)
    )
    if not np.all(np.isin(ev_neuron, inputs)):
        raise SystemExit("an input event names a neuron that is not in `inputs`")
    rfc_ms = np.full(n, p["t_rfc"])
    rfc_ms[inputs] = 0.0
    neu.rfc = rfc_ms * ms

    syn = Synapses(
        neu,
        neu,
        "w : volt",
        on_pre="g += w",
        delay=p["t_dly"] * ms,
        name="syn",
        namespace=namespace,
    )
    pre = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    syn.connect(i=pre, j=np.asarray(indices, np.int64))
    syn.w = np.asarray(counts, np.float64) * p["w_syn"] * mV

    poisson_hz = float(d["poisson_rate_hz"]) if "poisson_rate_hz" in d.files else None
    spk = SpikeMonitor(neu, record=True, name="spk")
    if poisson_hz is None:
        # input events: one generator cell per input neuron
        pos = np.searchsorted(inputs, ev_neuron)
        sgg = SpikeGeneratorGroup(max(inputs.size, 1), [], [] * ms, name="events")
        inp = Synapses(sgg, neu, on_pre="v += f_poi * w_syn", name="inp", namespace=namespace)
        if inputs.size:
            inp.connect(i=np.arange(inputs.size), j=inputs)
        objs = [neu, syn, sgg, inp, spk]
    else:
        weight = p["f_poi"] * p["w_syn"] * mV
        if inputs.size == n:
            drives = [PoissonInput(neu, "v", 1, poisson_hz * Hz, weight=weight)]
        else:
            drives = [
                PoissonInput(neu[int(i)], "v", 1, poisson_hz * Hz, weight=weight) for i in inputs
            ]
        objs = [neu, syn, *drives, spk]
    mon = None
    if record.size:
        mon = StateMonitor(neu, ["v", "g"], record=record, when="end", name="mon")
        objs.append(mon)
    net = Network(*objs)
    build_s = time.perf_counter() - t0

    # warm-up: generate and compile all code objects once, outside the timed trials
    t0 = time.perf_counter()
    net.store("init")
    net.run(dt_ms * ms, namespace=namespace)
    compile_s = time.perf_counter() - t0
    if args.show_code:
        print(neu.state_updater.abstract_code)
        print(neu.state_updater.codeobj.code)
        return 0

    out_t, out_s, out_i, wall, v_rec, g_rec = [], [], [], [], [], []
    for tr in range(n_trials):
        net.restore("init")
        if poisson_hz is None:
            sel = ev_trial == tr
            order = np.lexsort((pos[sel], ev_step[sel]))
            sgg.set_spikes(pos[sel][order], ev_step[sel][order] * dt_ms * ms, sorted=True)
        t0 = time.perf_counter()
        net.run(duration_ms * ms, namespace=namespace)
        wall.append(time.perf_counter() - t0)
        steps = np.round(np.asarray(spk.t / ms) / dt_ms).astype(np.int64)
        out_t.append(np.full(steps.size, tr, np.int64))
        out_s.append(steps)
        out_i.append(np.asarray(spk.i, np.int64))
        if mon is not None:
            v_rec.append(np.asarray(mon.v / mV).T.copy())
            g_rec.append(np.asarray(mon.g / mV).T.copy())
        print(
            f"brian2 trial {tr}: {steps.size} spikes, {wall[-1]:.2f} s", file=sys.stderr, flush=True
        )

    extra = {}
    if mon is not None:
        extra = {"v_rec": np.stack(v_rec), "g_rec": np.stack(g_rec), "rec_idx": record}
    np.savez(
        args.output,
        trial=np.concatenate(out_t),
        step=np.concatenate(out_s),
        neuron=np.concatenate(out_i),
        wall_s=np.asarray(wall),
        build_s=build_s,
        compile_s=compile_s,
        brian2_version=b2.__version__,
        float_dtype=args.precision,
        target=args.target,
        **extra,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
