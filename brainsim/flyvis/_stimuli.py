"""Visual stimuli on the hexagonal lattice: frames of per-column intensities in [0, 1].

Geometry (flyvis's ``HexEye`` layout, Lappalainen et al. 2024): neighbouring columns are
one ommatidium, 5.8 degrees, apart; column ``(u, v)`` sits at ``x = 5.8 v`` (horizontal)
and ``y = -5.8 (u + v / 2)`` degrees (vertical, up) from the central column. A direction
``angle_deg`` is measured counter-clockwise from +x (0 = towards +x, 90 = up), as flyvis's
stimuli rotate their images. Each column reports the mean intensity over a disc one column
wide around its centre (flyvis averages the pixels of a hexagon of that size; the disc is
brainsim's analytic stand-in, so edges give the same partial coverage up to the shape).

Stimuli, each a function returning ``[frames, columns]`` float32 at the time step ``dt_s``:

- :func:`moving_edge`: flyvis's ``MovingEdge``: a grey (0.5) screen for ``t_pre_s``; then
  an edge of ``intensity`` advancing in ``angle_deg`` through 21 positions 2.25 degrees
  (one LED of the monitor of Gruntman et al. 2018) apart, from 22.5 degrees before the
  centre to 22.5 after, in ``t_stim = 21 x 2.25 / (speed x 5.8)`` seconds (``speed`` in
  columns per second); the region behind the edge (180 degrees wide) and within
  ``height_deg`` of the motion axis takes the edge's intensity; then the last frame for
  ``t_post_s``. Frames show the positions ``linspace(0, 20, n)`` truncated, as flyvis.
- :func:`flash`: flyvis's ``Flashes``: grey for ``t_pre_s``, the columns within
  ``radius`` columns of the centre (every column for -1) at ``intensity`` for ``t_stim_s``,
  grey for ``t_pre_s`` again.
- :func:`grating`: a drifting sine (or square) grating of ``period_deg``, moving at
  ``speed_deg_s`` in ``angle_deg``, ``contrast`` around grey.
- :func:`movie`: a user's frames (``[frames, columns]``, columns in the lattice's order)
  at ``frame_rate_hz``, each shown until the next one is due.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brainsim.flyvis._lattice import columns, hex_distance_of

OMMATIDIUM_DEG = 5.8
LED_DEG = 2.25
GREY = 0.5
EDGE_WIDTH_LEDS = 80  # flyvis renders an edge as a bar 80 LEDs (180 degrees) wide


def column_positions(extent: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) in degrees of every column, in lattice order (see the module docstring)."""
    u, v = columns(extent)
    return OMMATIDIUM_DEG * v.astype(np.float64), -OMMATIDIUM_DEG * (u + v / 2.0)


def _disc_samples(n_rings: int = 3) -> np.ndarray:
    """Points of a hexagonal sampling of a disc of diameter 1 (column units)."""
    pts = [(0.0, 0.0)]
    for r in range(1, n_rings + 1):
        for k in range(6 * r):
            a = 2 * np.pi * k / (6 * r)
            pts.append((0.5 * r / n_rings * np.cos(a), 0.5 * r / n_rings * np.sin(a)))
    return np.array(pts) * OMMATIDIUM_DEG


_SAMPLES = _disc_samples()


def _sample_points(extent: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) in degrees of every column's sample points, [columns, samples]."""
    x, y = column_positions(extent)
    return x[:, None] + _SAMPLES[None, :, 0], y[:, None] + _SAMPLES[None, :, 1]


def _rotated(extent: int, angle_deg: float):
    """Sample points of every column in the frame of a stimulus moving at ``angle_deg``:
    (along [columns, samples], across [columns, samples])."""
    px, py = _sample_points(extent)
    a = np.deg2rad(angle_deg)
    return px * np.cos(a) + py * np.sin(a), -px * np.sin(a) + py * np.cos(a)


def _check_time(dt_s: float, **times: float) -> None:
    if not (np.isfinite(dt_s) and dt_s > 0):
        raise ValueError(f"dt must be > 0 s, got {dt_s}")
    for k, t in times.items():
        if not (np.isfinite(t) and t >= 0):
            raise ValueError(f"{k} must be a finite time >= 0 s, got {t}")


def _check_intensity(intensity: float) -> None:
    if not (np.isfinite(intensity) and 0 <= intensity <= 1):
        raise ValueError(f"intensity must lie in [0, 1] (grey is 0.5), got {intensity}")


