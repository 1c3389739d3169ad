# Two commands on a fresh Debian machine: `make run` and `make test` (README's quick start).
# Both set everything up on first use: Debian packages (when apt-get is there and we are root),
# the virtual environment, and the Python requirements.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The Space's packages (packages.txt) plus what only the tests need: Chromium for the browser tests.
TEST_DEBS := chromium

.PHONY: run test test-fast setup system-deps lint bench clean-runs

run: $(STAMP)
	$(PY) app.py

test: $(STAMP)
	@$(MAKE) --no-print-directory system-deps DEBS="$(TEST_DEBS)"
	$(PY) -m playwright --version >/dev/null
	$(PY) -m pytest -m "not slow" -q

test-fast: $(STAMP)
	$(PY) -m pytest -q

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-batch.txt pyproject.toml packages.txt
	@$(MAKE) --no-print-directory system-deps DEBS="$$(grep -v '^#' packages.txt | xargs)"
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt -e .
	touch $@

# Installs the Debian packages named in DEBS that are missing; says so and goes on where it can't.
system-deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "warning: missing system packages:$$missing (install them with your package manager)"; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check m2m tests bench app.py

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-runs:
	rm -rf runs
