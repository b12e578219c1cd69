# detour's build and test entry points. `make test-all` is the one command CI
# runs (.ci/run): it installs what the tests need, then runs everything.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/detourhq/detour/internal/cli.Version=$(VERSION) -X github.com/detourhq/detour/internal/cli.Commit=$(COMMIT)

.PHONY: build test deps lint e2e test-all fuzz bench load

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/detour ./cmd/detour

# Debian packages the integration tests run for real (registry, etcd, containerd, ...).
deps:
	hack/ensure-test-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Unit and integration tests (real docker-registry, containerd) under the race detector.
# The nested modules keep heavy test-only dependencies (containerd's own
# hosts.toml loader) out of detour's go.mod.
test: deps lint
	$(GO) test -race -count=1 -timeout 30m ./...
	cd internal/hosts/containerdcheck && $(GO) test -count=1 ./...
	hack/gen-deploy.sh --check
	cd deploy/helm/render && $(GO) vet ./... && $(GO) test -count=1 ./...

# End-to-end tests through a real kube-apiserver + etcd (built once per machine, cached).
e2e:
	test/e2e/run.sh

test-all: test e2e

# Each fuzz target for FUZZTIME (default 2m): make fuzz FUZZTIME=30s
FUZZTIME ?= 2m
fuzz:
	hack/fuzz-all.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...
