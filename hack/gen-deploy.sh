#!/usr/bin/env bash
# gen-deploy.sh regenerates deploy/detour.yaml from the Helm chart deploy/helm/detour, so that
# the one-file install and the chart cannot disagree. It renders with Helm's own Go library
# (deploy/helm/render, a module of its own: Helm never enters detour's go.mod), so no helm
# binary is needed. The first run builds that module: about 2 minutes of CPU.
#
#   hack/gen-deploy.sh           rewrite deploy/detour.yaml
#   hack/gen-deploy.sh --check   exit 1 if deploy/detour.yaml is not what the chart renders
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$repo_root/deploy/detour.yaml
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

(cd "$repo_root/deploy/helm/render" && GOWORK=off go run . -detour-yaml -chart ../detour) >"$tmp"

case "${1:-}" in
--check)
	if ! diff -u "$out" "$tmp"; then
		echo "gen-deploy: deploy/detour.yaml differs from the chart's rendering (diff above); run hack/gen-deploy.sh" >&2
		exit 1
	fi
	;;
"")
	chmod 0644 "$tmp"
	mv "$tmp" "$out"
	trap - EXIT
	echo "gen-deploy: wrote $out" >&2
	;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac
