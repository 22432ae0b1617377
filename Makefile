# localnvme — see README.md. `make demo` and `make test` are the two commands that matter.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
OUT ?= $(CURDIR)/_output
export OUT

.PHONY: all build unit vm-test test demo vm-smoke clean fmt

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(OUT)/localnvme ./cmd/localnvme

# Unit tests: pure logic and scripted exec, no devices.
unit:
	$(GO) vet ./...
	$(GO) vet -tags vmtest ./tests/vm/
	$(GO) test ./...

# Real-device tests in the qemu VM: safety tests + csi-sanity in four configurations.
vm-test:
	hack/test-vm.sh

# Everything. Installs what it needs (apt packages, Debian kernel into ~/.cache/localnvme).
test: build unit vm-test

# The main job: boot the VM with emulated NVMe drives and walk volumes through their life.
demo:
	hack/test-vm.sh --only demo

vm-smoke:
	hack/vm/smoke.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(OUT)
