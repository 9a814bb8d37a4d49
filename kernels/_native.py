"""Native CPU kernels: C++ sources in ``native/``, compiled on first use and called through
XLA's foreign function interface (``jax.ffi``).

The compiled library is cached per source, jaxlib version and compiler in
``$BRAINSIM_CACHE/native`` (``BRAINSIM_CACHE`` defaults to ``~/.cache/brainsim``), so a
machine pays the compilation (a few seconds) once. Where no C++ compiler is found, or the
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

SOURCE = Path(__file__).parent / "native" / "window_deliver.cc"
TARGET = "brainsim_window_deliver"
DENSE_TARGET = "brainsim_dense_deliver"


def cache_dir() -> Path:
    from brainsim._paths import cache_dir as _cache_dir

    return _cache_dir("native")


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def _build(cxx: str, out: Path) -> None:
    include = jax.ffi.include_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target, then rename: concurrent builders never see a partial file
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    cmd = [cxx, "-O3", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{include}", str(SOURCE)]
    try:
        proc = subprocess.run([*cmd, "-o", tmp], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def native_kernels() -> tuple[bool, str]:
    """``(available, reason)``: whether the native CPU kernels are built and registered
    with XLA (building them on first use), and why not."""
    if os.environ.get("BRAINSIM_NATIVE", "1") == "0":
        return False, "turned off by BRAINSIM_NATIVE=0"
    cxx = _compiler()
    if cxx is None:
        return False, "no C++ compiler (g++ or $CXX) found"
    import jaxlib

    tag = hashlib.sha256(
        SOURCE.read_bytes() + jaxlib.__version__.encode() + cxx.encode() + sys.platform.encode()
    ).hexdigest()[:16]
    lib_path = cache_dir() / f"window_deliver_{tag}.so"
    try:
        if not lib_path.exists():
            _build(cxx, lib_path)
        lib = ctypes.cdll.LoadLibrary(str(lib_path))
        handlers = {TARGET: lib.BrainsimWindowDeliver, DENSE_TARGET: lib.BrainsimDenseDeliver}
        for name, handler in handlers.items():
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(handler), platform="cpu")
    except (OSError, RuntimeError, AttributeError) as err:
        return False, f"native kernel build failed: {err}"
    return True, str(lib_path)


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


__all__ = [
    "DENSE_TARGET",
    "TARGET",
    "cache_dir",
    "dense_deliver",
    "native_kernels",
    "window_deliver",
]
