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

.PHONY: serve test bench conformance clean

$(INSTALLED): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[test]'
	touch $@

serve: $(INSTALLED)
	$(VENV)/bin/twistd --nodaemon --pidfile= wsservice --port $(PORT)

test: $(INSTALLED)
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
	find . -name dropin.cache -delete
