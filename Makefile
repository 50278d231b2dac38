# make run   start the registry with demo data on SQLite at http://127.0.0.1:8000
# make test  run the whole test suite (SQLite by default; PostgreSQL when DATABASE_URL says so)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint demo migrate messages bench backup restore clean docs

# The virtual environment is updated only when a requirements file changes. It holds the
# production packages and those of the tests, benchmarks and linters (requirements-dev.txt).
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Front-end test tools (axe-core for the accessibility tests), from the npm registry at the versions
# package-lock.json pins; the tests inject them into pages from node_modules, never from a CDN.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

migrate: $(STAMP)
	mkdir -p var/staticfiles  # the SQLite database and collected static files
	DEBUG=1 $(PY) manage.py migrate --noinput

demo: migrate
	DEBUG=1 $(PY) manage.py seed_demo

run: demo
	DEBUG=1 $(PY) manage.py runserver 127.0.0.1:8000

test: $(STAMP) node_modules/.installed
	mkdir -p var/staticfiles
	$(PY) -m pytest $(PYTEST_ARGS)

# The README's example report and docs/screenshots/, regenerated from the demo (docs/generate.py).
docs: $(STAMP)
	mkdir -p var/staticfiles
	$(PY) docs/generate.py

# Style and the architecture contract (pyproject.toml): which layer may import which.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

messages: $(STAMP)
	DEBUG=1 $(PY) manage.py makemessages -l de --ignore=.venv --ignore=staticfiles
	DEBUG=1 $(PY) manage.py compilemessages --ignore=.venv

bench: $(STAMP)
	for script in bench/*.py; do $(PY) $$script || exit 1; done

# PostgreSQL only: DATABASE_URL names the database.
BACKUP_FILE ?= backups/registry-$(shell date +%Y%m%d-%H%M%S).dump
backup:
	@test -n "$(DATABASE_URL)" || { echo "Set DATABASE_URL to the PostgreSQL database to back up."; exit 1; }
	mkdir -p $(dir $(BACKUP_FILE))
	pg_dump --format=custom --no-owner --file="$(BACKUP_FILE)" "$(DATABASE_URL)"
	@echo "Backup written to $(BACKUP_FILE)"

# Restores into DATABASE_URL, replacing what is there: make restore FILE=backups/x.dump
restore:
	@test -n "$(DATABASE_URL)" || { echo "Set DATABASE_URL to the PostgreSQL database to restore into."; exit 1; }
	@test -f "$(FILE)" || { echo "Name the dump: make restore FILE=backups/registry-....dump"; exit 1; }
	pg_restore --clean --if-exists --no-owner --exit-on-error --dbname="$(DATABASE_URL)" "$(FILE)"
	@echo "Restored $(FILE)"

clean:
	rm -rf $(VENV) node_modules var staticfiles test-artifacts
