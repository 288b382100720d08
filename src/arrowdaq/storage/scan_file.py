"""A scan's run file: the scan table as NXdata that plots itself, the plan, the outcome.

A scan is a run: the storage actor records the ``scan/points`` stream (one row
per point) and the monitor streams into one file. :class:`ScanWriter` adds,
before SWMR starts (nothing can be created after)::

    /entry                 @default = "scan_points" (1-D) or "scan_map" (grid)
        scan_points/       NXdata: the table; @signal the first detector, @axes the scanned axes
                           (``*_indices`` 0), @auxiliary_signals the other detectors,
                           <det>_errors → <det>_std (NeXus's name for uncertainties)
        scan_map/          NXdata (grids): each detector as a (outer, inner) map, NaN where not
                           measured, @axes [outer, inner] with outer_indices 0, inner_indices 1
        scan/              NXcollection: plan, arguments (JSON), axes, detectors, points_planned,
                           and, written in place at the end: exit_status, reason, points_measured,
                           statistics/<det>/{max, max_at, min, min_at, com, fwhm, derivative/...},
                           fit/{A, theta0, B, residual_rms} (the angular power scan's Malus fit)

An aborted or failed scan closes the file the same way: valid, complete, with
the points measured and its exit status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import pyarrow as pa

from ..hub.streams import StreamSpec
from . import layout as L
from .nexus import NexusWriter

POINTS_STREAM = "scan/points"
SCAN_GROUP = "scan"
MAP_GROUP = "scan_map"
#: Marks the NXdata of a scan table (``open_run(...).scans`` finds them by it).
SCAN_ATTR = "arrowdaq_scan"
STATISTICS = ("max", "max_at", "min", "min_at", "com", "fwhm")
FIT = ("A", "theta0", "B", "residual_rms")
STATUS_DTYPE = h5py.string_dtype("utf-8", 16)
REASON_DTYPE = h5py.string_dtype("utf-8", 512)


@dataclass(frozen=True)
class ScanFileInfo:
    """What the scan file records about the plan (known before the first point)."""

    plan: str
    args: Mapping[str, Any]
    axes: Sequence[str]
    detectors: Sequence[str]
    points_planned: int | None = None
    grid: tuple[int, ...] | None = None
    grid_axes: Sequence[Sequence[float]] = ()
    units: Mapping[str, str] = field(default_factory=dict)
    fit: bool = False


class ScanWriter(NexusWriter):
    """The NeXus writer plus the scan's groups; see the module docstring."""

    #: Commands the storage actor passes on to the writer.
    commands = ("scan_end",)

    def __init__(self, *args: Any, scan: ScanFileInfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scan = scan
        self._maps: dict[str, np.ndarray] = {}

    # --- structure (before SWMR) ------------------------------------------------------------
    def _add_streams(self, streams: Sequence[StreamSpec]) -> None:
        super()._add_streams(streams)
        entry = self._open_file[L.ENTRY]
        points = next((g for g in entry.values() if L.attr_text(g.attrs.get(L.STREAM_ATTR, "")) == POINTS_STREAM), None)
        if points is None:
            return
        if SCAN_ATTR not in points.attrs:
            self._describe_table(points)
        if SCAN_GROUP not in entry:
            self._create_info(entry)
        if self._has_map() and MAP_GROUP not in entry:
            self._create_map(entry)
        entry.attrs["default"] = MAP_GROUP if MAP_GROUP in entry else points.name.rsplit("/", 1)[1]

    def _best_plot(self) -> str | None:
        """A scan file opens on the scan: its map (grids) or its table."""
        points = next((st for st in self._streams.values() if st.name == POINTS_STREAM), None)
        if points is None:
            return super()._best_plot()
        return MAP_GROUP if self._has_map() else points.key

    def _has_map(self) -> bool:
        return self.scan.grid is not None and len(self.scan.grid) == 2 and bool(self.scan.detectors)

    def _describe_table(self, g: h5py.Group) -> None:
        scan = self.scan
        g.attrs[SCAN_ATTR] = scan.plan
        if scan.detectors:
            g.attrs["signal"] = scan.detectors[0]
            if len(scan.detectors) > 1:
                g.attrs["auxiliary_signals"] = list(scan.detectors[1:])
        axes = list(scan.axes) or ["elapsed"]
        g.attrs["axes"] = axes
        for ax in axes:
            g.attrs[f"{ax}_indices"] = 0
        for det in scan.detectors:
            g[f"{det}_errors"] = g[f"{det}_std"]  # a hard link: NeXus names uncertainties <signal>_errors

    def _create_info(self, entry: h5py.Group) -> None:
        scan = self.scan
        info = L.set_nx(entry.create_group(SCAN_GROUP), "NXcollection")
        L.write_text(info, "plan", scan.plan)
        L.write_text(info, "arguments", json.dumps(dict(scan.args), default=str))
        L.write_text(info, "axes", json.dumps(list(scan.axes)))
        L.write_text(info, "detectors", json.dumps(list(scan.detectors)))
        info.create_dataset("points_planned", data=-1 if scan.points_planned is None else scan.points_planned)
        info.create_dataset("exit_status", data="running", dtype=STATUS_DTYPE)
        info.create_dataset("reason", data="", dtype=REASON_DTYPE)
        info.create_dataset("points_measured", data=0, dtype="i8")
        stats = L.set_nx(info.create_group("statistics"), "NXcollection")
        for det in scan.detectors:
            g = L.set_nx(stats.create_group(det), "NXcollection")
            d = L.set_nx(g.create_group("derivative"), "NXcollection")
            for name in STATISTICS:
                g.create_dataset(name, data=np.nan)
                d.create_dataset(name, data=np.nan)
        if scan.fit:
            fit = L.set_nx(info.create_group("fit"), "NXcollection")
            L.write_text(fit, "model", "P = A cos^2(2 (theta - theta0)) + B")
            for name in FIT:
                fit.create_dataset(name, data=np.nan)

    def _create_map(self, entry: h5py.Group) -> None:
        scan = self.scan
        assert scan.grid is not None  # only grids get a map (_has_map)
        shape = tuple(scan.grid)
        g = L.set_nx(entry.create_group(MAP_GROUP), "NXdata")
        g.attrs["signal"] = scan.detectors[0]
        if len(scan.detectors) > 1:
            g.attrs["auxiliary_signals"] = list(scan.detectors[1:])
        g.attrs["axes"] = list(scan.axes)
        for i, (ax, values) in enumerate(zip(scan.axes, scan.grid_axes, strict=False)):
            g.attrs[f"{ax}_indices"] = i
            ds = g.create_dataset(ax, data=np.asarray(values, float))
            unit = scan.units.get(ax)
            ds.attrs["long_name"] = f"{ax} ({unit})" if unit else ax
            if unit:
                ds.attrs["units"] = unit
        for det in scan.detectors:
            ds = g.create_dataset(det, data=np.full(shape, np.nan))
            unit = scan.units.get(det)
            ds.attrs["long_name"] = f"{det} mean ({unit})" if unit else f"{det} mean"
            if unit:
                ds.attrs["units"] = unit
            self._maps[det] = np.full(shape, np.nan)

    def _load(self) -> None:
        super()._load()
        if self.file is not None and MAP_GROUP in self.file[L.ENTRY] and not self._maps:
            g = self.file[L.ENTRY][MAP_GROUP]
            self._maps = {det: g[det][()] for det in self.scan.detectors if det in g}

    # --- data ---------------------------------------------------------------------------------
    def append(self, stream: str, batches: Sequence[pa.RecordBatch]) -> int:
        written = super().append(stream, batches)
        if stream == POINTS_STREAM and self._maps:
            table = pa.Table.from_batches(list(batches))
            rows, cols = (table.column(f"{ax}_index").to_numpy() for ax in self.scan.axes[:2])
            for det, grid in self._maps.items():
                grid[rows, cols] = table.column(det).to_numpy()
        return written

    def flush(self) -> None:
        if self.file is not None and self._maps and not self.broken:
            g = self.file[L.ENTRY][MAP_GROUP]
            for det, grid in self._maps.items():
                g[det][...] = grid
        super().flush()

    def scan_end(
        self,
        exit_status: str,
        reason: str = "",
        statistics: Mapping[str, Any] | None = None,
        fit: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """Write the outcome in place (allowed in SWMR mode): status, reason, points, statistics, fit."""
        info = self._open_file[L.ENTRY][SCAN_GROUP]
        info["exit_status"][()] = exit_status.encode()[:16]
        info["reason"][()] = reason.encode()[:512]
        points = next((st for st in self._streams.values() if st.name == POINTS_STREAM), None)
        info["points_measured"][()] = points.rows if points is not None else 0
        for det, values in (statistics or {}).items():
            if det not in info["statistics"]:
                continue
            group = info["statistics"][det]
            for name, value in values.items():
                if name == "derivative":
                    for dname, dvalue in value.items():
                        if dname in group["derivative"]:
                            group["derivative"][dname][()] = dvalue
                elif name in group:
                    group[name][()] = value
        if fit and "fit" in info:
            for name, value in fit.items():
                if name in info["fit"]:
                    info["fit"][name][()] = value
        self.flush()
        return {"exit_status": exit_status, "points_measured": int(info["points_measured"][()])}


def read_scan_info(entry: h5py.Group) -> dict[str, Any]:
    """``/entry/scan`` as a dict (arguments decoded from JSON)."""
    if SCAN_GROUP not in entry:
        return {}
    info = L.read_mapping(entry[SCAN_GROUP])
    for key in ("arguments", "axes", "detectors"):
        if isinstance(info.get(key), str):
            info[key] = json.loads(info[key])
    return info
