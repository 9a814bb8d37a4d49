"""A seeded synthetic connectome whose statistics match FlyWire v783.

Target figures (FlyWire v783 as used by Shiu et al. 2024): 139,255 neurons, about 15.1M
directed connections and 54.5M synapses, about half of the connections single-synapse, heavy
tailed in- and out-degrees up to about 9.8k, about 60% of connections excitatory.

Background wiring: out-degrees and in-degree weights are lognormal (sigma 1.2, clipped at
9,800), targets drawn in proportion to in-degree weight; a connection's synapse count is 1
with probability 1/2 and otherwise 2 + floor(lognormal), so that the mean is about 3.6.
A neuron's transmitter is GABA or glutamate (inhibitory) with probability 0.4, otherwise
acetylcholine (or rarely a monoamine), and all its outputs carry that sign.

A feed-forward "sugar-like" pathway is embedded on top of the background: 21 input neurons
(cell type ``sugar_like_GRN``) project with strong connections to layer 1, layer 1 to layer
2, layer 2 to layer 3, and layer 3 to one ``MN9_like`` readout. Poisson activation of the 21
inputs at 100-200 Hz makes roughly 400-600 neurons fire, 10-20k spikes per trial-second, as
the sugar experiment of Shiu et al. does on the real connectome (``benchmarks/`` measures it).

Scaled-down networks (``scale`` < 1) keep the degree and count distributions and the
pathway; only the number of background neurons shrinks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pyarrow as pa

from brainsim.connectome._connectome import Connectome, Provenance, from_edges
from brainsim.connectome._errors import ConnectomeError

GENERATOR_VERSION = 3
FLYWIRE_N_NEURONS = 139_255
ID_BASE = 720_575_940_600_000_000

INPUT_TYPE = "sugar_like_GRN"
READOUT_TYPE = "MN9_like"


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of the generator; every field can be set in a ``synthetic:`` spec."""

    seed: int = 0
    scale: float = 1.0
    n_neurons: int | None = None  # overrides scale
    mean_out_degree: float = 109.0  # a little above 108.4: ~2% of draws repeat a pair
    degree_sigma: float = 1.2
    max_degree: int = 9_800
    p_single_synapse: float = 0.5
    count_mu: float = 1.05
    count_sigma: float = 1.0
    p_inhibitory: float = 0.4
    n_inputs: int = 21
    layer_sizes: tuple[int, ...] = (50, 160, 400)
    # per layer: how many presynaptic partners in the previous layer, and their mean count
    layer_fan_in: tuple[int, ...] = (8, 12, 16)
    layer_count: tuple[float, ...] = (15.0, 13.0, 14.0)
    layer_p_inhibitory: float = 0.15
    readout_fan_in: int = 100
    readout_count: float = 16.0

    def resolved_n(self) -> int:
        n = self.n_neurons if self.n_neurons is not None else round(FLYWIRE_N_NEURONS * self.scale)
        pathway = self.n_inputs + sum(self.layer_sizes) + 1
        if n < pathway + 10:
            raise ConnectomeError(
                f"synthetic network of {n} neurons is too small for its sugar-like pathway "
                f"({pathway} neurons); use scale >= {(pathway + 10) / FLYWIRE_N_NEURONS:.4f}"
            )
        return int(n)


