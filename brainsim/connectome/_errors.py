"""Errors raised while reading connectome sources."""


class ConnectomeError(ValueError):
    """Bad or inconsistent connectome input. The message names the file, row or id."""
