"""Recording: start and stop a run file with its metadata; the current file's path and size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..link import Link
from ..qt import QtWidgets


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class RecordingPanel(QtWidgets.QWidget):
    def __init__(self, link: Link, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.recording = False
        self.name = QtWidgets.QLineEdit()
        self.name.setPlaceholderText("run name (part of the file name)")
        self.operator = QtWidgets.QLineEdit()
        self.sample = QtWidgets.QLineEdit()
        self.notes = QtWidgets.QPlainTextEdit()
        self.notes.setPlaceholderText("anything worth keeping with the data")
        self.notes.setMaximumHeight(70)
        self.start = QtWidgets.QPushButton("● Start recording")
        self.start.setStyleSheet("QPushButton:enabled { color: #c62828; font-weight: bold; }")  # grey when off
        self.stop = QtWidgets.QPushButton("■ Stop")
        self.start.clicked.connect(self.start_recording)
        self.stop.clicked.connect(self.stop_recording)
        self.state = QtWidgets.QLabel("not recording")
        self.path = QtWidgets.QLabel("–")
        self.path.setWordWrap(True)
        self.path.setTextInteractionFlags(
            self.path.textInteractionFlags() | self.path.textInteractionFlags().TextSelectableByMouse
        )
        self.file_size = QtWidgets.QLabel("–")
        self.reply = QtWidgets.QLabel("")
        self.reply.setWordWrap(True)

        form = QtWidgets.QFormLayout(self)
        form.addRow("Run name", self.name)
        form.addRow("Operator", self.operator)
        form.addRow("Sample", self.sample)
        form.addRow("Notes", self.notes)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.start)
        buttons.addWidget(self.stop)
        form.addRow(buttons)
        form.addRow("State", self.state)
        form.addRow("File", self.path)
        form.addRow("Size", self.file_size)
        form.addRow(self.reply)
        self.show_state(False)

    def metadata(self) -> dict[str, str]:
        fields = {
            "name": self.name.text(),
            "operator": self.operator.text(),
            "sample": self.sample.text(),
            "notes": self.notes.toPlainText(),
        }
        return {k: v.strip() for k, v in fields.items() if v.strip()}

    def start_recording(self) -> None:
        self.reply.setText("starting …")
        self.link.call("record", "start", on_done=self._answered, on_error=self._failed, **self.metadata())

    def stop_recording(self) -> None:
        self.reply.setText("stopping …")
        self.link.call("record", "stop", on_done=self._answered, on_error=self._failed)

    def _answered(self, reply: Any) -> None:
        self.reply.setStyleSheet("color:#555")
        self.reply.setText("done")
        if isinstance(reply, dict):
            self.update_status({"recording": reply})

    def _failed(self, message: str) -> None:
        self.reply.setStyleSheet("color:#c62828")
        self.reply.setText(message)

    def update_status(self, status: dict[str, Any]) -> None:
        rec = status.get("recording")
        if not isinstance(rec, dict):
            return
        active = bool(rec.get("active", rec.get("recording", rec.get("path") is not None)))
        self.show_state(active)
        path = rec.get("path") or rec.get("file")
        self.path.setText(str(path) if path else "–")
        size = rec.get("size_bytes", rec.get("bytes"))
        if size is None and path:
            try:  # a daemon on this machine: the file is here too
                size = Path(str(path)).stat().st_size
            except OSError:
                size = None
        self.file_size.setText(human_bytes(float(size)) if size is not None else "– (file on another machine)")
        if rec.get("error"):
            self._failed(f"recording stopped: {rec['error']}")

    def show_state(self, active: bool) -> None:
        self.recording = active
        self.state.setText("● recording" if active else "not recording")
        self.state.setStyleSheet("color:#c62828; font-weight:bold" if active else "color:#555")
        self.start.setEnabled(not active)
        self.stop.setEnabled(active)
        for w in (self.name, self.operator, self.sample, self.notes):
            w.setEnabled(not active)