def parse_spec(source: str, **options) -> SyntheticSpec:
    """``synthetic:seed=0,scale=1.0`` (and keyword options) -> :class:`SyntheticSpec`."""
    fields = {f.name: f for f in dataclasses.fields(SyntheticSpec)}
    values: dict = {}
    text = str(source)
    if text.startswith("synthetic"):
        text = text[len("synthetic") :].lstrip(":")
    items = [kv for kv in text.split(",") if kv.strip()] if text else []
    raw = dict(options)
    for kv in items:
        if "=" not in kv:
            raise ConnectomeError(f"synthetic spec {source!r}: expected key=value, got {kv!r}")
        k, v = kv.split("=", 1)
        raw[k.strip()] = v.strip()
    for k, v in raw.items():
        if k not in fields:
            raise ConnectomeError(
                f"synthetic spec {source!r}: unknown key {k!r}; known: {', '.join(fields)}"
            )
        default = getattr(SyntheticSpec(), k)
        try:
            if isinstance(default, tuple):
                parts = v if isinstance(v, (list, tuple)) else str(v).split(":")
                values[k] = tuple(type(default[0])(p) for p in parts)
            elif k == "n_neurons":
                values[k] = None if v in (None, "None", "") else int(v)
            else:
                values[k] = type(default)(v)
        except (TypeError, ValueError):
            raise ConnectomeError(
                f"synthetic spec {source!r}: {k}={v!r} is not a {type(default).__name__}"
            ) from None
    spec = SyntheticSpec(**values)
    if spec.scale <= 0:
        raise ConnectomeError(f"synthetic spec {source!r}: scale must be > 0")
    return spec


def _unique_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    ids = np.unique(rng.integers(0, 10 * n + 10**9, size=int(n * 1.05) + 16))
    while ids.size < n:
        ids = np.unique(np.concatenate([ids, rng.integers(0, 10 * n + 10**9, size=n)]))
    return np.sort(rng.permutation(ids)[:n]) + ID_BASE


def _background(spec: SyntheticSpec, rng: np.random.Generator, n: int):
    mu = np.log(spec.mean_out_degree) - spec.degree_sigma**2 / 2
    out_deg = np.minimum(rng.lognormal(mu, spec.degree_sigma, n), min(spec.max_degree, n - 1))
    out_deg = np.maximum(np.round(out_deg), 1).astype(np.int64)
    in_w = np.minimum(rng.lognormal(0.0, spec.degree_sigma, n), spec.max_degree / 50)
    cum = np.cumsum(in_w)
    cum /= cum[-1]
    pre = np.repeat(np.arange(n, dtype=np.int64), out_deg)
    post = np.searchsorted(cum, rng.random(pre.size), side="right").astype(np.int64)
    post = np.minimum(post, n - 1)
    key = np.unique(pre * n + post)  # one connection per pair
    pre, post = key // n, key % n
    single = rng.random(key.size) < spec.p_single_synapse
    extra = np.floor(rng.lognormal(spec.count_mu, spec.count_sigma, key.size)).astype(np.int64)
    counts = np.where(single, 1, 2 + extra)
    return pre, post, counts


def _pathway(spec: SyntheticSpec, rng: np.random.Generator, n: int):
    """Indices of the pathway's layers and its strong feed-forward edges."""
    sizes = (spec.n_inputs, *spec.layer_sizes, 1)
    members = rng.choice(n, size=sum(sizes), replace=False)
    layers = np.split(members, np.cumsum(sizes)[:-1])
    pre, post, counts = [], [], []
    fan_in = (*spec.layer_fan_in, spec.readout_fan_in)
    mean_count = (*spec.layer_count, spec.readout_count)
    for src, dst, k, c in zip(layers[:-1], layers[1:], fan_in, mean_count, strict=True):
        k = min(k, src.size)
        for j in dst:
            partners = rng.choice(src, size=k, replace=False)
            # per-target gain spreads the layer's rates, so that some neurons barely fire
            gain = rng.lognormal(0.0, 0.35)
            cnt = np.maximum(1, np.round(c * gain * rng.lognormal(0.0, 0.25, k))).astype(np.int64)
            pre.append(partners)
            post.append(np.full(k, j))
            counts.append(cnt)
    return layers, np.concatenate(pre), np.concatenate(post), np.concatenate(counts)


