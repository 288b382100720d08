"""A daemon (the Application with its live service) in a thread of the test process, or in a process of its own."""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path

from arrowdaq.app.config import parse_config
from arrowdaq.app.runner import Application
from arrowdaq.app.thread import ApplicationThread

from .configs import PM1, instrument, lab

#: The laser, the half-wave plate and the power meter; ``{extra}`` is where a test adds its tables.
TABLE = lab(
    instrument("laser", "maitai", poll_hz=2.0),
    instrument("hwp", "ell14", poll_hz=5.0),
    PM1,
    name="live",
    extra="{extra}",
)


class Daemon(ApplicationThread):
    """Start with ``Daemon(tmp_path).start()``; ``stop()`` returns the run summary."""

    def __init__(self, tmp_path: Path, extra: str = "", text: str = TABLE) -> None:
        config = parse_config(tomllib.loads(text.format(data_dir=tmp_path / "data", extra=extra)), "live.toml")
        super().__init__(Application(config, source="live.toml"))

    @property
    def address(self) -> str:
        assert self.app.live is not None
        return self.app.live.address

    @property
    def token(self) -> str:
        assert self.app.live is not None
        return self.app.live.token


class DaemonProcess:
    """``arrowdaq run`` of :data:`TABLE` in a process of its own, with its own address file: the daemon as a
    user starts it. ``client()`` connects as a second program would; ``stop()`` (SIGINT) returns its output."""

    def __init__(
        self,
        tmp_path: Path,
        extra: str = "",
        text: str = TABLE,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``command``: other arrowdaq arguments instead of ``run lab.toml`` (e.g. ``["demo", "--no-gui"]``);
        ``env``: variables set for it besides its address file's."""
        import json
        import os
        import subprocess
        import sys

        self._json = json
        self.tmp = tmp_path
        self.config = tmp_path / "lab.toml"
        if command is None:  # it runs TABLE (a command of its own runs what it names)
            self.config.write_text(text.format(data_dir=tmp_path / "data", extra=extra), encoding="utf-8")
        self.live_file = tmp_path / "live.json"
        self.env = {**os.environ, **(env or {}), "ARROWDAQ_LIVE_FILE": str(self.live_file)}
        for name in ("ARROWDAQ_ADDRESS", "ARROWDAQ_TOKEN"):
            self.env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "arrowdaq.cli.main", *(command or ["run", str(self.config)])],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._announced = threading.Event()
        self._reader = threading.Thread(target=self._read, name="daemon-output", daemon=True)
        self._reader.start()
        if not self._announced.wait(90):
            output = self.stop()
            raise AssertionError(f"the daemon did not announce its live service:\n{output}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("live service:"):
                self._announced.set()
        self._announced.set()  # it ended: start() says so

    @property
    def address(self) -> str:
        return self._json.loads(self.live_file.read_text(encoding="utf-8"))["address"]

    @property
    def token(self) -> str:
        return self._json.loads(self.live_file.read_text(encoding="utf-8"))["token"]

    def client(self, name: str = "test"):  # type: ignore[no-untyped-def]
        from arrowdaq.live.client import connect

        return connect(self.address, self.token, name=name)

    def stop(self, timeout: float = 60.0) -> str:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return "".join(self.lines)
