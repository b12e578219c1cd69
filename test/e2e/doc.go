// Package e2e holds detour's end-to-end tests: a real etcd and kube-apiserver, the real
// `detour serve` binary registered as a MutatingWebhookConfiguration, and Pods created through
// the apiserver with client-go. Every file but this one carries the build tag e2e, so a plain
// `go test ./...` here compiles nothing and starts nothing.
//
// test/e2e/run.sh does everything: hack/ensure-e2e-deps.sh (etcd, a kube-apiserver built once
// per machine), `go build ./cmd/detour`, then
//
//	DETOUR_BIN=... KUBE_APISERVER=... go test -tags e2e -count=1 -v ./...
//
// Environment:
//
//	KUBE_APISERVER      kube-apiserver binary; default: the cache path hack/ensure-e2e-deps.sh prints
//	DETOUR_E2E_CACHE    that cache's directory; default $HOME/.cache/detour-e2e
//	ETCD                etcd binary; default etcd on PATH, then /usr/bin/etcd
//	DETOUR_BIN          the detour binary; tests that need it are skipped without it
//	DETOUR_E2E_ARTIFACTS directory for process logs, kept; default a temporary directory that
//	                    is removed after a passing run and printed after a failing one
//
// This is a module of its own so that k8s.io/* never enters detour's go.mod.
package e2e
