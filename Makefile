# Two commands for a new user: `make run` and `make test`. Everything else serves them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
STAMP := $(VENV)/.installed-stamp
CATALOGS := crm/translations

.PHONY: run test install translations extract-messages lint bench-audit bench-sla clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) translations

translations: $(STAMP)
	$(BIN)/pybabel -q compile -d $(CATALOGS)

# After changing user-facing strings: refresh the catalogs, then translate the new entries.
extract-messages: $(STAMP)
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -o $(CATALOGS)/messages.pot .
	$(BIN)/pybabel -q update -i $(CATALOGS)/messages.pot -d $(CATALOGS) --no-fuzzy-matching --ignore-obsolete

run: install
	$(FLASK) db upgrade
	$(FLASK) demo seed
	$(FLASK) run --host 127.0.0.1 --port 5000

# The suite runs on SQLite; when DATABASE_URL is set (as in CI) it runs again on it,
# connected as the application role, which row-level security binds (docs/operations.md).
APP_DATABASE_ROLE ?= ledgerdesk_app
test: install
	env -u DATABASE_URL $(BIN)/pytest -q
	@if [ -n "$$DATABASE_URL" ]; then \
		echo "== again on $$DATABASE_URL, as the role $(APP_DATABASE_ROLE)"; \
		APP_DATABASE_ROLE=$(APP_DATABASE_ROLE) $(BIN)/pytest -q; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench-audit: install
	$(BIN)/python bench/audit.py

# The sweep on 10,000 and 1,000,000 running clocks, and due-time arithmetic.
bench-sla: install
	$(BIN)/python bench/sla_sweep.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench_sla
	$(BIN)/python bench/businesstime.py

clean:
	rm -rf $(VENV) instance
