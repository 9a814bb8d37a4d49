"""Errors in experiment configs."""


class ConfigError(ValueError):
    """A config that cannot run. The message names the file, the key and the expected form."""
