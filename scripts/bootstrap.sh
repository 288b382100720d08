#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install arrowdaq into it.
# On a fresh Debian machine run as root, it first installs what Python's venv needs.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing python3-venv (Debian)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
        echo "bootstrap: $PYTHON has no venv/ensurepip; install python3-venv" >&2
        exit 1
    fi
fi

# The Qt xcb platform plugin's system libraries (Debian), for the window on a display; quick when present.
QT_LIBS="libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 libxcb-render-util0
         libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && command -v dpkg-query >/dev/null; then
    missing=""
    for pkg in $QT_LIBS; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "bootstrap: installing Qt's system libraries (Debian):$missing"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null \
            || echo "bootstrap: could not install$missing; the window may not open on a display (offscreen works)" >&2
    fi
fi

# An X server without a screen (Xvfb) and xwininfo: the test that opens the window on a real display.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! { command -v Xvfb && command -v xwininfo; } >/dev/null; then
    echo "bootstrap: installing xvfb and x11-utils (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb x11-utils >/dev/null \
        || echo "bootstrap: could not install xvfb/x11-utils; tests/test_gui_display.py will fail" >&2
fi

# Stock HDF5 tools (h5dump, h5ls, h5clear): the tests check that run files open in them.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v h5dump >/dev/null; then
    echo "bootstrap: installing hdf5-tools (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hdf5-tools >/dev/null \
        || echo "bootstrap: could not install hdf5-tools; tests that run h5dump will fail" >&2
fi

# R with hdf5r (Debian, ~33 MB): docs/tutorials/reading-run-files.md reads a run file from R in the tests.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! { command -v Rscript >/dev/null && Rscript -e 'library(hdf5r)' >/dev/null 2>&1; }; then
    echo "bootstrap: installing r-base-core and r-cran-hdf5r (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends r-base-core r-cran-hdf5r >/dev/null \
        || echo "bootstrap: could not install R/hdf5r; the tutorial's R example will be reported as skipped" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "bootstrap: installing arrowdaq and its dependencies into $VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install -q -e '.[test,gui,docs]'
