# Every target builds its own virtualenv from the pinned constraints, so a fresh machine
# gets exactly what CI tested. `make lock` is the one command that moves the pins.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv browser test lint typecheck unit demo bench lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

# The dashboard test drives Debian's Chromium headless; install it when it is missing (as root).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then \
	      (apt-get install -y -q chromium >/dev/null 2>&1 || \
	       (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)); \
	    else echo "make test needs chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

test: lint typecheck browser
	$(BIN)/pytest

demo: venv
	$(BIN)/python -m doubles.demo

# agentq vs a naive Celery worker vs the no-queue limit; writes bench/results.json and plot.png.
bench: venv
	$(BIN)/python -m bench.run

# Re-resolve every dependency to the newest allowed by pyproject.toml and pin the result.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable --disable-pip-version-check \
		| grep -v '^-e ' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
