# The two commands a newcomer needs: `make run` and `make test`. Both work on a bare machine
# with Python 3.11 and make; everything else is installed into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test test-core architecture lint format migrations-check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) scripts/run-portal

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/ruff check .

# The core alone: no CI integration installed (they plug in; the portal must work without them).
# Whole-system tests (several processes) ran already in `make test` and are not repeated here.
test-core: install
	PORTAL_INTEGRATIONS= $(BIN)/python -m pytest --ignore=tests/integrations -m 'not whole_system' $(PYTEST_ARGS)

# The portal's shape (tests/test_architecture.py): reads the source tree only, no database, ~1 s.
architecture: install
	$(BIN)/python -m pytest -q tests/test_architecture.py

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .

migrations-check: install
	DJANGO_DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run

clean:
	rm -rf var/broker var/staticfiles
