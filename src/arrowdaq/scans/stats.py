"""What a scan's result says at a glance: peak statistics and the Malus fit.

Peak statistics (as a beamline scientist reads them): the maximum and minimum
with where they are, the centre of mass above the minimum, and the full width
at half maximum (linear interpolation between points). The same statistics of
the derivative locate an edge: a knife-edge scan's edge is the centre of the
derivative's peak.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _fwhm(x: np.ndarray, y: np.ndarray) -> float:
    """Width at half height between the minimum and the maximum; NaN if the peak is not closed on both sides."""
    top = int(np.argmax(y))
    half = (y[top] + np.min(y)) / 2
    below = y < half
    left = np.flatnonzero(below[:top])
    right = np.flatnonzero(below[top:])
    if not len(left) or not len(right):
        return math.nan
    i, j = left[-1], top + right[0]

    def cross(a: int, b: int) -> float:
        return float(x[a] + (half - y[a]) * (x[b] - x[a]) / (y[b] - y[a]))

    return abs(cross(j - 1, j) - cross(i, i + 1))


def peak_stats(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """max, max_at, min, min_at, com, fwhm of ``y`` against ``x`` (NaN-free points only)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if not len(y):
        return {k: math.nan for k in ("max", "max_at", "min", "min_at", "com", "fwhm")}
    top, bottom = int(np.argmax(y)), int(np.argmin(y))
    weight = y - y[bottom]
    total = weight.sum()
    return {
        "max": float(y[top]),
        "max_at": float(x[top]),
        "min": float(y[bottom]),
        "min_at": float(x[bottom]),
        "com": float((x * weight).sum() / total) if total > 0 else math.nan,
        "fwhm": _fwhm(x, y) if len(y) > 2 else math.nan,
    }


def derivative_stats(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Peak statistics of |dy/dx| (sorted by x): an edge's position is its ``com`` and ``max_at``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[keep], kind="stable")
    xs, ys = x[keep][order], y[keep][order]
    if len(xs) < 3 or np.ptp(xs) == 0:
        return peak_stats(np.array([]), np.array([]))
    distinct = np.concatenate([[True], np.diff(xs) > 0])
    xs, ys = xs[distinct], ys[distinct]
    mid = (xs[1:] + xs[:-1]) / 2
    slope = np.abs(np.diff(ys) / np.diff(xs))
    return peak_stats(mid, slope)


def malus_fit(theta_deg: np.ndarray, power: np.ndarray) -> dict[str, float]:
    """Least-squares ``P = A cos²(2(θ − θ0)) + B``: A, θ0 (degrees, in (−45°, 45°]), B, residual rms.

    cos²(2u) = (1 + cos 4u)/2 makes it linear in (1, cos 4θ, sin 4θ): no starting guess, no iteration."""
    t, p = np.radians(np.asarray(theta_deg, float)), np.asarray(power, float)
    keep = np.isfinite(t) & np.isfinite(p)
    t, p = t[keep], p[keep]
    if len(p) < 3:
        return {k: math.nan for k in ("A", "theta0", "B", "residual_rms")}
    design = np.column_stack([np.ones_like(t), np.cos(4 * t), np.sin(4 * t)])
    (c0, a, b), *_ = np.linalg.lstsq(design, p, rcond=None)
    amplitude = 2 * math.hypot(a, b)
    theta0 = math.degrees(math.atan2(b, a) / 4)
    if theta0 <= -45:
        theta0 += 90
    residual = p - design @ np.array([c0, a, b])
    return {
        "A": amplitude,
        "theta0": theta0,
        "B": float(c0 - amplitude / 2),
        "residual_rms": float(np.sqrt(np.mean(residual**2))),
    }


def scan_statistics(x: np.ndarray | None, signals: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per detector: peak statistics against ``x`` (the first axis, or time), and of the derivative."""
    out: dict[str, Any] = {}
    for name, y in signals.items():
        xs = np.arange(len(y), dtype=float) if x is None else x
        out[name] = peak_stats(xs, y) | {"derivative": derivative_stats(xs, y)}
    return out
