"""Experiments from config files: schema, neuron selectors, the runner."""

from brainsim.experiments._config import RunConfig, load_config, parse_config
from brainsim.experiments._errors import ConfigError
from brainsim.experiments._run import run_config
from brainsim.experiments._selectors import select

__all__ = ["ConfigError", "RunConfig", "load_config", "parse_config", "run_config", "select"]
