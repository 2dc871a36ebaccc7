# DB Pulse: `make demo` serves the dashboard on the embedded demo, `make test` runs the suite.
# Both create the virtualenv in .venv on first use. Needs Python 3.11 or newer.

PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; \
	  then echo $$p; break; fi; done)
VENV := .venv
PY := $(VENV)/bin/python
SCALE ?= default

.PHONY: demo test test-fast bench stack-up stack-down clean venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON)" || { echo "DB Pulse needs Python 3.11 or newer on the PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

demo: venv
	$(PY) cli.py demo --scale $(SCALE)

# four workers, whole files per worker (their module fixtures are built once), the longest
# files first (tests/conftest.py orders them); each worker starts servers of its own. Four on
# two cores: the browser, pg_cron and agent tests wait on other processes much of the time
# (on two cores the suite took 10.8 min with two workers, 7.2-8.7 with three, 7.0 with four)
test: venv
	$(PY) -m pytest -n 4 --dist loadfile --no-loadscope-reorder

# the tests that need no server (pure helpers, doctests, parsing): seconds, not minutes
test-fast: venv
	$(PY) -m pytest -m "not server"

bench: venv
	$(PY) bench/bench_demo_load.py
	$(PY) bench/catalog_scale.py
	$(PY) bench/redis_scale.py
	$(PY) bench/migration_gain.py
	$(PY) bench/history_review.py

stack-up: venv
	$(PY) cli.py stack up

stack-down: venv
	$(PY) cli.py stack down

clean: stack-down
	rm -rf .dbpulse
