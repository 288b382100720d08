"""Scans: pick a plan, fill its form, start / pause / resume / abort; watch the points arrive.

The buttons follow the run engine's state (idle, running, paused, stopping,
aborting) as the daemon reports it, not what was last clicked: a scan started
from the CLI shows here too. Points come from the ``scan/points`` stream (one
row per point); at the end the panel shows peak statistics of the signal.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pyarrow as pa

from ..batches import unit_of
from ..describe import Description
from ..link import Link, Watch
from ..qt import QtWidgets, pg
from .instruments import parse_value

POINTS_STREAM = "scan/points"
#: Which buttons are usable in which engine state.
ENABLED = {
    "idle": {"start"},
    "running": {"pause", "abort"},
    "paused": {"resume", "abort"},
    "stopping": {"abort"},
    "aborting": set(),
}
NOT_AXES = ("index", "point", "time", "timestamp", "seq", "t_", "elapsed")


def peak_statistics(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """max, min, centre of mass and FWHM of y(x) (the same quantities the engine stores)."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    stats = {"max": float(y.max()), "x_at_max": float(x[np.argmax(y)]), "min": float(y.min())}
    base = y - y.min()
    stats["centre_of_mass"] = float(np.sum(x * base) / np.sum(base)) if np.sum(base) > 0 else float("nan")
    half = base.max() / 2
    above = np.nonzero(base >= half)[0]
    stats["fwhm"] = float(x[above[-1]] - x[above[0]]) if len(above) > 1 else float("nan")
    return stats


