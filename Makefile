# notatcompany: `make run` starts everything on embedded defaults,
# `make test` runs every module's tests with the race detector.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

BIN     := $(CURDIR)/.bin
# Every module of the workspace (go test ./... does not cross modules).
MODULES := $(shell go list -m -f '{{.Dir}}')
FUZZTIME ?= 10s

# The build stamped into every binary (--version, nac_build_info) and the
# image's labels; a release sets VERSION. DATE is the commit's, not now, so
# that one commit always gives the same image digest.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
IMAGE   ?= ghcr.io/notatcompany/notatcompany
# GOARCH list of the image, e.g. ARCH=amd64,arm64 for an image index of both.
ARCH    ?= amd64
# The same -X flags as image.Stamp.LDFlags, for `make build`.
BUILDINFO := github.com/notatcompany/notatcompany/services/shared/buildinfo
LDFLAGS   := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).date=$(DATE)

.PHONY: help run demo clean build image chart-lint test quality faults soak test-rules test-alone bench bench-e2e fuzz proto proto-check proto-compat tools fmt vet lint api-lint

.DEFAULT_GOAL := help

## help: this list (plain `make` prints it)
help:
	@echo 'usage: make <target>'
	@echo
	@sed -n 's/^## \([a-z-]*\): /  \1\t/p' $(MAKEFILE_LIST) | expand -t 16

## run: start the devstack (embedded NATS JetStream, the three services, the Dataverse stand-in)
run:
	@go build -o $(BIN)/nac-devstack ./services/devstack/cmd/devstack
	@exec $(BIN)/nac-devstack

## demo: with make run going, load a demo organization through its public paths and print what was flagged and why
demo:
	@go build -o $(BIN)/nac-demo ./services/devstack/cmd/demo
	@$(BIN)/nac-demo

## clean: once make run is stopped, remove the devstack's data (NAC_DATA_DIR, default .data): the next start is a first
clean:
	@go run ./services/devstack/cmd/devstack clean

## build: build every service binary and nacctl into .bin/, stamped with VERSION, COMMIT and DATE
build:
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./services/ingest/cmd/ingest ./services/validator/cmd/validator ./services/writer/cmd/writer ./services/devstack/cmd/devstack ./services/nacctl/cmd/nacctl

## image: the container image without a daemon: .bin/image/oci (OCI layout) and .bin/image/notatcompany.tar, then its test
image:
	go run ./image/cmd/mkimage -root . -out $(BIN)/image -repository $(IMAGE) -arch $(ARCH) \
		-version $(VERSION) -commit $(COMMIT) $(if $(DATE),-date $(DATE))
	cd image && NAC_IMAGE_LAYOUT=$(BIN)/image/oci go test -count=1 -run '^TestImage$$' .

## chart-lint: helm lint --strict (helm pinned in .bin/) of the chart, on its defaults and with every option on
chart-lint: tools
	$(BIN)/helm lint --strict charts/notatcompany
	$(BIN)/helm lint --strict charts/notatcompany -f charts/charttest/testdata/all-on.yaml

## test: every module's tests with -race, the writer's fault test, the alert rules, then the decision quality figures
# One go test over every module's packages (the workspace lets it cross
# modules), so that packages of different modules run side by side; it
# starts them in the order given, the longest first (SLOW_TESTS), so that
# none of them starts last and leaves a core idle. GORACE drops the race
# runtime's second of sleep at every test binary's exit, some 30 s in all
# (a race is reported when it happens; the sleep only gives goroutines
# still running after the last test a second more).
SLOW_TESTS := ./services/validator ./services/devstack ./services/writer ./services/validator/state \
	./services/shared/bus ./image ./services/ingest ./services/ingest/cmd/ingest ./services/writer/cmd/writer \
	./charts/charttest
RACE_ENV   := GORACE="atexit_sleep_ms=0 $${GORACE:-}"
test:
	@$(RACE_ENV) go test -race -count=1 -skip '^TestRandomizedFaults$$' $(SLOW_TESTS) $(MODULES:%=%/...)
	@$(MAKE) --no-print-directory faults
	@$(MAKE) --no-print-directory test-rules
	@$(MAKE) --no-print-directory quality

# The figures of the writer's randomized fault test.
FAULT_FIGURES := 'seed |published|converged|differ|overlapped|^(ok|FAIL|--- FAIL)'

## faults: the writer's randomized fault test with a fixed seed: contacts converged and writes per contact
faults:
	@cd services/writer && $(RACE_ENV) go test -race -count=1 -v -run '^TestRandomizedFaults$$' . | grep -E $(FAULT_FIGURES)

## soak: the fault test at length; NAC_FAULT_SEED, NAC_FAULT_CONTACTS and NAC_FAULT_ROUNDS choose the run
soak:
	@cd services/writer && NAC_FAULT_CONTACTS=$${NAC_FAULT_CONTACTS:-200} NAC_FAULT_ROUNDS=$${NAC_FAULT_ROUNDS:-300} \
		go test -race -count=1 -v -timeout 60m -run '^TestRandomizedFaults$$' . | grep -E $(FAULT_FIGURES)

## test-rules: promtool unit tests of the chart's alert rules (skipped without promtool, except in CI)
test-rules:
	@if command -v promtool >/dev/null; then \
		promtool check rules charts/notatcompany/rules/notatcompany.rules.yaml && \
		promtool test rules charts/notatcompany/rules/notatcompany.rules_test.yaml; \
	elif [ -n "$${CI:-}" ]; then \
		echo "test-rules: promtool is missing (apt-get install prometheus)" >&2; exit 1; \
	else \
		echo "test-rules: skipped, promtool is not installed (apt-get install prometheus)"; \
	fi

