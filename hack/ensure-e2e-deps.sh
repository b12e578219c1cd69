#!/usr/bin/env bash
# ensure-e2e-deps.sh makes sure the end-to-end tests have an etcd and a kube-apiserver.
#
# Idempotent. etcd comes from the Debian package etcd-server (/usr/bin/etcd). kube-apiserver is
# built from hack/kube-apiserver (a module separate from detour's own) and cached by version in
# ${DETOUR_E2E_CACHE:-$HOME/.cache/detour-e2e}; a cached binary is reused. A cold build takes
# 5-10 minutes on 2 cores, 2 GiB of build cache and 2 GiB of memory.
#
# Progress goes to stderr; the last line on stdout is the path of the kube-apiserver binary.
set -euo pipefail

# Pinned because the module proxy serves only some kubernetes versions; check a new one with
# `go list -m -versions k8s.io/kubernetes` and change go.mod's replaces to match.
KUBE_VERSION=v1.32.13

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_dir=${DETOUR_E2E_CACHE:-$HOME/.cache/detour-e2e}
apiserver=$cache_dir/kube-apiserver-$KUBE_VERSION

log() { echo "ensure-e2e-deps: $*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		log "need root to run: $*"
		return 1
	fi
}

# apt_get runs apt-get, waiting for another apt or dpkg process to let go of its lock rather
# than failing. DPkg::Lock::Timeout covers the dpkg lock; `apt-get update` takes the lists lock
# without a timeout, so its failures are retried too.
apt_get() {
	local attempt
	for attempt in $(seq 1 60); do
		if as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" >&2; then
			return 0
		fi
		log "apt-get $* failed (attempt $attempt, maybe another apt holds the lock); retrying in 10s"
		sleep 10
	done
	return 1
}

ensure_etcd() {
	if [ -x /usr/bin/etcd ]; then
		log "etcd: /usr/bin/etcd present"
		return
	fi
	log "etcd: installing Debian package etcd-server"
	apt_get update
	apt_get install -y --no-install-recommends etcd-server
	[ -x /usr/bin/etcd ] || { log "etcd-server installed but /usr/bin/etcd is missing"; return 1; }
}

ensure_apiserver() {
	if [ -x "$apiserver" ]; then
		log "kube-apiserver: reusing $apiserver"
		return
	fi
	log "kube-apiserver: building $KUBE_VERSION (cold: 5-10 min)"
	mkdir -p "$cache_dir"
	local mod=$repo_root/hack/kube-apiserver
	if [ ! -s "$mod/go.sum" ]; then
		# -e: plain tidy fails because the proxy refuses two test-only modules at this version
		# (cri-client, csi-translation-lib); kube-apiserver does not import them.
		(cd "$mod" && GOWORK=off go mod tidy -e) >&2
	fi
	local minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	local pkg=k8s.io/component-base/version
	tmp=$apiserver.tmp.$$
	trap 'rm -f "$tmp"' EXIT
	# Without the -X flags the binary reports v0.0.0; -s -w take it from 130 to 91 MiB.
	(cd "$mod" && GOWORK=off CGO_ENABLED=0 go build -trimpath -o "$tmp" \
		-ldflags "-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
		k8s.io/kubernetes/cmd/kube-apiserver) >&2
	mv -f "$tmp" "$apiserver" # rename: a concurrent run never sees half a binary
	log "kube-apiserver: built $apiserver"
}

ensure_etcd
ensure_apiserver
echo "$apiserver"
