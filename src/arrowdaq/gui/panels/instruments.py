"""One card per instrument, built from ``describe``: status, last error, values, controls, commands, motion.

Nothing here knows a driver: a card shows what the daemon declares. Values
entered are checked against the declared limits or choices before anything is
sent; the daemon's answer (or its error, word for word) shows on the card.
Anything Movable gets move / jog / home and a red STOP, and the window's
toolbar has a STOP for every axis at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import shiboken6

from ..describe import CommandInfo, ControlInfo, Description, InstrumentInfo
from ..link import Link, Watch
from ..qt import QtCore, QtWidgets

STATUS_COLOURS = {
    "running": "#2ca02c",
    "starting": "#e0a000",
    "restarting": "#e0a000",
    "stopping": "#888888",
    "stopped": "#888888",
    "failed": "#d62728",
}
#: More writable settings than this are folded under a "Settings (N)" button.
SHOWN_SETTINGS = 6
STOP_STYLE = "QPushButton { background: #c62828; color: white; font-weight: bold; padding: 4px 12px; }"


def heading(text: str) -> QtWidgets.QLabel:
    """A card's section title (readings, settings, commands, queries): what kind of row follows."""
    label = QtWidgets.QLabel(text)
    label.setStyleSheet("color:#777; font-size:8pt; font-weight:bold; margin-top:4px")
    return label


def unwrap(reply: Any) -> Any:
    """The value in the service's reply (``{"value": v}`` for set/get, ``{"result": r}`` for commands)."""
    if isinstance(reply, dict) and len(reply) == 1 and next(iter(reply)) in ("value", "result"):
        return next(iter(reply.values()))
    return reply


def parse_value(text: str) -> Any:
    """A typed value from a form field: int, float, bool, else the text."""
    t = text.strip()
    for kind in (int, float):
        try:
            return kind(t)
        except ValueError:
            pass
    if t.lower() in ("true", "on", "yes"):
        return True
    if t.lower() in ("false", "off", "no"):
        return False
    return t


class ControlEditor(QtWidgets.QWidget):
    """The editor of one control: a spin box with its limits, a list of choices, or a check box; and Set."""

    def __init__(self, info: ControlInfo, send: Callable[[ControlInfo, Any], None]) -> None:
        super().__init__()
        self.info = info
        self.send = send
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.editor: QtWidgets.QWidget
        if info.choices is not None:
            self.editor = QtWidgets.QComboBox()
            self.editor.addItems([str(c) for c in info.choices])
        elif info.kind == "bool":
            self.editor = QtWidgets.QCheckBox("on")
        elif info.kind == "number":
            spin = QtWidgets.QDoubleSpinBox()
            spin.setDecimals(4)
            spin.setRange(
                info.minimum if info.minimum is not None else -1e12,
                info.maximum if info.maximum is not None else 1e12,
            )
            spin.setKeyboardTracking(False)
            if info.unit:
                spin.setSuffix(f" {info.unit}")
            if info.minimum is not None and info.maximum is not None:
                spin.setToolTip(f"{info.minimum:g} to {info.maximum:g} {info.unit}".rstrip())
            self.editor = spin
        else:
            self.editor = QtWidgets.QLineEdit()
        if info.value is not None:
            self.show_value(info.value)
        self.button = QtWidgets.QPushButton("Set")
        self.button.setToolTip(f"Send {info.name} to the instrument")
        self.button.clicked.connect(self.submit)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.button)

    def value(self) -> Any:
        e = self.editor
        if isinstance(e, QtWidgets.QComboBox):
            return self.info.choices[e.currentIndex()] if self.info.choices else e.currentText()
        if isinstance(e, QtWidgets.QCheckBox):
            return e.isChecked()
        if isinstance(e, QtWidgets.QDoubleSpinBox):
            return e.value()
        assert isinstance(e, QtWidgets.QLineEdit)  # the editor of any other control
        return parse_value(e.text())

    def show_read(self, reply: Any) -> None:
        """Show the value a ``get`` call read."""
        self.show_value(unwrap(reply))

    def set_text(self, value: Any) -> None:
        """Type ``value`` into the editor (a test or a user); the spin box clamps to its limits."""
        self.show_value(value)

    def show_value(self, value: Any) -> None:
        e = self.editor
        if not shiboken6.isValid(e):
            return  # the card was rebuilt (instrument described again) while this reply was on its way
        if isinstance(e, QtWidgets.QComboBox):
            e.setCurrentText(str(value))
        elif isinstance(e, QtWidgets.QCheckBox):
            e.setChecked(bool(value))
        elif isinstance(e, QtWidgets.QDoubleSpinBox):
            try:
                e.setValue(float(value))
            except (TypeError, ValueError):
                pass
        elif isinstance(e, QtWidgets.QLineEdit):
            e.setText(str(value))

    def submit(self) -> None:
        self.send(self.info, self.value())


