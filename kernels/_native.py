"""Native CPU kernels: C++ sources in ``native/``, compiled on first use and called through
XLA's foreign function interface (``jax.ffi``).

The compiled libraries (one per source, built in parallel for the host's instruction set)
are cached per source, jaxlib version, compiler and CPU in ``$BRAINSIM_CACHE/native``
(``BRAINSIM_CACHE`` defaults to ``~/.cache/brainsim``), so a machine pays the compilation
(a few seconds) once. Where no C++ compiler is found, or the
build fails, :func:`native_kernels` says why and the engine runs the plain-JAX form of the
same work (identical semantics, tested against each other). ``BRAINSIM_NATIVE=0`` turns the native
kernels off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jax

NATIVE_DIR = Path(__file__).parent / "native"
HEADERS = tuple(sorted(NATIVE_DIR.glob("*.h")))  # included by the sources
TARGET = "brainsim_window_deliver"
DENSE_TARGET = "brainsim_dense_deliver"
DENSE_LIF_TARGET = "brainsim_dense_lif"
WINDOWED_LIF_TARGET = "brainsim_windowed_lif"
EVENTS_FORWARD_TARGET = "brainsim_events_forward"
EVENTS_BACKWARD_TARGET = "brainsim_events_backward"
# each source is its own library (built in parallel on first use), with the XLA FFI
# handlers it exports
LIBRARIES = {
    "window_deliver": {TARGET: "BrainsimWindowDeliver", DENSE_TARGET: "BrainsimDenseDeliver"},
    "dense_lif": {DENSE_LIF_TARGET: "BrainsimDenseLif"},
    "windowed_lif": {WINDOWED_LIF_TARGET: "BrainsimWindowedLif"},
    "events_grad": {
        EVENTS_FORWARD_TARGET: "BrainsimEventsForward",
        EVENTS_BACKWARD_TARGET: "BrainsimEventsBackward",
    },
}
# -fno-trapping-math: floating-point operations may run on lanes whose result a select then
# drops (so that the loops vectorize); it changes no result
FLAGS = (
    "-O3",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-w",
    "-ffp-contract=off",
    "-fno-trapping-math",
)


def cache_dir() -> Path:
    from brainsim._paths import cache_dir as _cache_dir

    return _cache_dir("native")


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def _host_cpu() -> bytes:
    """The host CPU's feature flags (Linux), which ``-march=native`` builds for."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.encode()
    except OSError:
        pass
    import platform

    return platform.processor().encode()


def _build(cxx: str, builds: dict[Path, Path]) -> None:
    """Compile each source into its library (``{source: library}``), all at once."""
    include = jax.ffi.include_dir()
    # for the host's instruction set, as XLA compiles (so that fused multiply-adds are used
    # where XLA uses them, see native/dense_lif.cc), and -ffp-contract=off: no others; a
    # compiler without -march=native builds for the baseline
    tmps = {}
    try:
        for out in builds.values():
            out.parent.mkdir(parents=True, exist_ok=True)
            # built beside the target, then renamed: concurrent builders see no partial file
            fd, tmps[out] = tempfile.mkstemp(suffix=".so", dir=out.parent)
            os.close(fd)
        pending, errors = dict(builds), {}
        for flags in (["-march=native"], []):
            cmds = {
                out: [cxx, *FLAGS, *flags, f"-I{include}", f"-I{NATIVE_DIR}", str(src), "-o",
                      tmps[out]]
                for src, out in pending.items()
            }  # fmt: skip
            procs = {
                out: subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
                )
                for out, cmd in cmds.items()
            }
            for out, proc in procs.items():
                _, err = proc.communicate()
                if proc.returncode == 0:
                    os.replace(tmps[out], out)
                    errors.pop(out, None)
                else:
                    errors[out] = f"{' '.join(cmds[out])} failed:\n{err[-2000:]}"
            pending = {src: out for src, out in pending.items() if out in errors}
            if not pending:
                return
        raise RuntimeError("\n".join(errors.values()))
    finally:
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def _library_path(name: str, cxx: str) -> Path:
    """Where a library is cached: per source, header, flags, jaxlib, compiler and CPU."""
    import jaxlib

    source = (NATIVE_DIR / f"{name}.cc").read_bytes()
    tag = hashlib.sha256(
        source
        + b"".join(p.read_bytes() for p in HEADERS)
        + " ".join(FLAGS).encode()
        + jaxlib.__version__.encode()
        + cxx.encode()
        + sys.platform.encode()
        + _host_cpu()
    ).hexdigest()[:16]
    return cache_dir() / f"{name}_{tag}.so"


