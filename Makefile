# vmailkit: `make test` and `make demo` work on a fresh Debian/Ubuntu machine with Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEB_TEST_PACKAGES := dovecot-imapd dovecot-pop3d openssl
# The real-browser test (tests/test_browser.py) drives Debian's Chromium through Playwright.
DEB_BROWSER_PACKAGES := chromium

.PHONY: help venv test test-fast deb-packages browser-packages demo lab bench clean

help:
	@echo "make demo   - run the main job on the built-in demo (embedded mail server)"
	@echo "make test   - install what the tests need and run them (Dovecot via apt when root)"
	@echo "make lab    - JupyterLab on notebooks/ with the demo mail server"
	@echo "make bench  - benchmarks against the test Dovecot (see docs/performance.md)"

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed-dev

# Installs the Debian packages the integration tests need, when run as root and they are missing.
deb-packages:
	@if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing $(DEB_TEST_PACKAGES) ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_TEST_PACKAGES) >/dev/null; \
	    (service dovecot stop >/dev/null 2>&1 || true); \
	  else \
	    echo "WARNING: Dovecot is not installed and this is not root: the real-server tests will be skipped"; \
	    echo "         (sudo apt-get install $(DEB_TEST_PACKAGES))"; \
	  fi; \
	fi

# Installs Debian's Chromium for the browser test, when run as root and it is missing (never a
# browser downloaded by Playwright).
browser-packages:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing $(DEB_BROWSER_PACKAGES) ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_BROWSER_PACKAGES) >/dev/null; \
	  else \
	    echo "WARNING: chromium is not installed and this is not root: the browser test will be skipped"; \
	    echo "         (sudo apt-get install $(DEB_BROWSER_PACKAGES))"; \
	  fi; \
	fi

test: venv deb-packages browser-packages
	$(PY) -m pytest -ra $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -ra -m "not dovecot" $(PYTEST_ARGS)

# The demo needs only the `demo` extra (pymap, twisted, JupyterLab, papermill), not the test tools.
$(VENV)/.installed-demo: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing vmailkit with its demo extra into $(VENV) ..."
	@$(PIP) install --quiet --upgrade pip
	@$(PIP) install --quiet -e '.[demo]'
	@touch $@

# The demo mail server (127.0.0.1:14143 IMAP, :14110 POP3), the batch notebook, a summary; see docs/demo.md.
demo: $(VENV)/.installed-demo
	@$(PY) -m vmailkit.demo $(DEMO_ARGS)

# The demo mail server in the background and JupyterLab on notebooks/ (VMAILKIT_DB=demo/vmail.duckdb);
# stopping JupyterLab (Ctrl-C twice) stops the server.
lab: $(VENV)/.installed-demo
	@$(PY) -m vmailkit.demo lab $(LAB_ARGS)

bench: venv deb-packages
	$(PY) benchmarks/import_bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
