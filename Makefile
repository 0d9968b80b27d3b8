# pyexec — build, run and test entry points.
#
#   make run      install the runtime if needed, build, serve on $(PORT)
#   make test     runtime, go vet, gofmt, staticcheck, harness unit tests, go test -race
#                 with the integration tests (go test ./... alone runs the unit tests):
#                 the sandbox, MCP with the Python SDK's client, the playground in
#                 headless chromium; fuzzing; API conformance (schemathesis against
#                 a running service)
#   make bench    start a cold and a default-mode service and measure both (see docs/performance.md)
#   make soak     30 minutes of good, failing and hostile scripts at saturation: does anything grow?
#   make image    build the Dockerfile with podman (image/build.sh)
#   make test-image  boot the image in qemu as Cloud Run gen2 would and check it
#   make profile  where the CPU of an execution goes: perf and Go's profiler (see docs/performance.md)
#
# The Python runtime and nsjail live outside the repository, in $(PYEXEC_RUNTIME)
# (default /opt/pyexec; never under /tmp, which the jail replaces). It is installed
# by scripts/install-runtime.sh, the same script the Dockerfile and CI run; once
# installed, a second run is a no-op that takes milliseconds.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO ?= go

PYEXEC_RUNTIME ?= /opt/pyexec
PYEXEC_PYTHON ?= $(PYEXEC_RUNTIME)/venv/bin/python3
PYEXEC_NSJAIL ?= $(PYEXEC_RUNTIME)/bin/nsjail
export PYEXEC_RUNTIME PYEXEC_PYTHON PYEXEC_NSJAIL

# The independent MCP client (Python SDK) the tests check /mcp with.
PYEXEC_MCP_CLIENT ?= /opt/pyexec-tools/mcp-client
export PYEXEC_MCP_CLIENT

# Functions Framework contract: the port to listen on and the function to serve
# (Execute for HTTP, ExecuteEvent for Pub/Sub CloudEvents).
PORT ?= 8080
FUNCTION_TARGET ?= Execute

BIN := $(CURDIR)/bin

# staticcheck, pinned; v0.8.2 is the 2026.2.2 release. The version is part of the
# file name so that changing the pin installs the new one.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/staticcheck-$(STATICCHECK_VERSION)

# go test's own deadline; the integration tests start real jails.
GO_TEST_TIMEOUT ?= 30m

# The integration, adversarial and load tests (tests/, and the jail-starting
# tests beside the code) carry this build tag: go test ./... without it runs
# only the fast unit tests. Lint and make test set it.
GO_TAGS := integration

.PHONY: run build runtime mcp-client chromium tools lint test test-python test-go bench soak profile clean test-fuzz test-conformance image test-image

## run: install the runtime on first use, build and serve on $(PORT)
run: runtime build
	PORT='$(PORT)' FUNCTION_TARGET='$(FUNCTION_TARGET)' exec '$(BIN)/pyexec'

## build: compile ./cmd/pyexec to ./bin/pyexec and the command-line client
## ./cmd/pyexec-cli to ./bin/pyexec-cli (Go's cache makes this incremental)
build:
	$(GO) build -trimpath -o '$(BIN)/pyexec' ./cmd/pyexec
	$(GO) build -trimpath -o '$(BIN)/pyexec-cli' ./cmd/pyexec-cli

## runtime: install the pinned Python runtime and nsjail into $(PYEXEC_RUNTIME)
runtime:
	bash scripts/install-runtime.sh

## mcp-client: install the pinned Python MCP client into $(PYEXEC_MCP_CLIENT)
mcp-client:
	bash scripts/install-mcp-client.sh

## chromium: install Debian's chromium, which the playground's browser tests
## (tests/browser) drive headless; they fail without it
chromium:
	bash scripts/install-chromium.sh

## tools: install the pinned Go lint tools into ./bin
tools: $(STATICCHECK)

$(STATICCHECK):
	@mkdir -p '$(BIN)'
	GOBIN='$(BIN)/.staticcheck-install' $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv '$(BIN)/.staticcheck-install/staticcheck' '$@'
	rmdir '$(BIN)/.staticcheck-install'

## lint: go vet, gofmt and staticcheck, the tagged tests included
lint: tools
	$(GO) vet -tags '$(GO_TAGS)' ./...
	@files=$$(git ls-files --cached --others --exclude-standard -- '*.go'); \
	unformatted=$$(if [[ -n $$files ]]; then gofmt -l $$files; fi); \
	if [[ -n $$unformatted ]]; then echo "gofmt: these files need formatting:"; echo "$$unformatted"; exit 1; fi
	'$(STATICCHECK)' -tags '$(GO_TAGS)' ./...

