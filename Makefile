# make run       set everything up on a fresh machine and start web, worker and mail sink
# make test      set up and run lint, the type check and the whole test suite
# make bench     run every benchmark in bench/ (PostgreSQL and RabbitMQ on 127.0.0.1; minutes)
# make typecheck run mypy over the files [tool.mypy] in pyproject.toml names

VENV := .venv
PY := $(VENV)/bin/python
# What is installed in the virtual environment: the runtime (requirements.txt and
# the project itself, editable), and on top of it what tests and benchmarks need.
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export FLASK_APP := app

.PHONY: run test lint typecheck setup schema clean chromium tools bench

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUNTIME): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(DEV): requirements-dev.txt $(RUNTIME)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The folders the processes write to, and the schema.
schema: $(RUNTIME)
	mkdir -p instance/mail instance/exports
	flask db upgrade

setup: $(DEV) schema

# The runtime dependencies only: no test, benchmark or checking tools.
run: schema
	$(PY) deploy/check_rabbitmq.py
	$(PY) deploy/demo_admin.py
	$(PY) deploy/honcho_run.py start -f Procfile

lint: $(DEV)
	ruff check .
	ruff format --check .

typecheck: $(DEV)
	mypy

# Browser tests drive Debian's chromium; install it where we can (root with apt).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed: browser tests will skip (and fail under CI)"

# Checkers for deploy/: promtool (package prometheus), docker-compose (validates the
# compose file without a Docker engine), systemd-analyze, nginx (Debian's, for
# `nginx -t` and a run of deploy/nginx/jobsapp.conf; in /usr/sbin). Install where we can.
TOOLS := promtool:prometheus docker-compose:docker-compose systemd-analyze:systemd nginx:nginx
tools:
	@for pair in $(TOOLS); do tool=$${pair%%:*}; package=$${pair#*:}; \
		PATH="$$PATH:/usr/sbin:/sbin" command -v $$tool >/dev/null \
			|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
			&& { apt-get update -qq; apt-get install -y -qq --no-install-recommends $$package \
				>/dev/null; }; } \
		|| echo "$$tool is not installed: its deploy/ checks will skip (and fail under CI)"; \
	done

test: lint typecheck chromium tools
	$(PY) -m pytest

# Each script measures its baseline in the same run and prints both, the ratio and the
# settings (docs/benchmarks.md). All run even if one fails; then make fails.
BENCHES := e2e noop enqueue email_rate export admin relay batch bulk_retry
bench: $(DEV)
	@failed=; for name in $(BENCHES); do echo "== python -m bench.$$name"; \
		$(PY) -m bench.$$name || failed="$$failed $$name"; echo; done; \
		[ -z "$$failed" ] || { echo "failed:$$failed"; exit 1; }

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info build