class ScanPanel(QtWidgets.QWidget):
    """See the module docstring."""

    def __init__(self, link: Link, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.watch: Watch | None = None
        self.plans: dict[str, list[dict[str, Any]]] = {}
        self.fields: dict[str, QtWidgets.QLineEdit] = {}
        self.state = "idle"
        self.available = False
        self.total = 0
        self.started = 0.0
        self.x = np.empty(0)
        self.y = np.empty(0)
        self.x_name = self.y_name = ""

        self.plan = QtWidgets.QComboBox()
        self.plan.currentTextChanged.connect(self._build_form)
        self.form = QtWidgets.QFormLayout()
        self.buttons = {
            name: QtWidgets.QPushButton(name.capitalize()) for name in ("start", "pause", "resume", "abort")
        }
        self.buttons["abort"].setStyleSheet("QPushButton:enabled { color: #c62828; font-weight: bold; }")
        self.buttons["start"].clicked.connect(self.start_scan)
        for name in ("pause", "resume", "abort"):
            self.buttons[name].clicked.connect(lambda _=False, n=name: self.control(n))
        self.state_label = QtWidgets.QLabel("engine: idle")
        self.progress = QtWidgets.QProgressBar()
        self.progress.setFormat("%v / %m points")
        self.progress.setTextVisible(False)  # until a scan runs
        self.eta = QtWidgets.QLabel("")
        self.stats = QtWidgets.QLabel("")
        self.stats.setWordWrap(True)
        self.reply = QtWidgets.QLabel("")
        self.reply.setWordWrap(True)

        self.plot = pg.PlotWidget()
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=1), symbol="o", symbolSize=5)
        self.current = self.plot.plot([], [], pen=None, symbol="o", symbolSize=11, symbolBrush="#ff7f0e")

        left = QtWidgets.QVBoxLayout()
        plan_row = QtWidgets.QFormLayout()
        plan_row.addRow("Plan", self.plan)
        left.addLayout(plan_row)
        left.addLayout(self.form)
        row = QtWidgets.QHBoxLayout()
        for b in self.buttons.values():
            row.addWidget(b)
        left.addLayout(row)
        left.addWidget(self.state_label)
        left.addWidget(self.progress)
        left.addWidget(self.eta)
        left.addWidget(self.stats)
        left.addWidget(self.reply)
        left.addStretch(1)
        holder = QtWidgets.QWidget()
        holder.setLayout(left)
        holder.setMaximumWidth(340)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addWidget(holder)
        layout.addWidget(self.plot, 1)
        self.show_state("idle")

    # --- plans and the form ---------------------------------------------------------------
    def set_description(self, description: Description) -> None:
        self.available = "scan" in description.actions or bool(description.plans)
        if description.plans:
            self.set_plans(description.plans)
        elif self.available:
            self.scan_action("plans", on_done=self._answered, on_error=lambda _: None)
        if not self.available:
            self.show_state("unavailable")
            self.show_reply("This daemon runs no scan engine (its live service has no 'scan' action).", error=True)
        if self.watch is None and POINTS_STREAM in description.streams:
            self.watch = self.link.watch(POINTS_STREAM, self.add_batches)

    def ensure_points(self) -> None:
        """Watch ``scan/points`` once the engine has declared it (it may come with the first scan)."""
        if self.watch is None:
            self.watch = self.link.watch(POINTS_STREAM, self.add_batches)

    def set_plans(self, plans: dict[str, list[dict[str, Any]]]) -> None:
        current = self.plan.currentText()
        self.plans = plans
        self.plan.blockSignals(True)
        self.plan.clear()
        self.plan.addItems(list(plans))
        self.plan.blockSignals(False)
        self.plan.setCurrentText(current if current in plans else next(iter(plans), ""))
        self._build_form(self.plan.currentText())

    def _build_form(self, plan: str) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        for p in self.plans.get(plan, []):
            p = p if isinstance(p, dict) else {"name": str(p)}
            edit = QtWidgets.QLineEdit()
            default = p.get("default")
            if default is not None:
                edit.setText(" ".join(map(str, default)) if isinstance(default, list) else str(default))
            hint = p.get("doc") or p.get("type") or ""
            unit = p.get("unit")
            edit.setToolTip(f"{hint} [{unit}]" if unit else str(hint))
            if p.get("required") and default is None:
                edit.setPlaceholderText("required")
            self.fields[p["name"]] = edit
            self.form.addRow(p["name"], edit)

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for name, edit in self.fields.items():
            text = edit.text().strip()
            if not text:
                continue
            parts = text.replace(",", " ").split()
            args[name] = parse_value(parts[0]) if len(parts) == 1 else [parse_value(p) for p in parts]
        return args

    # --- engine ------------------------------------------------------------------------
    def start_scan(self) -> None:
        plan = self.plan.currentText()
        if not plan:
            self.show_reply("no plan: the daemon offers none", error=True)
            return
        args = self.arguments()
        self.clear_points()
        self.total = int(args.get("num") or args.get("points") or 0)
        self.started = time.monotonic()
        self.show_reply(f"submitting {plan} …")
        self.ensure_points()
        self.scan_action("submit", plan=plan, args=args, on_done=self._answered, on_error=self._failed)

    def control(self, action: str) -> None:
        self.scan_action(action, on_done=self._answered, on_error=self._failed)

    def scan_action(self, action: str, *, on_done: Any, on_error: Any, **body: Any) -> None:
        """The live service's ``scan`` action (DESIGN section 8): ``{"action": ..., ...}`` in, JSON out."""
        self.link.call("action", "scan", {"action": action, **body}, on_done=on_done, on_error=on_error)

    def poll(self) -> None:
        if self.link.state == "connected" and self.available:
            self.scan_action("state", on_done=self._answered, on_error=lambda _: None)

    def _answered(self, reply: Any) -> None:
        if isinstance(reply, dict):
            self.update_state(reply)
            if "error" in reply and reply["error"]:
                self.show_reply(str(reply["error"]), error=True)
            elif reply.get("state"):
                self.show_reply("")

    def _failed(self, message: str) -> None:
        self.show_reply(message, error=True)

    def update_state(self, state: dict[str, Any]) -> None:
        if "plans" in state and isinstance(state["plans"], dict) and not self.plans:
            self.set_plans(state["plans"])
        new = str(state.get("state") or self.state)
        total = state.get("total") or state.get("num_points")
        if total:
            self.total = int(total)
        if state.get("done") is not None and self.total:
            self.progress.setMaximum(self.total)
            self.progress.setValue(int(state["done"]))
            if state.get("eta_s") is not None:
                self.eta.setText(f"{state.get('elapsed_s', 0):.0f} s elapsed, about {state['eta_s']:.0f} s left")
        last = state.get("last")
        if isinstance(last, dict) and last.get("statistics") and new == "idle":
            self.engine_statistics(last)
        if new != self.state and self.state != "idle" and new == "idle" and len(self.y):
            self.show_statistics()
        if new != "idle" and self.state == "idle":
            self.started = self.started or time.monotonic()
            self.ensure_points()
        self.show_state(new)

    def show_state(self, state: str) -> None:
        self.state = state
        allowed = ENABLED.get(state, set())
        for name, button in self.buttons.items():
            button.setEnabled(name in allowed)
        self.state_label.setText(f"engine: {state}")

    def show_reply(self, text: str, error: bool = False) -> None:
        self.reply.setStyleSheet("color:#c62828" if error else "color:#555")
        self.reply.setText(text)

    # --- points ----------------------------------------------------------------------
    def clear_points(self) -> None:
        self.x, self.y = np.empty(0), np.empty(0)
        self.curve.setData([], [])
        self.current.setData([], [])
        self.stats.setText("")

    def _pick_columns(self, schema: pa.Schema) -> None:
        """The first scanned axis against the first detector, as the scan table's metadata names them."""
        try:
            info = json.loads((schema.metadata or {}).get(b"arrowdaq.scan", b"{}"))
        except ValueError:
            info = {}
        axes, detectors = info.get("axes") or [], info.get("detectors") or []
        if axes and detectors and axes[0] in schema.names and detectors[0] in schema.names:
            self.x_name, self.y_name = axes[0], detectors[0]
            self.plot.setLabel("bottom", self.x_name, units=unit_of(schema, self.x_name) or None)
            self.plot.setLabel("left", self.y_name, units=unit_of(schema, self.y_name) or None)
            return
        numeric = [f.name for f in schema if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)]
        signal = [n for n in numeric if n.endswith("_mean")] or [n for n in numeric if n.endswith("mean")]
        axes = [n for n in numeric if not n.endswith(("_mean", "_std")) and not n.startswith(NOT_AXES)]
        self.x_name = (axes or numeric[:1])[0] if numeric else ""
        self.y_name = (signal or [n for n in numeric if n != self.x_name] or [""])[0]
        self.plot.setLabel("bottom", self.x_name)
        self.plot.setLabel("left", self.y_name)

    def add_batches(self, batches: list[pa.RecordBatch]) -> None:
        for batch in batches:
            if not self.x_name:
                self._pick_columns(batch.schema)
            if not self.x_name or not self.y_name:
                return
            self.x = np.concatenate((self.x, batch.column(self.x_name).to_numpy(zero_copy_only=False).astype(float)))
            self.y = np.concatenate((self.y, batch.column(self.y_name).to_numpy(zero_copy_only=False).astype(float)))
        self.curve.setData(self.x, self.y)
        self.current.setData(self.x[-1:], self.y[-1:])
        n = len(self.x)
        self.progress.setTextVisible(True)
        self.progress.setMaximum(max(self.total, n))
        self.progress.setValue(n)
        if self.total and n and self.started:
            elapsed = time.monotonic() - self.started
            remaining = elapsed / n * max(self.total - n, 0)
            self.eta.setText(f"{elapsed:.0f} s elapsed, about {remaining:.0f} s left")
        if self.total and n >= self.total:
            self.show_statistics()

    def engine_statistics(self, last: dict[str, Any]) -> None:
        """The engine's own peak statistics of the last scan (what its file stores)."""
        stats = last["statistics"]
        if isinstance(stats, dict):
            first = next(iter(stats.values())) if stats and isinstance(next(iter(stats.values())), dict) else stats
            parts = [f"{k} {v:.4g}" if isinstance(v, int | float) else f"{k} {v}" for k, v in first.items()]
            self.stats.setText(
                f"{last.get('plan', 'scan')}: {last.get('exit_status', '')}, {last.get('points', '?')} points; "
                + ";  ".join(parts)
            )

    def show_statistics(self) -> None:
        if len(self.y) < 2:
            return
        s = peak_statistics(self.x, self.y)
        self.stats.setText(
            f"max {s['max']:.4g} at {self.x_name} = {s['x_at_max']:.4g};  min {s['min']:.4g};  "
            f"centre of mass {s['centre_of_mass']:.4g};  FWHM {s['fwhm']:.4g}"
        )

    def close_feeds(self) -> None:
        if self.watch is not None:
            self.link.unwatch(self.watch)
            self.watch = None
