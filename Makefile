# The README's two commands are `make demo` and `make test`.
VENV := .venv/bin

.PHONY: setup demo test test-vm lint fmt bench clean lock deb deb-amd64 test-deb test-deb-amd64 test-armhf

# What each use needs, and no more: the demo only the runtime (scripts/setup says what).
setup:
	scripts/setup test

demo:
	scripts/setup demo
	scripts/demo

lint: setup
	$(VENV)/ruff check totpd tests bench packaging
	$(VENV)/ruff format --check totpd tests bench packaging
	$(VENV)/mypy

fmt: setup
	$(VENV)/ruff format totpd tests bench packaging
	$(VENV)/ruff check --fix totpd tests bench packaging

test: lint
	$(VENV)/pytest -m "not vm and not deb" --cov --cov-report=term:skip-covered

# The real-machine test: a Debian 12 VM with systemd and a TPM2 installs the amd64 package
# and runs totpd under its unit (as root; docs/development.md).
test-vm: setup deb-amd64
	tests/vm/setup-host
	$(VENV)/pytest -m vm -p no:cacheprovider tests/vm

bench:
	scripts/setup bench
	scripts/bench

# dist/totpd_<version>_{amd64,arm64}.deb, built in cached Debian 12 chroots (as root).
deb:
	packaging/build-deb amd64 arm64

# The packages' files and metadata, then apt-installed into throwaway amd64 and arm64 chroots.
test-deb: setup deb
	$(VENV)/pytest -m deb -p no:cacheprovider tests/test_deb.py

# dist/totpd_<version>_amd64.deb alone, once per make run (test-vm and test-deb-amd64 need it).
deb-amd64:
	packaging/build-deb amd64

# The amd64 half alone (no emulation): the one that fits in CI.
test-deb-amd64: setup deb-amd64
	$(VENV)/pytest -m deb -k "not arm64" -p no:cacheprovider tests/test_deb.py

# Raspberry Pi OS 32-bit: the core from the hashed lock, and its tests, in an armhf chroot.
test-armhf:
	packaging/test-armhf

# Refresh the hashed dependency locks in requirements/ (see docs/packaging.md).
lock:
	scripts/lock

clean:
	rm -rf .venv .demo artifacts dist .pytest_cache .mypy_cache .ruff_cache .coverage
