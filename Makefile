# ketenpoort: the commands the README names.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DATABASE_URL ?= sqlite+aiosqlite:///ketenpoort.db

.PHONY: install run serve migrate demo token test lint schema schema-check migrations-check check bench bench-full clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed ## create the virtualenv with every dependency

migrate: install ## upgrade DATABASE_URL to the latest schema
	$(BIN)/ketenpoort migrate

demo: migrate ## load the demo data (once)
	$(BIN)/ketenpoort demo

token: install ## print a GraphiQL URL with an operator token filled in
	@$(BIN)/ketenpoort token operator --scope operator --url

run: demo ## migrate an embedded SQLite file, load the demo, serve GraphiQL on :8000
	@echo
	@echo "GraphiQL with an operator token filled in (valid 12 hours):"
	@$(BIN)/ketenpoort token operator --scope operator --url
	@echo
	@echo "Bearer token for other clients:"
	@$(BIN)/ketenpoort token operator --scope operator
	@echo
	$(BIN)/ketenpoort serve

serve: install
	$(BIN)/ketenpoort serve

test: install ## the whole suite, against SQLite and PostgreSQL
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

schema: install ## regenerate schema.graphql
	$(BIN)/ketenpoort export-schema --output schema.graphql

schema-check: install ## the committed schema.graphql equals the exported schema
	@$(BIN)/ketenpoort export-schema | diff -u schema.graphql - && echo "schema.graphql is up to date"

migrations-check: install ## models and migrations agree (alembic check) on DATABASE_URL
	$(BIN)/ketenpoort migrate
	$(BIN)/alembic check

check: lint schema-check test

bench: install ## quick benchmarks (PostgreSQL), writes bench/RESULTS.md
	$(BIN)/python -m bench --quick

bench-full: install ## large benchmarks (PostgreSQL), writes bench/RESULTS.md
	$(BIN)/python -m bench --full

clean:
	rm -rf $(VENV) ketenpoort.db ketenpoort.db-* .pytest_cache .ruff_cache