class InstrumentCard(QtWidgets.QGroupBox):
    """See the module docstring."""

    def __init__(self, info: InstrumentInfo, link: Link, description: Description) -> None:
        super().__init__()
        self.info = info
        self.link = link
        self.watches: list[Watch] = []
        self.value_labels: dict[str, QtWidgets.QLabel] = {}
        self.editors: dict[str, ControlEditor] = {}
        self.command_buttons: dict[str, QtWidgets.QPushButton] = {}
        self.positions: dict[int, float] = {}
        self.setObjectName(f"card-{info.name}")

        self.light = QtWidgets.QLabel("●")
        self.status = QtWidgets.QLabel(info.status or "?")
        title = QtWidgets.QLabel(f"<b>{info.name}</b>  <span style='color:#777'>{info.driver}</span>")
        head = QtWidgets.QHBoxLayout()
        for w in (self.light, title, self.status):
            head.addWidget(w)
        head.addStretch(1)
        capabilities = [c for c in info.capabilities if c != "Readable"]
        self.setToolTip(f"{info.name} ({info.driver}): {', '.join(capabilities) or 'readings only'}")
        self.error = QtWidgets.QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color:#c62828")
        self.reply = QtWidgets.QLabel("")
        self.reply.setWordWrap(True)
        self.reply.setStyleSheet("color:#555")

        form = QtWidgets.QFormLayout()
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for stream in info.streams:
            s = description.streams.get(stream)
            if s is not None and s.kind != "scalar":
                continue
            if not self.value_labels:
                form.addRow(heading("READINGS (live)"))
            label = QtWidgets.QLabel("–")
            label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            self.value_labels[stream] = label
            form.addRow(stream.split("/", 1)[-1], label)
            self.watches.append(link.watch(stream, functools.partial(self._on_value, stream)))
        writable = [c for c in info.controls if not c.read_only]
        settings_form = form
        if len(writable) > SHOWN_SETTINGS:  # many settings (a controller's axes): folded, values stay in sight
            self.settings_toggle = QtWidgets.QToolButton()
            self.settings_toggle.setText(f"Settings ({len(writable)})")
            self.settings_toggle.setCheckable(True)
            self.settings_toggle.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            self.settings_toggle.setArrowType(QtCore.Qt.ArrowType.RightArrow)
            self.settings_box = QtWidgets.QWidget()
            self.settings_box.setVisible(False)
            settings_form = QtWidgets.QFormLayout(self.settings_box)
            settings_form.setContentsMargins(0, 0, 0, 0)

            def unfold(on: bool) -> None:
                self.settings_box.setVisible(on)
                self.settings_toggle.setArrowType(
                    QtCore.Qt.ArrowType.DownArrow if on else QtCore.Qt.ArrowType.RightArrow
                )

            self.settings_toggle.toggled.connect(unfold)
        if writable and settings_form is form:
            form.addRow(heading("SETTINGS (value on the device; change it, then Set)"))
        for control in writable:
            editor = ControlEditor(control, self.set_control)
            self.editors[control.name] = editor
            settings_form.addRow(f"{control.name}", editor)
            if not info.describe_error:  # what the device has now (describe's settings may be seconds old)
                link.call("get", info.name, control.name, on_done=editor.show_read)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(self.error)
        layout.addLayout(form)
        if settings_form is not form:
            layout.addWidget(self.settings_toggle)
            layout.addWidget(self.settings_box)
        if info.movable:
            layout.addWidget(self._motion_box())
        buttons = self._command_box()
        if buttons is not None:
            layout.addWidget(buttons)
        layout.addWidget(self.reply)
        self.set_status(info.status, info.error)

    # --- building ---------------------------------------------------------------
    def _motion_box(self) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        unit = self.info.position_unit
        for i, axis in enumerate(self.info.axes or [1]):
            row = 3 * i
            target = QtWidgets.QDoubleSpinBox()
            target.setRange(-1e6, 1e6)
            target.setDecimals(3)
            target.setSuffix(f" {unit}" if unit else "")
            target.setToolTip("Target position")
            step = QtWidgets.QDoubleSpinBox()
            step.setRange(0.001, 1e5)
            step.setValue(1.0)
            step.setDecimals(3)
            step.setSuffix(f" {unit}" if unit else "")
            step.setToolTip("Jog step")
            move = QtWidgets.QPushButton("Move to")
            move.clicked.connect(lambda _=False, a=axis, t=target: self.move_axis(a, t.value()))
            back = QtWidgets.QPushButton("◀ jog")
            back.setToolTip("Move back by the step")
            back.clicked.connect(lambda _=False, a=axis, s=step: self.jog(a, -s.value()))
            forward = QtWidgets.QPushButton("jog ▶")
            forward.setToolTip("Move forward by the step")
            forward.clicked.connect(lambda _=False, a=axis, s=step: self.jog(a, s.value()))
            home = QtWidgets.QPushButton("Home")
            home.clicked.connect(lambda _=False, a=axis: self.command("home", **self._axis_arg("home", a)))
            stop = QtWidgets.QPushButton("STOP")
            stop.setStyleSheet(STOP_STYLE)
            stop.setToolTip("Stop this axis now")
            stop.clicked.connect(lambda _=False, a=axis: self.stop(a))
            grid.addWidget(QtWidgets.QLabel(f"axis {axis}" if self.info.axes else "move"), row, 0)
            grid.addWidget(target, row, 1)
            grid.addWidget(move, row, 2)
            grid.addWidget(back, row + 1, 0)
            grid.addWidget(step, row + 1, 1)
            grid.addWidget(forward, row + 1, 2)
            grid.addWidget(home, row + 2, 0)
            grid.addWidget(stop, row + 2, 1, 1, 2)
            self.command_buttons[f"stop{axis}"] = stop
        return box

    def _command_box(self) -> QtWidgets.QWidget | None:
        motion = {"move_to", "move_by", "home", "stop_motion", "position", "is_moving", "wait_motion"}
        commands = [c for c in self.info.commands if not (self.info.movable and c.name in motion | {"stop"})]
        if not commands:
            return None
        box = QtWidgets.QWidget()
        flow = QtWidgets.QGridLayout(box)
        flow.setContentsMargins(0, 0, 0, 0)
        col = row = 0
        asking = False
        if any(not c.query for c in commands):
            flow.addWidget(heading("COMMANDS"), row, 0, 1, 2)
            row += 1
        for c in sorted(commands, key=lambda c: c.query):  # commands that change something first, then reads
            if c.query and not asking:  # the queries: they only read, the answer shows below
                asking = True
                row, col = (row + 1, 0) if col else (row, 0)
                flow.addWidget(heading("QUERIES (read only; the answer shows below)"), row, 0, 1, 2)
                row += 1
            button = QtWidgets.QPushButton(c.name.replace("_", " ") + ("?" if c.query else ""))
            button.setToolTip((c.doc or c.name) + (" (reads only)" if c.query else ""))
            self.command_buttons[c.name] = button
            if c.params:
                args = QtWidgets.QLineEdit()
                args.setPlaceholderText(" ".join(f"{p}=…" for p in c.params))
                args.setToolTip(f"{c.name}: {', '.join(c.params)} as name=value")
                button.clicked.connect(lambda _=False, c=c, a=args: self.command_with_text(c, a.text()))
                args.returnPressed.connect(lambda c=c, a=args: self.command_with_text(c, a.text()))
                if col:
                    row, col = row + 1, 0
                flow.addWidget(button, row, 0)
                flow.addWidget(args, row, 1)
                row += 1
            else:
                button.clicked.connect(lambda _=False, c=c: self.command(c.name))
                flow.addWidget(button, row, col)
                col += 1
                if col == 2:
                    row, col = row + 1, 0
        return box

    # --- actions ------------------------------------------------------------------
    def set_control(self, control: ControlInfo, value: Any) -> None:
        try:
            value = control.check(value)
        except ValueError as exc:
            self.show_reply(f"not sent: {exc}", error=True)
            return
        self.show_reply(f"setting {control.name} = {value} …")
        self.link.call(
            "set",
            self.info.name,
            control.name,
            value,
            on_done=lambda r: self.show_reply(f"{control.name} = {unwrap(r) if unwrap(r) is not None else value}"),
            on_error=lambda e: self.show_reply(e, error=True),
        )

    def command(self, name: str, **args: Any) -> None:
        self.show_reply(f"{name} …")
        self.link.call(
            "command",
            self.info.name,
            name,
            on_done=lambda r: self.show_reply(f"{name}: {'done' if unwrap(r) is None else unwrap(r)}"),
            on_error=lambda e: self.show_reply(e, error=True),
            **args,
        )

    def command_with_text(self, command: CommandInfo, text: str) -> None:
        args: dict[str, Any] = {}
        words = text.split()
        for i, word in enumerate(words):
            if "=" in word:
                key, _, value = word.partition("=")
            elif i < len(command.params):
                key, value = command.params[i], word
            else:
                self.show_reply(f"not sent: {command.name}: too many values ({text!r})", error=True)
                return
            args[key] = parse_value(value)
        self.command(command.name, **args)

    def _command_info(self, name: str) -> CommandInfo | None:
        return next((c for c in self.info.commands if c.name == name), None)

    def _axis_arg(self, command: str, axis: int | None) -> dict[str, Any]:
        """``{"axis": n}`` for a multi-axis device whose command takes one; {} otherwise."""
        c = self._command_info(command)
        return {"axis": axis} if axis is not None and self.info.axes and c is not None and "axis" in c.params else {}

    def move_axis(self, axis: int, target: float) -> None:
        """``move_to`` with the target under the name the driver declares (``target``, ``position``...)."""
        c = self._command_info("move_to")
        name = c.params[0] if c is not None and c.params else "target"
        self.command("move_to", **{name: target}, **self._axis_arg("move_to", axis))

    def jog(self, axis: int, step: float) -> None:
        c = self._command_info("move_by")
        if c is not None:
            self.command(
                "move_by", **{c.params[0] if c.params else "distance": step}, **self._axis_arg("move_by", axis)
            )
        elif axis in self.positions:
            self.move_axis(axis, self.positions[axis] + step)
        else:
            self.show_reply("not sent: position unknown yet", error=True)

    def stop(self, axis: int | None = None) -> None:
        self.command("stop_motion", **self._axis_arg("stop_motion", axis))

    # --- display -------------------------------------------------------------------
    def _on_value(self, stream: str, batches: list[pa.RecordBatch]) -> None:
        batch = batches[-1]
        value = batch.column("value")[batch.num_rows - 1].as_py()
        unit = self.link_unit(batch)
        self.value_labels[stream].setText(f"{value:.6g} {unit}".rstrip())
        name = stream.split("/", 1)[-1]
        if name.endswith("position"):
            digits = "".join(ch for ch in name if ch.isdigit())
            self.positions[int(digits) if digits else 1] = value

    @staticmethod
    def link_unit(batch: pa.RecordBatch) -> str:
        meta = batch.schema.field("value").metadata or {}
        return (meta.get(b"unit") or b"").decode()

    def set_status(self, status: str, error: str | None) -> None:
        colour = STATUS_COLOURS.get(status, "#888888")
        self.light.setStyleSheet(f"color:{colour}; font-size:16px")
        self.light.setToolTip(status)
        self.status.setText(status or "?")
        lines = [f"last error: {error}"] if error else []
        if self.info.describe_error:  # its controls are not known yet; its error (why) stays in sight
            lines.append(f"controls not known yet ({self.info.describe_error}); asking again")
        self.error.setText("\n".join(lines))
        self.error.setVisible(bool(lines))

    def show_settings(self, settings: dict[str, Any]) -> None:
        """Show the device's values in the editors (not in one the user is typing in)."""
        for name, editor in self.editors.items():
            if name in settings and not editor.editor.hasFocus():
                editor.show_value(settings[name])

    def show_reply(self, text: str, error: bool = False) -> None:
        self.reply.setStyleSheet("color:#c62828" if error else "color:#555")
        self.reply.setText(text)

    def close_feeds(self) -> None:
        for w in self.watches:
            self.link.unwatch(w)
        self.watches.clear()