## test: everything CI runs
test: runtime lint test-python test-go test-fuzz test-conformance

## test-python: the harness's unit tests, run with the runtime's interpreter
# unittest reports success when it finds nothing to run, so the count of tests
# that ran is checked: no tests found is a failure, not a pass.
test-python: runtime
	@if [[ ! -d harness ]]; then echo "test-python: no harness/ directory, so no Python tests" >&2; exit 1; fi
	@out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	'$(PYEXEC_PYTHON)' -m unittest discover -s harness -p 'test_*.py' -v 2>&1 | tee "$$out"; \
	ran=$$(sed -n 's/^Ran \([0-9][0-9]*\) tests\{0,1\} in .*/\1/p' "$$out" | tail -n 1); \
	if [[ -z $$ran || $$ran == 0 ]]; then \
	  echo "test-python: no Python tests ran (expected harness/test_*.py)" >&2; exit 1; \
	fi

## test-go: the Go tests with the race detector, the integration tests
## included (the browser tests and the Python MCP client's among them),
## against the installed runtime. One package at a time (-p 1): each
## integration package fills the machine with jails, and two at once on two
## cores turn the tests' short wall-clock limits into spurious timeouts.
test-go: runtime mcp-client chromium
	$(GO) test -race -count=1 -p 1 -tags '$(GO_TAGS)' -timeout '$(GO_TEST_TIMEOUT)' ./...
	# The adversarial suite again, every script as a session's cell.
	PYEXEC_ADVERSARIAL_AS_CELLS=1 $(GO) test -race -count=1 -tags '$(GO_TAGS)' -timeout '$(GO_TEST_TIMEOUT)' ./tests/adversarial/

## test-conformance: schemathesis (pinned, installed into its own venv by
## scripts/install-schemathesis.sh) against a running service in the default
## and cold modes and as ExecuteEvent: every answer keeps to api/openapi.yaml
test-conformance: runtime
	bash scripts/conformance.sh

## bench: latency and throughput of cold and default mode side by side, with
## the performance targets checked; BENCH_FLAGS passes flags to pyexec-bench
bench: runtime build
	$(GO) run ./cmd/pyexec-bench -bin '$(BIN)/pyexec' $(BENCH_FLAGS)

## soak: one default-mode service at saturation with good, failing and
## hostile scripts for SOAK_TIME (30m), measured at the start and end of each
## 5-minute window: RSS, fds and cgroups must stay flat (not run in CI)
SOAK_TIME ?= 30m
soak: runtime build
	$(GO) run ./cmd/pyexec-bench -bin '$(BIN)/pyexec' -soak '$(SOAK_TIME)' $(SOAK_FLAGS)

## profile: where the CPU of one execution goes, by phase: perf samples every
## CPU with call stacks (kept for the service's process tree and the kernel's
## threads) and Go's profiler samples the service, while one workload runs at
## saturation in the default mode. Needs perf (Debian: linux-perf). Reports
## go to $(PROFILE_DIR); PROFILE_FLAGS passes flags to pyexec-bench
## (-workloads trivial, -duration 20s)
PROFILE_DIR ?= $(CURDIR)/out/profile
profile: runtime
	$(GO) build -trimpath -tags pprof -o '$(BIN)/pyexec-pprof' ./cmd/pyexec
	$(GO) run ./cmd/pyexec-bench -bin '$(BIN)/pyexec-pprof' -profile '$(PROFILE_DIR)' -workloads pandas -duration 10s $(PROFILE_FLAGS)

## test-fuzz: a short run of each fuzz target (FUZZTIME each) on top of its
## committed seed corpus in testdata/fuzz/
FUZZTIME ?= 20s
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime '$(FUZZTIME)' ./server
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeSessionBodies$$' -fuzztime '$(FUZZTIME)' ./server
	$(GO) test -run '^$$' -fuzz '^FuzzJudgeReport$$' -fuzztime '$(FUZZTIME)' ./executor/internal/jail

## image: build the Dockerfile, unchanged, with podman from Debian's packages;
## base images that cannot be pulled are built locally (image/bases.sh)
image:
	bash image/build.sh

## test-image: boot the image in qemu the way Cloud Run's second generation
## runs it, in each variant Cloud Run may hand it, and check it over HTTP
test-image: image
	bash image/test.sh

## clean: remove build outputs (the runtime in $(PYEXEC_RUNTIME) is left alone;
## remove it with rm -rf if you mean to)
clean:
	rm -rf '$(BIN)'