def edge_duration_s(speed: float, n_offsets: int = 21) -> float:
    """Time an edge takes through its positions: ``n x 2.25 / (speed x 5.8)`` s."""
    return n_offsets * LED_DEG / (speed * OMMATIDIUM_DEG)


def moving_edge(
    extent: int,
    angle_deg: float,
    intensity: float,
    speed: float,
    dt_s: float,
    *,
    t_pre_s: float = 1.0,
    t_post_s: float = 1.0,
    offsets: tuple[int, int] = (-10, 11),
    height_deg: float = EDGE_WIDTH_LEDS * LED_DEG,
) -> np.ndarray:
    """Frames of a moving edge (module docstring); ``speed`` in columns per second."""
    _check_time(dt_s, t_pre_s=t_pre_s, t_post_s=t_post_s)
    _check_intensity(intensity)
    if not (np.isfinite(speed) and speed > 0):
        raise ValueError(f"speed must be > 0 columns/s, got {speed}")
    if not (offsets[1] - offsets[0] >= 1):
        raise ValueError(f"offsets must be (first, stop) with stop > first, got {offsets}")
    along, across = _rotated(extent, angle_deg)
    positions = np.arange(*offsets) * LED_DEG
    width = EDGE_WIDTH_LEDS * LED_DEG
    band = np.abs(across) <= height_deg / 2
    shown = []
    for p in positions:
        covered = (along <= p) & (along >= p - width) & band
        shown.append(GREY + (intensity - GREY) * covered.mean(axis=1))
    shown = np.array(shown)
    n_stim = int(edge_duration_s(speed, positions.size) / dt_s)
    idx = np.linspace(0, positions.size - 1, max(n_stim, 1)).astype(np.int64)
    stim = shown[idx]
    pre = np.full((int(round(t_pre_s / dt_s)), stim.shape[1]), GREY)
    post = np.repeat(stim[-1:], int(round(t_post_s / dt_s)), axis=0)
    return np.concatenate([pre, stim, post]).astype(np.float32)


def hex_distance(extent: int) -> np.ndarray:
    """Columns from the centre (hexagonal distance) of every column."""
    return hex_distance_of(*columns(extent))


def flash(
    extent: int,
    intensity: float,
    dt_s: float,
    *,
    radius: int = -1,
    t_stim_s: float = 1.0,
    t_pre_s: float = 1.0,
) -> np.ndarray:
    """Frames of a flash (module docstring): grey, flash, grey."""
    _check_time(dt_s, t_stim_s=t_stim_s, t_pre_s=t_pre_s)
    _check_intensity(intensity)
    if not (isinstance(radius, int | np.integer) and radius >= -1):
        raise ValueError(
            f"radius must be -1 (full field) or a number of columns >= 0, got {radius}"
        )
    n_cols = columns(extent)[0].size
    on = np.full(n_cols, GREY)
    on[(hex_distance(extent) <= radius) if radius >= 0 else slice(None)] = intensity
    n_pre, n_on = int(round(t_pre_s / dt_s)), int(round(t_stim_s / dt_s))
    grey = np.full((n_pre, n_cols), GREY)
    return np.concatenate([grey, np.repeat(on[None], n_on, axis=0), grey]).astype(np.float32)


def grating(
    extent: int,
    angle_deg: float,
    period_deg: float,
    speed_deg_s: float,
    duration_s: float,
    dt_s: float,
    *,
    contrast: float = 1.0,
    shape: str = "sine",
    t_pre_s: float = 0.0,
) -> np.ndarray:
    """Frames of a drifting grating: ``0.5 + 0.5 contrast s(2 pi (x' - speed t) / period)``
    with ``s`` a sine or its sign (``shape = "square"``), after ``t_pre_s`` of grey."""
    _check_time(dt_s, duration_s=duration_s, t_pre_s=t_pre_s)
    if not (np.isfinite(period_deg) and period_deg > 0):
        raise ValueError(f"period_deg must be > 0, got {period_deg}")
    if not np.isfinite(speed_deg_s):
        raise ValueError(f"speed_deg_s must be finite, got {speed_deg_s}")
    if not (np.isfinite(contrast) and 0 <= contrast <= 1):
        raise ValueError(f"contrast must lie in [0, 1], got {contrast}")
    if shape not in ("sine", "square"):
        raise ValueError(f'shape must be "sine" or "square", got {shape!r}')
    along, _ = _rotated(extent, angle_deg)
    t = np.arange(int(round(duration_s / dt_s))) * dt_s
    phase = 2 * np.pi * (along[None] - speed_deg_s * t[:, None, None]) / period_deg
    wave = np.sin(phase) if shape == "sine" else np.sign(np.sin(phase))
    frames = GREY + GREY * contrast * wave.mean(axis=2)
    pre = np.full((int(round(t_pre_s / dt_s)), frames.shape[1]), GREY)
    return np.concatenate([pre, frames]).astype(np.float32)


