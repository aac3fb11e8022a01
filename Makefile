# keygate: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
EMU := infra/local/with-emulator
DYN := infra/local/with-dynalite
STACK := infra/local/stack
export SAM_CLI_TELEMETRY := 0
export CARGO_TERM_COLOR := never

PHONY_PORTAL := portal-web portal-vendor portal-vendor-check browser
.PHONY: help tools dev-tools dynalite iac test $(PHONY_PORTAL) test-aws unit lint fmt dev bench bench-sim build clean-local fuzz

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

# dynalite (npm), the second emulator that validates every DynamoDB request
# shape the tests sent (infra/local/replay_requests.py), exactly as locked.
DYNALITE_DIR := infra/local/dynalite

$(DYNALITE_DIR)/node_modules/.installed: $(DYNALITE_DIR)/package.json $(DYNALITE_DIR)/package-lock.json
	npm ci --prefix $(DYNALITE_DIR) --no-audit --no-fund --loglevel=error
	touch $@

dynalite: $(DYNALITE_DIR)/node_modules/.installed ## Install dynalite (npm ci) into infra/local/dynalite

# The developer portal's libraries (uPlot, Swagger UI) and the browser
# tests' accessibility checker (axe-core), exactly as locked. The copies the
# function embeds live in functions/portal/web/vendor/ (committed, so cargo
# builds without npm); portal-vendor-check fails when one differs from the
# locked package.
PORTAL_WEB := functions/portal/web

$(PORTAL_WEB)/node_modules/.installed: $(PORTAL_WEB)/package.json $(PORTAL_WEB)/package-lock.json
	npm ci --prefix $(PORTAL_WEB) --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

portal-web: $(PORTAL_WEB)/node_modules/.installed ## Install the portal's locked npm packages

portal-vendor: portal-web ## Copy the portal's libraries from node_modules into functions/portal/web/vendor
	grep -v '^#' $(PORTAL_WEB)/vendor/FILES | while read -r dst src; do cp "$(PORTAL_WEB)/node_modules/$$src" "$(PORTAL_WEB)/vendor/$$dst"; done

portal-vendor-check: portal-web ## Fail when a vendored portal library differs from the locked package
	grep -v '^#' $(PORTAL_WEB)/vendor/FILES | while read -r dst src; do \
	  cmp -s "$(PORTAL_WEB)/node_modules/$$src" "$(PORTAL_WEB)/vendor/$$dst" || { echo "$(PORTAL_WEB)/vendor/$$dst differs from $$src in package-lock.json: run make portal-vendor" >&2; exit 1; }; \
	done

# Headless Chromium and its WebDriver from Debian's packages, for the
# portal's browser tests (nothing downloads a browser at run time).
browser: ## Install chromium and chromium-driver with apt-get (if missing)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then echo "chromium and chromedriver present"; else \
	  sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium chromium-driver; fi

SCAN_VENV := $(VENV)/scan

$(SCAN_VENV)/.installed: infra/requirements-scan.txt | $(VENV)/.test-tools
	python3 -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-scan.txt
	touch $@

TEST_LOGS := $(CURDIR)/.local/test-logs
# One JSON line per distinct DynamoDB request shape the tests sent (written by
# the capture proxy in front of the emulator), replayed against dynalite.
CAPTURE := $(TEST_LOGS)/dynamodb-requests.jsonl

