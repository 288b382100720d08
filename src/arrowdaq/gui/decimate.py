"""Draw no more than the screen shows: clip to the visible x range, then keep min and max per pixel.

A 100,000-point curve in a 1,000-pixel-wide plot becomes 2,000 points that look
identical (every spike survives as its bin's min or max). No per-point Python.
"""

from __future__ import annotations

import numpy as np


def clip_to_view(x: np.ndarray, y: np.ndarray, x0: float, x1: float) -> tuple[np.ndarray, np.ndarray]:
    """The points with x in [x0, x1] plus one neighbour each side (so lines reach the edges); x ascending."""
    i0 = max(int(np.searchsorted(x, x0, side="left")) - 1, 0)
    i1 = min(int(np.searchsorted(x, x1, side="right")) + 1, len(x))
    return x[i0:i1], y[i0:i1]


def minmax_per_pixel(x: np.ndarray, y: np.ndarray, pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * pixels + 2`` points: per bin of consecutive points its min then its max (x: bin start, end)."""
    n = len(x)
    pixels = max(int(pixels), 1)
    if n <= 2 * pixels:
        return x, y
    per = n // pixels
    m = per * pixels
    bins = y[:m].reshape(pixels, per)
    lo, hi = bins.min(axis=1), bins.max(axis=1)
    x_lo, x_hi = x[:m:per], x[per - 1 : m : per]
    if m < n:  # the few points left over form one more bin
        lo, hi = np.append(lo, y[m:].min()), np.append(hi, y[m:].max())
        x_lo, x_hi = np.append(x_lo, x[m]), np.append(x_hi, x[-1])
    out_x = np.empty(2 * len(lo))
    out_y = np.empty(2 * len(lo))
    out_x[0::2], out_x[1::2] = x_lo, x_hi
    out_y[0::2], out_y[1::2] = lo, hi
    return out_x, out_y


def for_display(x: np.ndarray, y: np.ndarray, x0: float, x1: float, pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip to the view and decimate: what a curve should be given to draw."""
    x, y = clip_to_view(x, y, x0, x1)
    return minmax_per_pixel(x, y, pixels)
