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

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "bootstrap: installing arrowdaq and its dependencies into $VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install -q -e '.[test]'
