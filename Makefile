# ketenpoort: the commands the README names.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DATABASE_URL ?= sqlite+aiosqlite:///ketenpoort.db

.PHONY: runtime install graphiql-assets run serve migrate demo token test lint schema schema-check migrations-check check bench bench-full clean

# Two stamps: running needs only the runtime dependencies (make run, serve, token);
# testing, linting and the benchmarks add the dev extras on top.
$(BIN)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed: $(BIN)/.runtime
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

runtime: $(BIN)/.runtime ## the virtualenv with what running the gateway needs

install: $(BIN)/.installed ## the virtualenv with every dependency, dev extras included

migrate: runtime ## upgrade DATABASE_URL to the latest schema
	$(BIN)/ketenpoort migrate

demo: migrate ## load the demo data (once)
	$(BIN)/ketenpoort demo

# GraphiQL's scripts in a local folder (unpkg's layout) for a gateway without internet
# access: KETENPOORT_GRAPHIQL_ASSETS_DIR=$(GRAPHIQL_ASSETS) (README "Operating").
GRAPHIQL_ASSETS ?= graphiql-assets
GRAPHIQL_PACKAGES := react@18.2.0 react-dom@18.2.0 js-cookie@3.0.5 graphiql@3.8.3 \
	@graphiql/plugin-explorer@1.0.2
graphiql-assets: ## fetch GraphiQL's scripts from the npm registry into $(GRAPHIQL_ASSETS)/
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for package in $(GRAPHIQL_PACKAGES); do \
		file=$$(cd "$$tmp" && npm pack --silent "$$package"); \
		mkdir -p "$(GRAPHIQL_ASSETS)/$$package"; \
		tar -xzf "$$tmp/$$file" -C "$(GRAPHIQL_ASSETS)/$$package" --strip-components=1; \
	done; echo "GraphiQL assets in $(GRAPHIQL_ASSETS)/"

token: runtime ## print a GraphiQL URL with an operator token filled in
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

serve: runtime
	$(BIN)/ketenpoort serve

test: install ## the whole suite, against SQLite and PostgreSQL
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

schema: install ## regenerate schema.graphql
	$(BIN)/ketenpoort export-schema --output schema.graphql

schema-check: install ## the committed schema.graphql equals the exported schema
	@$(BIN)/ketenpoort export-schema | diff -u schema.graphql - && echo "schema.graphql is up to date"

migrations-check: runtime ## models and migrations agree (alembic check) on DATABASE_URL
	$(BIN)/ketenpoort migrate
	$(BIN)/alembic check

check: lint schema-check test

bench: install ## quick benchmarks (PostgreSQL), writes bench/RESULTS.md
	$(BIN)/python -m bench --quick

bench-full: install ## large benchmarks (PostgreSQL), writes bench/RESULTS.md
	$(BIN)/python -m bench --full

clean:
	rm -rf $(VENV) ketenpoort.db ketenpoort.db-* .pytest_cache .ruff_cache $(GRAPHIQL_ASSETS)
