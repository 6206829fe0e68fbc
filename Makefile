# spendcap — `make help` lists the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

GO ?= go
BENCH_TIME ?= 5s
FUZZ_TIME ?= 5m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install PostgreSQL 15, valkey-server and pgbouncer when missing (apt, as root)
	@scripts/deps.sh

.PHONY: build
build: ## Build the binaries into ./bin
	$(GO) build -o bin/ ./cmd/...

.PHONY: dev
dev: deps ## Run spendcap locally: Postgres + Valkey in ./.spendcap, migrated, jobs running, until Ctrl-C
	@$(GO) build -o bin/ ./cmd/...
	@$(GO) build -o bin/spendcap-dev ./internal/cmd/dev
	@exec bin/spendcap-dev

.PHONY: test
# tests/ runs property tests (rapid) for minutes on a machine of 2 cores: past go test's default
# limit of 10 minutes a package, it is cut short with a panic.
test: deps ## Run every test against real Postgres and Valkey servers
	$(GO) test -count=1 -timeout 20m ./...

.PHONY: fuzz
fuzz: deps ## Fuzz every function of both backends with hostile arguments for FUZZ_TIME (5m); finds land in tests/testdata/fuzz
	@rm -f fuzz.log
	SPENDCAP_FUZZ_LOG=$(CURDIR)/fuzz.log $(GO) test -run '^$$' -fuzz '^FuzzHostileCalls$$' -fuzztime $(FUZZ_TIME) -parallel 2 ./tests/
	@echo "calls by backend and outcome (unsayable: arguments SQL cannot pass, so the function never ran):"
	@awk '{print $$1, $$3}' fuzz.log | sort | uniq -c | sort -k2,2 -k1,1nr

.PHONY: test-race
test-race: deps ## Run every test with the race detector
	$(GO) test -count=1 -race -timeout 40m ./...

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

.PHONY: generate
generate: ## Regenerate generated code
	$(GO) generate ./...

.PHONY: check-generated
check-generated: generate ## Fail when generated code is stale
	@git diff --exit-code -- '*_gen.go' valkey/spendcap.lua || (echo "generated code is stale: run make generate and commit the result"; exit 1)
	@test -z "$$(git status --porcelain --untracked-files=all -- '*_gen.go' valkey/spendcap.lua)" || (echo "untracked generated files: run make generate and commit"; exit 1)

.PHONY: check-sql
check-sql: deps ## Check that `migrate sql | psql` gives the database `migrate up` gives
	$(GO) test -count=1 -run 'TestScriptMatchesUp' ./internal/migrator

.PHONY: bench
bench: deps ## Benchmarks against baselines, ratios printed (BENCH_TIME=2s for a quick run; bench.json, bench.png)
	$(GO) run ./tests/bench -time $(BENCH_TIME) -json bench.json -png bench.png

.PHONY: screenshot
screenshot: deps ## Make docs/console.png, the README's picture of the console, from the browser tests' demo budgets
	$(GO) run ./internal/cmd/screenshot -out docs/console.png

.PHONY: clean
clean: ## Remove build output
	rm -rf bin

.PHONY: dev-reset
dev-reset: ## Delete the dev data in ./.spendcap (and Postgres' data it links to under /var/lib/spendcap, as root)
	@target=$$(readlink .spendcap/postgres/server 2>/dev/null); if [ -n "$$target" ]; then echo "rm -rf $$target"; rm -rf "$$target"; fi
	rm -rf .spendcap