# checkov fails on any finding not suppressed in template.yaml (each
# suppression is a resource's Metadata.checkov.skip entry with its reason).
iac: tools $(SCAN_VENV)/.installed ## Check template.yaml offline (SAM lint, cfn-lint, checkov security scan)
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/sam validate --lint --template template.yaml
	$(SCAN_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet

# The realism layer's partition limits at a tenth of DynamoDB's (100 write
# units/s, 300 read units/s per partition), so the suite's hot items meet them.
REALISM_SCALE ?= 0.1

test: dev-tools iac dynalite portal-vendor-check browser ## Run every test; starts and stops its own emulators and local API
	rm -rf $(TEST_LOGS) && mkdir -p $(TEST_LOGS)
	cargo build --workspace --bins --locked
	KEYGATE_TEST_LOGS=$(TEST_LOGS) KEYGATE_REALISM_CAPTURE=$(CAPTURE) KEYGATE_REALISM_SCALE=$(REALISM_SCALE) $(EMU) $(DYN) \
	  cargo test --workspace --all-targets --locked 2>&1 | tee $(TEST_LOGS)/cargo-test.out
	# The API over HTTP: end-to-end tests and schemathesis through the gateway.
	KEYGATE_TEST_LOGS=$(TEST_LOGS) KEYGATE_STACK_LOGS=$(TEST_LOGS) KEYGATE_REALISM_CAPTURE=$(CAPTURE) KEYGATE_REALISM_SCALE=$(REALISM_SCALE) \
	  $(EMU) $(STACK) infra/local/api-tests 2>&1 | tee -a $(TEST_LOGS)/cargo-test.out
	KEYGATE_TEST_LOGS=$(TEST_LOGS) cargo run --quiet --locked -p keygate-tests --bin check-logs
	@awk '/^test result:/ {p+=$$4; f+=$$6; i+=$$8} END {printf "test result: %s. %d passed; %d failed; %d ignored; 0 measured; 0 filtered out (whole suite)\n", (f ? "FAILED" : "ok"), p, f, i; exit (f > 0)}' $(TEST_LOGS)/cargo-test.out
	# Every request shape the suite sent, validated again by dynalite (fails on
	# a missing or incomplete capture too).
	$(DYN) $(PY) infra/local/replay_requests.py $(CAPTURE)

test-aws: tools ## The store and authorizer suites against real DynamoDB (needs AWS credentials; skipped without)
	infra/aws/test-against-real-dynamodb

unit: ## Unit tests only (no emulator)
	cargo test --workspace --lib --locked

lint: ## cargo fmt check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	cargo fmt --all

DEV_PORT ?= 3000

dev: dev-tools ## Run the API locally on 127.0.0.1:3000 (DEV_PORT=n to change) until Ctrl-C
	cargo build --workspace --bins --locked
	mkdir -p .dev/logs
	KEYGATE_TABLE=keygate-local KEYGATE_GATEWAY_PORT=$(DEV_PORT) KEYGATE_ADMIN_KEY_FILE=.dev/admin-key \
	  KEYGATE_STACK_LOGS=.dev/logs $(EMU) $(STACK) infra/local/dev

BENCH_SECONDS ?= 10
BENCH_CONCURRENCY ?= 8

# Function runs through the stand-in Lambda Runtime API (bench-functions):
# cold starts per function, authorizer decisions, management requests, due keys.
FUNCTIONS := $(notdir $(wildcard functions/*))
BENCH_RUNS ?= 20
BENCH_DECISIONS ?= 2000
BENCH_REQUESTS ?= 300
BENCH_ROTATION_KEYS ?= 200
# Usage report benchmark: one owner with this many keys and 30 days of usage.
BENCH_USAGE_KEYS ?= 1000

# The simulation at full scale (bench-sim, no emulator): virtual seconds per scenario.
SIM_SECONDS ?= 5

# The benchmarks measure our own code against the emulator, without the
# realism proxy's overhead (KEYGATE_REALISM=off), as BENCHMARKS.md always has.
bench: export KEYGATE_REALISM = off
bench: tools build ## Measure and write BENCHMARKS.md (release builds; takes minutes)
	cargo build --release --locked -p keygate-tests $(addprefix -p ,$(FUNCTIONS)) --bins
	cargo bench --locked -p keygate-tests --bench decision -- --noplot
	mkdir -p target/bench
	$(EMU) target/release/bench-load $(BENCH_SECONDS) $(BENCH_CONCURRENCY) > target/bench/load.json
	$(EMU) target/release/bench-functions target/release $(BENCH_RUNS) $(BENCH_DECISIONS) \
	  $(BENCH_REQUESTS) $(BENCH_ROTATION_KEYS) > target/bench/functions.json
	$(EMU) target/release/bench-usage $(BENCH_USAGE_KEYS) > target/bench/usage.json
	target/release/bench-sim $(SIM_SECONDS) > target/bench/sim.json
	$(PY) infra/bench/report.py > BENCHMARKS.md
	cat BENCHMARKS.md

bench-sim: ## Only the simulation at full scale: runs bench-sim, rewrites its BENCHMARKS.md section
	cargo build --release --locked -p keygate-tests --bin bench-sim
	mkdir -p target/bench
	target/release/bench-sim $(SIM_SECONDS) > target/bench/sim.json
	python3 infra/bench/simulation.py BENCHMARKS.md

# sam build runs `cargo lambda build --release --arm64 --bin <Binary>` once per
# function, in the source tree, sharing target/: dependencies compile once, but
# each function's fat-LTO link (one thread) would wait for the previous one.
# One cargo run of the same command for every Binary the template names links
# them side by side on all cores; sam build's own runs then find them fresh.
LAMBDA_BINS := $(shell awk '$$1 == "Binary:" {print $$2}' template.yaml)

build: dev-tools ## sam build: arm64 Lambda artifacts through cargo-lambda; checks and sizes them
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 $(addprefix --bin ,$(LAMBDA_BINS))
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam build --template template.yaml
	$(PY) infra/bench/sizes.py target/bench/sizes.json

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
