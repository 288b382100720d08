"""The ``_events`` stream: status changes, warnings, alarms and the command log, newest at the bottom."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa

from ..link import Link, Watch
from ..qt import QtCore, QtGui, QtWidgets

MAX_ROWS = 2000
LEVEL_COLOURS = {"warning": "#b26a00", "alarm": "#c62828", "error": "#c62828", "failed": "#c62828"}
#: Cells longer than this show their whole text as a tooltip.
TOOLTIP_FROM = 60
TIME_COLUMNS = ("timestamp_ns", "time_ns")
#: The columns of the ``_events`` stream (docs/live-service.md), for lines the GUI adds before the first event.
GUI_COLUMNS = ("time", "source", "kind", "level", "message", "detail")
COLUMN_WIDTHS = {"time": 95, "source": 90, "kind": 80, "level": 65, "message": 520}


class EventsPanel(QtWidgets.QWidget):
    #: A command from any client, with the instrument's settings read back after it (the command log).
    command_logged = QtCore.Signal(dict)

    def __init__(self, link: Link, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.watch: Watch | None = None
        self.columns: list[str] = []
        self.filter = QtWidgets.QLineEdit()
        self.filter.setPlaceholderText("filter (text in any column)")
        self.filter.textChanged.connect(self._apply_filter)
        self.table = QtWidgets.QTableWidget(0, 0)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setWordWrap(False)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.table, 1)

    def start(self) -> None:
        if self.watch is None:
            self.watch = self.link.watch("_events", self.add_batches)

    def add_batches(self, batches: list[pa.RecordBatch]) -> None:
        for batch in batches:
            rows = batch.to_pylist()
            if not self.columns:
                self._set_columns(["time"] + [n for n in batch.schema.names if n not in TIME_COLUMNS])
            for row in rows:  # events are few (a handful a second): per-row display is fine here
                self.add_row(row)
                if row.get("kind") == "command" and row.get("detail"):
                    try:
                        detail = json.loads(row["detail"])
                    except ValueError:
                        continue
                    if isinstance(detail, dict):
                        self.command_logged.emit(detail)
        self.table.scrollToBottom()

    def _set_columns(self, names: list[str]) -> None:
        self.columns = names
        self.table.setColumnCount(len(names))
        self.table.setHorizontalHeaderLabels(names)
        for col, name in enumerate(names):
            self.table.setColumnWidth(col, COLUMN_WIDTHS.get(name, 90))

    def add_row(self, row: dict) -> None:
        t = next((row.get(c) for c in TIME_COLUMNS if row.get(c) is not None), None)
        when = dt.datetime.fromtimestamp(t / 1e9).strftime("%H:%M:%S.%f")[:-3] if t else ""
        values = [when] + ["" if row.get(c) is None else str(row.get(c)) for c in self.columns[1:]]
        r = self.table.rowCount()
        self.table.insertRow(r)
        text = " ".join(values).lower()
        level = str(row.get("level") or row.get("kind") or "").lower()
        colour = LEVEL_COLOURS.get(level)
        for col, value in enumerate(values):
            item = QtWidgets.QTableWidgetItem(value)
            if len(value) > TOOLTIP_FROM:  # cut off by the column: all of it on hover
                item.setToolTip(value)
            if colour:
                item.setForeground(QtGui.QColor(colour))
            self.table.setItem(r, col, item)
        needle = self.filter.text().lower()
        self.table.setRowHidden(r, bool(needle) and needle not in text)
        if self.table.rowCount() > MAX_ROWS:
            self.table.removeRow(0)

    def add_message(self, source: str, message: str, level: str = "") -> None:
        """A line from the GUI itself (a failed call, a lost connection); ``level`` "error" shows it in red."""
        if not self.columns:  # before the first event: the columns the ``_events`` stream will bring
            self._set_columns(list(GUI_COLUMNS))
        row: dict[str, Any] = {"timestamp_ns": int(QtCore.QDateTime.currentMSecsSinceEpoch() * 1e6)}
        row.update({c: "" for c in self.columns[1:]})
        keys = self.columns[1:]
        values = ("gui", source, level, message)
        for key, value in zip(("kind", "source", "level", "message"), values, strict=True):
            target = key if key in keys else next((k for k in keys if key in k), keys[-1])
            row[target] = value
        self.add_row(row)
        self.table.scrollToBottom()

    def _apply_filter(self, needle: str) -> None:
        needle = needle.lower()
        for r in range(self.table.rowCount()):
            items = (self.table.item(r, c) for c in range(self.table.columnCount()))
            text = " ".join(item.text() for item in items if item is not None)
            self.table.setRowHidden(r, bool(needle) and needle not in text.lower())

    def close_feeds(self) -> None:
        if self.watch is not None:
            self.link.unwatch(self.watch)
            self.watch = None
