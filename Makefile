# keygate: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
EMU := infra/local/with-emulator
export SAM_CLI_TELEMETRY := 0
export CARGO_TERM_COLOR := never

.PHONY: help tools dev-tools iac test unit lint fmt dev bench build clean-local fuzz

help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.test-tools: infra/requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-test.txt
	touch $@

tools: $(VENV)/.test-tools ## Install the test tools into the project virtualenv

$(VENV)/.dev-tools: $(VENV)/.test-tools infra/requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-dev.txt
	touch $@

dev-tools: $(VENV)/.dev-tools ## Install cargo-lambda, zig and the SAM CLI into the virtualenv

TEST_LOGS := $(CURDIR)/.local/test-logs

iac: tools ## Validate template.yaml offline (SAM lint, cfn-lint)
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/sam validate --lint --template template.yaml

test: tools iac ## Run every test; starts and stops its own emulator
	rm -rf $(TEST_LOGS) && mkdir -p $(TEST_LOGS)
	cargo build --workspace --bins --locked
	KEYGATE_TEST_LOGS=$(TEST_LOGS) $(EMU) cargo test --workspace --all-targets --locked 2>&1 \
	  | tee $(TEST_LOGS)/cargo-test.out
	KEYGATE_TEST_LOGS=$(TEST_LOGS) cargo run --quiet --locked -p keygate-tests --bin check-logs
	@awk '/^test result:/ {p+=$$4; f+=$$6; i+=$$8} END {printf "test result: %s. %d passed; %d failed; %d ignored; 0 measured; 0 filtered out (whole suite)\n", (f ? "FAILED" : "ok"), p, f, i; exit (f > 0)}' $(TEST_LOGS)/cargo-test.out

unit: ## Unit tests only (no emulator)
	cargo test --workspace --lib --locked

lint: ## cargo fmt check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	cargo fmt --all

dev: tools ## Run the system locally (emulator + table) until Ctrl-C
	cargo build --locked -p keyctl
	$(EMU) infra/local/dev

BENCH_SECONDS ?= 10
BENCH_CONCURRENCY ?= 8

bench: tools ## Measure and write BENCHMARKS.md (release builds; takes minutes)
	cargo bench --locked -p keygate-tests --bench decision -- --noplot
	cargo build --release --locked -p keygate-tests --bin bench-load
	mkdir -p target/bench
	$(EMU) target/release/bench-load $(BENCH_SECONDS) $(BENCH_CONCURRENCY) > target/bench/load.json
	$(PY) infra/bench/report.py > BENCHMARKS.md
	cat BENCHMARKS.md

build: dev-tools ## sam build: arm64 Lambda artifacts through cargo-lambda
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam build --template template.yaml

# Fuzzing (nightly toolchain): each target runs FUZZ_SECONDS; a crash stops
# the run and leaves its input in fuzz/artifacts/<target>/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := key_parse authorizer_event manage_request
FUZZ_SEEDS_authorizer_event := infra/events
FUZZ_SEEDS_manage_request := fuzz/seeds/manage_request
CARGO_FUZZ := .local/tools/bin/cargo-fuzz

$(CARGO_FUZZ):
	cargo install cargo-fuzz --locked --version 0.13.2 --root .local/tools

fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS)) ## Fuzz key parsing, authorizer events, request bodies (FUZZ_SECONDS each)

fuzz-%: $(CARGO_FUZZ)
	mkdir -p fuzz/corpus/$* .local/fuzz
	PATH="$(CURDIR)/.local/tools/bin:$$PATH" cargo +nightly fuzz run --debug-assertions $* \
	  fuzz/corpus/$* $(FUZZ_SEEDS_$*) -- -max_total_time=$(FUZZ_SECONDS) 2>&1 | tee .local/fuzz/$*.log
	@grep -E '^Done [0-9]+ runs' .local/fuzz/$*.log

clean-local: ## Remove local state (.local, .dev)
	rm -rf .local .dev
