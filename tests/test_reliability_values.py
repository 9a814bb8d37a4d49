"""Reliability: values are never silently wrong. Seeds keep all their bits, absurd
refractory periods mean what they say, non-finite numbers are refused in configs and
stop runs and fits, and result files hold valid JSON.

One section per class of the reliability issue; each test holds one rule."""

import itertools
import json

import jax
import numpy as np
import pytest
from conftest import random_connectome

from brainsim import cli
from brainsim.experiments import ConfigError, load_config
from brainsim.experiments._run import batch_seed
from brainsim.sim import Protocol, seed_key, simulate

SPEC = "synthetic:seed=0,scale=0.005"

BASE = f"""
[connectome]
format = "synthetic"
path = "{SPEC}"
cache = false
[simulation]
duration_ms = 30.0
trials = 1
seed = 1
[[stimulus]]
kind = "poisson"
neurons = {{ cell_type = "sugar_like_GRN" }}
rate_hz = 150.0
"""


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSIM_CACHE", str(tmp_path / "cache"))


def config(tmp_path, text=BASE, name="run.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def spikes(r):
    return r.trial, r.step, r.neuron


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(spikes(a), spikes(b), strict=True))


# ------------------------------------------------------------------ 1. seeds keep every bit

SEEDS = [0, 2**32, -(2**32), 2**63 - 1, -1, 2**32 - 1, -(2**63)]


@pytest.mark.parametrize("x64", [False, True])
def test_every_64_bit_seed_is_its_own_key(x64):
    with jax.enable_x64(x64):
        keys = [tuple(np.asarray(jax.random.key_data(seed_key(s))).tolist()) for s in SEEDS]
        assert len(set(keys)) == len(SEEDS)
        # seeds in [0, 2**32) keep today's keys bit for bit (published spike counts)
        for s in (0, 5, 2**31, 2**32 - 1):
            np.testing.assert_array_equal(
                jax.random.key_data(seed_key(s)), jax.random.key_data(jax.random.PRNGKey(s))
            )
    for bad in (2**63, -(2**63) - 1):
        with pytest.raises(ValueError, match="seed"):
            seed_key(bad)


def test_seeds_beyond_32_bits_give_different_spikes_and_small_ones_the_same(monkeypatch):
    conn = random_connectome(60, 0.1, seed=2)
    proto = Protocol.build(1, 60, poisson=[(np.arange(6), 150.0)])
    with jax.enable_x64(False):  # as the CLI runs float32 (PRNGKey then keeps 32 bits)
        runs = {s: simulate(conn, proto, duration_ms=40.0, seed=s) for s in SEEDS[:4]}
        for a, b in itertools.combinations(SEEDS[:4], 2):
            assert not same(runs[a], runs[b]), (a, b)
        five = simulate(conn, proto, duration_ms=40.0, seed=5)
        monkeypatch.setattr("brainsim.sim._simulate.seed_key", jax.random.PRNGKey)
        assert same(five, simulate(conn, proto, duration_ms=40.0, seed=5))
    assert all(r.n_spikes for r in runs.values())


def test_batch_seeds_of_negative_seeds_and_the_manifest_seed(tmp_path):
    assert len({batch_seed(s, 1) for s in SEEDS}) == len(SEEDS)
    assert batch_seed(-5, 0) == -5
    out = tmp_path / "out"
    text = BASE.replace("seed = 1", f"seed = {-(2**32)}")
    assert cli.main(["run", str(config(tmp_path, text)), "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == -(2**32)


def test_seed_outside_64_bits_is_a_config_error(tmp_path):
    text = BASE.replace("seed = 1", f"seed = {2**63}")
    with pytest.raises(ConfigError, match=r"run.toml: \[simulation\] seed"):
        load_config(config(tmp_path, text))


def test_fit_seed_default_stays_in_64_bits(tmp_path):
    from brainsim.fit import load_fit_config

    fit = '\n[fit]\ntargets = "targets.parquet"\ntrainable = ["w_syn_mv"]\n'
    text = BASE.replace("seed = 1", f"seed = {2**63 - 1}") + fit
    assert load_fit_config(config(tmp_path, text, "fit.toml")).seed == -(2**63)
    assert load_fit_config(config(tmp_path, BASE + fit, "fit.toml")).seed == 2
    with pytest.raises(ConfigError, match=r"fit.toml: \[fit\] seed"):
        load_fit_config(config(tmp_path, BASE + fit + f"seed = {-(2**63) - 1}\n", "fit.toml"))
