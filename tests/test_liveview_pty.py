"""The terminal view on a real pseudo-terminal, read back through a terminal emulator (pyte):
what an operator sees, including what is left in the scrollback."""

from __future__ import annotations

import os
import sys
import time

import pexpect
import pyte

from .configs import DROPPING_CAMERA, instrument, lab, write_config

COLUMNS, ROWS = 150, 45

CONFIG = lab(instrument("pm1", poll_hz=10.0), DROPPING_CAMERA, name="pty")


class Terminal:
    """A child process on a pty of COLUMNS × ROWS, its output rendered as a terminal would."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS))
        self.child = pexpect.spawn(
            sys.executable, list(args), dimensions=(ROWS, COLUMNS), env=env, encoding="utf-8", timeout=5
        )
        self.screen = pyte.HistoryScreen(COLUMNS, ROWS, history=10_000)
        self.stream = pyte.Stream(self.screen)
        self.raw = ""  # every character the child wrote, for what was shown only briefly

    def pump(self, until, timeout: float = 60.0) -> bool:
        """Feed the output to the emulator until ``until(self)`` or the child exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until(self):
                return True
            try:
                chunk = self.child.read_nonblocking(65536, timeout=0.2)
                self.raw += chunk
                self.stream.feed(chunk)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return until(self)
        raise AssertionError(f"timed out; the screen shows:\n{self.display()}")

    def display(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def everything(self) -> str:
        """The scrollback and the screen, top to bottom."""
        history = ["".join(line[x].data for x in range(COLUMNS)).rstrip() for line in self.screen.history.top]
        return "\n".join([*history, self.display()])

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()


def test_on_a_terminal_warnings_stay_readable_values_show_and_the_stop_is_followed(tmp_path):
    path = write_config(tmp_path, CONFIG)
    term = Terminal("-m", "arrowdaq.cli.main", "run", str(path))
    try:
        # mid-run: the values with their units, and the camera's repeated warning folded into one line
        shown = (
            " W ",
            "dropped",
            "(×",
            "frame #",
            "Running",
        )  # the camera's first frame may come last on a busy machine
        term.pump(lambda t: all(text in t.display() for text in shown))
        screen = term.display()
        assert any(line.startswith("│ pm1/power") or " pm1/power " in line for line in screen.splitlines())
        assert "frame #" in screen and "Running" in screen
        term.child.sendintr()  # Ctrl-C
        term.pump(lambda t: "stopped in" in t.raw)
        term.pump(lambda t: not t.child.isalive() and "run file:" in t.display(), timeout=60)
        term.child.expect(pexpect.EOF)
    finally:
        term.close()
    assert term.child.exitstatus == 0
    shown = term.everything()
    # the warning raised mid-run is still readable at the end, once, with its count
    warnings = [line for line in shown.splitlines() if "dropped" in line and "frame(s)" in line]
    assert len(warnings) == 1 and "(×" in warnings[0], warnings
    # no scrollback junk: the panel's header is in the terminal once, not once per redraw
    assert shown.count("Log (warnings and errors") == 1, shown
    assert shown.count("last value") == 1
    assert "stopped in" in shown and "storage 1/1" in shown
    # the ordered stop was followed while it went on: "stopping…" was drawn before "stopped in"
    assert 0 <= term.raw.find("stopping…") < term.raw.find("stopped in"), term.raw[-3000:]
    assert "Run summary" in shown and "Traceback" not in shown
