# Kiln: `make up` starts the whole service locally; `make test` checks everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST_PACKAGES := mmdebstrap arch-test squashfs-tools rsync openssh-server qemu-user-static binfmt-support \
  dosfstools mtools e2fsprogs fdisk qemu-utils qemu-system-x86 ovmf libmagic1 libarchive13
# what the console's browser tests drive (tests/e2e/test_console.py): Debian's chromium and its driver
BROWSER_PACKAGES := chromium chromium-driver
TENANT ?= demo
ROLE ?= user

.PHONY: up down reset test test-fast test-slow lint token bench host-deps browser-deps node-deps install \
  synth deploy destroy clean

$(VENV)/.installed: requirements.txt requirements-host.txt requirements-dev.txt requirements-nodeps.txt \
  requirements-cdk.txt requirements-cli.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q pip==26.2.1  # chalice 1.34 wants pip<26.3
	$(VENV)/bin/pip install -q -r requirements-dev.txt -r requirements-cdk.txt
	$(VENV)/bin/pip install -q --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/pip install -q --no-deps -e .  # the `kiln` command: .venv/bin/kiln
	touch $@

# Node.js runs the CDK's jsii kernel (synth) and the ASL validator; installed from Debian when
# missing. The npm packages (package.json, exact versions, package-lock.json) go in node_modules.
node_modules/.installed: package.json package-lock.json
	@command -v node >/dev/null 2>&1 || { echo "Installing Node.js"; $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q nodejs npm; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-deps: node_modules/.installed

install: $(VENV)/.installed node-deps

# What a build host needs from Debian, installed only when missing; then qemu-user-static's
# binfmt_misc handlers for the foreign arches (mounted and registered when missing: through sudo
# unless root), so that `make up` also starts their build hosts. Standard library only: python3.
host-deps:
	@missing=""; for p in $(HOST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing build-host packages:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; fi
	@$(PYTHON) -m infra.local.emulation

browser-deps:
	@missing=""; for p in $(BROWSER_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing the browser the console's tests drive:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; fi

up: install host-deps
	$(PY) -m infra.local.stack

# Stop the stack `make up` started (SIGTERM; waits until its data is checkpointed and it exits)
down:
	@$(PYTHON) -m infra.local.control down

# Delete the stack's data (KILN_DATA_DIR, default .kiln/data), after asking; not while it runs
reset:
	@$(PYTHON) -m infra.local.control reset

# SERVICE_ACCOUNT=1: an OAuth2 client-credentials account instead (docs/service-accounts.md)
token: install
	@$(PY) -m infra.local.tokens --tenant $(TENANT) --role $(ROLE) $(if $(filter 1,$(SERVICE_ACCOUNT)),--service-account)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy chalicelib builders kiln_cli infra

test-fast: install host-deps browser-deps
	KILN_STRICT_SKIPS=1 $(VENV)/bin/pytest -q -m "not slow" -n 2

test-slow: install host-deps browser-deps
	KILN_STRICT_SKIPS=1 $(VENV)/bin/pytest -q -m slow -n 2 --dist loadfile

test: lint test-fast test-slow

# The AWS deployment (infra/cdk, docs/deploy.md): templates in cdk.out, offline, no credentials.
# CONTEXT: the operator's parameters, e.g. CONTEXT="-c jwt_jwks_url=https://... -c alarm_email=ops@example.com"
CDK := npx --no-install cdk
synth: install
	$(PY) -m infra.cdk.synth --out cdk.out $(CONTEXT)

deploy: install
	$(CDK) deploy --all --app "$(PY) -m infra.cdk.app" $(CONTEXT)

destroy: install
	$(CDK) destroy --all --app "$(PY) -m infra.cdk.app" $(CONTEXT)

bench: install
	$(PY) bench/dispatch.py
	$(PY) bench/glance.py
	$(PY) bench/front.py
	$(PY) bench/archive_bombs.py
	$(PY) bench/chaos.py
	$(PY) bench/cachito.py
	$(PY) bench/omps.py
	$(PY) bench/cache.py

clean:
	rm -rf $(VENV) .kiln .pytest_cache .mypy_cache .ruff_cache node_modules cdk.out