# What the labelled scenarios print: the figures overall and per kind,
# every known issue by name, and anything the labels disagree with.
QUALITY_LINES := 'scenarios:|all kinds|kind |KNOWN ISSUE|known issue|MISCLASSIFIED|REASON|REVERSAL|IGNORE|precision |recall |^(ok|FAIL|--- FAIL)'

## quality: precision, recall, reversal and Ignore figures of the labelled decision scenarios, per kind, and every known issue
quality:
	@cd services/validator && go test -count=1 -v -run '^TestScenarios$$' ./decide/ | grep -E $(QUALITY_LINES)


## test-alone: each module builds and vets on its own (GOWORK=off), as a container build would
test-alone:
	@for m in $(MODULES); do \
		echo "== $${m#$(CURDIR)/} (GOWORK=off)"; \
		(cd $$m && GOWORK=off go build ./... && GOWORK=off go vet ./...); \
	done

## bench: benchmarks of every module; they print figures and ratios, they never fail on speed
bench:
	@for m in $(MODULES); do \
		(cd $$m && go test -run='^$$' -bench=. -benchmem ./...) | grep -Ev '^(PASS|ok|\?|no test files)' || true; \
	done

## bench-e2e: a fresh devstack under open-loop flip load: rates, latency, CPU per flip beside the raw-JetStream floor
BENCH_E2E_FLAGS ?= -contacts 1000 -rates 100,300,1000,2000 -duration 10s -fanout 10000
BENCH_E2E_OUT   ?= $(BIN)/bench-e2e
bench-e2e:
	@go build -o $(BIN)/nac-devstack ./services/devstack/cmd/devstack
	@go build -o $(BIN)/nac-loadgen ./scripts/loadgen
	@rm -rf $(BENCH_E2E_OUT) && mkdir -p $(BENCH_E2E_OUT)
	@$(BIN)/nac-loadgen -devstack $(BIN)/nac-devstack -profile-dir $(BENCH_E2E_OUT) \
		-devstack-log $(BENCH_E2E_OUT)/devstack.log $(BENCH_E2E_FLAGS)
	@for p in $(BENCH_E2E_OUT)/*.pprof; do \
		echo "CPU by service, $$(basename $$p .pprof) ($$p):"; \
		go tool pprof -tags $$p 2>/dev/null | sed -n '/ service:/,/^ *$$/p' | tail -n +2; \
	done

## fuzz: run each fuzz target of outside-input parsers for FUZZTIME
fuzz:
	cd services/ingest && go test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./remotecontext/
	cd services/ingest && go test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./profilefeed/
	cd services/ingest && go test -run='^$$' -fuzz='^FuzzChallengeCode$$' -fuzztime=$(FUZZTIME) ./profilefeed/
	cd services/shared && go test -run='^$$' -fuzz='^FuzzFlagWrite$$' -fuzztime=$(FUZZTIME) ./dataverse/
	cd services/validator && go test -run='^$$' -fuzz='^FuzzValidate$$' -fuzztime=$(FUZZTIME) .
	cd services/shared && go test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./dataverse/fetchxml/
	cd services/shared && go test -run='^$$' -fuzz='^FuzzFilter$$' -fuzztime=$(FUZZTIME) ./dataverse/dataversetest/
	cd services/crmsync && go test -run='^$$' -fuzz='^FuzzChangeOf$$' -fuzztime=$(FUZZTIME) .

## tools: install the pinned code generators and linters into .bin/
tools:
	@./scripts/install-tools.sh

## proto: regenerate the event contracts' Go code
proto: tools
	cd proto && $(BIN)/buf lint && $(BIN)/buf generate

## proto-check: fail when the committed generated code differs from `make proto`
proto-check: proto
	@test -z "$$(git status --porcelain -- proto/)" || { git status --porcelain -- proto/; echo "generated code differs from make proto: run make proto and commit" >&2; exit 1; }

## proto-compat: buf breaking of the event contracts against the previous commit (skipped without one, as in a shallow clone)
proto-compat: tools
	@if git rev-parse --verify --quiet HEAD~1 >/dev/null; then \
		cd proto && $(BIN)/buf breaking --against '../.git#ref=HEAD~1,subdir=proto'; \
	else \
		echo "proto-compat: skipped, no previous commit in this clone"; \
	fi

# Redocly CLI, pinned; npx fetches it from the npm registry (about 20 MB, once).
REDOCLY_VERSION := 2.77.0

## api-lint: api/openapi.yaml against redocly's recommended ruleset (api/redocly.yaml; skipped without npx)
api-lint:
	@if command -v npx >/dev/null; then \
		npx --yes @redocly/cli@$(REDOCLY_VERSION) lint --config api/redocly.yaml api/openapi.yaml; \
	else \
		echo "api-lint: skipped, npx is not installed (it comes with Node.js and npm)"; \
	fi

## fmt: gofmt every Go file but the generated ones
fmt:
	gofmt -l -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')

## vet: go vet every module
vet:
	@for m in $(MODULES); do (cd $$m && go vet ./...); done

## lint: staticcheck (pinned in .bin/) on every module
lint: tools
	@for m in $(MODULES); do (cd $$m && $(BIN)/staticcheck ./...); done
