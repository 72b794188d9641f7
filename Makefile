# The README's two commands are `make demo` and `make test`.
VENV := .venv/bin

.PHONY: setup demo test test-vm lint fmt bench clean

setup:
	scripts/setup

demo: setup
	scripts/demo

lint: setup
	$(VENV)/ruff check totpd tests bench
	$(VENV)/ruff format --check totpd tests bench
	$(VENV)/mypy

fmt: setup
	$(VENV)/ruff format totpd tests bench
	$(VENV)/ruff check --fix totpd tests bench

test: lint
	$(VENV)/pytest -m "not vm" --cov --cov-report=term:skip-covered

# The real-machine test: a Debian 12 VM with systemd and a TPM2 installs and runs totpd.
test-vm: setup
	tests/vm/setup-host
	$(VENV)/pytest -m vm -p no:cacheprovider tests/vm

bench: setup
	scripts/bench

clean:
	rm -rf .venv .demo artifacts .pytest_cache .mypy_cache .ruff_cache .coverage
