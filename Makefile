# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run demo test lint fmt migrations-check migrate worker beat web attio-spec

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11+ is needed"' \
		|| { echo "Python 3.11 is needed (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

# Ports: PORTAL_PORT (8000) and FAKE_ATTIO_PORT (8765), from the shell or .env.
# Both check the ports and migrate before they start anything.
run: install
	@$(BIN)/python -m attio_portal.devserver run

demo: install
	@$(BIN)/python -m attio_portal.devserver demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrations-check: install
	$(BIN)/python manage.py makemigrations --check --dry-run

web: migrate
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile start web
worker: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile start worker
beat: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile start beat

# Download Attio's OpenAPI document afresh, check it and show what changed
# (connections/openapi/SOURCE.md). ARGS=--dry-run writes nothing.
attio-spec: install
	$(BIN)/python -m connections.openapi.refresh $(ARGS)