@functools.cache
def native_kernels() -> tuple[bool, str]:
    """``(available, reason)``: whether the native CPU kernels are built and registered
    with XLA (building them on first use), and why not."""
    if os.environ.get("BRAINSIM_NATIVE", "1") == "0":
        return False, "turned off by BRAINSIM_NATIVE=0"
    cxx = _compiler()
    if cxx is None:
        return False, "no C++ compiler (g++ or $CXX) found"
    paths = {name: _library_path(name, cxx) for name in LIBRARIES}
    try:
        missing = {NATIVE_DIR / f"{n}.cc": p for n, p in paths.items() if not p.exists()}
        if missing:
            _build(cxx, missing)
        for name, handlers in LIBRARIES.items():
            lib = ctypes.cdll.LoadLibrary(str(paths[name]))
            for target, symbol in handlers.items():
                handler = jax.ffi.pycapsule(getattr(lib, symbol))
                jax.ffi.register_ffi_target(target, handler, platform="cpu")
    except (OSError, RuntimeError, AttributeError) as err:
        return False, f"native kernel build failed: {err}"
    return True, ", ".join(str(p) for p in paths.values())


def window_deliver(
    cells,
    stamps,
    pending_flat,
    pending_k,
    awake_flat,
    always_flat,
    indptr,
    indices,
    counts,
    w_pre,
    silent,
    removed,
    refractory,
    lag,
    arrival,
    consts,
    window,
    *,
    n_neurons: int,
    stepped: int,
    awake: int,
):
    """One window's synaptic delivery in C++ (see ``native/window_deliver.cc``): the active
    set, the jump of the quiet entries (written into ``cells``) and the list of entries to
    step. ``silent``/``removed`` are flat bool masks or None. Returns ``(cells, stamps,
    st_flat [stepped], st_vg [stepped, 2], st_since [stepped], arrivals [D, stepped],
    awake_flat [awake], counts [4])``; counts are the true numbers of active entries,
    stepped entries, synaptic events and awake (jumped) entries."""
    import jax.numpy as jnp
    import numpy as np

    dtype = cells.dtype
    i32 = jnp.int32
    sds = jax.ShapeDtypeStruct
    out = (
        sds(cells.shape, dtype),
        sds(stamps.shape, i32),
        sds((stepped,), i32),
        sds((stepped, 2), dtype),
        sds((stepped,), i32),
        sds((arrival.shape[0], stepped), dtype),
        sds((awake,), i32),
        sds((4,), i32),
    )
    dummy = jnp.zeros((1,), bool)
    call = jax.ffi.ffi_call(TARGET, out, input_output_aliases={0: 0, 1: 1})
    return call(
        cells,
        stamps,
        pending_flat,
        pending_k,
        awake_flat,
        always_flat,
        indptr,
        indices,
        counts,
        w_pre,
        dummy if silent is None else silent,
        dummy if removed is None else removed,
        refractory,
        lag,
        arrival,
        consts,
        window,
        n_neurons=np.int64(n_neurons),
        has_silent=np.int64(silent is not None),
        has_removed=np.int64(removed is not None),
    )


def dense_deliver(
    pending_flat,
    pending_k,
    indptr,
    indices,
    counts,
    w_pre,
    silent,
    removed,
    *,
    n_neurons: int,
    delay_steps: int,
    entries: int,
):
    """The dense-window stepper's delivery in C++: the spikes ``pending_flat`` (flat entries,
    ``entries`` = padding) at steps ``pending_k`` expanded over their CSR rows into arrivals
    [delay_steps, entries] (``silent``/``removed``: flat bool masks or None). Returns
    ``(arrivals, events [1])``, the true number of synaptic events."""
    import jax.numpy as jnp
    import numpy as np

    dtype = counts.dtype
    out = (
        jax.ShapeDtypeStruct((delay_steps, entries), dtype),
        jax.ShapeDtypeStruct((1,), jnp.int32),
    )
    dummy = jnp.zeros((1,), bool)
    return jax.ffi.ffi_call(DENSE_TARGET, out)(
        pending_flat,
        pending_k,
        indptr,
        indices,
        counts,
        w_pre,
        dummy if silent is None else silent,
        dummy if removed is None else removed,
        n_neurons=np.int64(n_neurons),
        has_silent=np.int64(silent is not None),
        has_removed=np.int64(removed is not None),
    )


