"""flyvis's response indices (``flyvis.analysis``, Lappalainen et al. 2024), in numpy.

Responses are the central-column cell's voltage of each cell type, [frames, types].

- :func:`edge_peaks`: ``peak`` = max over the time the edge crosses the 45 degrees around
  the centre (``0 <= t <= t_stim``) of the rectified response ``max(r, 0)`` (flyvis's
  ``peak_responses``); ``baseline`` = the response at stimulus onset (t = 0);
  ``peak_change`` = max over the same window of ``r - baseline`` (the baseline-subtracted
  peak that flyvis's tutorials plot).
- :func:`direction_selectivity`: flyvis's DSI: for each intensity and speed,
  ``|sum_theta peak e^{i theta}| / max_I sum_theta |peak|``, averaged over speeds; the
  preferred direction is the angle of ``sum_theta peak e^{i theta}`` summed over speeds.
- :func:`flash_response_index`: flyvis's FRI: responses from ``-dt`` to ``t_stim`` shifted
  by ``|min|`` over both flashes, then ``(peak_ON - peak_OFF) / (peak_ON + peak_OFF)``.
"""

from __future__ import annotations

import numpy as np

# Preferred contrast of cell types measured in flies, as flyvis lists it
# (flyvis.utils.groundtruth_utils.polarity: 1 ON, -1 OFF; types of unknown polarity left
# out; sources there).
KNOWN_POLARITY = {
    **{f"R{i}": 1 for i in range(1, 9)},
    "L1": -1, "L2": -1, "L3": -1, "L4": -1, "L5": 1,
    "C3": 1, "CT1(Lo1)": -1, "CT1(M10)": 1,
    "Mi1": 1, "Mi4": 1, "Mi9": -1,
    "T4a": 1, "T4b": 1, "T4c": 1, "T4d": 1,
    "T5a": -1, "T5b": -1, "T5c": -1, "T5d": -1,
    "Tm1": -1, "Tm2": -1, "Tm3": 1, "Tm4": -1, "Tm9": -1,
}  # fmt: skip

# Preferred directions of T4/T5 in flyvis's angle convention
# (flyvis.utils.groundtruth_utils.preferred_directions; Maisak et al. 2013)
KNOWN_PREFERRED_DEG = {
    "T4a": 180, "T4b": 0, "T4c": 90, "T4d": 270,
    "T5a": 180, "T5b": 0, "T5c": 90, "T5d": 270,
}  # fmt: skip


def edge_peaks(responses: np.ndarray, time_s: np.ndarray, t_stim_s: float):
    """(peak, baseline, peak_change), each [types], of one moving-edge response
    ([frames, types]; ``time_s`` 0 at stimulus onset). See the module docstring."""
    window = (time_s >= 0) & (time_s <= t_stim_s)
    if not window.any():
        raise ValueError("the moving edge's window holds no frame (dt too coarse?)")
    r = responses[window]
    onset = int(np.flatnonzero(time_s >= 0)[0])
    baseline = responses[onset]
    return np.maximum(r, 0).max(axis=0), baseline, (r - baseline).max(axis=0)


def direction_selectivity(peak: np.ndarray, angles_deg: np.ndarray):
    """flyvis's DSI and preferred direction. ``peak``: [angles, intensities, speeds,
    types] rectified peaks. Returns (dsi [intensities, types], preferred_deg
    [intensities, types] in [0, 360))."""
    phase = np.exp(1j * np.deg2rad(np.asarray(angles_deg, np.float64)))
    vec = np.tensordot(phase, peak, axes=(0, 0))  # [intensities, speeds, types]
    norm = np.abs(peak).sum(axis=0).max(axis=0)  # [speeds, types]: max over intensities
    dsi = (np.abs(vec) / (norm[None] + 1e-15)).mean(axis=1)
    preferred = np.rad2deg(np.angle(vec.sum(axis=1))) % 360.0
    return dsi, preferred


def flash_response_index(on: np.ndarray, off: np.ndarray, time_s: np.ndarray, t_stim_s: float,
                         dt_s: float) -> np.ndarray:  # fmt: skip
    """flyvis's FRI per type from the responses to the ON (intensity 1) and OFF (0) flash
    ([frames, types] each; ``time_s`` 0 at flash onset)."""
    window = (time_s >= -dt_s - 1e-12) & (time_s <= t_stim_s + 1e-12)
    r_on, r_off = on[window], off[window]
    shift = np.abs(np.minimum(r_on.min(axis=0), r_off.min(axis=0)))
    p_on = (r_on + shift).max(axis=0)
    p_off = (r_off + shift).max(axis=0)
    return (p_on - p_off) / (p_on + p_off + 1e-16)


def angle_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest absolute difference of two angles in degrees, in [0, 180]."""
    d = np.abs((np.asarray(a) - np.asarray(b)) % 360.0)
    return np.minimum(d, 360.0 - d)


def t4t5_pattern(dsi: dict[str, float], preferred: dict[str, float], *, min_dsi: float = 0.2,
                 tolerance_deg: float = 45.0) -> dict:  # fmt: skip
    """Whether T4a-d (ON) and T5a-d (OFF) show the fly's pattern: every DSI at least
    ``min_dsi``; a opposite b and c opposite d (within ``tolerance_deg`` of 180 degrees
    apart), a orthogonal to c (within the tolerance of 90), and T5x within the tolerance of
    T4x. ``dsi`` and ``preferred`` map type names to values (T4 at ON, T5 at OFF)."""
    checks = {}
    for fam in ("T4", "T5"):
        a, b, c, d = (preferred[f"{fam}{x}"] for x in "abcd")
        checks[f"{fam}_dsi"] = all(dsi[f"{fam}{x}"] >= min_dsi for x in "abcd")
        checks[f"{fam}_a_opposite_b"] = abs(angle_difference(a, b) - 180) <= tolerance_deg
        checks[f"{fam}_c_opposite_d"] = abs(angle_difference(c, d) - 180) <= tolerance_deg
        checks[f"{fam}_a_orthogonal_c"] = abs(angle_difference(a, c) - 90) <= tolerance_deg
    checks["T5_with_T4"] = all(
        angle_difference(preferred[f"T4{x}"], preferred[f"T5{x}"]) <= tolerance_deg
        for x in "abcd"
    )
    checks["all"] = all(checks.values())
    return {k: bool(v) for k, v in checks.items()}
