# `make demo` and `make test` set everything up (a local .venv, reused) and run.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.arrowdaq-installed

.PHONY: setup test lint demo bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) bash scripts/bootstrap.sh
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check src tests benchmarks scripts docs/conf.py docs/_ext
	$(VENV)/bin/ruff check src tests benchmarks scripts docs/conf.py docs/_ext
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

demo: $(STAMP)
	$(VENV)/bin/arrowdaq demo --duration 15

bench: $(STAMP)
	$(VENV)/bin/arrowdaq bench

# The documentation site into build/docs (open build/docs/index.html). Offline; any warning fails the build:
# -n (nitpicky) makes every cross-reference resolve and MyST checks every local link and #anchor.
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -n -q -b html docs build/docs
	@echo "docs: build/docs/index.html"

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
