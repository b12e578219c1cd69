#!/usr/bin/env bash
# run.sh runs detour's end-to-end tests against a real etcd and kube-apiserver.
#
# It makes sure both exist (hack/ensure-e2e-deps.sh; the first run builds kube-apiserver, 5-10
# minutes on 2 cores), builds detour from the repository root and runs the e2e module's tests.
# Extra arguments go to `go test`, e.g. test/e2e/run.sh -run TestConfigReload.
# Set DETOUR_E2E_ARTIFACTS=DIR to keep every process log.
set -euo pipefail

e2e_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$e2e_dir/../.." && pwd)

kube_apiserver=$("$repo_root/hack/ensure-e2e-deps.sh" | tail -n 1)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo_root" && go build -o "$tmp/detour" ./cmd/detour)

cd "$e2e_dir"
DETOUR_BIN="$tmp/detour" KUBE_APISERVER="$kube_apiserver" GOWORK=off \
	go test -tags e2e -count=1 -v -timeout 20m ./... "$@"
