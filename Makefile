# Two commands on a fresh machine:
#   make serve   build .venv, install wsservice into it, serve on port 60000
#   make test    build .venv with the test tools, run the whole suite
PYTHON ?= python3
VENV ?= .venv
PORT ?= 60000
PY := $(VENV)/bin/python
SOURCES := setup.cfg pyproject.toml MANIFEST.in $(shell find wsservice twisted static -type f \
             -not -name '*.py[co]' -not -name dropin.cache 2>/dev/null)
INSTALLED := $(VENV)/.installed

.PHONY: serve test bench conformance clean fuzz soak

$(INSTALLED): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	rm -rf build  # setuptools would ship files deleted since the last build
	$(PY) -m pip install --quiet '.[test]'
	touch $@

serve: $(INSTALLED)
	$(VENV)/bin/twistd --nodaemon --pidfile= wsservice --port $(PORT)

test: $(INSTALLED)
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
	find . -name dropin.cache -delete

# The Autobahn Testsuite against the echo handler: the 301 cases without
# compression (also run by `make test`); FULL=1 runs all 517 cases with
# permessage-deflate (about 20 minutes). tools/conformance/ installs the
# suite on first use (README.md there says where and why).
CONFORMANCE_PORT ?= 9001
conformance: $(INSTALLED)
	$(VENV)/bin/twistd --nodaemon --pidfile= wsservice --port $(CONFORMANCE_PORT) \
	    --interface 127.0.0.1 --max-message-size 16777216 \
	    $(if $(FULL),--permessage-deflate) > conformance-server.log 2>&1 & \
	server=$$!; trap 'kill $$server' EXIT; \
	for i in $$(seq 50); do curl -sf http://127.0.0.1:$(CONFORMANCE_PORT)/healthz >/dev/null && break; \
	    sleep 0.2; done; \
	$(PY) tools/conformance/run.py $(if $(FULL),--timeout 2400,--no-compression) \
	    ws://127.0.0.1:$(CONFORMANCE_PORT) conformance-report

# The benchmark against the reference Node ws servers (README.md,
# Performance); prints the table and records nothing by itself.
bench: $(INSTALLED)
	$(PY) -m pip install --quiet py-spy
	$(PY) bench/run.py $(BENCH_ARGS)

# MINUTES of mixed chat/echo/clock load with connection churn against the
# real service (10 by default; bench/soak.py); prints the RSS series, the
# errors and p99s, and fails on any error or on memory growth after
# warm-up. `make test` runs one minute of it (tests/service/test_soak.py).
MINUTES ?= 10
soak: $(INSTALLED)
	$(PY) bench/soak.py --minutes $(MINUTES) $(SOAK_ARGS)

# Every fuzz target in tests/fuzz/ for FUZZ_SECONDS each (60 by default),
# from its committed seeds and a corpus that grows in tests/fuzz/corpus/
# (git-ignored); crashing inputs and logs go to artifacts/fuzz/.
# FUZZ_TARGETS picks some: chat clock frontdoor broker. `make test` runs
# each for a few seconds (tests/fuzz/test_fuzzers.py).
FUZZ_SECONDS ?= 60
fuzz: $(INSTALLED)
	$(PY) -m tests.fuzz.run --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)
