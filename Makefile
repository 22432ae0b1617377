# localnvme — see README.md. `make demo` and `make test` are the two commands that matter.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
OUT ?= $(CURDIR)/_output
export OUT
FUZZTIME ?= 5m

.PHONY: all build lint chart unit fuzz vm-test test demo vm-demo vm-smoke bench clean fmt cluster-up cluster-down cluster-install e2e e2e-nodeloss images

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(OUT)/localnvme ./cmd/localnvme

# Static gates, first in `make test` so that a finding fails fast: gofmt -l, golangci-lint
# (.golangci.yml; the version pinned in hack/tools.env, built from the Go module proxy into
# ~/.cache/localnvme/bin on first use) with and without the test build tags, and shellcheck
# (apt-get installs it when missing) over every shell script. Fails on any finding.
lint:
	GO=$(GO) hack/lint.sh

# The Helm chart deploy/helm/localnvme (hack/chart.sh): helm lint --strict and helm template
# with the default values and each ci/ values file (every option set among them), values it
# must refuse, and the parity test (tests/chart, build tag chart): the chart's default
# rendering equals `kustomize build deploy/` object for object and field for field (and the
# base, with-registrar and monitoring variants theirs). helm and kustomize are pinned in
# hack/tools.env and built from the Go module proxy into ~/.cache/localnvme/bin on first use.
chart:
	GO=$(GO) hack/chart.sh

# Unit tests: pure logic and scripted exec, no devices; with the race detector (cgo).
# `go test` also runs every fuzz target on its seed corpus; then each target fuzzes for 2 s
# (~40 s in all with a warm build cache; the first run also builds fuzz-instrumented
# dependencies, ~3 min).
unit:
	$(GO) vet ./...
	$(GO) vet -tags vmtest ./tests/vm/
	$(GO) vet -tags vmtest,failpoints ./tests/vm/ ./pkg/...
	$(GO) vet -tags e2e ./tests/e2e/
	$(GO) vet -tags vmbench ./tests/bench/
	$(GO) vet -tags chart ./tests/chart/
	$(GO) test -race ./...
	GO=$(GO) FUZZTIME=2s hack/fuzz.sh
	$(GO) test -tags failpoints ./pkg/failpoint/

# Fuzzing: every Go fuzz target in pkg/ (docs/design.md §10) for FUZZTIME each (default 5m,
# about an hour in all), one line per target; a failing input lands in
# <package>/testdata/fuzz/<target>/. Not part of `make test`. Shorter: make fuzz FUZZTIME=30s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) hack/fuzz.sh

# Real-device tests in the qemu VM: safety tests + csi-sanity in four configurations.
vm-test:
	hack/test-vm.sh

# Everything. Installs what it needs (apt packages, Debian kernel into ~/.cache/localnvme).
test: lint chart build unit vm-test

# The main job: the two-node local cluster (each node a VM with emulated NVMe drives),
# localnvme installed from deploy/, a sample StatefulSet on localnvme volumes, and a table
# PVC -> node -> device class -> LV -> size. The cluster stays up: `make cluster-down`.
demo:
	hack/cluster/demo.sh

# The driver alone in one VM: volumes walked through their whole life (no Kubernetes).
vm-demo:
	hack/test-vm.sh --only demo

# The local cluster (hack/cluster; binaries, kernel and images cached in ~/.cache/localnvme).
cluster-up:
	hack/cluster/up.sh

cluster-down:
	hack/cluster/down.sh

cluster-install:
	hack/cluster/install.sh

images:
	hack/image/build.sh

# Cluster end-to-end tests: up, dry-run every deploy/ variant, install, tests/e2e, down.
e2e:
	hack/cluster/e2e.sh

# Only the failure scenarios of `make e2e` (leader election; node VMs powered off, deleted,
# tainted, rebuilt with blank drives, under PostgreSQL StatefulSets).
e2e-nodeloss:
	E2E_NODELOSS=1 E2E_RUN='TestE2E/(cluster/leader-election|node-deleted|node-returns|out-of-service|rebuilt-node)$$' hack/cluster/e2e.sh

# The driver against the bare LVM/filesystem tools in one VM (hack/bench.sh, docs/performance.md):
# _output/bench/results.{json,md}. Long (hours at the default levels); not part of `make test`.
# Quick look: BENCH_LEVELS=10 BENCH_N=3 BENCH_N_SLOW=1 make bench
bench:
	hack/bench.sh

vm-smoke:
	hack/vm/smoke.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(OUT)