def texture(
    extent: int,
    angle_deg: float,
    speed_deg_s: float,
    duration_s: float,
    dt_s: float,
    *,
    seed: int = 0,
    n_waves: int = 12,
    period_deg: tuple[float, float] = (15.0, 60.0),
    t_pre_s: float = 0.0,
) -> np.ndarray:
    """Frames of a random texture drifting rigidly at ``speed_deg_s`` in ``angle_deg``: a
    sum of ``n_waves`` plane waves of random orientation, phase and period (uniform in
    ``period_deg``), squashed into [0, 1] around grey (``0.5 + 0.5 tanh(2 s / sd)``); the
    same ``seed`` gives the same texture. ``t_pre_s`` of grey first."""
    _check_time(dt_s, duration_s=duration_s, t_pre_s=t_pre_s)
    if not (np.isfinite(speed_deg_s) and n_waves >= 1 and 0 < period_deg[0] <= period_deg[1]):
        raise ValueError("texture: need a finite speed, n_waves >= 1, 0 < period_min <= max")
    rng = np.random.default_rng(seed)
    ori = rng.uniform(0, 2 * np.pi, n_waves)
    k = 2 * np.pi / rng.uniform(*period_deg, n_waves)
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    px, py = _sample_points(extent)
    a = np.deg2rad(angle_deg)
    t = np.arange(int(round(duration_s / dt_s))) * dt_s
    # the texture at time t is the one at 0 shifted by speed x t along the motion
    sx = px[None] - speed_deg_s * t[:, None, None] * np.cos(a)
    sy = py[None] - speed_deg_s * t[:, None, None] * np.sin(a)
    s = np.zeros(sx.shape)
    for kk, oo, ph in zip(k, ori, phase, strict=True):
        s += np.sin(kk * (sx * np.cos(oo) + sy * np.sin(oo)) + ph)
    frames = GREY + GREY * np.tanh(2 * s / np.sqrt(n_waves / 2)).mean(axis=2)
    pre = np.full((int(round(t_pre_s / dt_s)), frames.shape[1]), GREY)
    return np.concatenate([pre, frames]).astype(np.float32)


def read_movie(path: str | Path, extent: int) -> np.ndarray:
    """A user's movie: ``.npy`` (or ``.npz`` with one array) of [frames, columns] in
    [0, 1]; a wrong shape, a NaN or a value outside [0, 1] raises, naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: movie file not found")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a .npy/.npz array file: {e}") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            if len(data.files) != 1:
                raise ValueError(f"{path}: expected one array in the .npz, found {data.files}")
            data = data[data.files[0]]
    n_cols = columns(extent)[0].size
    if data.ndim != 2 or data.shape[1] != n_cols:
        raise ValueError(
            f"{path}: expected [frames, {n_cols}] (the columns of extent {extent}), got "
            f"shape {data.shape}"
        )
    if data.shape[0] < 1:
        raise ValueError(f"{path}: the movie has no frames")
    bad = ~np.isfinite(data) | (data < 0) | (data > 1)
    if bad.any():
        f, c = np.argwhere(bad)[0]
        raise ValueError(
            f"{path}: frame {f}, column {c}: {data[f, c]} is not an intensity in [0, 1]"
        )
    return data.astype(np.float32)


def movie(frames: np.ndarray, frame_rate_hz: float, dt_s: float, duration_s: float | None = None):
    """A movie's frames resampled to ``dt_s`` (each held until the next is due); it lasts
    ``duration_s`` (default: the movie's length), the last frame held after its end."""
    if not (np.isfinite(frame_rate_hz) and frame_rate_hz > 0):
        raise ValueError(f"frame_rate_hz must be > 0, got {frame_rate_hz}")
    length = frames.shape[0] / frame_rate_hz if duration_s is None else duration_s
    _check_time(dt_s, duration_s=length)
    t = np.arange(int(round(length / dt_s))) * dt_s
    idx = np.minimum((t * frame_rate_hz + 1e-9).astype(np.int64), frames.shape[0] - 1)
    return frames[idx].astype(np.float32)
