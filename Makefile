# Set-up is part of every target: a fresh machine needs only Python 3.11.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# System packages the tests start for real (sshd for sftp-drop). `make test` installs
# what is missing (as root, after apt-get update), so a fresh machine runs the whole suite.
# chromium and chromium-driver: the console's browser tests (Selenium, headless).
# postgresql: the PostgreSQL ledger's tests start a throw-away server (tests/pgserver.py).
SYSTEM_PACKAGES := openssh-server chromium chromium-driver postgresql
# `make demo` needs only sshd (the ACE truck step files over sftp-drop).
DEMO_PACKAGES := openssh-server

.PHONY: demo test bench clean sysdeps demo-sysdeps

$(STAMP): pyproject.toml Makefile contrib/plugin-template/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# The plugin template is installed like a third-party plugin; its tests run with ours.
	$(BIN)/python -m pip install -q -e contrib/plugin-template
	touch $(STAMP)

demo: demo-sysdeps $(STAMP)
	$(BIN)/python contrib/demo/demo.py

demo-sysdeps:
	@$(MAKE) --no-print-directory sysdeps SYSTEM_PACKAGES="$(DEMO_PACKAGES)"

sysdeps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "needs the system packages:$$missing (install them, or run as root)"; exit 1; fi; \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	fi

# One worker per core, each file's tests on one worker (they share servers and folders).
test: sysdeps $(STAMP)
	S321_NO_SKIPS=1 $(BIN)/python -m pytest -q -n auto --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) build .pytest_cache
