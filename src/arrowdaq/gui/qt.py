"""The Qt binding and pyqtgraph, imported in the one order that works, configured once.

pyqtgraph uses whichever binding is already imported, so PySide6 comes first.
Lines are 1 px (wider ones are ~100x slower to draw) and without antialiasing.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from shiboken6 import isValid

pg.setConfigOptions(antialias=False, useOpenGL=False, imageAxisOrder="row-major")

__all__ = ["QtCore", "QtGui", "QtWidgets", "pg", "application", "is_alive"]


def is_alive(obj: QtCore.QObject) -> bool:
    """Whether the Qt object behind ``obj`` still exists (a closed panel's widgets are deleted by Qt)."""
    return bool(isValid(obj))


def application(argv: list[str] | None = None) -> QtWidgets.QApplication:
    """The process's QApplication (created once)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(argv or ["arrowdaq-gui"])
        app.setApplicationName("arrowdaq")
        app.setOrganizationName("arrowdaq")
    if not isinstance(app, QtWidgets.QApplication):
        raise RuntimeError("this process already has a Qt application without widgets (QCoreApplication)")
    return app
