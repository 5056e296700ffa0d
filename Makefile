# gpu-headroom: build, test and run a local GPU cluster.
# Needs Go 1.26 on PATH; everything else is installed or built by these targets.

SHELL := /bin/bash
GO ?= go
CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/gpu-headroom
export GPU_HEADROOM_CACHE := $(CACHE)
BIN := bin
CLUSTER_DIR ?= .cluster
E2E_TIMEOUT ?= 45m
# E2E_FLAGS=-v shows every test as it runs; E2E_FLAGS='-run TestName' picks one.
E2E_FLAGS ?=
# SCALEBENCH_FLAGS='--nodes 100 --pods 1000' runs a smaller scale benchmark.
SCALEBENCH_FLAGS ?=

UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/test/e2e')
STATICCHECK := $(CACHE)/lint/staticcheck-v0.8.2

.PHONY: all build unit e2e test bench lint vet staticcheck cluster-bins deps cluster-up cluster-down gpu-check clean demo

all: build

## build: compile every command into bin/
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/... ./test/cmd/...

## unit: pure and in-process tests (no cluster)
unit:
	$(GO) test -count=1 $(UNIT_PKGS)

## e2e: tests against the real local control plane, KEDA and Redis (needs root)
e2e: deps cluster-bins
	HEADROOM_CLUSTER_BINS="$$(hack/cluster-bins.sh path)" $(GO) test -count=1 -timeout $(E2E_TIMEOUT) $(E2E_FLAGS) ./test/e2e/...

## test: what CI runs (.ci/run)
test: unit e2e

## demo: a trace replayed on the local cluster without and with headroom (about 8 min); DEMO_KEEP=1 keeps the cluster, DEMO_FLAGS=--help lists options
DEMO_FLAGS ?=
demo: deps cluster-bins helm-bins
	@mkdir -p $(BIN)
	@$(GO) build -o $(BIN)/headroomd ./cmd/headroomd
	@$(GO) build -o $(BIN)/demo ./test/cmd/demo
	@HEADROOM_CLUSTER_BINS="$$(hack/cluster-bins.sh path)" $(BIN)/demo --headroomd $(BIN)/headroomd $(DEMO_FLAGS)

## bench: Go benchmarks of the pure core, then headroomd at scale on the local cluster (prints a table)
bench: deps cluster-bins
	$(GO) test -run '^$$' -bench . -benchmem $(UNIT_PKGS)
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/headroomd ./cmd/headroomd
	HEADROOM_CLUSTER_BINS="$$(hack/cluster-bins.sh path)" $(GO) run ./test/cmd/scalebench --headroomd $(BIN)/headroomd $(SCALEBENCH_FLAGS)

## lint: go vet and staticcheck (built from the module proxy)
lint: vet staticcheck
vet:
	$(GO) vet ./...
staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...
$(STATICCHECK): tools/lint/go.mod tools/lint/go.sum
	@mkdir -p $(dir $@)
	cd tools/lint && $(GO) build -mod=readonly -o $@ honnef.co/go/tools/cmd/staticcheck

## cluster-bins: build the pinned control-plane binaries once per machine into $(CACHE)
cluster-bins:
	@hack/cluster-bins.sh build

## deps: Debian packages the local cluster needs (redis-server, iproute2)
deps:
	@command -v redis-server >/dev/null && command -v ip >/dev/null || { \
	  echo "installing redis-server and iproute2 from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server iproute2 >/dev/null; }

## cluster-up: start a local cluster for a person (3 zones of H100 nodes, KEDA, Redis)
cluster-up: deps cluster-bins
	@mkdir -p $(BIN)
	@$(GO) build -o $(BIN)/localcluster ./test/cmd/localcluster
	@HEADROOM_CLUSTER_BINS="$$(hack/cluster-bins.sh path)" $(BIN)/localcluster up --dir $(CLUSTER_DIR)

## cluster-down: stop it; no process or network link is left
cluster-down:
	@if [ -x $(BIN)/localcluster ]; then $(BIN)/localcluster down --dir $(CLUSTER_DIR); \
	 else $(GO) run ./test/cmd/localcluster down --dir $(CLUSTER_DIR); fi

## gpu-check: build headroom-agent (cgo) and run it once on this machine's GPUs; fails without a GPU/NVML
gpu-check:
	@BIN=$(BIN) GO=$(GO) hack/gpu-check.sh

clean:
	rm -rf $(BIN) e2e.out

## helm-bins: build Helm and promtool from the Go module proxy once per machine into $(CACHE) (about 6-8 min cold)
.PHONY: helm-bins manifests verify-manifests rules-test
helm-bins:
	@hack/helm-bins.sh build >/dev/null

## manifests: regenerate deploy/ and the chart's Grafana dashboard from the chart and tools/observability
manifests: helm-bins
	@hack/manifests.sh write

## verify-manifests: helm lint; fail when deploy/ or the dashboard drift from the chart
verify-manifests: helm-bins
	@hack/manifests.sh verify

## rules-test: promtool unit tests of the alerts; dashboard and alert queries parse and use exported metrics
rules-test: helm-bins
	"$$(hack/helm-bins.sh path)/promtool" test rules test/alerts/*.yaml
	cd tools/observability && $(GO) test -count=1 ./...

# CI (make test) checks the chart, its generated files and alerts with the unit
# tests, and the chart e2e test needs Helm.
unit: verify-manifests rules-test
e2e: helm-bins
