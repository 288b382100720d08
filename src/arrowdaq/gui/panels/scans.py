"""Scans: pick a plan, fill its form, start / pause / resume / abort; watch the points arrive.

The buttons follow the run engine's state (idle, running, paused, stopping,
aborting) as the daemon reports it, not what was last clicked: a scan started
from the CLI or another window shows here too. The panel follows the scan
through the ``scan`` action's ``state`` with ``since`` (a long poll: the daemon
answers when there is a new point or a change of state), so the plot gets
every point once, in order, however late the panel attached; the ``scan/points``
stream is for clients that want batches. At the end the engine's peak
statistics (what the scan file stores) are shown.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..describe import Description
from ..link import Link
from ..qt import QtCore, QtWidgets, pg
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
#: How long one ``state`` call may wait for something new while a scan runs (the daemon allows up to 10 s).
FOLLOW_WAIT_S = 2.0
#: Peak statistics as the engine names them, as a newcomer reads them.
STAT_NAMES = (("max", "max"), ("min", "min"), ("com", "centre of mass"), ("fwhm", "FWHM"))


def peak_statistics(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """max, min, centre of mass and FWHM of y(x), for a scan whose outcome is not known (yet)."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    stats = {"max": float(y.max()), "max_at": float(x[np.argmax(y)]), "min": float(y.min())}
    stats["min_at"] = float(x[np.argmin(y)])
    base = y - y.min()
    stats["com"] = float(np.sum(x * base) / np.sum(base)) if np.sum(base) > 0 else float("nan")
    half = base.max() / 2
    above = np.nonzero(base >= half)[0]
    stats["fwhm"] = float(x[above[-1]] - x[above[0]]) if len(above) > 1 else float("nan")
    return stats


