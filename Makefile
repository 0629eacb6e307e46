# chat-system — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test fuzz lint fmt build release bench services kind-up e2e kind-down help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: ## Serve the API on :3000 (admin :9000) with embedded defaults: no servers needed
	$(CARGO) run --release --locked -p chat-system -- serve

test: ## The whole suite: starts (or installs) MariaDB and Redis if needed, then every test
	@eval "$$(scripts/ensure-services.sh | sed 's/^/export CHAT_TEST_/')" && \
	  echo "tests use MySQL $$CHAT_TEST_MYSQL and Redis $$CHAT_TEST_REDIS" && \
	  CHAT_TEST_MYSQL_URL=$$CHAT_TEST_MYSQL CHAT_TEST_REDIS_URL=$$CHAT_TEST_REDIS \
	  $(CARGO) test --workspace --locked
	@if [ -x operator/test.sh ]; then operator/test.sh; fi

fuzz: ## Generated bad input: schemathesis (>= 5000 requests, stateful) against `chat-system serve`
	scripts/schemathesis.sh

lint: ## What CI checks besides the tests: formatting and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

build: ## Debug build of everything
	$(CARGO) build --workspace --locked

release: ## Release build of the chat-system binary (target/release/chat-system)
	$(CARGO) build --release --locked -p chat-system

bench: ## Benchmarks (docs/performance.md): starts MariaDB/Redis if needed; `make bench ARGS=--quick` for < 3 min
	@eval "$$(scripts/ensure-services.sh)" && \
	  $(CARGO) build --release --locked -p chat-system -p chat-bench && \
	  CHAT_BENCH_MYSQL=$${CHAT_BENCH_MYSQL:-$$MYSQL} CHAT_BENCH_REDIS=$${CHAT_BENCH_REDIS:-$$REDIS} \
	  target/release/chat-bench $(ARGS)

services: ## Only make sure MariaDB and Redis are reachable (what `make test` does first)
	@scripts/ensure-services.sh

kind-up: ## kind cluster with the operator, dev dependencies and a sample ChatSystem (needs Docker, kind, kubectl, helm)
	scripts/kind-e2e.sh up

e2e: ## End-to-end check against the kind cluster from `make kind-up`
	scripts/kind-e2e.sh e2e

kind-down: ## Delete the kind cluster
	scripts/kind-e2e.sh down