class InstrumentsPanel(QtWidgets.QScrollArea):
    """The cards, one under another, scrolling."""

    def __init__(self, link: Link, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.cards: dict[str, InstrumentCard] = {}
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._body = QtWidgets.QWidget()
        self._layout = QtWidgets.QVBoxLayout(self._body)
        self._layout.addStretch(1)
        self.setWidget(self._body)

    def set_description(self, description: Description) -> None:
        self.close_feeds()
        for info in description.instruments:
            card = InstrumentCard(info, self.link, description)
            self.cards[info.name] = card
            self._layout.insertWidget(self._layout.count() - 1, card)
        # as wide as the widest card: nothing is cut off, and there is no sideways scrolling
        self.setMinimumWidth(self._body.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width() + 4)

    @property
    def incomplete(self) -> bool:
        """Some instrument could not be described yet (the window asks again)."""
        return any(card.info.describe_error for card in self.cards.values())

    def update_status(self, status: dict[str, Any]) -> None:
        actors = status.get("actors") or status.get("instruments") or {}
        for name, card in self.cards.items():
            a = actors.get(name)
            if isinstance(a, dict):
                card.set_status(str(a.get("status", "")).lower(), a.get("error") or a.get("last_error"))

    def apply_command_record(self, record: dict[str, Any]) -> None:
        """A command's log entry: show the settings the instrument reported after it."""
        card = self.cards.get(str(record.get("instrument")))
        settings = record.get("settings")
        if card is not None and isinstance(settings, dict):
            card.show_settings(settings)

    def stop_all_motion(self) -> None:
        for card in self.cards.values():
            if card.info.movable:
                card.stop()

    def close_feeds(self) -> None:
        for card in self.cards.values():
            card.close_feeds()
            card.setParent(None)
            card.deleteLater()
        self.cards.clear()