def generate(spec: SyntheticSpec) -> Connectome:
    n = spec.resolved_n()
    rng = np.random.default_rng(spec.seed)
    ids = _unique_ids(rng, n)
    bg_pre, bg_post, bg_counts = _background(spec, rng, n)
    layers, pw_pre, pw_post, pw_counts = _pathway(spec, rng, n)

    # transmitters: per neuron; the pathway's inputs and readout are cholinergic
    inhibitory = rng.random(n) < spec.p_inhibitory
    for layer in layers[1:-1]:
        inhibitory[layer] = rng.random(layer.size) < spec.layer_p_inhibitory
    inhibitory[layers[0]] = False
    inhibitory[layers[-1]] = False
    exc_nt = rng.choice(np.array(["ACH", "ACH", "ACH", "ACH", "DA", "SER", "OCT"]), size=n)
    inh_nt = rng.choice(np.array(["GABA", "GABA", "GLUT"]), size=n)
    transmitter = np.where(inhibitory, inh_nt, exc_nt)
    sign = np.where(inhibitory, -1, 1).astype(np.int8)

    cell_type = np.array(
        [f"syn_type_{k}" for k in rng.integers(0, max(8, n // 17), n)], dtype=object
    )
    klass = np.where(rng.random(n) < 0.1, "sensory", "central").astype(object)
    names = (
        INPUT_TYPE,
        *[f"sugar_like_L{i + 1}" for i in range(len(spec.layer_sizes))],
        READOUT_TYPE,
    )
    classes = ("gustatory", *["central"] * len(spec.layer_sizes), "motor")
    for layer, name, cls in zip(layers, names, classes, strict=True):
        cell_type[layer] = name
        klass[layer] = cls
    super_class = np.where(
        klass == "motor", "motor", np.where(klass == "central", "central", "sensory")
    )
    side = np.where(rng.random(n) < 0.5, "left", "right").astype(object)
    side[layers[0]] = "right"  # like the paper's right-hemisphere sugar GRNs

    pre = np.concatenate([bg_pre, pw_pre])
    post = np.concatenate([bg_post, pw_post])
    counts = np.concatenate([bg_counts, pw_counts]) * sign[pre].astype(np.int64)
    neurons = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "cell_type": pa.array(cell_type.tolist(), pa.string()),
            "class": pa.array(klass.tolist(), pa.string()),
            "super_class": pa.array(super_class.tolist(), pa.string()),
            "side": pa.array(side.tolist(), pa.string()),
            "transmitter": pa.array(transmitter.tolist(), pa.string()),
            "sign": pa.array(sign, pa.int8()),
        }
    )
    options = json.loads(json.dumps(dataclasses.asdict(spec)))  # as it reads back from JSON
    checksum = hashlib.sha256(
        json.dumps({"generator": GENERATOR_VERSION, **options}, sort_keys=True).encode()
    ).hexdigest()
    prov = Provenance(
        format="synthetic",
        sources=(spec_string(spec),),
        checksum=checksum,
        sign_rule="per_neuron",
        counts={},
        options={"generator_version": GENERATOR_VERSION, **options},
    )
    conn = from_edges(neurons, pre, post, counts, prov)
    # pathway edges that land on background pairs are summed into one connection; that is
    # part of the design, not an input-data rule, so it is not reported as a merge.
    clean = {k: v for k, v in conn.provenance.counts.items() if k != "pair_rows_merged"}
    return dataclasses.replace(conn, provenance=dataclasses.replace(conn.provenance, counts=clean))


def spec_string(spec: SyntheticSpec) -> str:
    default = SyntheticSpec()
    parts = [f"seed={spec.seed}", f"scale={spec.scale}"]
    for f in dataclasses.fields(spec):
        if f.name in ("seed", "scale"):
            continue
        v = getattr(spec, f.name)
        if v != getattr(default, f.name):
            parts.append(f"{f.name}={':'.join(map(str, v)) if isinstance(v, tuple) else v}")
    return "synthetic:" + ",".join(parts)


def load_synthetic(source: str = "synthetic:", **options) -> Connectome:
    """Generate the synthetic connectome named by a spec such as ``synthetic:seed=0,scale=1.0``."""
    return generate(parse_spec(source, **options))