def columns_of(row: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The scanned axes and the detectors of a scan table row: an axis has ``<name>_readback``, a detector
    ``<name>_std`` (the scan table's naming, DESIGN section 9)."""
    axes = [k for k in row if f"{k}_readback" in row]
    detectors = [k for k in row if f"{k}_std" in row and k not in axes]
    return axes, detectors


def number(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


class ScanPanel(QtWidgets.QWidget):
    """See the module docstring."""

    def __init__(self, link: Link, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.plans: dict[str, list[dict[str, Any]]] = {}
        self.plan_docs: dict[str, str] = {}
        self.fields: dict[str, QtWidgets.QLineEdit] = {}
        self.units: dict[str, str] = {}  # column -> unit, from the scan/points stream's declaration
        self.state = "idle"
        self.available = False
        self.total = 0
        self.scan_id: str | None = None
        self.following = False
        self.outcome: dict[str, Any] | None = None
        self.x_values = np.empty(0)
        self.y_values = np.empty(0)
        self.rows = 0  # points of this scan received (the next ``since``)
        self.x_name = self.y_name = ""

        self.plan = QtWidgets.QComboBox()
        self.plan.setToolTip("The scan plans the daemon's run engine offers")
        self.plan.currentTextChanged.connect(self._build_form)
        self.plan_doc = QtWidgets.QLabel("")
        self.plan_doc.setWordWrap(True)
        self.plan_doc.setStyleSheet("color:#555")
        self.form = QtWidgets.QFormLayout()
        self.buttons = {
            name: QtWidgets.QPushButton(name.capitalize()) for name in ("start", "pause", "resume", "abort")
        }
        self.buttons["start"].setToolTip("Run the plan with these parameters (a new scan file)")
        self.buttons["pause"].setToolTip("Pause after the current point")
        self.buttons["resume"].setToolTip("Go back to the paused point and go on")
        self.buttons["abort"].setToolTip("Stop the scan and its motion now; the file keeps the points measured")
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
        self.stats.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reply = QtWidgets.QLabel("")
        self.reply.setWordWrap(True)

        self.plot = pg.PlotWidget()
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        # not the plot's title: a title's width stays the plot's minimum after it is removed (the plot got cut)
        self.empty = pg.TextItem("no scan yet: its points\nshow here as they come", color="#999", anchor=(0.5, 0.5))
        self.empty.setPos(0.5, 0.5)
        self.plot.addItem(self.empty, ignoreBounds=True)
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=1), symbol="o", symbolSize=5)
        self.current = self.plot.plot([], [], pen=None, symbol="o", symbolSize=11, symbolBrush="#ff7f0e")

        left = QtWidgets.QVBoxLayout()
        plan_row = QtWidgets.QFormLayout()
        plan_row.addRow("Plan", self.plan)
        left.addLayout(plan_row)
        left.addWidget(self.plan_doc)
        left.addLayout(self.form)
        grid = QtWidgets.QGridLayout()  # 2 x 2: the four buttons fit the narrow form column
        for i, b in enumerate(self.buttons.values()):
            grid.addWidget(b, i // 2, i % 2)
        left.addLayout(grid)
        left.addWidget(self.state_label)
        left.addWidget(self.progress)
        left.addWidget(self.eta)
        left.addWidget(self.reply)
        left.addStretch(1)
        holder = QtWidgets.QWidget()
        holder.setLayout(left)
        scroll = QtWidgets.QScrollArea()  # a long form stays usable in a short dock
        scroll.setWidget(holder)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(250)
        self.plot.setMinimumWidth(220)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.plot, 1)
        right.addWidget(self.stats)  # under the plot, as wide as it: the end result is read in full
        layout = QtWidgets.QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addLayout(right, 1)
        self.show_state("idle")

    # --- plans and the form ---------------------------------------------------------------
    def set_description(self, description: Description) -> None:
        self.available = "scan" in description.actions or bool(description.plans)
        points = description.streams.get(POINTS_STREAM)
        if points is not None:
            self.units.update(points.fields)
        if description.plans:
            self.set_plans(description.plans, description.plan_docs)
        elif self.available:
            self.scan_action("plans", on_done=self._plans_answered, on_error=lambda _: None)
        if not self.available:
            self.show_state("unavailable")
            self.show_reply("This daemon runs no scan engine (its live service has no 'scan' action).", error=True)

    def _plans_answered(self, reply: Any) -> None:
        if isinstance(reply, list):
            plans = {p["name"]: list(p.get("params") or []) for p in reply if isinstance(p, dict) and "name" in p}
            self.set_plans(plans, {p["name"]: p.get("doc") or "" for p in reply if isinstance(p, dict)})

    def set_plans(self, plans: dict[str, list[dict[str, Any]]], docs: dict[str, str] | None = None) -> None:
        if plans == self.plans:  # described again (an instrument came up): what the user typed stays
            return
        current = self.plan.currentText()
        self.plans = plans
        self.plan_docs = dict(docs or {})
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
        self.plan_doc.setText(self.plan_docs.get(plan, "").replace("``", ""))  # the docstring's markup
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
            elif p.get("doc"):
                edit.setPlaceholderText(str(p["doc"]))
            self.fields[p["name"]] = edit
            label = f"{p['name']} [{unit}]" if unit else p["name"]
            self.form.addRow(label, edit)

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
        self.show_reply(f"submitting {plan} …")
        self.scan_action("submit", plan=plan, args=args, on_done=self._submitted, on_error=self._failed)

    def _submitted(self, reply: Any) -> None:
        if isinstance(reply, dict):
            self.show_reply(f"started: {reply.get('run_file') or reply.get('plan') or ''}")
            self._follow_reply(reply)

    def control(self, action: str) -> None:
        self.scan_action(action, on_done=self._answered, on_error=self._failed)

    def scan_action(self, action: str, *, on_done: Any, on_error: Any, **body: Any) -> None:
        """The live service's ``scan`` action (DESIGN section 8): ``{"action": ..., ...}`` in, JSON out."""
        self.link.call("action", "scan", {"action": action, **body}, on_done=on_done, on_error=on_error)

    def poll(self) -> None:
        """The window's timer: follow the engine unless a call is already waiting for news."""
        if self.link.state == "connected" and self.available and not self.following:
            self.follow()

    def follow(self) -> None:
        """Ask for the points after those we have, waiting a little for news while a scan runs."""
        body: dict[str, Any] = {"since": self.rows, "wait": FOLLOW_WAIT_S if self.state != "idle" else 0.0}
        if self.scan_id is not None:
            body["scan_id"] = self.scan_id
        self.following = True

        def failed(message: str) -> None:
            self.following = False
            if "no scan" in message:  # that scan is forgotten by the daemon: follow the current one
                self.scan_id, self.rows = None, 0

        self.scan_action("state", on_done=self._followed, on_error=failed, **body)

    def _followed(self, reply: Any) -> None:
        self.following = False
        if not isinstance(reply, dict):
            return
        before = (self.scan_id, self.rows)
        self._follow_reply(reply)
        if self.state != "idle" or (self.scan_id, self.rows) != before:
            self.follow()  # at once: the daemon answers when the next point (or the end) is there

    def _follow_reply(self, reply: dict[str, Any]) -> None:
        """Apply a ``state`` reply: another scan, its points, its outcome, the engine's state."""
        scan_id = reply.get("scan_id")
        points = reply.get("points") or []
        if scan_id and scan_id != self.scan_id:
            self.clear_points()
            self.scan_id = scan_id
            self.link.call("describe", on_done=self._units_from, on_error=lambda _: None)
            if reply.get("since") != 0:
                points = []  # another scan's points, or none: the next call asks from 0
        if points:
            self.add_points(points)
        outcome = reply.get("outcome")
        if isinstance(outcome, dict) and outcome.get("scan_id") in (None, self.scan_id) and self.outcome is None:
            self.outcome = outcome
            self.show_outcome(outcome)
        self.update_state(reply)

    def _answered(self, reply: Any) -> None:
        if isinstance(reply, dict):
            self.show_reply("")
            self._follow_reply(reply)

    def _failed(self, message: str) -> None:
        self.show_reply(message, error=True)

    def update_state(self, state: dict[str, Any]) -> None:
        new = str(state.get("state") or self.state)
        total = state.get("total")
        if total:
            self.total = int(total)
        done = state.get("done")
        if done is not None and self.total and new != "idle":
            self.progress.setTextVisible(True)
            self.progress.setMaximum(self.total)
            self.progress.setValue(max(int(done), self.rows))
        if new != "idle" and state.get("eta_s") is not None:
            self.eta.setText(f"{state.get('elapsed_s', 0):.0f} s elapsed, about {state['eta_s']:.0f} s left")
        if new == "idle" and self.state != "idle":
            self.eta.setText("")
            if self.outcome is None and len(self.y_values) > 1:  # no outcome from the engine: computed here
                self.show_local_statistics()
        if new == "idle" and self.outcome is None and isinstance(state.get("last"), dict):
            last = state["last"]
            if last.get("scan_id") in (None, self.scan_id):
                self.outcome = last
                self.show_outcome(last)
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
        self.x_values, self.y_values = np.empty(0), np.empty(0)
        self.rows = 0
        self.x_name = self.y_name = ""
        self.outcome = None
        self.curve.setData([], [])
        self.current.setData([], [])
        self.stats.setText("")
        self.progress.setValue(0)

    def _units_from(self, raw: dict[str, Any]) -> None:
        """The units of this scan's columns (``describe``'s fields of ``scan/points``), onto the axes."""
        fields = ((raw.get("streams") or {}).get(POINTS_STREAM) or {}).get("fields") or {}
        if isinstance(fields, dict):
            self.units.update({str(k): str(v or "") for k, v in fields.items()})
            if self.x_name:
                self._label_axes()

    def _label_axes(self) -> None:
        x_label = self.x_name if self.x_name != "index" else "point"
        self.plot.setLabel("bottom", x_label, units=self.units.get(self.x_name) or None)
        self.plot.setLabel("left", self.y_name, units=self.units.get(self.y_name) or None)

    def _pick_columns(self, row: dict[str, Any]) -> None:
        """The first scanned axis against the first detector (point index for a plan without axes)."""
        axes, detectors = columns_of(row)
        self.x_name = axes[0] if axes else "index"
        self.y_name = detectors[0] if detectors else ""
        self.empty.setVisible(False)
        self._label_axes()

    def add_points(self, rows: list[dict[str, Any]]) -> None:
        """Rows of the scan table, in order (each point once): onto the plot."""
        if not self.x_name:
            self._pick_columns(rows[0])
        if not self.y_name:
            self.rows += len(rows)
            return
        xs, ys = (  # a point a second or so: not a data path; null (a NaN in the engine) stays NaN
            np.array([np.nan if r.get(name) is None else float(r[name]) for r in rows])
            for name in (self.x_name, self.y_name)
        )
        self.x_values, self.y_values = np.concatenate((self.x_values, xs)), np.concatenate((self.y_values, ys))
        self.rows += len(rows)
        self.curve.setData(self.x_values, self.y_values)
        self.current.setData(self.x_values[-1:], self.y_values[-1:])
        self.progress.setTextVisible(True)
        self.progress.setMaximum(max(self.total, self.rows))
        self.progress.setValue(self.rows)

    def show_outcome(self, outcome: dict[str, Any]) -> None:
        """The engine's own result: exit status, points, and each detector's peak statistics."""
        head = (
            f"<b>{outcome.get('plan', 'scan')}: {outcome.get('exit_status', '?')}</b>, "
            f"{outcome.get('points', '?')} points"
        )
        if outcome.get("exit_status") not in (None, "success") and outcome.get("reason"):
            head += f" ({outcome['reason']})"
        lines = [head]
        stats = outcome.get("statistics")
        if isinstance(stats, dict):
            for detector, s in stats.items():
                if isinstance(s, dict):
                    lines.append(self._stats_line(detector, s))
        self.stats.setText("<br>".join(lines))

    def _stats_line(self, detector: str, s: dict[str, Any]) -> str:
        unit = self.units.get(detector, "")
        at = self.x_name or "x"
        parts = [f"max {number(s.get('max'))} {unit} at {at} = {number(s.get('max_at'))}".replace("  ", " ")]
        parts.append(f"min {number(s.get('min'))} {unit}".rstrip())
        parts.append(f"centre of mass {number(s.get('com'))}")
        parts.append(f"FWHM {number(s.get('fwhm'))}")
        return f"{detector}: " + ";  ".join(parts)

    def show_local_statistics(self) -> None:
        keep = np.isfinite(self.x_values) & np.isfinite(self.y_values)
        if keep.sum() < 2:
            return
        self.stats.setText(self._stats_line(self.y_name, peak_statistics(self.x_values[keep], self.y_values[keep])))

    def close_feeds(self) -> None:
        """Nothing to release: the panel follows the scan with calls, not a stream."""
