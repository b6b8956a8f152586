# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run demo test lint fmt migrations-check migrate worker beat web

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

run: migrate
	@echo ""
	@echo "  Attio Portal is starting: open http://127.0.0.1:$${PORTAL_PORT:-8000}/"
	@echo "  First time? Create an admin in another terminal with:"
	@echo "      $(BIN)/python manage.py createsuperuser"
	@echo "  Ctrl-C stops the web server, the Celery worker and Celery beat."
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile start

demo: migrate
	@echo ""
	@echo "  Attio Portal against the fake Attio: open http://127.0.0.1:8000/"
	@echo "  Create an admin first if you haven't: $(BIN)/python manage.py createsuperuser"
	@echo "  'Connect Attio' leads to the fake's consent page (pick Acme or Globex)."
	@echo "  Ctrl-C stops everything."
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.demo -e demo.env start

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
