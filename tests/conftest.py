import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# no persistent compilation cache in the tests (the CLI commands they call would turn it
# on): a test process then never reads or writes cache files that other runs share
os.environ.setdefault("BRAINSIM_JAX_CACHE", "0")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pytest  # noqa: E402

# float64 tests need JAX's 64-bit mode; float32 runs stay float32 (dtypes are explicit).
jax.config.update("jax_enable_x64", True)

from brainsim.connectome import Provenance, from_edges  # noqa: E402


def make_connectome(n, pre, post, counts, ids=None, **cols):
    """A tiny connectome from index edge lists (signed counts)."""
    ids = np.arange(1000, 1000 + n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    table = pa.table({"id": ids, **cols})
    prov = Provenance(format="test", sources=(), checksum="0" * 64, sign_rule="given")
    return from_edges(table, np.asarray(pre), np.asarray(post), np.asarray(counts), prov)


def same_spikes(a, b):
    """Whether two runs have the same spikes (trial, step, neuron)."""
    return (
        np.array_equal(a.trial, b.trial)
        and np.array_equal(a.step, b.step)
        and np.array_equal(a.neuron, b.neuron)
    )


def assert_identical(a, b):
    """Two runs with the same spikes and bit-identical traces."""
    assert same_spikes(a, b)
    for name in a.traces or {}:
        np.testing.assert_array_equal(a.traces[name], b.traces[name])


def random_connectome(n, p, seed, max_count=40, p_inh=0.3):
    rng = np.random.default_rng(seed)
    mask = rng.random((n, n)) < p
    pre, post = np.nonzero(mask)
    counts = rng.integers(1, max_count, pre.size)
    sign = np.where(rng.random(n) < p_inh, -1, 1)
    return make_connectome(n, pre, post, counts * sign[pre])


@pytest.fixture
def tiny_chain():
    """0 -> 1 -> 2 with 10 synapses each; 3 is isolated."""
    return make_connectome(4, [0, 1], [1, 2], [10, 10])


SMALL_SYNTHETIC = "synthetic:seed=0,scale=0.005"
FIT_SYNTHETIC = "synthetic:seed=0,n_neurons=150,n_inputs=6,layer_sizes=10:20:30,mean_out_degree=8"


def run_config_text(
    spec: str = SMALL_SYNTHETIC,
    *,
    duration_ms: float = 100.0,
    trials: int = 2,
    seed: int = 1,
    cache: str = "false",
    stimulus: bool = True,
) -> str:
    """TOML of a small run: a synthetic connectome, [simulation], and (``stimulus``) the
    sugar-like inputs driven at 150 Hz."""
    text = f"""
[connectome]
format = "synthetic"
path = "{spec}"
cache = {cache}
[simulation]
duration_ms = {duration_ms}
trials = {trials}
seed = {seed}
"""
    if stimulus:
        text += """[[stimulus]]
kind = "poisson"
neurons = { cell_type = "sugar_like_GRN" }
rate_hz = 150.0
"""
    return text


def write_config(tmp_path, text: str, name: str = "run.toml"):
    """``text`` written as the config file ``name`` in ``tmp_path``; its path."""
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A test's own BRAINSIM_CACHE (locks, resume state, parsed connectomes)."""
    monkeypatch.setenv("BRAINSIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module: one pytest process compiles
    hundreds of programs, and a full run that kept them all crashed in XLA's compiler (a
    segfault while compiling a small windowed run late in the suite; each test module
    passes alone)."""
    yield
    import gc

    jax.clear_caches()
    gc.collect()