def dense_lif_chunk(
    u,
    g,
    since,
    pending_flat,
    pending_k,
    indptr,
    indices,
    counts,
    w_pre,
    silent,
    removed,
    refractory,
    neuron_consts,
    props,
    window,
    input_idx,
    keys,
    levels,
    table,
    replay_offsets,
    replay_events,
    cur_pos,
    cur_amp,
    cur_start,
    cur_stop,
    rec_idx,
    *,
    n_windows: int,
    spike_budget: int,
):
    """``n_windows`` delay windows of the LIF model on every neuron, in C++ (see
    ``native/dense_lif.cc``): the state ``u, g`` [trials, n] (u from rest) and ``since``
    [trials, n]; ``pending_flat``/``pending_k`` the previous window's spikes;
    ``neuron_consts`` [3, n] (v_th and v_reset from rest, the input event's kick f_poi x
    w_syn), ``props`` the one-step ``(k_m, k_s, c)``; Poisson stream 2's ``keys``,
    ``levels``, ``table``; the replayed events of window ``w`` and trial ``b`` as rows
    ``replay_offsets[w * trials + b]`` up to the next offset of ``replay_events`` [E, 2]
    (step within the window, input position; :meth:`brainsim.sim.Protocol.replay_windows`);
    the currents of :class:`brainsim.sim.Drive`. Returns ``(u, g, since, spike_flat [windows,
    spike_budget], spike_k, counts [windows, 2] (spikes, synaptic events), u_rec, g_rec
    [windows, delay, trials, recorded])``."""
    import jax.numpy as jnp
    import numpy as np

    dtype = u.dtype
    n_trials, n = u.shape
    d = table.shape[1]
    i32 = jnp.int32
    sds = jax.ShapeDtypeStruct
    n_rec = rec_idx.shape[0]
    out = (
        sds(u.shape, dtype),
        sds(g.shape, dtype),
        sds(since.shape, i32),
        sds((n_windows, spike_budget), i32),
        sds((n_windows, spike_budget), i32),
        sds((n_windows, 2), i32),
        sds((n_windows, d, n_trials, n_rec), dtype),
        sds((n_windows, d, n_trials, n_rec), dtype),
    )
    dummy = jnp.zeros((1,), bool)
    call = jax.ffi.ffi_call(DENSE_LIF_TARGET, out, input_output_aliases={0: 0, 1: 1, 2: 2})
    return call(
        u,
        g,
        since,
        pending_flat,
        pending_k,
        indptr,
        indices,
        counts,
        w_pre,
        dummy if silent is None else silent,
        dummy if removed is None else removed,
        refractory,
        neuron_consts,
        props,
        window,
        input_idx,
        keys,
        levels,
        table,
        replay_offsets,
        replay_events,
        cur_pos,
        cur_amp,
        cur_start,
        cur_stop,
        rec_idx,
        n_neurons=np.int64(n),
        has_silent=np.int64(silent is not None),
        has_removed=np.int64(removed is not None),
    )


def windowed_lif_chunk(
    cells,
    pending_flat,
    pending_k,
    awake_flat,
    always_flat,
    indptr,
    indices,
    counts,
    w_pre,
    silent,
    removed,
    refractory,
    lag,
    arrival,
    consts,
    props,
    neuron_consts,
    window,
    input_idx,
    input_slot,
    rec_slot,
    keys,
    levels,
    table,
    replay_offsets,
    replay_events,
    cur_pos,
    cur_amp,
    cur_start,
    cur_stop,
    *,
    n_neurons: int,
    n_windows: int,
    spike_budget: int,
):
    """``n_windows`` windows of the windowed stepper for the LIF model in C++ (see
    ``native/windowed_lif.cc``): :func:`window_deliver`'s delivery (same arguments up to
    ``consts``), then the listed neurons stepped (``props`` the one-step ``(k_m, k_s, c)``,
    ``neuron_consts`` [3, n] v_th and v_reset from rest and the input event's kick), their
    rows written back and the awake and spike lists made, window after window. The drive:
    ``input_slot``/``rec_slot`` the inputs' and recorded neurons' positions among a trial's
    always-active neurons, Poisson stream 2's ``keys``, ``levels``, ``table``, the replayed
    events as :func:`dense_lif_chunk` takes them, the currents of
    :class:`brainsim.sim.Drive`. Returns ``(cells, stamps, pending_flat, pending_k,
    awake_flat, spike_flat [windows, spike_budget], spike_k, counts [windows, 5], u_rec,
    g_rec [windows, delay, trials, recorded])``; the counts are the true numbers of active
    and stepped neurons, spikes, synaptic events and awake neurons of each window."""
    import jax.numpy as jnp
    import numpy as np

    dtype = cells.dtype
    i32 = jnp.int32
    sds = jax.ShapeDtypeStruct
    n_trials = (replay_offsets.shape[0] - 1) // n_windows
    d = arrival.shape[0]
    out = (
        sds(cells.shape, dtype),
        sds(pending_flat.shape, i32),
        sds(pending_k.shape, i32),
        sds(awake_flat.shape, i32),
        sds((n_windows, spike_budget), i32),
        sds((n_windows, spike_budget), i32),
        sds((n_windows, 6), i32),
        sds((n_windows, d, n_trials, rec_slot.shape[0]), dtype),
        sds((n_windows, d, n_trials, rec_slot.shape[0]), dtype),
    )
    dummy = jnp.zeros((1,), bool)
    call = jax.ffi.ffi_call(WINDOWED_LIF_TARGET, out, input_output_aliases={0: 0})
    return call(
        cells,
        pending_flat,
        pending_k,
        awake_flat,
        always_flat,
        indptr,
        indices,
        counts,
        w_pre,
        dummy if silent is None else silent,
        dummy if removed is None else removed,
        refractory,
        lag,
        arrival,
        consts,
        props,
        neuron_consts,
        window,
        input_idx,
        input_slot,
        rec_slot,
        keys,
        levels,
        table,
        replay_offsets,
        replay_events,
        cur_pos,
        cur_amp,
        cur_start,
        cur_stop,
        n_neurons=np.int64(n_neurons),
        has_silent=np.int64(silent is not None),
        has_removed=np.int64(removed is not None),
    )


def native_choice(native: bool | None, kernel: str, reasons=()) -> bool:
    """Whether to run a native CPU kernel: never with ``native=False``; with ``None``
    where the backend is the CPU, none of ``reasons`` (why not, given by the caller)
    applies and the kernels are built; ``native=True`` where it cannot run is an error
    naming ``kernel`` and every reason."""
    if native is False:
        return False
    reasons = list(reasons)
    if jax.default_backend() != "cpu":
        reasons.append(f"it runs on the CPU only (backend: {jax.default_backend()})")
    if not reasons:
        ok, why = native_kernels()
        if not ok:
            reasons.append(why)
    if reasons and native:
        raise ValueError(f"native=True, but the {kernel} cannot run: " + "; ".join(reasons))
    return not reasons


def _registered() -> None:
    ok, why = native_kernels()
    if not ok:
        raise RuntimeError(f"the native kernels are not available: {why}")


def events_forward(out, weight, indptr, post):
    """``I[r, post[e]] = sum of out[r, i] w[e]`` over the connections of the nonzero
    outputs, in C++ (``native/events_grad.cc``; ``brainsim.fit._events``'s forward).
    ``out`` [rows, n]; ``weight`` and ``post`` in CSR order with one padding connection."""
    _registered()
    out_type = jax.ShapeDtypeStruct(out.shape, out.dtype)
    call = jax.ffi.ffi_call(EVENTS_FORWARD_TARGET, out_type, vmap_method="sequential")
    return call(out, weight, indptr, post)


def events_backward(out, near, weight, indptr, post, g):
    """The backward pass of :func:`events_forward` for ``g = dL/dI``: ``(dL/dout``, zero
    except where ``near``, ``dL/dweight)``."""
    _registered()
    sds = jax.ShapeDtypeStruct
    out_types = (sds(out.shape, out.dtype), sds(weight.shape, weight.dtype))
    call = jax.ffi.ffi_call(EVENTS_BACKWARD_TARGET, out_types, vmap_method="sequential")
    return call(out, near, weight, indptr, post, g)


__all__ = [
    "DENSE_LIF_TARGET",
    "EVENTS_BACKWARD_TARGET",
    "EVENTS_FORWARD_TARGET",
    "DENSE_TARGET",
    "LIBRARIES",
    "TARGET",
    "WINDOWED_LIF_TARGET",
    "cache_dir",
    "dense_deliver",
    "dense_lif_chunk",
    "events_backward",
    "events_forward",
    "native_choice",
    "native_kernels",
    "window_deliver",
    "windowed_lif_chunk",
]
